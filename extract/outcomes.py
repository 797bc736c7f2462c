"""What happens to each video of an extraction run, and the one step that turns a decoded video into one.

Both executors (``local``, in this process; ``distributed``, on Dask) call
``store_decoded`` for every video and ``show_outcome`` for the progress bar, so they
write the same bytes and report the same way.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Iterable

import pandas as pd
import torch

from .decode import DecodedVideo, DecodeError
from .clitools import EXIT_SOME_FAILED, say
from .extractor import Extractor, absolute_source
from .ids import VideoInput
from .store import StoreError, StoreWriter
from .progress import ProgressDisplay



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

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_FAILED if self.count("failed") else 0

    def line(self) -> str:
        frames = sum(o.frames for o in self.outcomes if o.status == "done")
        return (
            f"{self.count('done')} done, {self.count('skipped')} skipped, {self.count('failed')} failed "
            f"in {self.seconds:.1f} s ({frames} frames at 2 fps); store {self.store_bytes / 2**20:.1f} MiB"
        )


def store_decoded(
    extractor: Extractor, writer: StoreWriter, video: VideoInput, decoded: DecodedVideo | DecodeError, started: float
) -> VideoOutcome:
    """Run C3D on one decoded video and write it, or record why it failed."""
    source = absolute_source(video.source)
    if isinstance(decoded, DecodeError):
        error = str(decoded)
    else:
        try:
            features = extractor.features(decoded)
        except torch.OutOfMemoryError:
            error = f"out of memory in C3D ({len(decoded.frames)} frames); lower --max-frames-per-pass"
        else:
            record = extractor.record(video.video_id, source, decoded, started)
            try:
                writer.write_video(record, features.layers, features.fc7, features.fc7_windows)
            except OSError as failure:
                raise StoreError(f"{writer.url}: writing {video.video_id!r} failed ({failure})") from None
            note = None if decoded.timing == "timestamps" else decoded.timing
            return VideoOutcome(video.video_id, source, "done", frames=record.frames, seconds=record.seconds, note=note)
    writer.record_failure(video.video_id, source, error)
    return VideoOutcome(video.video_id, source, "failed", error=error, seconds=round(time.perf_counter() - started, 3))


def show_outcome(bar: ProgressDisplay, outcome: VideoOutcome, outcomes: Iterable[VideoOutcome], started: float, report_failures: bool) -> None:
    """Advance a run's progress bar by one finished video: frames/s and failures so far, its failure or note line.

    Args:
        outcomes: every outcome of the run so far, ``outcome`` included. started: the run's start (perf_counter).
        report_failures: print ``failed: SOURCE: REASON`` (the recorded, absolute source) for a failed video.
    """
    if outcome.status == "failed" and report_failures:
        say(f"failed: {outcome.source}: {outcome.error}")
    if outcome.note:
        say(f"note: {outcome.source}: {outcome.note}")
    outcomes = list(outcomes)
    frames = sum(o.frames for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    bar.set_postfix(frames_per_s=f"{frames / (time.perf_counter() - started):.1f}", failed=failed, refresh=False)
    bar.update()

