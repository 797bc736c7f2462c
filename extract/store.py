"""The Zarr v3 layout of storage_schema.md: the writer, the reader (``open_store``), and nothing else.

Layout (see storage_schema.md for the normative text)::

    STORE/                     root group: schema version, extraction identity
      videos/<key>/            one group per video: the backbone's layers (pool2..pool5 for C3D), fc7, fc7_windows
      manifest/<key>/          completion marker, written last: the video is done
      failures/<key>/          latest failure of a video that is not done
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Iterator

import numpy as np
import pandas as pd
import zarr
from zarr.codecs import BloscCodec

from .backbones import DEFAULT_BACKBONE, get_backbone
from .errors import AstarError
from .ids import is_url, video_id_from_key, video_key
from .schema import (
    FEATURE_DTYPE, MAX_TIME_CHUNK, READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, TOP_FEATURE, TOP_WINDOWS, LayerGeometry,
    top_dimensions,
)

VIDEOS, MANIFEST, FAILURES = "videos", "manifest", "failures"
IDENTITY_KEYS = ("astar_schema_version", "fps", "preprocessing", "backbone", "model", "precision")
"""Root attributes that must match for a run to add videos to an existing store."""

COMPRESSOR = BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")
"""Lossless; byte shuffle groups float16 exponents, which ReLU zeros and small values make compressible.

Level 1 compresses a 64-frame video's features in 22 ms where level 5 took 171 ms (a
fifth of fp32 C3D's time on 2 CPU cores, and far more than C3D's on a GPU), for a
store 6 % larger (34.3 % instead of 32.4 % of float32)."""


class StoreError(AstarError):
    """A store that cannot be opened or written as asked; the message names it and says why."""


def astar_version() -> str:
    try:
        return version("astar")
    except PackageNotFoundError:
        return "unknown"


def _fsspec_options(storage_options: dict | None) -> dict[str, Any]:
    """The user's fsspec options, with listings read afresh: other processes (workers, concurrent runs) add videos."""
    return {"use_listings_cache": False, **(storage_options or {})}


def _zarr_store(url: str, storage_options: dict | None, read_only: bool) -> zarr.abc.store.Store:
    if is_url(url):
        return zarr.storage.FsspecStore.from_url(url, storage_options=_fsspec_options(storage_options), read_only=read_only)
    return zarr.storage.LocalStore(url.removeprefix("file://"), read_only=read_only)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def upgraded_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    """Root attributes as schema version 2 states them; a version-1 store's are completed.

    Version 1 stores are C3D stores: they gain ``backbone`` (``c3d``), C3D's ``layers``
    geometry, the v2 ``fc7`` record, ``preprocessing.std`` (null) and version 2, so a
    run trained on a v1 store and features extracted now compare equal when they are.
    """
    if attrs.get("astar_schema_version") != 1:
        return dict(attrs)
    upgraded = {**attrs, **get_backbone(DEFAULT_BACKBONE).describe(), "astar_schema_version": SCHEMA_VERSION}
    if isinstance(attrs.get("preprocessing"), dict):
        upgraded["preprocessing"] = {**attrs["preprocessing"], "std": attrs["preprocessing"].get("std")}
    return upgraded


def layer_geometry(attrs: dict[str, Any]) -> tuple[LayerGeometry, ...]:
    """The stored layers' geometry from (upgraded) root attributes, lowest layer first."""
    return tuple(LayerGeometry.from_record(record) for record in upgraded_attributes(attrs)["layers"])


class FeatureStore:
    """Read access to a feature store (what ``open_store`` returns).

    ``video_ids`` lists completed videos only; arrays are read lazily, one video
    and layer at a time.
    """

    def __init__(self, root: zarr.Group, url: str) -> None:
        self.root = root
        self.url = url

    @cached_property
    def attrs(self) -> dict[str, Any]:
        """Root attributes as version 2 states them (``upgraded_attributes``): schema version, fps,
        preprocessing, backbone, layer geometry, model and weights identity, …"""
        return upgraded_attributes(dict(self.root.attrs))

    @property
    def schema_version(self) -> int:
        """The version the store was written with (``attrs`` shows every store as version 2)."""
        return int(self.root.attrs["astar_schema_version"])

    @property
    def backbone(self) -> str:
        """Name of the backbone the features came from (``c3d``, ``r2plus1d_18``, …)."""
        return str(self.attrs["backbone"])

    @cached_property
    def layers(self) -> tuple[LayerGeometry, ...]:
        """Geometry of the stored layers a_1 … a_L, lowest first; the last is the top grid."""
        return layer_geometry(self.attrs)

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    @property
    def top_channels(self) -> int:
        """Width of ``fc7``, a_{L+1}."""
        return int(self.attrs[TOP_FEATURE]["channels"])

    @property
    def random_init(self) -> bool:
        """True when the features came from random-init backbone weights."""
        return bool(self.attrs.get("model", {}).get("random_init", False))

    @cached_property
    def _keys(self) -> dict[str, str]:
        """video id → key of every completed video."""
        if MANIFEST not in self.root:
            return {}
        manifest = self.root[MANIFEST]
        keys = {}
        for key in sorted(manifest.group_keys()):
            video_id = video_id_from_key(key)
            if video_id is None:
                video_id = manifest[key].attrs["video_id"]
            keys[video_id] = key
        return keys

    @property
    def video_ids(self) -> list[str]:
        """Ids of completed videos, sorted."""
        return sorted(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self.video_ids)

    def group(self, video_id: str) -> zarr.Group:
        """The Zarr group of a completed video."""
        if video_id not in self._keys:
            raise KeyError(f"video {video_id!r} is not a completed video of {self.url}")
        return self.root[VIDEOS][self._keys[video_id]]

    def array(self, video_id: str, layer: str) -> zarr.Array:
        """A lazy Zarr array: a stored layer (T, H, W, C), ``fc7`` (D,) or ``fc7_windows`` (W, D)."""
        arrays = (*self.layer_names, TOP_FEATURE, TOP_WINDOWS)
        if layer not in arrays:
            raise KeyError(f"unknown layer {layer!r}; the store holds {', '.join(arrays)}")
        return self.group(video_id)[layer]

    def read(self, video_id: str, layer: str) -> np.ndarray:
        """One layer of one video as a float16 numpy array (shapes as in ``array``)."""
        return self.array(video_id, layer)[...]

    def dask(self, video_id: str, layer: str):
        """One layer of one video as a lazy dask array, chunked as stored."""
        import dask.array as da

        return da.from_zarr(self.array(video_id, layer))

    def info(self, video_id: str) -> dict[str, Any]:
        """Per-video attributes: ``source``, ``frames`` (N), ``padded_frames`` (N′), ``duration`` (s), …"""
        return dict(self.group(video_id).attrs)

    @property
    def failures(self) -> pd.DataFrame:
        """Videos whose latest attempt failed: columns ``video_id``, ``source``, ``error``, ``time``."""
        columns = ["video_id", "source", "error", "time"]
        if FAILURES not in self.root:
            return pd.DataFrame(columns=columns)
        complete = set(self._keys.values())  # a concurrent run may have completed a video another run failed
        records = [dict(group.attrs) for key, group in sorted(self.root[FAILURES].groups()) if key not in complete]
        return pd.DataFrame([{c: r.get(c) for c in columns} for r in records], columns=columns)

    def summary(self) -> pd.DataFrame:
        """One row per completed video with its attributes (for notebooks and reports)."""
        return pd.DataFrame([{"video_id": v, **self.info(v)} for v in self.video_ids])


def open_store(url: str, storage_options: dict | None = None) -> FeatureStore:
    """Open an existing feature store for reading (local path or fsspec URL).

    Raises:
        StoreError: nothing there, not an astar store, or a schema version this code cannot read.
    """
    url = str(url)
    try:
        root = zarr.open_group(store=_zarr_store(url, storage_options, read_only=True), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        raise StoreError(f"{url}: no feature store here") from None
    except (OSError, ValueError) as error:
        raise StoreError(f"{url}: cannot open ({' '.join(str(error).split())})") from None
    _check_schema(root, url)
    return FeatureStore(root, url)


def _check_schema(root: zarr.Group, url: str, versions: tuple[int, ...] = READABLE_SCHEMA_VERSIONS) -> None:
    found = root.attrs.get("astar_schema_version")
    if found is None:
        raise StoreError(f"{url}: not an astar feature store (no astar_schema_version attribute)")
    if found not in versions:
        readable = " or ".join(map(str, versions))
        raise StoreError(f"{url}: schema version {found}, but this astar {'reads' if len(versions) > 1 else 'adds videos to'} version {readable}"
                         + ("; use --overwrite or another --out" if len(versions) == 1 else ""))


@dataclass
class VideoRecord:
    """Per-video attributes written with the arrays (see storage_schema.md §4).

    ``rotation``/``mirrored``: the display rotation applied (degrees counter-clockwise);
    ``timing``: ``timestamps`` or why they were ignored; ``source_size`` (bytes) and
    ``source_mtime_ns`` identify the source file as it was read (None for URLs without them).
    """

    video_id: str
    source: str
    duration: float
    frames: int
    padded_frames: int
    fps: int
    source_fps: float | None
    width: int
    height: int
    seconds: float
    rotation: int = 0
    mirrored: bool = False
    timing: str = "timestamps"
    source_size: int | None = None
    source_mtime_ns: int | None = None


class StoreWriter:
    """Creates or reopens a store for one extraction identity and writes videos crash-safely."""

    def __init__(self, url: str, identity: dict[str, Any], storage_options: dict | None = None, overwrite: bool = False):
        self.url = str(url)
        identity = json.loads(json.dumps(identity))  # compare as stored: tuples become lists
        attributes = {**identity, "astar_version": astar_version(), "created": _utc_now()}
        store = _zarr_store(self.url, storage_options, read_only=False)
        try:
            try:
                # A new root gets its identity in the same write, so a concurrent run never sees it without one.
                root = zarr.open_group(store=store, mode="w" if overwrite else "a", attributes=attributes)
            except zarr.errors.ContainsGroupError:  # another run created the store just now
                root = zarr.open_group(store=store, mode="a")
        except (OSError, ValueError) as error:
            raise StoreError(f"{self.url}: cannot write here ({' '.join(str(error).split())})") from None
        if "astar_schema_version" not in root.attrs:
            if list(root.keys()):
                raise StoreError(f"{self.url}: exists and is not an astar feature store; choose another --out")
            root.attrs.update(attributes)
        _check_schema(root, self.url, (SCHEMA_VERSION,))
        different = [k for k in IDENTITY_KEYS if root.attrs.get(k) != identity.get(k)]
        if different:
            details = "; ".join(f"{k}: store has {root.attrs.get(k)!r}, this run {identity.get(k)!r}" for k in different)
            raise StoreError(f"{self.url}: extracted with different settings ({details}); use --overwrite or another --out")
        for name in (VIDEOS, MANIFEST, FAILURES):
            _group_once(root, name)
        self.root = root
        self.layers = {layer.name: layer for layer in layer_geometry(identity)}
        self.dimensions = {**{name: layer.dimensions for name, layer in self.layers.items()}, **top_dimensions()}

    def completed(self) -> set[str]:
        """Ids of videos already done (a fresh read of the manifest)."""
        return set(FeatureStore(self.root, self.url).video_ids)

    def write_video(self, record: VideoRecord, layers: dict[str, np.ndarray], fc7: np.ndarray, fc7_windows: np.ndarray) -> None:
        """Write one video's arrays, then its attributes, then its completion marker (storage_schema.md §6).

        A video that is already complete is left as it is. Nothing another writer of the
        same video may be writing is deleted: the group and marker are created only when
        absent, and arrays are rewritten in place chunk by chunk (each chunk one whole-object
        write), so two runs extracting one video at once both leave it complete and intact.

        Args:
            layers: the backbone's layers (C3D: ``pool2`` … ``pool5``) as (T, H, W, C) float16.
            fc7: (D,) float16. fc7_windows: (W, D) float16.
        """
        key = video_key(record.video_id)
        if key in self.root[MANIFEST]:
            return
        # The record goes in now too: a writer that recreates this group while another completes it loses nothing but the status.
        group = _group_once(self.root[VIDEOS], key, {**record.__dict__, "status": "writing"})
        if sorted(layers) != sorted(self.layers):
            raise ValueError(f"layers {sorted(layers)} are not the store's {sorted(self.layers)}")
        for name, data in layers.items():
            self._write_array(group, name, data, (max(1, min(len(data), self.layers[name].time_chunk)), *data.shape[1:]))
        self._write_array(group, TOP_FEATURE, fc7, fc7.shape)
        self._write_array(group, TOP_WINDOWS, fc7_windows, (max(1, min(len(fc7_windows), MAX_TIME_CHUNK)), fc7_windows.shape[1]))
        group.attrs.update({**record.__dict__, "status": "complete", "extracted_at": _utc_now()})
        _group_once(self.root[MANIFEST], key, {"video_id": record.video_id})
        failures = self.root[FAILURES]
        if key in failures:
            del failures[key]

    def unmark(self, video_id: str) -> None:
        """Take away a video's completion marker, so that it is written again (its source changed)."""
        key = video_key(video_id)
        if key in self.root[MANIFEST]:
            del self.root[MANIFEST][key]

    def record_failure(self, video_id: str, source: str, error: str) -> None:
        """Record (or replace) the failure of a video that is not done."""
        record = {"video_id": video_id, "source": source, "error": error, "time": _utc_now()}
        self.root[FAILURES].create_group(video_key(video_id), overwrite=True, attributes=record)

    def _write_array(self, group: zarr.Group, name: str, data: np.ndarray, chunks: tuple[int, ...]) -> None:
        """Create the array, or overwrite every chunk of one of the same shape left by a crash or a concurrent writer."""
        if data.dtype != np.dtype(FEATURE_DTYPE):
            raise TypeError(f"{name} must be {FEATURE_DTYPE}, got {data.dtype}")
        existing = group.get(name)
        if isinstance(existing, zarr.Array) and (existing.shape, existing.chunks, existing.dtype) == (data.shape, chunks, data.dtype):
            existing[...] = data  # an all-zero chunk is deleted, which reads back as zeros: no stale chunk survives
            return
        try:
            group.create_array(
                name,
                data=data,
                chunks=tuple(int(c) for c in chunks),
                compressors=COMPRESSOR,
                dimension_names=self.dimensions[name],
                attributes={"_ARRAY_DIMENSIONS": self.dimensions[name]},
                overwrite=existing is not None,  # only a different leftover (an earlier, changed source) is deleted
            )
        except zarr.errors.ContainsArrayError:  # a concurrent writer created it just now
            group[name][...] = data


def _group_once(parent: zarr.Group, name: str, attributes: dict[str, Any] | None = None) -> zarr.Group:
    """``parent[name]``, created with ``attributes`` only if absent: a group another writer made is never rewritten."""
    try:
        return parent.create_group(name, attributes=attributes)
    except zarr.errors.ContainsGroupError:
        return parent[name]


def store_size_bytes(url: str, storage_options: dict | None = None) -> int:
    """Total bytes under a store (local or remote)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **_fsspec_options(storage_options))
    return int(fs.du(path)) if fs.exists(path) else 0

