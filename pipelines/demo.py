"""The README's main job, end to end on generated videos: generate → extract → train → evaluate → caption.

    python -m astar.pipelines.demo                 # or: make demo
    python -m astar.pipelines.demo --out /tmp/demo --videos 24 --epochs 3 --workers 1

1. generate captioned synthetic clips (``pipelines.synthetic``, train/val/test splits);
2. extract C3D features on a Dask ``LocalCluster`` into ``OUT/feats.zarr``;
3. train the small preset (``astar-train --preset small``) into ``OUT/run``;
4. caption the test split by beam search and score it (``astar-eval``), printing the
   scores and a few captions beside their references;
5. caption two test videos and one held-out clip the dataset never saw
   (``astar-caption``), with an attention figure (the paper's Figure 3) for each;
6. with ``--scst EPOCHS`` only: fine-tune the best checkpoint by self-critical training
   on CIDEr-D (``astar-train --init-from OUT/run --objective scst``) into ``OUT/run-scst``
   and score the test split again, beside the cross-entropy model's scores.

Without ``--weights`` the C3D weights are random-init, and every stage says so. Every
stage is resumable: the videos are generated once, extraction skips stored videos,
and training continues its run (a finished run is kept). Built only on the public
APIs of ``astar.extract``, ``astar.train`` and ``astar.pipelines``.
"""
from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

from astar.extract import (
    AstarError, ExtractionConfig, Extractor, RunSummary, collect_inputs, dask_client, extract_videos, open_store,
)
from astar.extract.clitools import CONTEXT_SETTINGS, command_error, run_exit_code
from astar.extract.console import say
from astar.extract.folders import claim_folder, register_kind
from astar.extract.provenance import weights_line
from astar.pipelines.synthetic import ATTRIBUTES, CAPTIONS_FILE, attribute_accuracy, generate_dataset
from astar.train import (
    EvalConfig, EvalResult, TrainConfig, VideoCaption, caption_videos, evaluate, load_run, train_resumably,
)
from astar.train.caption import prepare_extraction
from astar.train.evaluate import format_scores
from astar.train.options import DEFAULT_BEAM_SIZE

DEMO_FOLDER = register_kind("demo", "demo output folder")
"""The ``folders`` kind of the demo's ``--out``."""
DEFAULT_OUT = Path("demo_output")
STAGES = 5
SHOWN_CAPTIONS = 6
"""Test videos whose generated caption is printed beside a reference."""
FIGURE_VIDEOS = 2
"""Test videos that get an attention figure."""
HELDOUT_VIDEO = "heldout.mp4"


@dataclass(frozen=True)
class DemoConfig:
    """What the demo does; the defaults are what ``make demo`` runs.

    Attributes:
        out: folder for everything the demo writes (videos/, feats.zarr, run/, figures/, heldout/).
        videos: number of synthetic clips to generate.
        workers: Dask LocalCluster worker processes for extraction.
        seed: seed of the synthetic dataset, of random-init C3D and of training;
            the held-out clip uses ``seed + 1``.
        weights: C3D weights file; None gives random-init weights, said loudly.
        epochs: training epochs of the small preset.
        beam_size: beam width of the scored and shown captions.
        scst_epochs: epochs of self-critical fine-tuning after training; 0 skips it.
        loader_workers: processes reading features while the model trains.
        progress: show progress bars.
    """

    out: Path = DEFAULT_OUT
    videos: int = 96
    workers: int = 2
    seed: int = 0
    weights: str | None = None
    epochs: int = 15
    beam_size: int = DEFAULT_BEAM_SIZE
    scst_epochs: int = 0
    loader_workers: int = 2
    progress: bool = True

    @property
    def video_dir(self) -> Path:
        return self.out / "videos"

    @property
    def store(self) -> Path:
        return self.out / "feats.zarr"

    @property
    def run_dir(self) -> Path:
        return self.out / "run"

    @property
    def scst_dir(self) -> Path:
        return self.out / "run-scst"

    @property
    def figures(self) -> Path:
        return self.out / "figures"

    @property
    def heldout_dir(self) -> Path:
        return self.out / "heldout"

    def train_config(self) -> TrainConfig:
        """The small preset with its recipe (lr 1e-2, batches of 16) on the generated captions,
        validated on val CIDEr every epoch."""
        return TrainConfig(
            store=str(self.store), dataset="csv", annotations=str(self.video_dir / CAPTIONS_FILE),
            out=str(self.run_dir), preset="small", epochs=self.epochs, patience=self.epochs,
            seed=self.seed, device="cpu", loader_workers=self.loader_workers,
            progress=self.progress,
        )

    def scst_config(self) -> TrainConfig:
        """Self-critical fine-tuning of the best checkpoint with the small preset's SCST recipe."""
        return self.train_config().self_critical(str(self.scst_dir), self.scst_epochs)


def stage(number: int, what: str) -> None:
    say(f"[{number}/{STAGES}] {what}")


def ensure_videos(settings: DemoConfig) -> Path:
    """Generate the synthetic clips and ``captions.csv`` unless a previous run left them."""
    captions = settings.video_dir / CAPTIONS_FILE
    if captions.exists():
        stage(1, f"synthetic videos: reusing {settings.video_dir}")
        return captions
    stage(1, f"synthetic videos: generating {settings.videos} captioned clips in {settings.video_dir}")
    generate_dataset(settings.video_dir, n_videos=settings.videos, seed=settings.seed)
    return captions


def extract(settings: DemoConfig) -> RunSummary:
    """Extract every clip into the store on a Dask LocalCluster (resumes a previous run)."""
    extraction = ExtractionConfig(weights=settings.weights, seed=settings.seed)
    extractor = Extractor.build(extraction)
    stage(2, f"C3D features → {settings.store} on a Dask LocalCluster of {settings.workers} worker(s)")
    say(extractor.banner())
    inputs = collect_inputs([str(settings.video_dir)])
    with dask_client(workers=settings.workers) as client:
        say(f"Dask dashboard: {client.dashboard_link}")
        return extract_videos(inputs, str(settings.store), extraction, client=client, extractor=extractor,
                              progress=settings.progress)


def describe_store(settings: DemoConfig, summary: RunSummary) -> str:
    """A few lines on what the store holds: counts, layer shapes of one video, splits, weights."""
    store = open_store(str(settings.store))
    with open(settings.video_dir / CAPTIONS_FILE, newline="", encoding="utf-8") as handle:
        splits = {row["video_id"]: row["split"] for row in csv.DictReader(handle)}
    counts = {name: sum(split == name for split in splits.values()) for name in ("train", "val", "test")}
    example = store.video_ids[0]
    info = store.info(example)
    shapes = ", ".join(f"{name} {store.array(example, name).shape}" for name in (*store.layer_names, "fc7"))
    return "\n".join(
        [
            f"extraction: {summary.line()}",
            f"store: {len(store.video_ids)} videos, {len(store.failures)} failures, {weights_line(store.attrs.get('model', {}))}",
            f"splits: {counts['train']} train / {counts['val']} val / {counts['test']} test videos",
            f"example {example!r}: {info['frames']} frames at 2 fps (padded to {info['padded_frames']}): {shapes}",
        ]
    )


def train_model(settings: DemoConfig) -> str:
    """Train (or resume, or keep) the small model; one line on how it ended."""
    stage(3, f"training the small preset for up to {settings.epochs} epochs → {settings.run_dir}")
    result = train_resumably(settings.train_config())
    best = "none" if result.best is None else f"{result.best:.3f} at epoch {result.best_epoch}"
    return f"training: {result.stopped} after {result.epochs} epochs ({result.steps} steps); best val {result.metric} {best}"


def evaluate_test(settings: DemoConfig, run_dir: Path | None = None) -> EvalResult:
    stage(4, f"captioning the test split (beam size {settings.beam_size}) and scoring it")
    return evaluate(run_dir or settings.run_dir, EvalConfig(split="test", beam_size=settings.beam_size, device="cpu",
                                                            loader_workers=0, progress=settings.progress))


def self_critical(settings: DemoConfig, before: EvalResult) -> str:
    """Fine-tune by SCST (or keep a finished fine-tuning), score the test split; lines comparing CIDEr-D
    on the test split and, greedily, on the training split whose references SCST's reward uses."""
    say(f"[+] self-critical fine-tuning on CIDEr-D for up to {settings.scst_epochs} epochs → {settings.scst_dir}")
    train_resumably(settings.scst_config())
    after = evaluate_test(settings, settings.scst_dir)
    greedy_train = [evaluate(run_dir, EvalConfig(split="train", beam_size=1, device="cpu", loader_workers=0,
                                                 progress=settings.progress))
                    for run_dir in (settings.run_dir, settings.scst_dir)]
    return "\n".join([
        change(f"test CIDEr-D (beam {settings.beam_size})", before, after),
        change("training-split CIDEr-D (greedy; SCST's reward)", *greedy_train),
    ])


def change(what: str, before: EvalResult, after: EvalResult) -> str:
    """One line: ``what`` of the cross-entropy run, after SCST, and the relative change."""
    old, new = before.scores.corpus["CIDEr"], after.scores.corpus["CIDEr"]
    return f"{what}: cross-entropy best {100 * old:.2f} → after SCST {100 * new:.2f} ({100 * (new - old) / old:+.1f} %)"


def describe_accuracy(result: EvalResult) -> str:
    """How often the test captions name each attribute right, beside chance (one value in n)."""
    table = result.scores.per_video
    accuracy = attribute_accuracy(zip(table.caption, (references.split(" | ")[0] for references in table.references)))
    right = ", ".join(f"{attribute} {hits}/{total}" for attribute, (hits, total) in accuracy.items())
    chance = ", ".join(f"{100 / len(values):.0f} %" for values in ATTRIBUTES.values())
    return f"test captions naming the right {right} (chance: {chance})"


def describe_scores(result: EvalResult) -> str:
    """The scores table, warnings, and a few generated captions beside a reference."""
    table = result.scores.per_video
    lines = [
        f"test scores ×100 over {len(table)} videos ({result.settings['c3d_weights']}):",
        format_scores(result.scores),
        *(f"warning: {warning}" for warning in result.scores.warnings),
        describe_accuracy(result),
        "generated caption → a reference:",
    ]
    width = max(len(video_id) for video_id in table.video_id)
    for row in table.head(SHOWN_CAPTIONS).itertuples():
        lines.append(f"  {row.video_id:<{width}}  {row.caption!r} → {row.references.split(' | ')[0]!r}")
    return "\n".join(lines)


def heldout_clip(settings: DemoConfig) -> tuple[Path, str]:
    """A clip generated with another seed, so the dataset never saw it; (``heldout.mp4``, its canonical caption)."""
    video = settings.heldout_dir / HELDOUT_VIDEO
    if not video.exists():
        clip = generate_dataset(settings.heldout_dir, n_videos=1, seed=settings.seed + 1)[0]
        (settings.heldout_dir / clip.filename).rename(video)
    with open(settings.heldout_dir / CAPTIONS_FILE, newline="", encoding="utf-8") as handle:
        return video, next(csv.DictReader(handle))["caption"]


def caption_new_videos(settings: DemoConfig, test_ids: list[str]) -> list[VideoCaption]:
    """``astar-caption`` on two test clips and a held-out one, with an attention figure for each."""
    heldout, truth = heldout_clip(settings)
    videos = [settings.video_dir / f"{video_id}.mp4" for video_id in test_ids[:FIGURE_VIDEOS]] + [heldout]
    stage(5, f"captioning video files, attention figures → {settings.figures}")
    say("  = astar-caption " + " ".join(map(str, [settings.run_dir, *videos]))
        + f" --attention {settings.figures} --beam-size {settings.beam_size}"
        + (f" --weights {settings.weights}" if settings.weights else ""))
    run = load_run(settings.run_dir, device="cpu")
    extraction, extractor = prepare_extraction(run, settings.weights, "cpu")
    results = caption_videos(run, [str(video) for video in videos], extraction, extractor, settings.beam_size,
                             attention_dir=settings.figures)
    results[-1].video = f"{results[-1].video} (held out; truth: {truth!r})"
    return results


def describe_captions(results: list[VideoCaption], store_attrs: dict) -> str:
    lines = [f"captions of video files ({weights_line(store_attrs.get('model', {}))}):"]
    for result in results:
        said = f"failed: {result.error}" if result.error else repr(result.caption)
        lines.append(f"  {result.video}: {said}")
        if not result.error:
            lines.append(f"    attention figure: {result.figure}" if result.figure else
                         "    no attention figure: the caption has no word")
    return "\n".join(lines)


def run_demo(settings: DemoConfig) -> RunSummary:
    """All stages in order, printing what each produced; returns the extraction summary."""
    started = time.perf_counter()
    claim_folder(str(settings.out), DEMO_FOLDER)
    ensure_videos(settings)
    summary = extract(settings)
    click.echo(describe_store(settings, summary))
    click.echo(train_model(settings))
    scores = evaluate_test(settings)
    click.echo(describe_scores(scores))
    results = caption_new_videos(settings, list(scores.scores.per_video.video_id))
    click.echo(describe_captions(results, scores.store_attrs))
    if settings.scst_epochs:
        click.echo(self_critical(settings, scores))
    click.echo(f"demo finished in {time.perf_counter() - started:.0f} s; everything is in {settings.out}/")
    return summary


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True, help="Folder for the videos, the feature store, the run and the figures.")
@click.option("--videos", type=click.IntRange(min=3), default=DemoConfig.videos, show_default=True, help="Synthetic clips to generate (70/15/15 % train/val/test).")
@click.option("--workers", type=click.IntRange(min=1), default=DemoConfig.workers, show_default=True, help="Dask LocalCluster worker processes for extraction.")
@click.option("--epochs", type=click.IntRange(min=1), default=DemoConfig.epochs, show_default=True, help="Training epochs of the small model.")
@click.option("--beam-size", type=click.IntRange(min=1), default=DemoConfig.beam_size, show_default=True, help="Beam width of the scored and shown captions; 1 is greedy.")
@click.option("--seed", type=int, default=DemoConfig.seed, show_default=True, help="Seed of the synthetic videos, random-init C3D and training.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), help="C3D Sports-1M weights (c3d.pickle); default random-init.")
@click.option("--scst", "scst_epochs", type=click.IntRange(min=0), default=DemoConfig.scst_epochs, show_default=True, help="Then fine-tune by self-critical training on CIDEr-D for up to this many epochs and compare test scores (0: skip).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def main(out: Path, videos: int, workers: int, epochs: int, beam_size: int, seed: int, weights: str | None,
         scst_epochs: int, quiet: bool) -> None:
    """Run astar end to end on generated videos: generate, extract on a Dask LocalCluster,
    train the small model, evaluate it, caption new video files with attention figures.

    \b
    Example:
      python -m astar.pipelines.demo --out demo_output --workers 2
    """
    settings = DemoConfig(out=out, videos=videos, workers=workers, epochs=epochs, beam_size=beam_size, seed=seed,
                          weights=weights, scst_epochs=scst_epochs, progress=not quiet)
    try:
        summary = run_demo(settings)
    except AstarError as error:
        raise command_error(str(error)) from None
    if summary.count("failed"):
        sys.exit(run_exit_code(summary.count("failed")))


if __name__ == "__main__":
    main()
