"""Writing the Zarr layout of storage_schema.md: a store for one extraction identity, one video at a time, crash-safely.

A video's arrays are written first (whole, ``StoreWriter.write_video``, or streamed step by
step, ``VideoWrite``) and its completion marker last (§5), so a crash leaves a video that
readers do not list and the next run writes again. Failures are recorded under
``failures/`` (§7) and the store index is appended per run (§6.1).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from ..folders import STORE, FolderError, astar_version, claim_folder
from .ids import video_key
from .index import INDEX, RunIndex
from .reader import (
    FAILURES, MANIFEST, VIDEOS, FeatureStore, StoreError,
    StoreMismatchError, check_root, error_reason, utc_now, zarr_store,
)
from .root_attributes import layer_geometry
from .schema import EXTRACTION_IDENTITY_KEYS, FEATURE_DTYPE, FILL_VALUE, MAX_TIME_CHUNK, SCHEMA_VERSION, TOP_FEATURE, TOP_WINDOWS, top_dimensions
from .zarrnodes import child_names, readable_attrs


STORE_NODES = ("zarr.json", VIDEOS, MANIFEST, FAILURES, INDEX)
"""The nodes storage_schema.md §1 defines at a store's root: all ``--overwrite`` ever removes."""

COMPRESSOR = BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")
"""Lossless; byte shuffle groups float16 exponents, which ReLU zeros and small values make compressible.

Level 1 compresses a 64-frame video's features in 22 ms where level 5 took 171 ms (a
fifth of fp32 C3D's time on 2 CPU cores, and far more than C3D's on a GPU), for a
store 6 % larger (34.3 % instead of 32.4 % of float32)."""

CHECKSUM = Crc32cCodec()
"""A CRC32C after compression in every chunk: a corrupt or truncated chunk fails to read
instead of decompressing into wrong numbers (blosc accepts some damaged buffers)."""


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
            zarr_store(self.url, storage_options, read_only=False)  # refuses it before anything is claimed
        identity = json.loads(json.dumps(identity))  # compare as stored: tuples become lists
        attributes = {**identity, "astar_version": astar_version(), "created": utc_now()}
        try:
            claim_folder(self.url, STORE, overwrite=overwrite, storage_options=storage_options, own=STORE_NODES)
        except FolderError as error:
            raise StoreError(str(error)) from None
        store = zarr_store(self.url, storage_options, read_only=False)
        try:
            try:
                # A new root gets its identity in the same write, so a concurrent run never sees it without one.
                root = zarr.open_group(store=store, mode="a", attributes=attributes)
            except zarr.errors.ContainsGroupError:  # another run created the store just now
                root = zarr.open_group(store=store, mode="a")
        except (OSError, ValueError) as error:
            raise StoreError(f"{self.url}: cannot write here ({error_reason(error)})") from None
        if "astar_schema_version" not in root.attrs:
            if list(root.keys()):
                raise StoreError(f"{self.url}: exists and is not an astar feature store; choose another --out")
            root.attrs.update(attributes)
        check_root(root, self.url, (SCHEMA_VERSION,))
        different = [k for k in EXTRACTION_IDENTITY_KEYS if root.attrs.get(k) != identity.get(k)]
        if different:
            details = "; ".join(f"{k}: store has {root.attrs.get(k)!r}, this run {identity.get(k)!r}" for k in different)
            raise StoreMismatchError(f"{self.url}: extracted with different settings ({details})")
        for name in (VIDEOS, MANIFEST, FAILURES, INDEX):
            group_once(root, name)
        self.root = root
        self.index = RunIndex(root[INDEX])
        self.layers = {layer.name: layer for layer in layer_geometry(identity)}
        self.dimensions = {**{name: layer.dimensions for name, layer in self.layers.items()}, **top_dimensions()}

    def completed(self) -> set[str]:
        """Ids of videos already done: every marker read afresh, so a damaged one is not done and is rewritten (§8).

        Index entries whose marker is gone get this run's unmarking, written by the next ``flush_index``.
        """
        for key in FeatureStore(self.root, self.url, trust_closed_index=False).stale_index_keys:
            self.index.remove(key)
        return set(FeatureStore(self.root, self.url, use_index=False).video_ids)

    def open_index(self) -> None:
        """Open this run in the store index (its first, empty part), before the run changes any marker: until
        the run's ``flush_index(final=True)``, readers list ``manifest/`` rather than trust the index alone.

        Raises:
            StoreError: the store refuses the write.
        """
        self._writing_index(self.index.open)

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
            raise StoreError(f"{self.url}: cannot write the store index ({error_reason(error)})") from None

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
        self.open_index()
        remove_marker(self.root, key)
        self.index.remove(key)

    def record_failure(self, video_id: str, source: str, error: str) -> None:
        """Record (or replace) the failure of a video that is not done.

        Raises:
            StoreError: the record cannot be written (read-only store, full disk); no
                partial record is left behind.
        """
        try:
            write_failure(self.root, video_key(video_id), failure_record(video_id, source, error))
        except OSError as failure:
            raise StoreError(f"{self.url}: cannot record the failure of {video_id!r} ({error_reason(failure)})") from None

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
            self._group = group_once(self.writer.root[VIDEOS], self.key, {**self.record.__dict__, "status": "writing"})
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
            self._group.attrs.update({**record.__dict__, "status": "complete", "extracted_at": utc_now()})
            shapes = {**{name: list(shape) for name, shape in self.shapes.items()},
                      TOP_FEATURE: list(fc7.shape), TOP_WINDOWS: list(fc7_windows.shape)}
            group_once(self.writer.root[MANIFEST], self.key, {"video_id": self.video_id, "arrays": shapes})
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


def failure_record(video_id: str, source: str, error: str) -> dict[str, str]:
    """The attributes of a ``failures/`` record (storage_schema.md §5), timed now."""
    return {"video_id": video_id, "source": source, "error": error, "time": utc_now()}


def write_failure(root: zarr.Group, key: str, record: dict[str, str]) -> None:
    """Write (or replace) the failure record of the video ``key``; the one way records are written.

    Raises:
        OSError: it cannot be written; no partial record is left behind.
    """
    try:
        root[FAILURES].create_group(key, overwrite=True, attributes=record)
    except OSError:
        try:
            del root[FAILURES][key]
        except (OSError, KeyError):
            pass  # the store refuses every write; what is left has no metadata and no reader lists it
        raise


def remove_marker(root: zarr.Group, key: str) -> None:
    """Take away the completion marker of the video ``key`` if it has one, readable or not; the one way markers are removed."""
    try:
        del root[MANIFEST][key]  # not ``key in``: that parses the marker, which may be what is damaged
    except KeyError:
        pass


def group_once(parent: zarr.Group, name: str, attributes: dict[str, Any] | None = None) -> zarr.Group:
    """``parent[name]``, created with ``attributes`` only if absent: a group another writer made is never rewritten.

    One whose metadata is unreadable (damage: writers write whole objects) is created afresh.
    """
    try:
        return parent.create_group(name, attributes=attributes)
    except zarr.errors.ContainsGroupError:
        if readable_attrs(parent, name) is not None:
            return parent[name]
        return parent.create_group(name, attributes=attributes, overwrite=True)
