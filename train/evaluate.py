"""Scores of a trained run on one split (Section 4.3): beam-search captions, pycocoevalcap scores.

    from astar.train.evaluate import EvalConfig, evaluate, format_scores

    result = evaluate("runs/msvd-astar-20250101-120000", EvalConfig(split="test", beam_size=5))
    print(format_scores(result.scores))

Every video of the split that has captions and is in the store is captioned by beam
search (``model.search.beam_search``) in batches bucketed by length, on the run's model in
eval mode and in fp32 (so CPU and CUDA give the same captions up to ties). The
captions are scored against the split's references, normalised as in training
(Section 4.1), by ``scoring.score_captions``: BLEU-1…4, METEOR (needs Java; without it
the others still report and a warning says what to install), ROUGE-L and CIDEr-D,
PTB-tokenised. ``OUT`` (default ``RUN_DIR/eval-<split>``) receives ``scores.json``
(corpus scores, warnings and an ``evaluation`` block saying what was decoded how) and
``per_video.csv`` (video id, generated caption, references, per-video scores) and
``health.json`` (``astar.train.model.health``: dead alignment channels, α's entropy against
uniform, β per layer, on the split's videos and greedy captions).

The store must have been extracted like the run's training store (same schema,
frame rate and size, preprocessing and C3D weights); another one is refused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from astar.extract import AstarError, FeatureStore, open_store
from astar.extract.devices import resolve_device
from astar.extract.finite import require_finite
from astar.extract.folders import check_folder, claim_folder, register_kind
from astar.extract.progress import progress
from astar.extract.provenance import weights_line

from .data.datasets import SPLITS, MatchReport, load_annotations, match_store, references_by_video
from .data.loader import BucketBatchSampler, CaptionBatches, make_loader
from .model.health import HEALTH_FILE, combined_figures, tally_videos
from .model.search import decode_captions
from .options import DEFAULT_BEAM_SIZE, DEFAULT_LOADER_WORKERS
from .loaded_run import LoadedRun, load_run
from .rundir import write_text
from .scoring import METRICS, CaptionScores, score_captions, write_scores

TABLE_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
MISSING = "—"

EVAL_FOLDER = register_kind("eval", "evaluation output folder")
"""The ``folders`` kind of an evaluation output folder."""


class EvalError(AstarError):
    """An evaluation that cannot run as asked; the message says why in one line."""


@dataclass(frozen=True)
class EvalConfig:
    """How to evaluate a run; field names are the ``astar-eval`` flags.

    Attributes:
        split: ``test``, ``val`` or ``train``.
        checkpoint: ``best`` (best validation score) or ``last``.
        beam_size: K of beam search; 1 is greedy decoding.
        length_penalty: α of GNMT's length penalty; 0 ranks by log-probability.
        max_len: most tokens per caption, ``<eos>`` included; None gives the run's
            ``max_caption_len`` + 1, as in validation.
        store: feature store path or fsspec URL; None uses the run's.
        annotations: annotation file or folder; None uses the run's (or the default
            location beside the store when the run had none).
        storage_options: fsspec options of a remote store.
        out: output folder; None gives ``RUN_DIR/eval-<split>``.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        batch_size: videos per beam search; None uses the run's training batch size.
        loader_workers: processes reading features from the store (0: this process).
        progress: show progress on stderr (a bar on a terminal, plain lines in a log).
    """

    split: str = "test"
    checkpoint: str = "best"
    beam_size: int = DEFAULT_BEAM_SIZE
    length_penalty: float = 0.0
    max_len: int | None = None
    store: str | None = None
    annotations: str | None = None
    storage_options: dict[str, str] = field(default_factory=dict)
    out: str | None = None
    device: str = "auto"
    batch_size: int | None = None
    loader_workers: int = DEFAULT_LOADER_WORKERS
    progress: bool = True

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {self.split!r}")
        if self.beam_size < 1 or (self.max_len is not None and self.max_len < 1):
            raise ValueError("beam_size and max_len must be at least 1")
        require_finite(length_penalty=self.length_penalty)
        if self.length_penalty < 0:
            raise ValueError(f"length_penalty must be 0 or more; got {self.length_penalty}")


@dataclass
class EvalResult:
    """What an evaluation produced.

    Attributes:
        scores: corpus and per-video scores, with warnings (e.g. no Java).
        out_dir: where ``scores.json`` and ``per_video.csv`` were written.
        report: how the split's captions matched the store.
        store_attrs: the evaluated store's root attributes (its extraction identity).
        settings: the ``evaluation`` block of ``scores.json``.
        health: the mechanism's health on the split (``astar.train.model.health``; ``health.json``).
    """

    scores: CaptionScores
    out_dir: Path
    report: MatchReport
    store_attrs: dict[str, Any]
    settings: dict[str, Any]
    health: dict[str, float] = field(default_factory=dict)

    @property
    def random_init(self) -> bool:
        """The features came from random-init C3D weights."""
        return bool(self.store_attrs.get("model", {}).get("random_init"))


def split_references(
    run: LoadedRun, store: FeatureStore, split: str, annotations: str | None = None
) -> tuple[dict[str, list[str]], MatchReport]:
    """Stored video id → its normalised reference captions, for every ``split`` video in ``store``.

    Annotations are read as the run read them (``annotations`` overrides the run's
    path; a run without one looks beside ``store``).

    Raises:
        AnnotationError: unreadable annotations, or none of their videos in the store.
        EvalError: no ``split`` video among the stored ones.
    """
    config = run.config
    path = annotations or config.annotations
    captions = load_annotations(config.dataset, Path(path) if path else None, store=store.url,
                                paper_split=config.paper_split)
    kept, report = match_store(captions, store.video_ids)
    references = references_by_video(kept, split)
    if not references:
        raise EvalError(f"no {split} captions among the stored videos of {store.url} ({report.summary()})")
    return references, report


def evaluate(run_dir: str | Path, options: EvalConfig = EvalConfig()) -> EvalResult:
    """Caption ``options.split`` with the run's model and score it (module docstring).

    Raises:
        RunError, CheckpointError: unusable run directory or checkpoint.
        StoreError: no usable store. AnnotationError: unusable annotations.
        EvalError: a store extracted differently from the run's, or no captioned video.
        DeviceError: ``--device cuda`` without CUDA.
        FolderError: the output folder is a file or a non-empty folder astar did not make for scores.
    """
    device = resolve_device(options.device)
    run = load_run(run_dir, options.checkpoint, device)
    out_dir = Path(options.out) if options.out else run.run_dir / f"eval-{options.split}"
    check_folder(str(out_dir), EVAL_FOLDER)  # before the work: a folder astar may not write is refused at once
    store = open_store(options.store or run.config.store, options.storage_options)
    differences = run.identity_differences(store.attrs)
    if differences:
        raise EvalError(f"{store.url}: extracted differently from the store run {run.run_dir} was trained on "
                        f"({'; '.join(differences)}); evaluate on features made with the same weights and preprocessing")
    references, report = split_references(run, store, options.split, options.annotations)
    max_len = options.max_len or run.config.max_caption_len + 1
    settings = {
        "run_dir": str(run.run_dir), "checkpoint": run.checkpoint, "epoch": run.epoch, "step": run.step,
        "split": options.split, "store": store.url, "beam_size": options.beam_size,
        "length_penalty": options.length_penalty, "max_len": max_len, "c3d_weights": weights_line(store.attrs.get("model", {})),
    }
    videos = CaptionBatches(run.reader(store, options.storage_options), list(references))
    batches = make_loader(videos, BucketBatchSampler(videos.lengths, options.batch_size or run.config.batch_size,
                                                     shuffle=False), options.loader_workers)
    bar = progress(batches, unit="batch", desc=f"captioning {options.split}", enabled=options.progress)
    captions = decode_captions(run.model, iter(bar), run.vocabulary, max_len, device, None,
                               beam_size=options.beam_size, length_penalty=options.length_penalty)
    scores = score_captions({video_id: captions[video_id] for video_id in references}, references, METRICS)
    health = combined_figures([tally_videos(run.model, (batch.videos.to(device) for batch in batches), max_len)])
    claim_folder(str(out_dir), EVAL_FOLDER)
    write_scores(scores, out_dir, {"evaluation": settings})
    write_text(out_dir / HEALTH_FILE, json.dumps({"evaluation": settings, "health": health}, indent=1) + "\n")
    return EvalResult(scores, out_dir, report, store.attrs, settings, health)


def format_scores(scores: CaptionScores) -> str:
    """The corpus scores ×100 as a two-line table (metrics that could not be computed: "—")."""
    cells = [MISSING if key not in scores.corpus else f"{100 * scores.corpus[key]:.2f}" for key in TABLE_METRICS]
    widths = [max(len(key), len(cell)) for key, cell in zip(TABLE_METRICS, cells)]
    header = "  ".join(key.rjust(width) for key, width in zip(TABLE_METRICS, widths))
    values = "  ".join(cell.rjust(width) for cell, width in zip(cells, widths))
    return f"{header}\n{values}"
