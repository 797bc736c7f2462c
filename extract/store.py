"""The Zarr v3 layout of storage_schema.md: the writer, the reader (``open_store``), and nothing else.

Layout (see storage_schema.md for the normative text)::

    STORE/                     root group: schema version, extraction identity
      videos/<key>/            one group per video: the backbone's layers (pool2..pool5 for C3D), fc7, fc7_windows
      manifest/<key>/          completion marker, written last: the video is done (with each array's shape)
      failures/<key>/          latest failure of a video that is not done
      index/<segment>/         the store index (``index``): complete videos' ids and frame counts, per run

Integrity (storage_schema.md §8): chunks carry a CRC32C and arrays a NaN fill value, so a
reader that meets a corrupt, truncated or deleted chunk, or a missing array or group,
raises ``DamagedVideoError`` naming the video and array; ``verify_store`` finds every
damaged video and un-marks it, so the next extraction run writes it again.
"""
from __future__ import annotations

import datetime as _dt
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from .errors import AstarError
from .folders import STORE, FolderError, astar_version, claim_folder
from .ids import is_url, video_id_from_key, video_key
from .index import INDEX, IndexEntry, RunIndex, read_index, rebuild_index
from .root_attributes import layer_geometry, root_problem, upgraded_attributes
from .schema import (
    FEATURE_DTYPE, FILL_VALUE, MAX_TIME_CHUNK, READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, TOP_FEATURE, TOP_WINDOWS,
    LayerGeometry, padded_frame_count, top_dimensions,
)
from .zarrnodes import child_names, readable_attrs

if TYPE_CHECKING:
    import pandas as pd

VIDEOS, MANIFEST, FAILURES = "videos", "manifest", "failures"
STORE_NODES = ("zarr.json", VIDEOS, MANIFEST, FAILURES, INDEX)
"""The nodes storage_schema.md §1 defines at a store's root: all ``--overwrite`` ever removes."""
IDENTITY_KEYS = ("astar_schema_version", "fps", "preprocessing", "backbone", "model", "precision")
"""Root attributes that must match for a run to add videos to an existing store."""

COMPRESSOR = BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")
"""Lossless; byte shuffle groups float16 exponents, which ReLU zeros and small values make compressible.

Level 1 compresses a 64-frame video's features in 22 ms where level 5 took 171 ms (a
fifth of fp32 C3D's time on 2 CPU cores, and far more than C3D's on a GPU), for a
store 6 % larger (34.3 % instead of 32.4 % of float32)."""

CHECKSUM = Crc32cCodec()
"""A CRC32C after compression in every chunk: a corrupt or truncated chunk fails to read
instead of decompressing into wrong numbers (blosc accepts some damaged buffers)."""


class StoreError(AstarError):
    """A store that cannot be opened or written as asked; the message names it and says why."""


class StoreMismatchError(StoreError):
    """A sound store that this run may add videos to only once it is started afresh: it holds
    another extraction's settings or an older schema version. Commands add how to start afresh."""


class DamagedVideoError(StoreError):
    """A complete video whose data cannot be read back as written; the message names the store, video and array.

    ``damage`` is the message without what to do about it: what ``verify_store`` records.
    """

    def __init__(self, message: str, damage: str | None = None) -> None:
        super().__init__(message)
        self.damage = damage or message

    def __reduce__(self):
        return type(self), (str(self), self.damage)  # through DataLoader workers and Dask, both parts survive


def _reason(error: BaseException) -> str:
    return " ".join(str(error).split())[:200] or type(error).__name__


def _fsspec_options(storage_options: dict | None) -> dict[str, Any]:
    """The user's fsspec options, with listings read afresh: other processes (workers, concurrent runs) add videos."""
    return {"use_listings_cache": False, **(storage_options or {})}


def _zarr_store(url: str, storage_options: dict | None, read_only: bool) -> zarr.abc.store.Store:
    if not url.strip():
        raise StoreError("empty store path: give a folder or URL (an empty path is not the current folder)")
    if is_url(url):
        return zarr.storage.FsspecStore.from_url(url, storage_options=_fsspec_options(storage_options), read_only=read_only)
    return zarr.storage.LocalStore(url.removeprefix("file://"), read_only=read_only)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class FeatureStore:
    """Read access to a feature store (what ``open_store`` returns).

    ``video_ids`` lists completed videos only; arrays are read lazily, one video
    and layer at a time.
    """

    def __init__(self, root: zarr.Group, url: str, use_index: bool = True) -> None:
        """``use_index``: take complete videos from the store index where it holds them (§6.1); False reads every marker."""
        self.root = root
        self.url = url
        self.use_index = use_index

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
    def _index(self) -> dict[str, IndexEntry]:
        """key → entry of every video the store index holds complete (§6.1); empty when not used."""
        return read_index(self.root) if self.use_index else {}

    @cached_property
    def _listed(self) -> list[str]:
        """Keys under ``manifest/``: one listing."""
        self._index  # read first: a key is marked before it is indexed, so one indexed but not listed has lost its marker
        try:
            return child_names(self.root[MANIFEST])
        except KeyError:
            return []

    @cached_property
    def _markers(self) -> dict[str, dict[str, Any] | None]:
        """key → attributes of every listed completion marker the index lacks (without the index: of all),
        None for one that is unreadable (damaged)."""
        unindexed = [key for key in self._listed if key not in self._index]
        if not unindexed:
            return {}
        manifest = self.root[MANIFEST]
        return {key: readable_attrs(manifest, key) for key in unindexed}

    @cached_property
    def _keys(self) -> dict[str, str]:
        """video id → key of every completed video (a listed marker the index holds, or a readable one)."""
        listed = set(self._listed)
        keys = {entry.video_id: key for key, entry in self._index.items() if key in listed}
        for key, marker in self._markers.items():
            if marker is None:
                continue
            video_id = video_id_from_key(key) or marker.get("video_id")
            if video_id is not None:
                keys[video_id] = key
        return keys

    @property
    def damaged_markers(self) -> list[str]:
        """Keys whose completion marker is unreadable: not complete, so a rerun extracts them again.

        A marker the index holds is not read, so its damage is found by ``verify_store``.
        """
        return [key for key, marker in self._markers.items() if marker is None]

    @property
    def stale_index_keys(self) -> list[str]:
        """Keys the index holds complete whose marker is gone (unmarked or deleted): not complete."""
        listed = set(self._listed)
        return sorted(key for key in self._index if key not in listed)

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

    def damage(self, video_id: str, array: str, reason: str) -> DamagedVideoError:
        """The one-line error for damaged data of a complete video, with what to do about it."""
        damage = f"{self.url}: video {video_id!r}, {array}: damaged ({reason})"
        remedy = f"run astar-verify {self.url} to mark damaged videos, then astar-extract again to rewrite them"
        return DamagedVideoError(f"{damage}; {remedy}", damage)

    def group(self, video_id: str) -> zarr.Group:
        """The Zarr group of a completed video.

        Raises:
            KeyError: ``video_id`` is not a completed video.
            DamagedVideoError: it is marked complete but its group is missing or unreadable.
        """
        if video_id not in self._keys:
            raise KeyError(f"video {video_id!r} is not a completed video of {self.url}")
        try:
            group = self.root[VIDEOS][self._keys[video_id]]
        except (KeyError, ValueError, zarr.errors.NodeTypeValidationError) as error:
            raise self.damage(video_id, "group", f"missing or unreadable: {_reason(error)}") from None
        if not isinstance(group, zarr.Group):
            raise self.damage(video_id, "group", "not a group")
        return group

    def array(self, video_id: str, layer: str) -> zarr.Array:
        """A lazy Zarr array: a stored layer (T, H, W, C), ``fc7`` (D,) or ``fc7_windows`` (W, D).

        Reading it directly skips the damage checks of ``read``.
        """
        arrays = (*self.layer_names, TOP_FEATURE, TOP_WINDOWS)
        if layer not in arrays:
            raise KeyError(f"unknown layer {layer!r}; the store holds {', '.join(arrays)}")
        group = self.group(video_id)
        try:
            array = group[layer]
        except (KeyError, ValueError, zarr.errors.NodeTypeValidationError) as error:
            raise self.damage(video_id, layer, f"missing or unreadable: {_reason(error)}") from None
        if not isinstance(array, zarr.Array):
            raise self.damage(video_id, layer, "not an array")
        return array

    def read(self, video_id: str, layer: str, selection: Any = Ellipsis) -> np.ndarray:
        """One layer of one video (or ``selection`` of it) as a float16 numpy array (shapes as in ``array``).

        Raises:
            DamagedVideoError: a chunk fails its checksum or cannot be decoded, or is
                missing (it reads as the NaN fill value, which no feature takes), or the
                array or group is missing (storage_schema.md §8).
        """
        array = self.array(video_id, layer)
        try:
            values = array[selection]
        except (RuntimeError, ValueError) as error:  # blosc's and the checksum's errors for a damaged chunk
            raise self.damage(video_id, layer, f"a chunk is corrupt: {_reason(error)}") from None
        if np.isnan(values).any():
            raise self.damage(video_id, layer, "a chunk is missing")
        return values

    def dask(self, video_id: str, layer: str):
        """One layer of one video as a lazy dask array, chunked as stored."""
        import dask.array as da

        return da.from_zarr(self.array(video_id, layer))

    def padded_frames(self, video_id: str) -> int:
        """N′ of a completed video (§4): from the store index when it holds the video, else from its attributes.

        Raises:
            KeyError: ``video_id`` is not a completed video.
        """
        key = self._keys.get(video_id)
        if key in self._index:
            return padded_frame_count(self._index[key].frames)
        return int(self.info(video_id)["padded_frames"])

    def info(self, video_id: str) -> dict[str, Any]:
        """Per-video attributes: ``source``, ``frames`` (N), ``padded_frames`` (N′), ``duration`` (s), …"""
        return dict(self.group(video_id).attrs)

    @property
    def failures(self) -> pd.DataFrame:
        """Videos whose latest attempt failed: columns ``video_id``, ``source``, ``error``, ``time``."""
        import pandas as pd  # here: a DataLoader worker that only reads features never needs it

        columns = ["video_id", "source", "error", "time"]
        if FAILURES not in self.root:
            return pd.DataFrame(columns=columns)
        complete = set(self._keys.values())  # a concurrent run may have completed a video another run failed
        failures = self.root[FAILURES]
        records = [readable_attrs(failures, key) for key in child_names(failures) if key not in complete]
        return pd.DataFrame([{c: r.get(c) for c in columns} for r in records if r is not None], columns=columns)

    def _source(self, video_id: str) -> str | None:
        """The recorded source of a video, when its group can still be read."""
        try:
            return self.info(video_id).get("source")
        except (KeyError, StoreError):
            return None

    def summary(self) -> pd.DataFrame:
        """One row per completed video with its attributes (for notebooks and reports)."""
        import pandas as pd

        return pd.DataFrame([{"video_id": v, **self.info(v)} for v in self.video_ids])


def open_store(url: str, storage_options: dict | None = None, use_index: bool = True) -> FeatureStore:
    """Open an existing feature store for reading (local path or fsspec URL).

    With ``use_index`` (storage_schema.md §6.1), the complete videos and their lengths come
    from one listing of ``manifest/`` and the store index, and only markers the index lacks
    are read; without it, every marker is read.

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
    _check_root(root, url)
    return FeatureStore(root, url, use_index)


def _check_root(root: zarr.Group, url: str, versions: tuple[int, ...] = READABLE_SCHEMA_VERSIONS) -> None:
    """Refuse, in one line naming the store, a root that ``root_problem`` finds fault with."""
    problem = root_problem(dict(root.attrs), versions)
    if problem is not None:
        readable = root.attrs.get("astar_schema_version") in READABLE_SCHEMA_VERSIONS
        raise (StoreMismatchError if readable else StoreError)(f"{url}: {problem}")


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
        """Open the store at ``url`` for ``identity``, creating it if absent or empty.

        Raises:
            StoreError: ``url`` is a file or a folder that is not an astar store (also with
                ``overwrite``, which removes only a store's own nodes: ``folders.claim_folder``), or a store
                of another schema version or identity.
        """
        self.url = str(url)
        if not self.url.strip():
            _zarr_store(self.url, storage_options, read_only=False)  # refuses it before anything is claimed
        identity = json.loads(json.dumps(identity))  # compare as stored: tuples become lists
        attributes = {**identity, "astar_version": astar_version(), "created": _utc_now()}
        try:
            claim_folder(self.url, STORE, overwrite=overwrite, storage_options=storage_options, own=STORE_NODES)
        except FolderError as error:
            raise StoreError(str(error)) from None
        store = _zarr_store(self.url, storage_options, read_only=False)
        try:
            try:
                # A new root gets its identity in the same write, so a concurrent run never sees it without one.
                root = zarr.open_group(store=store, mode="a", attributes=attributes)
            except zarr.errors.ContainsGroupError:  # another run created the store just now
                root = zarr.open_group(store=store, mode="a")
        except (OSError, ValueError) as error:
            raise StoreError(f"{self.url}: cannot write here ({_reason(error)})") from None
        if "astar_schema_version" not in root.attrs:
            if list(root.keys()):
                raise StoreError(f"{self.url}: exists and is not an astar feature store; choose another --out")
            root.attrs.update(attributes)
        _check_root(root, self.url, (SCHEMA_VERSION,))
        different = [k for k in IDENTITY_KEYS if root.attrs.get(k) != identity.get(k)]
        if different:
            details = "; ".join(f"{k}: store has {root.attrs.get(k)!r}, this run {identity.get(k)!r}" for k in different)
            raise StoreMismatchError(f"{self.url}: extracted with different settings ({details})")
        for name in (VIDEOS, MANIFEST, FAILURES, INDEX):
            _group_once(root, name)
        self.root = root
        self.index = RunIndex(root[INDEX])
        self.layers = {layer.name: layer for layer in layer_geometry(identity)}
        self.dimensions = {**{name: layer.dimensions for name, layer in self.layers.items()}, **top_dimensions()}

    def completed(self) -> set[str]:
        """Ids of videos already done: every marker read afresh, so a damaged one is not done and is rewritten (§8).

        Index entries whose marker is gone get this run's unmarking, written by the next ``flush_index``.
        """
        for key in FeatureStore(self.root, self.url).stale_index_keys:
            self.index.remove(key)
        return set(FeatureStore(self.root, self.url, use_index=False).video_ids)

    def index_video(self, video_id: str, frames: int) -> None:
        """Add a video this run completed (its marker written) to the run's index segment.

        Raises:
            StoreError: a due part of the segment cannot be written.
        """
        self._writing_index(lambda: self.index.add(video_key(video_id), video_id, frames))

    def flush_index(self, final: bool = False) -> None:
        """Write the run's pending index records; ``final``: its whole segment, as the run ends.

        Raises:
            StoreError: the store refuses the write.
        """
        self._writing_index(self.index.close if final else self.index.flush)

    def _writing_index(self, write: Callable[[], None]) -> None:
        try:
            write()
        except OSError as error:
            raise StoreError(f"{self.url}: cannot write the store index ({_reason(error)})") from None

    def write_video(self, record: VideoRecord, layers: dict[str, np.ndarray], fc7: np.ndarray, fc7_windows: np.ndarray) -> None:
        """Write one video held in memory whole, through the steps of ``VideoWrite`` (in this thread).

        Args:
            layers: the backbone's layers (C3D: ``pool2`` … ``pool5``) as (T, H, W, C) float16.
            fc7: (D,) float16. fc7_windows: (W, D) float16.

        Raises:
            StoreError: the store refuses a write.
        """
        if sorted(layers) != sorted(self.layers):
            raise ValueError(f"layers {sorted(layers)} are not the store's {sorted(self.layers)}")
        video = VideoWrite(self, record)
        video.open()
        for name, steps in layers.items():
            video.write_steps(name, 0, steps)
        video.finish(record, fc7, fc7_windows)

    def unmark(self, video_id: str) -> None:
        """Take away a video's completion marker, so that it is written again (its source changed).

        The index learns it at the next ``flush_index``, which MUST come before the video is written again.
        """
        key = video_key(video_id)
        if key in self.root[MANIFEST]:
            del self.root[MANIFEST][key]
        self.index.remove(key)

    def record_failure(self, video_id: str, source: str, error: str) -> None:
        """Record (or replace) the failure of a video that is not done.

        Raises:
            StoreError: the record cannot be written (read-only store, full disk); no
                partial record is left behind.
        """
        record = {"video_id": video_id, "source": source, "error": error, "time": _utc_now()}
        key = video_key(video_id)
        try:
            self.root[FAILURES].create_group(key, overwrite=True, attributes=record)
        except OSError as failure:
            try:
                del self.root[FAILURES][key]
            except (OSError, KeyError):
                pass  # the store refuses every write; what is left has no metadata and no reader lists it
            raise StoreError(f"{self.url}: cannot record the failure of {video_id!r} ({_reason(failure)})") from None

    def _feature_array(self, group: zarr.Group, name: str, shape: tuple[int, ...], chunks: tuple[int, ...]) -> zarr.Array:
        """The array ``name`` of a video's group, to be written whole: created, or reused when one of the
        same shape and chunks (left by a crash or a concurrent writer) is there, whose every chunk is then overwritten."""
        try:
            existing = group.get(name)
        except ValueError:  # unreadable metadata: damage, which is rewritten
            existing = "damaged"
        chunks = tuple(int(c) for c in chunks)
        if isinstance(existing, zarr.Array) and (existing.shape, existing.chunks, existing.dtype) == (shape, chunks, np.dtype(FEATURE_DTYPE)):
            return existing  # every chunk is written: none equals the NaN fill value, so no stale chunk survives
        try:
            return group.create_array(
                name,
                shape=shape,
                dtype=FEATURE_DTYPE,
                chunks=chunks,
                compressors=(COMPRESSOR, CHECKSUM),
                fill_value=FILL_VALUE,
                dimension_names=self.dimensions[name],
                attributes={"_ARRAY_DIMENSIONS": self.dimensions[name]},
                overwrite=existing is not None,  # only a different or damaged leftover (an earlier, changed source) is deleted
            )
        except zarr.errors.ContainsArrayError:  # a concurrent writer created it just now
            return group[name]


class VideoWrite:
    """One video's way into the store (storage_schema.md §6, §8), in steps that run in order, on any one thread.

    ``open`` makes the group (status ``writing``) and every layer's array at its full
    shape, known from N′ and the layer geometry; ``write_steps`` writes runs of whole
    chunks (``chunks.ChunkRuns``) as the network's tiles finish; ``finish`` writes the top
    features, the attributes (status ``complete``) and last the marker. A crash between
    steps leaves no marker, and a rerun rewrites the video.

    A video that is already complete when ``open`` runs is left as it is: the later steps
    do nothing. Nothing another writer of the same video may be writing is deleted: the
    group and marker are created only when absent (or unreadable, which no writer leaves),
    and arrays are rewritten in place chunk by chunk (each chunk one whole-object write),
    so two runs extracting one video at once both leave it complete and intact.

    Every step raises ``StoreError`` (naming the store and the video) when the store refuses a write.

    Attributes:
        shapes: per stored layer its (N′/time_stride, H, W, C). chunk_steps: time steps per chunk of each.
    """

    def __init__(self, writer: StoreWriter, record: VideoRecord) -> None:
        self.writer = writer
        self.video_id = record.video_id
        self.key = video_key(record.video_id)
        self.record = record
        self.shapes = {name: (layer.time_steps(record.padded_frames), *layer.step_shape) for name, layer in writer.layers.items()}
        self.chunk_steps = {name: max(1, min(self.shapes[name][0], layer.time_chunk)) for name, layer in writer.layers.items()}
        self._group: zarr.Group | None = None
        self._arrays: dict[str, zarr.Array] = {}

    def open(self) -> None:
        """Create (or join) the video's group with the record as its ``writing`` attributes, and its layers' arrays."""
        with self._storing():
            if readable_attrs(self.writer.root[MANIFEST], self.key) is not None:
                return
            # The record goes in now too: a writer that recreates this group while another completes it loses nothing but the status.
            self._group = _group_once(self.writer.root[VIDEOS], self.key, {**self.record.__dict__, "status": "writing"})
            self._arrays = {
                name: self.writer._feature_array(self._group, name, shape, (self.chunk_steps[name], *shape[1:]))
                for name, shape in self.shapes.items()
            }

    def write_steps(self, name: str, first: int, steps: np.ndarray) -> None:
        """Write time steps [first, first + T) of layer ``name``: (T, H, W, C) float16, whole chunks (or up to the end)."""
        if self._group is None:
            return
        _require_feature_dtype(name, steps)
        with self._storing():
            self._arrays[name][first : first + len(steps)] = steps

    def finish(self, record: VideoRecord, fc7: np.ndarray, fc7_windows: np.ndarray) -> None:
        """Write the top features, the final attributes (``record``, status ``complete``), then the marker.

        Args:
            fc7: (D,) float16. fc7_windows: (W, D) float16.
        """
        if self._group is None:
            return
        for name, data in ((TOP_FEATURE, fc7), (TOP_WINDOWS, fc7_windows)):
            _require_feature_dtype(name, data)
        top_chunks = {TOP_FEATURE: fc7.shape, TOP_WINDOWS: (max(1, min(len(fc7_windows), MAX_TIME_CHUNK)), fc7_windows.shape[1])}
        with self._storing():
            for name, data in ((TOP_FEATURE, fc7), (TOP_WINDOWS, fc7_windows)):
                self.writer._feature_array(self._group, name, data.shape, top_chunks[name])[...] = data
            self._group.attrs.update({**record.__dict__, "status": "complete", "extracted_at": _utc_now()})
            shapes = {**{name: list(shape) for name, shape in self.shapes.items()},
                      TOP_FEATURE: list(fc7.shape), TOP_WINDOWS: list(fc7_windows.shape)}
            _group_once(self.writer.root[MANIFEST], self.key, {"video_id": self.video_id, "arrays": shapes})
            failures = self.writer.root[FAILURES]
            if self.key in child_names(failures):
                del failures[self.key]

    @contextmanager
    def _storing(self) -> Iterator[None]:
        try:
            yield
        except OSError as failure:
            raise StoreError(f"{self.writer.url}: writing {self.video_id!r} failed ({failure})") from None


def _require_feature_dtype(name: str, data: np.ndarray) -> None:
    if data.dtype != np.dtype(FEATURE_DTYPE):
        raise TypeError(f"{name} must be {FEATURE_DTYPE}, got {data.dtype}")


def _group_once(parent: zarr.Group, name: str, attributes: dict[str, Any] | None = None) -> zarr.Group:
    """``parent[name]``, created with ``attributes`` only if absent: a group another writer made is never rewritten.

    One whose metadata is unreadable (damage: writers write whole objects) is created afresh.
    """
    try:
        return parent.create_group(name, attributes=attributes)
    except zarr.errors.ContainsGroupError:
        if readable_attrs(parent, name) is not None:
            return parent[name]
        return parent.create_group(name, attributes=attributes, overwrite=True)


def store_size_bytes(url: str, storage_options: dict | None = None) -> int:
    """Total bytes under a store (local or remote)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **_fsspec_options(storage_options))
    return int(fs.du(path)) if fs.exists(path) else 0



@dataclass(frozen=True)
class Damage:
    """One damaged video found by ``verify_store``: its key and id, and the one-line reason."""

    key: str
    video_id: str
    reason: str


def _video_damage(store: FeatureStore, video_id: str, marker: dict[str, Any]) -> str | None:
    """Why one complete video is damaged (status, an array's shape against its marker, any chunk), or None."""
    try:
        status = store.info(video_id).get("status")
        if status != "complete":
            return f"{store.url}: video {video_id!r}, group: status {status!r}, not 'complete'"
        shapes = marker.get("arrays") or dict.fromkeys((*store.layer_names, TOP_FEATURE, TOP_WINDOWS))  # markers before §8 record none
        for name, shape in shapes.items():
            array = store.array(video_id, name)
            if shape is not None and list(array.shape) != list(shape):
                return f"{store.url}: video {video_id!r}, {name}: shape {list(array.shape)}, its marker records {shape}"
            store.read(video_id, name)
    except DamagedVideoError as error:
        return error.damage
    return None


def verify_store(url: str, storage_options: dict | None = None, mark: bool = True,
                 progress: Callable[[int], None] | None = None) -> list[Damage]:
    """Read every complete video of a store in full and check it (storage_schema.md §8).

    With ``mark``, each damaged video loses its completion marker and gets a failure
    record saying why, so the next ``astar-extract`` run over its source writes it again
    and readers no longer list it, and the store index is rebuilt from the markers as one
    segment (§6.1). ``progress`` is called with 1 after each video.

    Raises:
        StoreError: the store cannot be opened, or (with ``mark``) not written.
    """
    listed_at = time.time()
    store = open_store(url, storage_options, use_index=False)
    damaged = [Damage(key, video_id_from_key(key) or key, f"{url}: {key}: completion marker unreadable") for key in store.damaged_markers]
    intact: dict[str, IndexEntry] = {}
    markers = store._markers
    for video_id in store.video_ids:
        key = store._keys[video_id]
        reason = _video_damage(store, video_id, markers[key])
        if reason is not None:
            damaged.append(Damage(key, video_id, reason))
        else:
            intact[key] = IndexEntry(video_id, int(store.info(video_id)["frames"]))
        if progress is not None:
            progress(1)
    if mark:
        writer_root = zarr.open_group(store=_zarr_store(str(url), storage_options, read_only=False), mode="r+")
        manifest, failures = writer_root[MANIFEST], writer_root[FAILURES]
        try:
            for damage in damaged:
                del manifest[damage.key]
                record = {"video_id": damage.video_id, "source": store._source(damage.video_id),
                          "error": f"damaged, to extract again: {damage.reason}", "time": _utc_now()}
                failures.create_group(damage.key, overwrite=True, attributes=record)
            rebuild_index(writer_root, intact, listed_at, [damage.key for damage in damaged])
        except OSError as error:
            raise StoreError(f"{url}: cannot mark damaged videos or rebuild the index ({_reason(error)})") from None
    return damaged
