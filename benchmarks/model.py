"""Forward+backward time, peak memory and alignment-convolution share of the ASTAR model.

Batch 32, videos of 16, 32 and 64 frames, captions of 12 words. On CUDA the paper-size
model (Section 4.2); otherwise ``ModelConfig.small`` on the CPU. Peak memory is
``torch.cuda.max_memory_allocated`` on CUDA and the process's peak resident set on CPU.

    .venv/bin/python benchmarks/model.py
"""
from __future__ import annotations

import resource
import time

import torch
from torch.profiler import ProfilerActivity, profile

from astar.train.video_batch import random_batch
from astar.train.model_config import ModelConfig
from astar.train.model import ASTAR

BATCH = 32
FRAMES = (16, 32, 64)
CAPTION_WORDS = 12
VOCAB = 10_000
REPEATS = 3


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def train_step(model: ASTAR, batch, tokens: torch.Tensor, autocast: torch.dtype | None = None) -> None:
    model.zero_grad(set_to_none=True)
    device_type = tokens.device.type
    with torch.autocast(device_type, dtype=autocast, enabled=autocast is not None):
        loss = model.loss(batch, tokens)
    loss.backward()


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def convolution_share(model: ASTAR, batch, tokens: torch.Tensor, device: torch.device, autocast: torch.dtype | None) -> float:
    """Share of operator time spent in the 3D convolutions of eq. (4), forward and backward."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        for _ in range(REPEATS):
            train_step(model, batch, tokens, autocast)
        synchronise(device)
    events = profiler.key_averages()

    def self_time(event) -> float:
        return event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total

    total = sum(self_time(event) for event in events)
    convolutions = sum(self_time(event) for event in events if "conv" in event.key.lower())
    return convolutions / total


def main() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = ModelConfig(vocab_size=VOCAB) if device.type == "cuda" else ModelConfig.small(VOCAB)
    model = ASTAR(config).to(device).train()
    generator = torch.Generator().manual_seed(0)
    preset = "paper" if device.type == "cuda" else "small"
    print(f"ASTAR soft attention, {preset} preset, batch {BATCH}, {CAPTION_WORDS}-word captions, on {device}"
          f" ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters)")
    precisions = {"fp32": None, "bf16": torch.bfloat16} if device.type == "cuda" else {"fp32": None}
    print(f"{'frames':>6} {'precision':>9} {'fwd+bwd s':>10} {'peak MiB':>9} {'align conv share':>17}")
    for frames in FRAMES:
        batch = random_batch([frames // 16] * BATCH, config.layer_channels, config.fc7_dim, generator).to(device)
        tokens = torch.randint(2, VOCAB, (BATCH, CAPTION_WORDS), generator=generator).to(device)
        for name, autocast in precisions.items():
            for _ in range(2):  # warm-up: allocator and oneDNN/cuDNN kernel selection
                train_step(model, batch, tokens, autocast)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            synchronise(device)
            start = time.perf_counter()
            for _ in range(REPEATS):
                train_step(model, batch, tokens, autocast)
            synchronise(device)
            seconds = (time.perf_counter() - start) / REPEATS
            share = convolution_share(model, batch, tokens, device, autocast)
            print(f"{frames:>6} {name:>9} {seconds:>10.3f} {peak_memory_mib(device):>9.0f} {share:>16.0%}")


if __name__ == "__main__":
    main()
