"""``extract_videos``: the one public way to extract videos into a store, in this process or on Dask.

It plans the run once (``plan.plan_extraction``) and hands the plan to one of two
executors: ``local.run_in_process`` (no ``client``) or ``distributed.run_on_dask``.
Both write the same arrays and return the same ``RunSummary``.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .console import say
from .extractor import ExtractionConfig, Extractor
from .folders import is_process_local
from .local import run_in_process
from .outcomes import RunSummary
from .plan import plan_extraction
from .progress import progress as progress_display
from .reporter import RunReporter
from .store.ids import VideoInput
from .store.index import runs_left_open
from .store.reader import StoreError, store_size_bytes

if TYPE_CHECKING:
    from distributed import Client


def extract_videos(
    inputs: Iterable[VideoInput],
    out: str,
    settings: ExtractionConfig = ExtractionConfig(),
    *,
    client: Client | None = None,
    overwrite: bool = False,
    progress: bool = True,
    extractor: Extractor | None = None,
    torch_threads: int | None = None,
    report_failures: bool = True,
    reextract_changed: bool = False,
) -> RunSummary:
    """Extract every input not yet done into the store at ``out`` (created if needed).

    Completed videos are skipped, failed ones retried; a bad video is recorded in the
    store's failures table and the batch goes on, and with ``report_failures`` a
    ``failed: SOURCE: REASON`` line is printed as it happens (the summary holds every
    failure either way).

    Args:
        inputs: the videos (``collect_inputs`` turns files, folders, list files and URLs into them).
        out: the store's path or fsspec URL.
        settings: weights, preprocessing, device, precision, decode timeout, storage options.
        client: run one Dask task per video on this client's cluster; None runs in this process.
        overwrite: start the store afresh (deletes what it holds; anything but an astar store is refused, never deleted).
        progress: show progress on stderr (a bar on a terminal, plain lines in a log).
        extractor: this run's ``Extractor`` (built from ``settings`` when None). On Dask it
            gives only the store's identity: its precision is what every worker computes
            in, so GPU workers driven from a machine without one run fp32 unless
            ``settings.precision`` says otherwise.
        torch_threads: Dask only: intra-op threads per task (None: ``torch_threads_per_task``).
        report_failures: print each failure's line as it happens.
        reextract_changed: extract again the stored videos whose input changed since (``plan_extraction``).

    Returns:
        One outcome per input, in input order.

    Raises:
        StoreError: the store cannot be created or written, or is process-local (``memory://``) on a cluster.
    """
    started = time.perf_counter()
    if client is not None and is_process_local(out, settings.storage_options):
        raise StoreError(f"{out}: a memory:// store lives in one process, and each Dask worker would write "
                         "its own; use a shared path or an object store")
    extractor = extractor or Extractor.build(settings)
    plan = plan_extraction(inputs, out, settings, extractor.identity(), overwrite, reextract_changed)
    outcomes = {outcome.video_id: outcome for outcome in plan.skipped}
    try:
        with progress_display(total=len(plan.todo), unit="video", enabled=progress,
                              desc="extract" if client is None else "extract (dask)") as bar:
            reporter = RunReporter(bar, started, plan.skipped, report_failures)
            if client is None:
                executed = run_in_process(plan, extractor)
            else:
                from .dask_executor import run_on_dask  # Dask loads for a Dask run only, not for astar-caption's

                executed = run_on_dask(plan, client, torch_threads)
            for outcome in executed:
                reporter.report(outcome)
                outcomes[outcome.video_id] = outcome
                if outcome.status == "done":
                    plan.writer.index_video(outcome.video_id, outcome.frames)
    finally:  # an interrupted run still indexes what it completed, and closes its run in the index
        plan.writer.flush_index(final=True)
    if runs_left_open(plan.writer.root):
        say(f"note: {out}: the store index holds parts of another run that has not finished (killed, or still "
            f"running), so readers list every marker; astar-verify {out} rebuilds the index once no run writes")
    ordered = [outcomes[video.video_id] for video in plan.inputs]
    return RunSummary(ordered, time.perf_counter() - started, store_size_bytes(out, plan.settings.storage_options))
