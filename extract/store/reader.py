"""Reading the Zarr v3 layout of storage_schema.md: ``open_store`` and the ``FeatureStore`` it returns.

Layout (see storage_schema.md for the normative text)::

    STORE/                     root group: schema version, extraction identity
      videos/<key>/            one group per video: the backbone's layers (pool2..pool5 for C3D), fc7, fc7_windows
      manifest/<key>/          completion marker, written last: the video is done (with each array's shape)
      failures/<key>/          latest failure of a video that is not done
      index/<segment>/         the store index (``index``): complete videos' ids and frame counts, per run

Integrity (storage_schema.md §8): chunks carry a CRC32C and arrays a NaN fill value, so a
reader that meets a corrupt, truncated or deleted chunk, or a missing array or group,
raises ``DamagedVideoError`` naming the video and array; ``verify.verify_store`` finds every
damaged video and un-marks it, so the next extraction run writes it again. The store's
errors and the node names that both sides use live here; ``writer`` writes.
"""
from __future__ import annotations

import datetime as _dt
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import zarr

from ..errors import AstarError
from .ids import is_url, video_id_from_key
from .index import IndexEntry, read_index
from .root_attributes import layer_geometry, root_problem, upgraded_attributes
from .schema import READABLE_SCHEMA_VERSIONS, TOP_FEATURE, TOP_WINDOWS, LayerGeometry, padded_frame_count
from .zarrnodes import child_names, readable_attrs

if TYPE_CHECKING:
    import pandas as pd

VIDEOS, MANIFEST, FAILURES = "videos", "manifest", "failures"


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


def error_reason(error: BaseException) -> str:
    return " ".join(str(error).split())[:200] or type(error).__name__


def fsspec_options(storage_options: dict | None) -> dict[str, Any]:
    """The user's fsspec options, with listings read afresh: other processes (workers, concurrent runs) add videos."""
    return {"use_listings_cache": False, **(storage_options or {})}


def zarr_store(url: str, storage_options: dict | None, read_only: bool) -> zarr.abc.store.Store:
    if not url.strip():
        raise StoreError("empty store path: give a folder or URL (an empty path is not the current folder)")
    if is_url(url):
        return zarr.storage.FsspecStore.from_url(url, storage_options=fsspec_options(storage_options), read_only=read_only)
    return zarr.storage.LocalStore(url.removeprefix("file://"), read_only=read_only)


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class FeatureStore:
    """Read access to a feature store (what ``open_store`` returns).

    ``video_ids`` lists completed videos only; arrays are read lazily, one video
    and layer at a time.
    """

    def __init__(self, root: zarr.Group, url: str, use_index: bool = True, trust_closed_index: bool = True) -> None:
        """``use_index``: take complete videos from the store index where it holds them (§6.1); False reads every
        marker. ``trust_closed_index``: take a closed index alone, without listing ``manifest/`` (writers list)."""
        self.root = root
        self.url = url
        self.use_index = use_index
        self.trust_closed_index = trust_closed_index

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
    def _read_index(self) -> tuple[dict[str, IndexEntry], bool]:
        return read_index(self.root) if self.use_index else ({}, False)

    @property
    def _index(self) -> dict[str, IndexEntry]:
        """key → entry of every video the store index holds complete (§6.1); empty when not used."""
        return self._read_index[0]

    @property
    def index_trusted(self) -> bool:
        """Whether the complete videos come from a closed store index alone (§6.1), without listing ``manifest/``."""
        return self.trust_closed_index and self._read_index[1]

    @cached_property
    def _listed(self) -> list[str]:
        """Keys with a completion marker: one listing of ``manifest/``, or a closed index's keys (it records every marker)."""
        if self.index_trusted:
            return list(self._index)
        self._read_index  # read first: a key is marked before it is indexed, so one indexed but not listed has lost its marker
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
            raise self.damage(video_id, "group", f"missing or unreadable: {error_reason(error)}") from None
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
            raise self.damage(video_id, layer, f"missing or unreadable: {error_reason(error)}") from None
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
            raise self.damage(video_id, layer, f"a chunk is corrupt: {error_reason(error)}") from None
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
    from the store index: alone when it is closed (no run writing, or killed, since it was
    last closed or rebuilt), else with one listing of ``manifest/``, reading only the markers
    the index lacks. Without it, every marker is read.

    Raises:
        StoreError: nothing there, not an astar store, or a schema version this code cannot read.
    """
    url = str(url)
    try:
        root = zarr.open_group(store=zarr_store(url, storage_options, read_only=True), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        raise StoreError(f"{url}: no feature store here") from None
    except (OSError, ValueError) as error:
        raise StoreError(f"{url}: cannot open ({' '.join(str(error).split())})") from None
    check_root(root, url)
    return FeatureStore(root, url, use_index)


def check_root(root: zarr.Group, url: str, versions: tuple[int, ...] = READABLE_SCHEMA_VERSIONS) -> None:
    """Refuse, in one line naming the store, a root that ``root_problem`` finds fault with."""
    problem = root_problem(dict(root.attrs), versions)
    if problem is not None:
        readable = root.attrs.get("astar_schema_version") in READABLE_SCHEMA_VERSIONS
        raise (StoreMismatchError if readable else StoreError)(f"{url}: {problem}")


def store_size_bytes(url: str, storage_options: dict | None = None) -> int:
    """Total bytes under a store (local or remote)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **fsspec_options(storage_options))
    return int(fs.du(path)) if fs.exists(path) else 0
