"""astar.extract: video → 2-fps frames → whole-video C3D → pool2…pool5 + fc7 in a Zarr store.

The store's contract is storage_schema.md; ``open_store`` is how every other stage
reads it and ``extract_videos`` how every caller writes it. The command-line helpers
(``clitools``), the error root (``AstarError``), devices, provenance wording and lazy
exports (``export_lazily``) live here too, at the bottom of the layering, so the training stage and the pipelines
share them.

Every name is imported from its module on first use (``lazy``): importing the package
loads neither torch nor Dask, and ``open_store`` loads only the store reader.
"""
from .lazy import export_lazily

__all__ = export_lazily(__name__, {
    "backbones": ("BACKBONES", "DEFAULT_BACKBONE", "Backbone", "get_backbone"),
    "c3d": ("C3D", "load_weights", "random_init"),
    "clitools": ("CONTEXT_SETTINGS", "EXIT_INTERRUPTED", "EXIT_SOME_FAILED", "FiniteFloat", "KeyValue", "decode_timeout_option",
                 "command_error", "printable", "say", "storage_option"),
    "decode": ("DecodedVideo", "DecodeError", "decode_video"),
    "devices": ("PRECISIONS", "DeviceError", "autocast_dtype", "resolve_device"),
    "dask_executor": ("ClusterError", "dask_client"),
    "errors": ("AstarError",),
    "extraction": ("extract_videos",),
    "extractor": ("ExtractionConfig", "Extractor"),
    "finite": ("require_finite",),
    "folders": ("FolderError", "check_folder", "claim_folder"),
    "store.ids": ("VideoInput", "has_scheme", "local_path", "video_id_from_key", "video_key"),
    "inputs": ("InputError", "InputScan", "collect_inputs", "scan_inputs"),
    "lazy": ("export_lazily",),
    "options": ("AUTOCAST_PRECISIONS", "DEVICES"),
    "outcomes": ("RunSummary", "VideoOutcome"),
    "progress": ("progress",),
    "preprocessing": ("C3D_CAFFE", "PAPER", "PREPROCESSINGS", "Preprocessing"),
    "provenance": ("random_init_warning", "weights_line"),
    "store.schema": ("FEATURE_DTYPE", "FEATURE_IDENTITY_KEYS", "FPS", "SCHEMA_VERSION", "LayerGeometry", "padded_frame_count"),
    "store.root_attributes": ("upgraded_attributes",),
    "store.reader": ("DamagedVideoError", "FeatureStore", "StoreError", "open_store"),
    "store.verify": ("verify_store",),
    "store.writer": ("StoreWriter",),
    "weights": ("WeightsError", "WeightsSpec"),
    "torchfile": ("load_plain",),
})
