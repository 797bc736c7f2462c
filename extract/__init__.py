"""astar.extract: video → 2-fps frames → whole-video C3D → pool2…pool5 + fc7 in a Zarr store.

The store's contract is storage_schema.md; ``open_store`` is how every other stage reads it.
"""
from .batch import EXIT_SOME_FAILED, RunSummary, VideoOutcome, extract_videos, store_decoded
from .c3d import C3D, WeightsError, WeightsSpec, load_weights, random_init
from .decode import DecodedVideo, DecodeError, decode_video
from .distributed import ClusterError, dask_client, extract_on_dask
from .extractor import ExtractionSettings, Extractor, resolve_device
from .ids import VideoInput, collect_inputs, video_id_from_key, video_key
from .params import KeyValue
from .preprocessing import C3D_CAFFE, PAPER, PREPROCESSINGS, Preprocessing
from .schema import FC7_DIM, FPS, LAYERS, SCHEMA_VERSION, LayerSpec, padded_frame_count
from .store import FeatureStore, StoreError, StoreWriter, open_store

__all__ = [
    "C3D", "C3D_CAFFE", "DecodeError", "DecodedVideo", "EXIT_SOME_FAILED", "ExtractionSettings", "Extractor",
    "FC7_DIM", "FPS", "FeatureStore", "LAYERS", "LayerSpec", "PAPER", "PREPROCESSINGS", "Preprocessing", "RunSummary",
    "SCHEMA_VERSION", "StoreError", "StoreWriter", "VideoInput", "VideoOutcome", "WeightsError", "WeightsSpec",
    "collect_inputs", "decode_video", "extract_videos", "load_weights", "open_store", "padded_frame_count",
    "random_init", "store_decoded", "video_id_from_key", "video_key",
    "ClusterError", "KeyValue", "dask_client", "extract_on_dask", "resolve_device",
]
