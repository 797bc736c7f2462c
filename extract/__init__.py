"""astar.extract: video → 2-fps frames → whole-video C3D → pool2…pool5 + fc7 in a Zarr store.

The store's contract is storage_schema.md; ``open_store`` is how every other stage
reads it and ``extract_videos`` how every caller writes it. The command-line helpers
(``clitools``), the error root (``AstarError``), devices and provenance wording live
here too, at the bottom of the layering, so the training stage and the pipelines
share them.
"""
from .c3d import C3D, WeightsError, WeightsSpec, load_weights, random_init
from .clitools import CONTEXT_SETTINGS, EXIT_INTERRUPTED, EXIT_SOME_FAILED, KeyValue, decode_timeout_option, say, storage_option
from .decode import DecodedVideo, DecodeError, decode_video
from .devices import AUTOCAST_PRECISIONS, DEVICES, PRECISIONS, DeviceError, autocast_dtype, resolve_device
from .distributed import ClusterError, dask_client
from .errors import AstarError
from .extraction import extract_videos
from .extractor import ExtractionConfig, Extractor
from .folders import FolderError, check_folder, claim_folder
from .ids import VideoInput, video_id_from_key, video_key
from .inputs import InputError, InputScan, collect_inputs, scan_inputs
from .outcomes import RunSummary, VideoOutcome
from .progress import progress
from .preprocessing import C3D_CAFFE, PAPER, PREPROCESSINGS, Preprocessing
from .provenance import random_init_warning, weights_line
from .schema import FC7_DIM, FPS, LAYERS, SCHEMA_VERSION, LayerSpec, padded_frame_count
from .store import DamagedVideoError, FeatureStore, StoreError, StoreWriter, open_store, verify_store
from .torchfile import load_plain

__all__ = [
    "AUTOCAST_PRECISIONS", "AstarError", "C3D", "C3D_CAFFE", "CONTEXT_SETTINGS", "ClusterError", "DEVICES",
    "DecodeError", "DecodedVideo", "DeviceError", "EXIT_INTERRUPTED", "EXIT_SOME_FAILED", "ExtractionConfig",
    "Extractor", "FC7_DIM", "FPS", "FeatureStore", "KeyValue", "LAYERS", "LayerSpec", "PAPER", "PRECISIONS",
    "PREPROCESSINGS", "Preprocessing", "RunSummary", "SCHEMA_VERSION", "StoreError", "StoreWriter", "VideoInput",
    "VideoOutcome", "WeightsError", "WeightsSpec", "autocast_dtype", "collect_inputs", "dask_client", "decode_timeout_option", "InputError", "InputScan", "scan_inputs",
    "decode_video", "extract_videos", "load_weights", "open_store", "padded_frame_count", "random_init",
    "random_init_warning", "resolve_device", "say", "storage_option", "video_id_from_key", "video_key",
    "weights_line",
    "DamagedVideoError", "FolderError", "check_folder", "claim_folder", "load_plain", "progress", "verify_store",
]
