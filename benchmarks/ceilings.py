"""Ceilings that efficiency figures are measured against, shared by the benchmarks.

Two measured ceilings and one computed:

- ``conv3d``: a large 3×3×3 ``Conv3d`` (256 → 256 channels on 16×28×28, C3D's conv3b
  shape) in channels-last-3D, through the same library and kind of kernel as C3D and
  eq. (4): oneDNN's convolutions on a CPU, cuDNN's on CUDA. This is the one to read.
- ``matmul``: a 4096² ``torch.mm``. On a CPU it goes through MKL, which runs AVX2
  code on AMD processors while oneDNN's convolutions use AVX-512, so a convolution can
  run well above it (C3D measured 229 % of it on an AMD EPYC): a floor, not a ceiling.
- ``theoretical``: cores × clock × FLOP per cycle from the CPU flags, or the GPU's
  published dense figure. The CPU clock is /proc/cpuinfo's, which a boost can exceed.

FLOPs count a multiply-add as 2, with every kernel tap (padding included) for convolutions.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch
from torch import nn

GPU_PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"fp32": 494.7, "bf16": 989.4},
    "H100": {"fp32": 494.7, "bf16": 989.4},
    "A100": {"fp32": 156.0, "bf16": 312.0},
    "L40S": {"fp32": 183.0, "bf16": 362.0},
    "A10": {"fp32": 62.5, "bf16": 125.0},
}
"""Published dense (no sparsity) peaks, TFLOP/s, by name fragment (SXM parts for H100/H200/A100).

fp32 is the TF32 tensor-core figure: cuDNN's fp32 convolutions use TF32 by default
(``torch.backends.cudnn.allow_tf32``), which is what C3D and eq. (4) run on. ``torch.mm``
in fp32 does not (``torch.backends.cuda.matmul.allow_tf32`` is off), so it sits far below.
"""


def best_seconds(run, repeats: int = 3) -> float:
    """Fastest of ``repeats`` timed calls after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _timed_gflops(flops: float, step, device: torch.device, repeats: int) -> float:
    def run() -> None:
        for _ in range(repeats):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return flops * repeats / best_seconds(run) / 1e9


def matmul_gflops(dtype: torch.dtype, device: torch.device, size: int = 4096) -> float:
    """Measured dense matmul GFLOP/s for ``dtype`` on ``device``."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    return _timed_gflops(2 * size**3, lambda: torch.mm(a, b), device, 20 if device.type == "cuda" else 1)


@torch.inference_mode()
def conv3d_gflops(dtype: torch.dtype, device: torch.device, channels: int = 256, steps: int = 16, side: int = 28) -> float:
    """Measured GFLOP/s of a 3×3×3 'same' Conv3d, channels → channels on (steps, side, side), channels-last-3D."""
    torch.backends.cudnn.benchmark = True
    batch = 8 if device.type == "cuda" else 1
    conv = nn.Conv3d(channels, channels, 3, padding=1).to(device, dtype).to(memory_format=torch.channels_last_3d)
    video = torch.randn(batch, channels, steps, side, side, device=device, dtype=dtype)
    video = video.contiguous(memory_format=torch.channels_last_3d)
    flops = 2 * batch * channels * steps * side * side * channels * 27
    return _timed_gflops(flops, lambda: conv(video), device, 20 if device.type == "cuda" else 1)


def _cpu_info() -> dict[str, str]:
    with open("/proc/cpuinfo") as info:
        first = info.read().split("\n\n")[0]
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first.splitlines())}


def cpu_theoretical_gflops() -> tuple[dict[str, float], str] | None:
    """Cores × clock × FLOP/cycle per core for fp32 and bf16, and how it was derived; None off Linux.

    FLOP/cycle from the flags: AVX-512 = two 512-bit FMA pipes, 64 fp32 (32 on AMD Zen 4,
    family 25, which runs 512-bit operations as two 256-bit halves); AVX2+FMA = 32.
    bf16: AMX 2048, avx512_bf16 twice fp32, otherwise fp32's rate.
    """
    try:
        info = _cpu_info()
    except OSError:
        return None
    flags = set(info.get("flags", "").split())
    ghz = float(info.get("cpu MHz", 0)) / 1000
    if not ghz:
        return None
    if "avx512f" in flags:
        fp32 = 32 if info.get("vendor_id") == "AuthenticAMD" and info.get("cpu family") == "25" else 64
    elif {"avx2", "fma"} <= flags:
        fp32 = 32
    else:
        fp32 = 8
    bf16 = 2048 if "amx_bf16" in flags else 2 * fp32 if "avx512_bf16" in flags else fp32
    cores = len(os.sched_getaffinity(0))
    how = f"{cores} cores × {ghz:.2f} GHz × {fp32} fp32 / {bf16} bf16 FLOP/cycle ({info.get('model name', '?')})"
    return {"fp32": cores * ghz * fp32, "bf16": cores * ghz * bf16}, how


def gpu_theoretical_gflops(device: torch.device) -> tuple[dict[str, float], str] | None:
    """The GPU's published dense peak for fp32 and bf16, if its name is in ``GPU_PEAK_TFLOPS``."""
    name = torch.cuda.get_device_name(device)
    for fragment, peaks in GPU_PEAK_TFLOPS.items():
        if fragment in name:
            return {dtype: tflops * 1000 for dtype, tflops in peaks.items()}, f"published figure for {name}"
    return None


@dataclass(frozen=True)
class Ceilings:
    """GFLOP/s per precision (``fp32``, ``bf16``) of each ceiling; ``theoretical`` may be unknown."""

    conv3d: dict[str, float]
    matmul: dict[str, float]
    theoretical: dict[str, float] | None
    theoretical_how: str

    def lines(self) -> list[str]:
        """One line per ceiling, for a benchmark's header."""
        lines = [f"{name} ceiling: " + ", ".join(f"{dtype} {value:.0f} GFLOP/s" for dtype, value in values.items())
                 for name, values in (("Conv3d 3×3×3 channels-last", self.conv3d), ("torch.mm", self.matmul))]
        if self.theoretical is None:
            lines.append(f"theoretical peak: unknown ({self.theoretical_how})")
        else:
            lines.append("theoretical peak: " + ", ".join(f"{d} {v:.0f} GFLOP/s" for d, v in self.theoretical.items())
                         + f" = {self.theoretical_how}")
            above = max(self.conv3d[dtype] / self.theoretical[dtype] for dtype in self.conv3d)
            if above > 1:
                lines.append(f"  the Conv3d ceiling runs at {above:.2f}× that peak: the cores run faster than the clock "
                             "the system reports (boost), so read the theoretical figure as a lower bound")
        return lines

    def efficiency(self, gflops: float, dtype: str) -> str:
        """``gflops`` as a share of each ceiling of ``dtype``: 'x % of Conv3d, y % of torch.mm, z % of theoretical'."""
        parts = [f"{gflops / self.conv3d[dtype]:.0%} of Conv3d", f"{gflops / self.matmul[dtype]:.0%} of torch.mm"]
        if self.theoretical is not None:
            parts.append(f"{gflops / self.theoretical[dtype]:.0%} of theoretical")
        return ", ".join(parts)


def measure_ceilings(device: torch.device) -> Ceilings:
    """Measure the Conv3d and matmul ceilings for fp32 and bf16 on ``device``, and look up the theoretical peak."""
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    theoretical = gpu_theoretical_gflops(device) if device.type == "cuda" else cpu_theoretical_gflops()
    return Ceilings(
        conv3d={name: conv3d_gflops(dtype, device) for name, dtype in dtypes.items()},
        matmul={name: matmul_gflops(dtype, device) for name, dtype in dtypes.items()},
        theoretical=None if theoretical is None else theoretical[0],
        theoretical_how="not derivable here" if theoretical is None else theoretical[1],
    )
