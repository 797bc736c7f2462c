"""The in-process executor of an ``ExtractionPlan``: one decoder child a video ahead of C3D, here."""
from __future__ import annotations

import time
from collections.abc import Iterator

from tqdm.auto import tqdm

from .extractor import Extractor
from .isolate import IsolatedDecoder
from .outcomes import VideoOutcome, show_outcome, store_decoded
from .plan import ExtractionPlan


def run_in_process(
    plan: ExtractionPlan, extractor: Extractor, bar: tqdm, started: float, report_failures: bool
) -> Iterator[VideoOutcome]:
    """Extract ``plan.todo`` in order, yielding each video's outcome as it is stored or recorded as failed.

    A bad video is recorded in the store's failures table and the batch goes on;
    interrupting (Ctrl-C) loses at most the video in progress.
    """
    outcomes = list(plan.skipped)
    with IsolatedDecoder(extractor.preprocessing, plan.settings.decode_timeout) as decoder:
        video_started = time.perf_counter()
        for video, decoded in decoder.map(plan.todo):
            outcome = store_decoded(extractor, plan.writer, video, decoded, video_started)
            video_started = time.perf_counter()
            outcomes.append(outcome)
            show_outcome(bar, outcome, outcomes, started, report_failures)
            yield outcome
