"""One extraction configuration, built once per process: weights, preprocessing, device, precision."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from torch import nn

from .backbones import DEFAULT_BACKBONE, Backbone, get_backbone
from .decode import DecodedVideo
from .devices import PRECISIONS, resolve_device
from .features import FeatureTile, VideoFeatures, feature_tiles, gather_tiles, padded_slice, prepare_model
from .finite import require_finite
from .options import MAX_FRAMES_PER_PASS
from .preprocessing import CROP_SIZE, PREPROCESSINGS, Preprocessing
from .provenance import random_init_warning, weights_line
from .store.schema import FPS, SCHEMA_VERSION, padded_frame_count
from .weights import WeightsSpec


@dataclass(frozen=True)
class ExtractionConfig:
    """What a user chooses for an extraction run (the CLI flags, for the library).

    Attributes:
        backbone: a registered backbone name (``astar.extract.backbones.BACKBONES``).
        weights: the backbone's weights file (C3D: ``c3d.pickle`` or mmaction2; video ResNets:
            a torchvision ``.pth``) or torchvision weights name, None for random-init.
        preprocess: ``paper`` or ``c3d``; None uses the weights' own recipe.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        precision: ``fp32``, ``bf16`` or ``fp16``; None gives fp32 on CPU, bf16 on CUDA.
        seed: seed of random-init weights.
        max_frames_per_pass: frames per C3D pass before a long video is tiled (same result).
        decode_timeout: seconds one video may take to decode before it counts as failed.
        decoders: decoder processes (``pool.DecoderPool``); None: in this process
            ``default_decoders`` (every core but one on CUDA, one on the CPU), on Dask the
            worker's threads.
    """

    weights: str | None = None
    backbone: str = DEFAULT_BACKBONE
    preprocess: str | None = None
    device: str = "auto"
    precision: str | None = None
    seed: int = 0
    max_frames_per_pass: int = MAX_FRAMES_PER_PASS
    decode_timeout: float = 600.0
    decoders: int | None = None
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_finite(decode_timeout=self.decode_timeout)


@dataclass
class Extractor:
    """A backbone ready to run, with the preprocessing its features are recorded under."""

    model: nn.Module
    backbone: Backbone
    weights: WeightsSpec
    preprocessing: Preprocessing
    device: torch.device
    precision: str
    max_frames_per_pass: int = MAX_FRAMES_PER_PASS

    @classmethod
    def build(cls, settings: ExtractionConfig) -> "Extractor":
        """The model, weights and preprocessing ``settings`` describe, on their device."""
        backbone = get_backbone(settings.backbone)
        model, weights = backbone.build(settings.weights, settings.seed)
        device = resolve_device(settings.device)
        precision = settings.precision or ("bf16" if device.type == "cuda" else "fp32")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        preprocessing = PREPROCESSINGS[settings.preprocess] if settings.preprocess else weights.preprocessing
        return cls(prepare_model(model, device, precision), backbone, weights, preprocessing, device, precision, settings.max_frames_per_pass)

    def identity(self) -> dict[str, Any]:
        """Root attributes that define this extraction (storage_schema.md, root group)."""
        return {
            "astar_schema_version": SCHEMA_VERSION,
            "fps": FPS,
            "frame_size": [CROP_SIZE, CROP_SIZE],
            "preprocessing": self.preprocessing.describe(),
            **self.backbone.describe(),
            "model": self.weights.describe(),
            "precision": self.precision,
            "frame_padding": "repeat-last",
        }

    def banner(self) -> str:
        """One line describing the weights: ``provenance.random_init_warning``, or the weights line."""
        identity = self.weights.describe()
        return random_init_warning(identity) or weights_line(identity)

    def tiles(self, video: DecodedVideo) -> Iterator[FeatureTile]:
        """The backbone's pass over a decoded video (frames padded to N′ by repeating the last), tile by tile.

        Each tile's frames are preprocessed on their own, so no float32 copy of the whole video is made.
        """
        def frames(first: int, last: int) -> torch.Tensor:
            return self.preprocessing.to_tensor(padded_slice(video.frames, first, last))

        return feature_tiles(self.model, frames, padded_frame_count(len(video.frames)), self.max_frames_per_pass)

    def features(self, video: DecodedVideo) -> VideoFeatures:
        """The backbone's features of a decoded video, gathered in memory (``tiles``, whole)."""
        return gather_tiles(self.tiles(video))
