"""astar.extract: video → 2-fps frames → whole-video C3D → pool2…pool5 + fc7 in a Zarr store.

The store's contract is storage_schema.md; ``open_store`` is how every other stage
reads it and ``extract_videos`` how every caller writes it. The command-line helpers
(``clitools``), the error root (``AstarError``), devices and provenance wording live
here too, at the bottom of the layering, so the training stage and the pipelines
share them.
"""
from .backbones import BACKBONES, DEFAULT_BACKBONE, Backbone, get_backbone
from .c3d import C3D, load_weights, random_init
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
from .schema import FPS, SCHEMA_VERSION, LayerGeometry, padded_frame_count
from .store import DamagedVideoError, FeatureStore, StoreError, StoreWriter, open_store, upgraded_attributes, verify_store
from .weights import WeightsError, WeightsSpec
from .torchfile import load_plain

__all__ = [
    "AUTOCAST_PRECISIONS", "AstarError", "BACKBONES", "Backbone", "C3D", "C3D_CAFFE", "CONTEXT_SETTINGS", "ClusterError",
    "DEFAULT_BACKBONE", "DEVICES", "DecodeError", "DecodedVideo", "DeviceError", "EXIT_INTERRUPTED", "EXIT_SOME_FAILED",
    "ExtractionConfig", "Extractor", "FPS", "FeatureStore", "KeyValue", "LayerGeometry", "PAPER", "PRECISIONS",
    "PREPROCESSINGS", "Preprocessing", "RunSummary", "SCHEMA_VERSION", "StoreError", "StoreWriter", "VideoInput",
    "VideoOutcome", "WeightsError", "WeightsSpec", "autocast_dtype", "collect_inputs", "dask_client",
    "InputError", "InputScan", "decode_timeout_option", "decode_video", "extract_videos", "get_backbone", "load_weights", "open_store", "padded_frame_count", "random_init",
    "random_init_warning", "resolve_device", "say", "scan_inputs", "storage_option", "upgraded_attributes", "video_id_from_key",
    "video_key", "weights_line",
    "DamagedVideoError", "FolderError", "check_folder", "claim_folder", "load_plain", "progress", "verify_store",
]
