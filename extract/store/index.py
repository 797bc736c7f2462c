"""The store index (storage_schema.md §6.1): every complete video's id and frame count in a few objects.

Completion markers stay the truth (§6). The index is a cache of them that lets a reader
learn a store's videos and their lengths from one listing of ``manifest/`` and a handful of
index objects, instead of reading one marker and one attribute document per video.

Layout: ``index/`` is a group, and each child group (a *segment*) holds in its attributes::

    {"videos":   {key: [video_id, frames, time]},   videos completed, N frames (§4)
     "unmarked": {key: time}}                        videos whose marker a writer took away

``time`` is the writer's clock (seconds since the epoch) when it saw the marker written or
removed. Each run writes its own segments, so concurrent writers never write one object
twice: an empty *part* ``<run>-0`` before it changes any marker, a part ``<run>-<n>`` every
``FLUSH_VIDEOS`` videos or ``FLUSH_SECONDS``, and at its end the whole run as ``<run>``,
after which it deletes its parts. Readers merge all segments; per key the latest record
wins, an unmarking on a tie.

The index is *closed* when no run is open (every part's run has its whole segment) and
every segment says ``opened`` (its writer opened its run first, as astar has since that
rule): it then records every marker, and a reader may take it alone, without listing
``manifest/``. A run that is still writing, or was killed, keeps it open until
``rebuild_index`` (``astar-verify``).
"""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

import zarr

from .zarrnodes import child_names, readable_attrs

INDEX = "index"
"""The index group at a store's root."""
FLUSH_VIDEOS = 1000
"""A run writes a part of its segment after this many completed videos …"""
FLUSH_SECONDS = 60.0
"""… or when a video completes this long after its last part."""

OPENED = "opened"
"""Segment attribute: its writer opened its run (``RunIndex.open``) before it changed any marker."""
PART = re.compile(r"(?P<run>.+)-\d+")
"""A part's name, ``<run>-<n>``; a whole segment's name has no dash."""

Record = tuple[float, "IndexEntry | None"]
"""When a key was last seen complete (its entry) or unmarked (None)."""


@dataclass(frozen=True)
class IndexEntry:
    """A complete video as the index holds it: its id and N, the frames sampled at the store's fps (§4)."""

    video_id: str
    frames: int


@dataclass(frozen=True)
class MergedIndex:
    """Every readable segment of an index merged: key → latest record, the segments' names, and
    whether the index is closed (it then records every marker; module docstring)."""

    records: dict[str, Record]
    segments: list[str]
    closed: bool


def merged_records(index: zarr.Group) -> MergedIndex:
    """The segments of ``index`` merged.

    A segment that vanished or is unreadable meanwhile (a run consolidating its parts) is
    skipped: its keys then read from their markers, and the index is closed only if it was a
    part whose run's whole segment is there.
    """
    records: dict[str, Record] = {}
    segments = child_names(index)
    closed = bool(segments) and not unfinished_runs(segments)
    for name in segments:
        segment = readable_attrs(index, name)
        closed = closed and (PART.fullmatch(name) is not None or bool(segment and segment.get(OPENED)))
        for key, (video_id, frames, seen) in (segment or {}).get("videos", {}).items():
            if key not in records or seen > records[key][0]:
                records[key] = (seen, IndexEntry(video_id, int(frames)))
        for key, seen in (segment or {}).get("unmarked", {}).items():
            if key not in records or seen >= records[key][0]:
                records[key] = (seen, None)
    return MergedIndex(records, segments, closed)


def unfinished_runs(segments: list[str]) -> list[str]:
    """The runs among an index's segment names that wrote parts but not their whole segment: still
    writing, or killed."""
    parts = {match["run"] for match in map(PART.fullmatch, segments) if match}
    return sorted(parts - set(segments))


def runs_left_open(root: zarr.Group) -> list[str]:
    """``unfinished_runs`` of a store's index (one listing, no segment read); none without an index."""
    try:
        index = root[INDEX]
    except KeyError:
        return []
    return unfinished_runs(child_names(index)) if isinstance(index, zarr.Group) else []


def read_index(root: zarr.Group) -> tuple[dict[str, IndexEntry], bool]:
    """key → entry of every video the index holds complete, and whether the index is closed;
    ``({}, False)`` for a store without one."""
    try:
        index = root[INDEX]
    except KeyError:
        return {}, False
    if not isinstance(index, zarr.Group):
        return {}, False
    merged = merged_records(index)
    return {key: entry for key, (_, entry) in merged.records.items() if entry is not None}, merged.closed


def _segment(records: dict[str, Record]) -> dict[str, dict]:
    """The attributes of a segment holding ``records``."""
    return {
        OPENED: True,
        "videos": {key: [entry.video_id, entry.frames, seen] for key, (seen, entry) in records.items() if entry is not None},
        "unmarked": {key: seen for key, (seen, entry) in records.items() if entry is None},
    }


class RunIndex:
    """One run's segments of the index: what it completed and unmarked, written in parts and consolidated at its end.

    A writer MUST flush its unmarkings before it writes any of those videos again, or a
    reader could pair the new marker with the old entry (``StoreWriter`` and the plan do).
    Writes raise ``OSError`` when the store refuses them.
    """

    def __init__(self, index: zarr.Group) -> None:
        self.index = index
        self.run = uuid.uuid4().hex
        self.records: dict[str, Record] = {}
        self.pending: dict[str, Record] = {}
        self.parts: list[str] = []
        self.opened = False
        self.flushed_at = time.time()

    def open(self) -> None:
        """Write the run's empty first part, unless it wrote a part already: the index stays open until the
        run closes. A run MUST open before it changes any marker."""
        if not self.opened:
            self._write_part({})

    def add(self, key: str, video_id: str, frames: int) -> None:
        """Record a video whose marker was just written; flush a part when one is due."""
        self._record(key, IndexEntry(video_id, frames))
        if len(self.pending) >= FLUSH_VIDEOS or time.time() - self.flushed_at >= FLUSH_SECONDS:
            self.flush()

    def remove(self, key: str) -> None:
        """Record that a video's marker was taken away (held until the next ``flush``)."""
        self._record(key, None)

    def _record(self, key: str, entry: IndexEntry | None) -> None:
        self.records[key] = self.pending[key] = (time.time(), entry)

    def flush(self) -> None:
        """Write what is pending as a new part (nothing when nothing is)."""
        if self.pending:
            self._write_part(self.pending)

    def _write_part(self, records: dict[str, Record]) -> None:
        name = f"{self.run}-{len(self.parts)}"
        self.index.create_group(name, attributes=_segment(records))
        self.parts.append(name)
        self.opened = True
        self.pending = {}
        self.flushed_at = time.time()

    def close(self) -> None:
        """Write the run's whole segment ``<run>`` as one object (when it recorded anything), then delete its parts."""
        if self.records:
            self.index.create_group(self.run, attributes=_segment(self.records), overwrite=True)
        for name in self.parts:
            try:
                del self.index[name]
            except KeyError:  # rebuild_index replaced it meanwhile
                pass
        self.pending, self.parts = {}, []


def rebuild_index(root: zarr.Group, entries: dict[str, IndexEntry], seen: float, unmarked: list[str]) -> None:
    """Replace the whole index by one segment, then delete the segments it replaces.

    Args:
        entries: key → entry of every complete video, read from the markers listed at ``seen``.
        unmarked: keys whose markers were taken away just now (damaged videos).

    Old unmarkings are kept, and so is every record newer than ``seen``: a run still
    writing may yet consolidate an older entry of such a key, which they must outrank.
    """
    index = root.require_group(INDEX)
    merged = merged_records(index)
    fresh = {key: record for key, record in merged.records.items() if record[1] is None or record[0] > seen}
    for key, entry in entries.items():
        if key not in fresh or fresh[key][0] <= seen:
            fresh[key] = (seen, entry)
    now = time.time()
    fresh.update({key: (now, None) for key in unmarked})
    name = uuid.uuid4().hex
    index.create_group(name, attributes=_segment(fresh))
    for old in merged.segments:
        try:
            del index[old]
        except KeyError:  # a run consolidated it meanwhile
            pass
