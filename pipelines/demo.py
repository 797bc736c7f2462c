"""The README's main job: synthetic captioned videos → C3D features on a Dask LocalCluster → a summary.

    python -m astar.pipelines.demo                 # or: make demo
    python -m astar.pipelines.demo --out /tmp/demo --videos 24 --workers 1

Every stage is resumable: the videos are generated once (kept when ``captions.csv``
exists), and extraction skips videos already in the store. Built only on the public
APIs of ``astar.extract`` and ``astar.pipelines.synthetic``.
"""
from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from astar.extract import (
    LAYERS,
    ExtractionSettings,
    Extractor,
    RunSummary,
    StoreError,
    WeightsError,
    collect_inputs,
    dask_client,
    extract_on_dask,
    open_store,
)
from astar.pipelines.synthetic import CAPTIONS_FILE, generate_dataset

DEFAULT_OUT = Path("demo_output")


@dataclass(frozen=True)
class DemoSettings:
    """What the demo does; the defaults are what ``make demo`` runs.

    Attributes:
        out: folder for everything the demo writes (videos/, feats.zarr).
        videos: number of synthetic clips to generate.
        workers: Dask LocalCluster worker processes for extraction.
        seed: seed of the synthetic dataset (and of random-init C3D).
        weights: C3D weights file; None gives random-init weights, said loudly.
    """

    out: Path = DEFAULT_OUT
    videos: int = 48
    workers: int = 2
    seed: int = 0
    weights: str | None = None

    @property
    def video_dir(self) -> Path:
        return self.out / "videos"

    @property
    def store(self) -> Path:
        return self.out / "feats.zarr"


def say(message: str) -> None:
    click.echo(message, err=True)


def ensure_videos(settings: DemoSettings) -> Path:
    """Generate the synthetic clips and ``captions.csv`` unless a previous run left them."""
    captions = settings.video_dir / CAPTIONS_FILE
    if captions.exists():
        say(f"[1/2] synthetic videos: reusing {settings.video_dir}")
        return captions
    say(f"[1/2] synthetic videos: generating {settings.videos} captioned clips in {settings.video_dir}")
    generate_dataset(settings.video_dir, n_videos=settings.videos, seed=settings.seed)
    return captions


def extract(settings: DemoSettings) -> RunSummary:
    """Extract every clip into the store on a Dask LocalCluster (resumes a previous run)."""
    extraction = ExtractionSettings(weights=settings.weights, seed=settings.seed)
    extractor = Extractor.build(extraction)
    say(f"[2/2] C3D features → {settings.store} on a Dask LocalCluster of {settings.workers} worker(s)")
    say(extractor.banner())
    inputs = collect_inputs([str(settings.video_dir)])
    with dask_client(workers=settings.workers) as client:
        say(f"Dask dashboard: {client.dashboard_link}")
        return extract_on_dask(client, inputs, str(settings.store), extraction, extractor=extractor)


def describe_store(settings: DemoSettings, summary: RunSummary) -> str:
    """A few lines on what the store holds: counts, layer shapes of one video, splits, weights."""
    store = open_store(str(settings.store))
    with open(settings.video_dir / CAPTIONS_FILE, newline="", encoding="utf-8") as handle:
        splits = {row["video_id"]: row["split"] for row in csv.DictReader(handle)}
    counts = {name: sum(split == name for split in splits.values()) for name in ("train", "val", "test")}
    example = store.video_ids[0]
    info = store.info(example)
    shapes = ", ".join(f"{name} {store.array(example, name).shape}" for name in (*LAYERS, "fc7"))
    weights = "RANDOM-INIT C3D weights" if store.random_init else f"C3D weights {store.attrs['model']['weights']}"
    return "\n".join(
        [
            f"extraction: {summary.line()}",
            f"store: {len(store.video_ids)} videos, {len(store.failures)} failures, {weights}",
            f"splits: {counts['train']} train / {counts['val']} val / {counts['test']} test videos",
            f"example {example!r}: {info['frames']} frames at 2 fps (padded to {info['padded_frames']}): {shapes}",
        ]
    )


def run_demo(settings: DemoSettings) -> RunSummary:
    """All stages in order; returns the extraction summary."""
    settings.out.mkdir(parents=True, exist_ok=True)
    ensure_videos(settings)
    summary = extract(settings)
    click.echo(describe_store(settings, summary))
    return summary


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True, help="Folder for the videos, the feature store and the results.")
@click.option("--videos", type=click.IntRange(min=3), default=DemoSettings.videos, show_default=True, help="Synthetic clips to generate (70/15/15 % train/val/test).")
@click.option("--workers", type=click.IntRange(min=1), default=DemoSettings.workers, show_default=True, help="Dask LocalCluster worker processes for extraction.")
@click.option("--seed", type=int, default=DemoSettings.seed, show_default=True, help="Seed of the synthetic videos and of random-init C3D.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), help="C3D Sports-1M weights (c3d.pickle); default random-init.")
def main(out: Path, videos: int, workers: int, seed: int, weights: str | None) -> None:
    """Run astar end to end on generated videos: generate, extract on a Dask LocalCluster, summarise.

    \b
    Example:
      python -m astar.pipelines.demo --out demo_output --workers 2
    """
    settings = DemoSettings(out=out, videos=videos, workers=workers, seed=seed, weights=weights)
    try:
        summary = run_demo(settings)
    except (StoreError, WeightsError) as error:
        raise click.ClickException(str(error)) from None
    if summary.count("failed"):
        sys.exit(summary.exit_code)


if __name__ == "__main__":
    main()
