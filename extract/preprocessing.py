"""How frames are turned into network input: geometry (resize, crop) and value normalisation.

A preprocessing belongs to the weights it feeds (see ``weights.WeightsSpec``): the
Sports-1M weights converted from Caffe expect the Caffe recipe, the paper
describes a plain 112×112 resize, torchvision's Kinetics video ResNets expect
torchvision's recipe. The store records the one that was used.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from .store.schema import FRAME_SIZE

if TYPE_CHECKING:
    import numpy as np
    import torch

SPORTS1M_MEAN_RGB = (101.41, 97.66, 90.25)
"""Per-channel Sports-1M mean on the 0–255 scale, in R, G, B order (Caffe lists B 90.25, G 97.66, R 101.41)."""

KINETICS_MEAN_RGB = (0.43216, 0.394666, 0.37645)
KINETICS_STD_RGB = (0.22803, 0.22145, 0.216989)
"""torchvision's Kinetics-400 normalisation of its video ResNets, on the 0–1 scale, R, G, B."""

CROP_SIZE = FRAME_SIZE
"""Side of the network's square input (``schema.FRAME_SIZE``)."""


@dataclass(frozen=True)
class Preprocessing:
    """A complete frame → tensor recipe.

    Attributes:
        name: ``paper`` or ``c3d``; recorded in the store.
        resize: (height, width) the decoder's scaler resizes every frame to.
        crop: side of the centred square crop taken after resizing, or None when
            ``resize`` is already 112×112.
        channel_order: ``RGB`` or ``BGR`` channel order of the network input.
        mean: per-channel mean subtracted on the 0–255 scale, in ``channel_order``.
        std: per-channel divisor applied after the mean, on the 0–255 scale, or None (none).
    """

    name: str
    resize: tuple[int, int]
    crop: int | None
    channel_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float] | None = None

    def crop_frames(self, frames: np.ndarray) -> np.ndarray:
        """Centre-crop resized frames: (N, H, W, 3) uint8 → (N, 112, 112, 3) uint8."""
        if self.crop is None:
            return frames
        height, width = frames.shape[1:3]
        top = (height - self.crop) // 2
        left = (width - self.crop) // 2
        return frames[:, top : top + self.crop, left : left + self.crop]

    def to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        """Frames (N, 112, 112, 3) uint8 RGB → network input (3, N, 112, 112) float32: (x − mean) / std."""
        import numpy as np  # here, not at the top: --help lists the recipes, decoders use them without torch
        import torch

        video = torch.from_numpy(np.ascontiguousarray(frames)).float()
        if self.channel_order == "BGR":
            video = video.flip(-1)
        video -= torch.tensor(self.mean, dtype=torch.float32)
        if self.std is not None:
            video /= torch.tensor(self.std, dtype=torch.float32)
        return video.permute(3, 0, 1, 2)

    def describe(self) -> dict:
        """JSON-ready description stored in the feature store's root attributes."""
        record = asdict(self)
        record["value_range"] = [0, 255]
        return record


PAPER = Preprocessing(
    name="paper",
    resize=(CROP_SIZE, CROP_SIZE),
    crop=None,
    channel_order="RGB",
    mean=SPORTS1M_MEAN_RGB,
)
"""Paper Section 4.2: every frame resized to 112×112 (aspect not kept), RGB."""

C3D_CAFFE = Preprocessing(
    name="c3d",
    resize=(128, 171),
    crop=CROP_SIZE,
    channel_order="BGR",
    mean=SPORTS1M_MEAN_RGB[::-1],
)
"""The original C3D recipe the Caffe-converted Sports-1M weights expect:
resize to 128×171, BGR, subtract the Sports-1M mean, centre-crop 112."""

KINETICS = Preprocessing(
    name="kinetics",
    resize=(128, 171),
    crop=CROP_SIZE,
    channel_order="RGB",
    mean=tuple(round(255 * value, 6) for value in KINETICS_MEAN_RGB),
    std=tuple(round(255 * value, 6) for value in KINETICS_STD_RGB),
)
"""torchvision's video-classification recipe for its Kinetics-400 weights: resize to 128×171,
centre-crop 112, RGB scaled to 0–1 and normalised by the Kinetics mean and std (stored here ×255)."""

PREPROCESSINGS: dict[str, Preprocessing] = {p.name: p for p in (PAPER, C3D_CAFFE, KINETICS)}
