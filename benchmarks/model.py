"""Forward+backward time, GFLOP/s against this machine's ceilings, peak memory and the
alignment convolutions' share of the ASTAR model; then captions/s with C captions per video.

Part 1: batch 32, videos of 16, 32 and 64 frames, captions of 12 words. On CUDA the
paper-size model (Section 4.2); otherwise ``ModelConfig.small`` on the CPU. Peak memory is
``torch.cuda.max_memory_allocated`` on CUDA and the process's peak resident set on CPU.
GFLOP/s counts every convolution and matrix product of the step (``FlopCounterMode``) and
is reported against the ceilings of ``ceilings.py``.

Part 2: training captions/s with C = 4 captions per video against C = 1 at the same
number of captions per step, at the paper's widths: eq. (4) runs on batch/C videos and is
shared by their captions. On the CPU the batch is 8 captions of 16-frame videos and the
model attends to pool3 … pool5 (pool2's 7³ alignment alone is ~2 TFLOP a step there);
on CUDA all four layers and 32 captions.

    .venv/bin/python benchmarks/model.py [--shared-only]
"""
from __future__ import annotations

import argparse
import resource
import time
from dataclasses import replace

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from astar.train.model.batch import random_batch
from astar.train.model.config import ModelConfig
from astar.train.model.astar import ASTAR
from ceilings import measure_ceilings

BATCH = 32
FRAMES = (16, 32, 64)
CAPTION_WORDS = 12
VOCAB = 10_000
REPEATS = 3


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def train_step(model: ASTAR, batch, tokens: torch.Tensor, autocast: torch.dtype | None = None,
               caption_videos: torch.Tensor | None = None) -> None:
    model.zero_grad(set_to_none=True)
    device_type = tokens.device.type
    with torch.autocast(device_type, dtype=autocast, enabled=autocast is not None):
        loss = model.loss(batch, tokens, caption_videos)
    loss.backward()


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_seconds(step, device: torch.device, repeats: int = REPEATS) -> float:
    """Mean seconds of ``step()`` over ``repeats`` after two warm-up calls (allocator, oneDNN/cuDNN kernel choice)."""
    for _ in range(2):
        step()
    synchronise(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    synchronise(device)
    return (time.perf_counter() - start) / repeats


def step_flops(step) -> int:
    """FLOPs of one ``step()``: convolutions and matrix products, forward and backward."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def convolution_share(step, device: torch.device) -> float:
    """Share of operator time spent in the 3D convolutions of eq. (4), forward and backward."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        for _ in range(REPEATS):
            step()
        synchronise(device)
    events = profiler.key_averages()

    def self_time(event) -> float:
        return event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total

    total = sum(self_time(event) for event in events)
    convolutions = sum(self_time(event) for event in events if "conv" in event.key.lower())
    return convolutions / total


def step_table(device: torch.device, ceilings) -> None:
    """Part 1 (module docstring)."""
    config = ModelConfig(vocab_size=VOCAB) if device.type == "cuda" else ModelConfig.small(VOCAB)
    model = ASTAR(config).to(device).train()
    generator = torch.Generator().manual_seed(0)
    preset = "paper" if device.type == "cuda" else "small"
    print(f"ASTAR soft attention, {preset} preset, batch {BATCH}, {CAPTION_WORDS}-word captions, on {device}"
          f" ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters)")
    precisions = {"fp32": None, "bf16": torch.bfloat16} if device.type == "cuda" else {"fp32": None}
    print(f"{'frames':>6} {'precision':>9} {'fwd+bwd s':>10} {'GFLOP/s':>8} {'peak MiB':>9} {'align conv share':>17}  efficiency")
    for frames in FRAMES:
        batch = random_batch([frames // 16] * BATCH, config.layer_channels, config.fc7_dim, generator).to(device)
        tokens = torch.randint(2, VOCAB, (BATCH, CAPTION_WORDS), generator=generator).to(device)
        for name, autocast in precisions.items():
            def step() -> None:
                train_step(model, batch, tokens, autocast)

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = step_seconds(step, device)
            gflops = step_flops(step) / seconds / 1e9
            share = convolution_share(step, device)
            print(f"{frames:>6} {name:>9} {seconds:>10.3f} {gflops:>8.1f} {peak_memory_mib(device):>9.0f} {share:>16.0%}"
                  f"  {ceilings.efficiency(gflops, name)}")


def shared_alignment(device: torch.device, ceilings) -> None:
    """Part 2 (module docstring): captions/s at C = 4 against C = 1."""
    captions, layers = (BATCH, ("pool2", "pool3", "pool4", "pool5")) if device.type == "cuda" else (8, ("pool3", "pool4", "pool5"))
    config = replace(ModelConfig(vocab_size=VOCAB, layers=layers), dropout=0.0)
    model = ASTAR(config).to(device).train()
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(2, VOCAB, (captions, CAPTION_WORDS), generator=generator).to(device)
    print(f"captions sharing their video's alignment: paper widths, layers {'/'.join(layers)}, {captions} captions "
          f"of {CAPTION_WORDS} words per step, 16-frame videos, fp32 on {device}")
    rates = {}
    for per_video in (1, 4):
        videos = captions // per_video
        batch = random_batch([1] * videos, config.layer_channels, config.fc7_dim, generator).to(device)
        caption_videos = torch.arange(videos, device=device).repeat_interleave(per_video)

        def step() -> None:
            train_step(model, batch, tokens, None, caption_videos)

        seconds = step_seconds(step, device, repeats=2)
        rates[per_video] = captions / seconds
        gflops = step_flops(step) / seconds / 1e9
        print(f"C={per_video}: {videos} videos × {per_video} captions, {rates[per_video]:.2f} captions/s, "
              f"{gflops:.1f} GFLOP/s = {ceilings.efficiency(gflops, 'fp32')}")
    print(f"C=4 vs C=1: {rates[4] / rates[1]:.2f}× captions/s (target ≥ 2.5×)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-only", action="store_true", help="only part 2, captions per video")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ceilings = measure_ceilings(device)
    print("\n".join(ceilings.lines()))
    if not args.shared_only:
        step_table(device, ceilings)
    shared_alignment(device, ceilings)


if __name__ == "__main__":
    main()
