"""What an extraction run says as its videos finish: the progress bar and one line per failure or note.

The run (``extraction.extract_videos``) reports every outcome its executor yields;
the executors (``local``, ``dask_executor``) only compute and yield them.
"""
from __future__ import annotations

import time
from collections.abc import Iterable

from .console import say
from .outcomes import VideoOutcome
from .progress import ProgressDisplay


class RunReporter:
    """Advances ``bar`` per finished video, with frames/s and failures so far, and says each failure and note.

    Args:
        bar: the run's progress display, one step per video to extract.
        started: the run's start (``time.perf_counter``).
        skipped: outcomes known before any video ran (already stored); counted, not shown.
        report_failures: print ``failed: SOURCE: REASON`` (the recorded, absolute source) for a failed video.
    """

    def __init__(self, bar: ProgressDisplay, started: float, skipped: Iterable[VideoOutcome] = (),
                 report_failures: bool = True) -> None:
        self.bar, self.started, self.report_failures = bar, started, report_failures
        self.frames = 0
        self.failed = 0
        for outcome in skipped:
            self._count(outcome)

    @property
    def frames_per_s(self) -> float:
        return self.frames / (time.perf_counter() - self.started)

    def report(self, outcome: VideoOutcome) -> None:
        """Count one finished video, say its failure or note line, and advance the bar."""
        if outcome.status == "failed" and self.report_failures:
            say(f"failed: {outcome.source}: {outcome.error}")
        if outcome.note:
            say(f"note: {outcome.source}: {outcome.note}")
        self._count(outcome)
        self.bar.set_postfix(frames_per_s=f"{self.frames_per_s:.1f}", failed=self.failed, refresh=False)
        self.bar.update()

    def _count(self, outcome: VideoOutcome) -> None:
        self.frames += outcome.frames
        self.failed += outcome.status == "failed"
