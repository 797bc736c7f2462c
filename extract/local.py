"""The in-process executor of an ``ExtractionPlan``: a pool of decoder processes feeding C3D here, a writer thread behind it."""
from __future__ import annotations

import time
from collections.abc import Iterator

from .extractor import Extractor
from .outcomes import VideoOutcome, store_decoded
from .plan import ExtractionPlan
from .pool import DecoderPool, default_decoders
from .writebehind import WriteBehind


def run_in_process(plan: ExtractionPlan, extractor: Extractor) -> Iterator[VideoOutcome]:
    """Extract ``plan.todo`` as the pool decodes it (order of completion), yielding each video's outcome
    once it is stored (its marker written) or recorded as failed.

    C3D runs here while the writer thread (``writebehind``) compresses and writes the
    tiles before. A bad video is recorded in the store's failures table and the batch
    goes on; interrupting (Ctrl-C) loses at most the videos in progress and those whose
    marker was not yet written: queued writes are dropped, and none of them gets a marker.
    """
    decoders = plan.settings.decoders or default_decoders(extractor.device.type)
    with DecoderPool(extractor.preprocessing, decoders, plan.settings.decode_timeout) as pool, WriteBehind() as queue:
        video_started = time.perf_counter()
        for video, decoded in pool.map(plan.todo):
            failed = store_decoded(extractor, plan.writer, queue, video, decoded, video_started)
            video_started = time.perf_counter()
            yield from queue.results()
            if failed:
                yield failed
        yield from queue.drain()
