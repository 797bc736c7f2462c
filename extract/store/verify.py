"""Checking a store in full (storage_schema.md §8): every complete video read back, the damaged ones un-marked."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import zarr

from .ids import video_id_from_key
from .index import IndexEntry, rebuild_index
from .reader import DamagedVideoError, FeatureStore, StoreError, error_reason, open_store, zarr_store
from .schema import TOP_FEATURE, TOP_WINDOWS
from .writer import failure_record, remove_marker, write_failure


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
        writer_root = zarr.open_group(store=zarr_store(str(url), storage_options, read_only=False), mode="r+")
        try:
            for damage in damaged:
                remove_marker(writer_root, damage.key)
                write_failure(writer_root, damage.key, failure_record(
                    damage.video_id, store._source(damage.video_id), f"damaged, to extract again: {damage.reason}"))
            rebuild_index(writer_root, intact, listed_at, [damage.key for damage in damaged])
        except OSError as error:
            raise StoreError(f"{url}: cannot mark damaged videos or rebuild the index ({error_reason(error)})") from None
    return damaged
