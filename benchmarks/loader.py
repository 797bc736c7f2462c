"""Loader throughput against the trainer's consumption, and padding with and without bucketing.

On a real feature store: every video gets ``--captions`` dummy captions (the pairs a
dataset would give), batches are drawn as the trainer draws them, and

1. loader batches/s: ``--loader-workers`` processes reading and collating batches from
   Zarr, at the small preset's widths (what the CPU trainer reads) and at the paper's
   full widths (what a GPU run reads);
2. trainer steps/s: ``steps.optimizer_step`` of the small preset on the CPU on batches
   already in memory, so no I/O is counted;
3. their ratio (target ≥ 5: training never waits for the store);
4. the share of padded time steps in a batch, bucketed by length vs plainly shuffled.

    .venv/bin/python benchmarks/loader.py feats.zarr
    .venv/bin/python benchmarks/loader.py --small      # smoke run: 8 generated clips, extracted here
"""
from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch

from astar.extract import ExtractionConfig, collect_inputs, extract_videos, open_store
from astar.pipelines.synthetic import generate_dataset
from astar.train.model.config import ModelConfig
from astar.train.data.loader import BucketBatchSampler, CaptionBatches, FeatureReader, make_loader, padding_fraction
from astar.train.model.astar import ASTAR
from astar.train.objectives.modules import Objective
from astar.train.steps import optimizer_step

VOCAB = 1_000
CAPTION_WORDS = 9
SMALL_CLIPS = 8
SMALL_DURATIONS_S = (1.5, 12.0)
PADDING_EPOCHS = 5


def pairs(store, config: ModelConfig, captions: int) -> CaptionBatches:
    """``captions`` dummy captions per stored video, read at ``config``'s widths."""
    video_ids = [video_id for video_id in store.video_ids for _ in range(captions)]
    rng = np.random.default_rng(0)
    tokens = [[*rng.integers(4, VOCAB, CAPTION_WORDS).tolist(), config.eos_id] for _ in video_ids]
    return CaptionBatches(FeatureReader(store, config), video_ids, tokens)


def loader_rate(dataset: CaptionBatches, batch_size: int, workers: int, batches: int) -> float:
    """Batches per second, after the first batch (worker start-up excluded)."""
    sampler = BucketBatchSampler(dataset.lengths, batch_size)
    loader = make_loader(dataset, sampler, workers, persistent=True)

    def epochs():
        for epoch in itertools.count():
            sampler.set_epoch(epoch)
            yield from loader

    stream = epochs()
    next(stream)
    started = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches / (time.perf_counter() - started)


def trainer_rate(dataset: CaptionBatches, config: ModelConfig, batch_size: int, steps: int) -> float:
    """Training steps per second of ``config`` on the CPU, batches preloaded."""
    torch.manual_seed(0)
    model = Objective(ASTAR(config))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    sampler = BucketBatchSampler(dataset.lengths, batch_size)
    batches = [dataset[indices] for indices in itertools.islice(itertools.cycle(sampler.batches(0)), steps + 1)]
    optimizer_step(model, optimizer, scaler, batches[0], clip_norm=5.0)
    started = time.perf_counter()
    for batch in batches[1:]:
        optimizer_step(model, optimizer, scaler, batch, clip_norm=5.0)
    return steps / (time.perf_counter() - started)


def mean_padding(lengths: list[int], batch_size: int, bucketing: bool) -> float:
    sampler = BucketBatchSampler(lengths, batch_size, bucketing=bucketing)
    return float(np.mean([padding_fraction(sampler.batches(epoch), lengths) for epoch in range(PADDING_EPOCHS)]))


def small_store(folder: Path) -> str:
    """Extract ``SMALL_CLIPS`` generated clips of varied length (random-init C3D) into a store."""
    generate_dataset(folder / "videos", n_videos=SMALL_CLIPS, duration_range_s=SMALL_DURATIONS_S)
    store = str(folder / "feats.zarr")
    extract_videos(collect_inputs([str(folder / "videos")]), store, ExtractionConfig(device="cpu"), progress=False)
    return store


@click.command()
@click.argument("store", required=False)
@click.option("--small", is_flag=True, help="Smoke run: extract 8 generated clips and time a few batches.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--captions", default=20, show_default=True, help="Dummy captions per video (MSVD has ~40, MSR-VTT 20).")
@click.option("--loader-workers", default=2, show_default=True)
@click.option("--batches", default=50, show_default=True, help="Batches timed from the loader.")
@click.option("--steps", default=10, show_default=True, help="Training steps timed.")
def main(store: str | None, small: bool, batch_size: int, captions: int, loader_workers: int, batches: int, steps: int) -> None:
    if small:
        batches, steps, captions = min(batches, 10), min(steps, 3), min(captions, 5)
    with tempfile.TemporaryDirectory(prefix="astar-loader-bench-") as folder:
        if store is None:
            if not small:
                raise click.UsageError("give a STORE, or --small to make one")
            click.echo(f"extracting {SMALL_CLIPS} generated clips (random-init C3D)…")
            store = small_store(Path(folder))
        features = open_store(store)
        small_config = ModelConfig.small(VOCAB, pad_id=0, eos_id=2)
        paper_config = ModelConfig(VOCAB, pad_id=0, eos_id=2)
        small_pairs = pairs(features, small_config, captions)
        lengths = small_pairs.lengths
        click.echo(
            f"{store}: {len(features)} videos, pool5 steps {min(lengths)}–{max(lengths)} (mean {np.mean(lengths):.1f}); "
            f"{len(small_pairs)} pairs, batch {batch_size}, {loader_workers} loader workers"
        )
        small_rate = loader_rate(small_pairs, batch_size, loader_workers, batches)
        paper_rate = loader_rate(pairs(features, paper_config, captions), batch_size, loader_workers, batches)
        consumption = trainer_rate(small_pairs, small_config, batch_size, steps)
        click.echo(f"loader, small widths (8/16/16/32, fc7 64):  {small_rate:8.2f} batches/s")
        click.echo(f"loader, paper widths (128/256/512/512, 4096): {paper_rate:6.2f} batches/s")
        click.echo(f"trainer, small preset on CPU:                {consumption:8.2f} steps/s")
        verdict = "OK" if small_rate >= 5 * consumption else "BELOW TARGET"
        click.echo(f"loader / trainer: {small_rate / consumption:.1f}× (target ≥ 5×: {verdict})")
        click.echo(
            f"padding fraction: {mean_padding(lengths, batch_size, True):.3f} bucketed, "
            f"{mean_padding(lengths, batch_size, False):.3f} shuffled (mean over {PADDING_EPOCHS} epochs)"
        )


if __name__ == "__main__":
    main()
