"""Devices and precisions: the one place that turns ``--device`` and ``--precision`` into torch objects."""
from __future__ import annotations

import os

import torch

from .cores import machine_cores
from .errors import AstarError
from .options import PRECISION_NAMES

PRECISIONS = dict(zip(PRECISION_NAMES, (torch.float32, torch.bfloat16, torch.float16)))
"""The torch dtype of each precision name (``options.PRECISION_NAMES``)."""


class DeviceError(AstarError):
    """A device that was asked for but is not there."""


def use_available_cores() -> None:
    """Cap torch's CPU threads at the cores this process may use (``cores.machine_cores``: torch
    counts the host's cores, not a container's quota); children started afterwards (decoders,
    loader workers) inherit the cap through ``OMP_NUM_THREADS``, unless it is already set."""
    cores = machine_cores()
    if torch.get_num_threads() > cores:
        torch.set_num_threads(cores)
    os.environ.setdefault("OMP_NUM_THREADS", str(cores))


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without CUDA is a ``DeviceError``.

    Every command that computes resolves its device here first, so this is also where its
    threads are capped (``use_available_cores``).
    """
    use_available_cores()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but no CUDA device is available")
    return torch.device(name)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means fp32 (always on CPU)."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return PRECISIONS[precision]
