"""The names and defaults that extraction's options offer, torch-free.

Click defines every command's options when its module is imported, long before any
network runs, so the choices it lists (devices, precisions) and the defaults it shows
live here, where importing them loads nothing heavy; ``devices`` and ``features`` turn
them into torch objects and use them.
"""
from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")
"""``--device`` choices of every command; ``auto`` picks CUDA when present."""

PRECISION_NAMES = ("fp32", "bf16", "fp16")
"""Compute precisions by name: C3D runs in one of them; training autocasts to bf16 or fp16."""

AUTOCAST_PRECISIONS = ("auto", *PRECISION_NAMES)
"""``astar-train --precision`` choices: ``auto`` = bf16 where supported, else fp16 (CUDA only)."""

MAX_FRAMES_PER_PASS = 256
"""Default frames per C3D pass before a long video is computed in overlapping tiles (same result)."""
