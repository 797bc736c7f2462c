"""astar.extract: video → 2-fps frames → whole-video C3D → pool2…pool5 + fc7 in a Zarr store.

The store's contract is storage_schema.md; ``open_store`` is how every other stage
reads it and ``extract_videos`` how every caller writes it. The exports are the API a
user scripts (the README's examples): reading, writing and verifying a store, the
inputs, the backbones and the error root. The command-line helpers (``clitools``),
devices, provenance wording and lazy exports (``lazy``) live in this package too, at the
bottom of the layering, so that the training stage and the pipelines share them; they
are imported from their modules.

Every name is imported from its module on first use (``lazy``): importing the package
loads neither torch nor Dask, and ``open_store`` loads only the store reader.
"""
from .lazy import export_lazily

__all__ = export_lazily(__name__, {
    "backbones": ("DEFAULT_BACKBONE", "get_backbone"),
    "dask_executor": ("dask_client",),
    "decode": ("decode_video",),
    "errors": ("AstarError",),
    "extraction": ("extract_videos",),
    "extractor": ("ExtractionConfig", "Extractor"),
    "inputs": ("collect_inputs",),
    "outcomes": ("RunSummary",),
    "store.ids": ("VideoInput",),
    "store.reader": ("FeatureStore", "StoreError", "open_store"),
    "store.verify": ("verify_store",),
})
