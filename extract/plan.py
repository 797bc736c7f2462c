"""The one plan of an extraction run: what to do, what is done, what is left (STYLE habit 9).

``plan_extraction`` opens (or creates) the store, fixes the settings every executor
computes with, and splits the inputs into videos already complete and videos to
extract. The in-process executor (``local``) and the Dask executor (``dask_executor``)
take the plan as it is and never re-derive it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .console import say
from .extractor import ExtractionConfig
from .inputs import absolute_source, source_change
from .outcomes import VideoOutcome
from .store.ids import VideoInput, is_url
from .store.reader import FeatureStore, StoreError
from .store.writer import StoreWriter


@dataclass(frozen=True)
class ExtractionPlan:
    """An extraction run, planned.

    Attributes:
        out: the store's path or URL.
        settings: what every executor computes with: the precision the store records
            (so workers that resolve ``auto`` to another device still match it) and a
            weights path that every worker of a shared file system resolves alike.
        writer: the open store.
        inputs: every input video, sources absolute, in the order given.
        skipped: one ``skipped`` outcome per input already complete in the store; its
            ``note`` says when the input is no longer the file the video was extracted from.
        todo: the inputs to extract (failed ones are retried, changed ones with ``reextract_changed``).
    """

    out: str
    settings: ExtractionConfig
    writer: StoreWriter
    inputs: list[VideoInput]
    skipped: list[VideoOutcome]
    todo: list[VideoInput]


def plan_extraction(
    inputs: Iterable[VideoInput],
    out: str,
    settings: ExtractionConfig,
    identity: dict[str, Any],
    overwrite: bool = False,
    reextract_changed: bool = False,
) -> ExtractionPlan:
    """Open the store at ``out`` for ``identity`` (``Extractor.identity()``) and plan what is left.

    A complete video whose input is now another file (``inputs.source_change``: size or
    modification time differ) is kept and said in one ``changed:`` line; with
    ``reextract_changed`` it loses its completion marker and is extracted again.

    Raises:
        StoreError: an input lies inside the store, the store cannot be created, or it was
            extracted with another identity.
    """
    inputs = [VideoInput(video.video_id, absolute_source(video.source)) for video in inputs]
    refuse_inputs_inside(inputs, out)
    writer = StoreWriter(out, identity, settings.storage_options, overwrite=overwrite)
    writer.open_index()  # before any marker is taken away; extract_videos closes it, however the run ends
    settings = replace(settings, precision=identity["precision"])
    if settings.weights and not is_url(settings.weights):
        settings = replace(settings, weights=str(Path(settings.weights).resolve()))
    done = writer.completed()
    stored = FeatureStore(writer.root, writer.url)
    skipped, todo = [], []
    for video in inputs:
        change = source_change(stored.info(video.video_id), video.source) if video.video_id in done else None
        if video.video_id not in done or (change and reextract_changed):
            if change:
                writer.unmark(video.video_id)
            todo.append(video)
            continue
        if change:
            say(f"changed: {video.video_id}: {change}; kept the stored features (--reextract-changed extracts it again)")
        skipped.append(VideoOutcome(video.video_id, video.source, "skipped", note=change))
    writer.flush_index()  # the unmarkings reach the index before any executor writes those videos again
    return ExtractionPlan(out, settings, writer, inputs, skipped, todo)


def refuse_inputs_inside(inputs: list[VideoInput], out: str) -> None:
    """Refuse a run whose input lies inside the store it writes (links resolved): writing,
    and ``--overwrite`` above all, must never touch its own inputs.

    Raises:
        StoreError: naming the first such input.
    """
    if is_url(out) or Path(out).is_file():  # a file at --out is refused by the store, in its own words
        return
    root = Path(out).resolve()
    for video in inputs:
        if not is_url(video.source) and Path(video.source).resolve().is_relative_to(root):
            raise StoreError(f"{video.source}: lies inside --out {out}; move the videos out of the store folder")
