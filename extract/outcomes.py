"""What happens to each video of an extraction run, and the one step that turns a decoded video into one.

Both executors (``local``, in this process; ``dask_executor``, on Dask) call
``store_decoded`` for every video, with a write-behind queue (``writebehind``) that
writes it, so they write the same bytes; the run reports what they yield (``reporter``).
"""
from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import pandas as pd
import torch

from .chunks import ChunkRuns
from .decode import DecodedVideo, DecodeError
from .extractor import Extractor
from .features import FeatureTile, top_features
from .inputs import absolute_source, source_fingerprint
from .store.ids import VideoInput
from .store.schema import FPS, padded_frame_count
from .store.writer import StoreWriter, VideoRecord, VideoWrite
from .writebehind import WriteBehind



@dataclass
class VideoOutcome:
    """What happened to one video in one run: ``done``, ``skipped`` (already in the store) or ``failed``.

    ``note`` says what a user should know about a video that did not fail: its timestamps
    were ignored (done), or its source changed since it was stored (skipped).
    """

    video_id: str
    source: str
    status: str
    error: str | None = None
    frames: int = 0
    seconds: float = 0.0
    note: str | None = None


@dataclass
class RunSummary:
    """The result of a run: one outcome per input video, wall time and store size."""

    outcomes: list[VideoOutcome]
    seconds: float
    store_bytes: int

    def table(self) -> pd.DataFrame:
        """One row per video: video_id, source, status, error, frames, seconds, note."""
        columns = list(VideoOutcome.__dataclass_fields__)
        return pd.DataFrame([asdict(o) for o in self.outcomes], columns=columns)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def line(self) -> str:
        frames = sum(o.frames for o in self.outcomes if o.status == "done")
        return (
            f"{self.count('done')} done, {self.count('skipped')} skipped, {self.count('failed')} failed "
            f"in {self.seconds:.1f} s ({frames} frames at 2 fps); store {self.store_bytes / 2**20:.1f} MiB"
        )


def video_record(video_id: str, source: str, video: DecodedVideo, started: float) -> VideoRecord:
    """A decoded video's attributes for the store (storage_schema.md §4); ``started``: when its work began
    (``time.perf_counter``)."""
    return VideoRecord(
        video_id=video_id,
        source=source,
        duration=video.duration,
        frames=len(video.frames),
        padded_frames=padded_frame_count(len(video.frames)),
        fps=FPS,
        source_fps=video.source_fps,
        width=video.width,
        height=video.height,
        seconds=round(time.perf_counter() - started, 3),
        rotation=video.rotation,
        mirrored=video.mirrored,
        timing=video.timing,
        **source_fingerprint(source),
    )


def store_decoded(
    extractor: Extractor, writer: StoreWriter, queue: WriteBehind, video: VideoInput, decoded: DecodedVideo | DecodeError,
    started: float,
) -> VideoOutcome | None:
    """Run the backbone on one decoded video, streaming its layers to the store through ``queue``, or record why it failed.

    Each tile's runs of whole chunks are queued as the tile finishes, then the top
    features, attributes and marker (``store.writer.VideoWrite``). Returns the ``failed``
    outcome of a video that failed; the ``done`` one of a video that is written becomes
    one of ``queue``'s results once its marker is written.

    Raises:
        StoreError: an earlier write of ``queue`` failed (this video's tiles then are not queued).
    """
    source = absolute_source(video.source)
    if isinstance(decoded, DecodeError):
        error = str(decoded)
    else:
        write = VideoWrite(writer, video_record(video.video_id, source, decoded, started))
        queue.submit(write.open)
        try:
            windows = _queue_tiles(write, extractor.tiles(decoded), queue)
        except torch.OutOfMemoryError:
            error = f"out of memory in C3D ({len(decoded.frames)} frames); lower --max-frames-per-pass"
        else:
            fc7_windows, fc7 = top_features(windows)
            record = video_record(video.video_id, source, decoded, started)
            note = None if decoded.timing == "timestamps" else decoded.timing
            done = VideoOutcome(video.video_id, source, "done", frames=record.frames, seconds=record.seconds, note=note)

            def finish() -> VideoOutcome:
                write.finish(record, fc7, fc7_windows)
                return done

            queue.submit(finish, fc7_windows.nbytes)
            return None
    writer.record_failure(video.video_id, source, error)
    return VideoOutcome(video.video_id, source, "failed", error=error, seconds=round(time.perf_counter() - started, 3))


def _queue_tiles(write: VideoWrite, tiles: Iterator[FeatureTile], queue: WriteBehind) -> list[torch.Tensor]:
    """Queue every tile's layers as runs of whole chunks; returns the tiles' (W, D) float32 top-feature windows."""
    runs = {name: ChunkRuns(shape[0], write.chunk_steps[name]) for name, shape in write.shapes.items()}
    windows = []
    for tile in tiles:
        for name, steps in tile.layers.items():
            run = runs[name].add(steps)
            if run is not None:
                queue.submit(functools.partial(write.write_steps, name, *run), run[1].nbytes)
        windows.append(tile.windows)
    return windows
