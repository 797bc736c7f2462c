"""The feature cache at the paper's widths on the CPU: how long training waits for batches, streamed vs cached.

For ``--feature-cache none`` (each loader worker decompresses from Zarr, through its own
LRU) and ``host`` (one ``FeatureCache`` in shared memory, filled once), ASTAR at the
paper's widths (``ModelConfig`` defaults: every channel of pool2 … pool5, fc7 4096) trains
two epochs (or their first ``--steps`` batches) on the store's videos, ``--captions``
dummy captions each, batches drawn by the trainer's ``make_loader`` with
``--loader-workers`` persistent workers. Per step the loop
times the wait for the next batch (loader) and ``optimizer_step`` (step), and prints the
second epoch's loader time as a share of its step time (target with the cache: ≤ 5 %),
then whether both modes ended with bit-identical parameters.

The split must outgrow the LRU for streaming to decompress again in the second epoch, as
MSVD's ~5 GB training split at paper widths outgrows the 1 GiB LRU; ``--small``'s 8 clips
hold ~30 MB, so there the LRU is sized to the same fifth of the split (``--lru-share``).

    .venv/bin/python benchmarks/feature_cache.py feats.zarr
    .venv/bin/python benchmarks/feature_cache.py --small    # 8 generated clips, extracted here
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import torch
from loader import CAPTION_WORDS, VOCAB, pairs, small_store

from astar.extract import open_store
from astar.train.objectives.modules import Objective
from astar.train.data.feature_cache import FeatureCache, cache_bytes
from astar.train.data.loader import DEFAULT_CACHE_BYTES, BucketBatchSampler, CaptionBatches, make_loader
from astar.train.model.astar import ASTAR
from astar.train.model.config import ModelConfig
from astar.train.steps import optimizer_step

EPOCHS = 2
TARGET = 0.05
"""Loader time of the second epoch as a share of its step time, with the cache (issue 19)."""
MSVD_LRU_SHARE = 0.2
"""The 1 GiB LRU against MSVD's ~5 GB training split at paper widths (1,200 videos × ~4.2 MB)."""


def timed_epochs(dataset: CaptionBatches, config: ModelConfig, batch_size: int, workers: int,
                 steps: int | None) -> tuple[list[tuple[float, float]], dict]:
    """(loader seconds, step seconds) of each epoch's first ``steps`` batches (None: all), and the parameters after the last."""
    torch.manual_seed(0)
    model = Objective(ASTAR(config))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    sampler = BucketBatchSampler(dataset.lengths, batch_size, seed=0)
    loader = make_loader(dataset, sampler, workers, persistent=True)
    epochs = []
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        waited = stepped = 0.0
        batches = iter(loader)
        for _ in range(len(sampler) if steps is None else min(steps, len(sampler))):
            asked = time.perf_counter()
            batch = next(batches)
            arrived = time.perf_counter()
            optimizer_step(model, optimizer, scaler, batch, clip_norm=5.0)
            waited, stepped = waited + arrived - asked, stepped + time.perf_counter() - arrived
        epochs.append((waited, stepped))
    return epochs, {name: value.clone() for name, value in model.state_dict().items()}


@click.command()
@click.argument("store", required=False)
@click.option("--small", is_flag=True, help="Extract 8 generated clips and train on them.")
@click.option("--batch-size", default=32, show_default=True, help="Pairs per step (--small: 2).")
@click.option("--captions", default=20, show_default=True, help="Dummy captions per video (--small: 2).")
@click.option("--steps", type=int, help="Steps timed per epoch. Default: the whole epoch; --small: 2 (a paper-width step takes seconds on a CPU).")
@click.option("--loader-workers", default=2, show_default=True)
@click.option("--lru-share", type=float, help=f"Streaming's LRU per worker as a share of the split. Default: {DEFAULT_CACHE_BYTES >> 30} GiB; --small: {MSVD_LRU_SHARE} (MSVD's).")
def main(store: str | None, small: bool, batch_size: int, captions: int, steps: int | None, loader_workers: int,
         lru_share: float | None) -> None:
    if small:
        batch_size, captions, steps, lru_share = min(batch_size, 2), min(captions, 2), steps or 2, lru_share or MSVD_LRU_SHARE
    with tempfile.TemporaryDirectory(prefix="astar-cache-bench-") as folder:
        if store is None:
            if not small:
                raise click.UsageError("give a STORE, or --small to make one")
            click.echo("extracting 8 generated clips (random-init C3D)…")
            store = small_store(Path(folder))
        features = open_store(store)
        paper = ModelConfig(VOCAB, pad_id=0, eos_id=2)
        streamed = pairs(features, paper, captions)
        reader = streamed.features
        split = cache_bytes(reader, features.video_ids)
        reader.cache_bytes = int(split * lru_share) if lru_share else DEFAULT_CACHE_BYTES
        click.echo(f"{store}: {len(features)} videos × {captions} captions of {CAPTION_WORDS} words, paper widths: "
                   f"{split / 2**20:.1f} MiB of features; streaming LRU {reader.cache_bytes / 2**20:.1f} MiB per worker; "
                   f"batch {batch_size}, {steps or 'all'} steps an epoch, {loader_workers} loader workers, "
                   f"{torch.get_num_threads()} torch threads")
        started = time.perf_counter()
        cache = FeatureCache.build(reader, features.video_ids, torch.device("cpu"))
        click.echo(f"host cache filled in {time.perf_counter() - started:.2f} s ({cache.nbytes / 2**20:.1f} MiB, shared)")
        cached = CaptionBatches(cache, streamed.video_ids, streamed.captions)
        results = {}
        for mode, dataset in (("none", streamed), ("host", cached)):
            epochs, results[mode] = timed_epochs(dataset, paper, batch_size, loader_workers, steps)
            (_, first_step), (waited, stepped) = epochs[0], epochs[-1]
            verdict = "" if mode == "none" else f" (target ≤ {TARGET:.0%}: {'OK' if waited <= TARGET * stepped else 'ABOVE'})"
            click.echo(f"--feature-cache {mode}: epoch 2 loader {waited:6.2f} s, steps {stepped:6.2f} s → "
                       f"loader / step {waited / stepped:6.1%}{verdict}  (epoch 1 steps {first_step:.2f} s)")
        identical = all(torch.equal(results["none"][name], results["host"][name]) for name in results["none"])
        click.echo(f"parameters after {EPOCHS} epochs: {'bit-identical' if identical else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
