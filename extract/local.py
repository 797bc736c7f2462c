"""The in-process executor of an ``ExtractionPlan``: a pool of decoder processes feeding C3D here."""
from __future__ import annotations

import time
from collections.abc import Iterator


from .extractor import Extractor
from .outcomes import VideoOutcome, show_outcome, store_decoded
from .plan import ExtractionPlan
from .pool import DecoderPool, default_decoders
from .progress import ProgressDisplay


def run_in_process(
    plan: ExtractionPlan, extractor: Extractor, bar: ProgressDisplay, started: float, report_failures: bool
) -> Iterator[VideoOutcome]:
    """Extract ``plan.todo`` as the pool decodes it (order of completion), yielding each video's outcome
    as it is stored or recorded as failed.

    A bad video is recorded in the store's failures table and the batch goes on;
    interrupting (Ctrl-C) loses at most the videos in progress.
    """
    outcomes = list(plan.skipped)
    decoders = plan.settings.decoders or default_decoders(extractor.device.type)
    with DecoderPool(extractor.preprocessing, decoders, plan.settings.decode_timeout) as pool:
        video_started = time.perf_counter()
        for video, decoded in pool.map(plan.todo):
            outcome = store_decoded(extractor, plan.writer, video, decoded, video_started)
            video_started = time.perf_counter()
            outcomes.append(outcome)
            show_outcome(bar, outcome, outcomes, started, report_failures)
            yield outcome
