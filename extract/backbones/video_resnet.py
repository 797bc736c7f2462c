"""torchvision's video ResNets (Tran et al., CVPR 2018): R3D-18, MC3-18 and R(2+1)D-18, defined here.

PyPI's torchvision does not import with the torch astar pins, so the three networks are
written out in this module. Parameter names are torchvision's (``stem.0.weight``,
``layer2.0.conv1.0.0.weight``, ``layer3.0.downsample.1.running_var``, ``fc.weight`` …), so
a torchvision ``.pth`` state dict loads as it is. Architecture facts (from
torchvision/models/video/resnet.py): a stem to 64 channels at stride (1, 2, 2), four
stages of two basic blocks (64, 128, 256, 512 channels; stages 2–4 stride 2), BatchNorm
after every convolution, global average pooling and a Kinetics-400 classifier.

- ``r3d_18``: every convolution 3×3×3; stem 3×7×7.
- ``mc3_18``: 3×3×3 in the stem and stage 1, 1×3×3 (no time) in stages 2–4, which then
  stride in space only.
- ``r2plus1d_18``: every 3×3×3 factorised into 1×3×3 (to M channels) then 3×1×1, with
  M chosen so the pair has a full 3D convolution's parameters; stem 1×7×7 then 3×1×1.

What a store holds: ``layer1`` … ``layer4`` (each stage's output, after its ReLU) and, as
the fc7 analogue a_{L+1}, layer4 averaged over each 16-frame window (every 8 frames) and
over space — what torchvision's ``avgpool`` gives a 16-frame clip — and the mean of these.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ..preprocessing import KINETICS
from ..store.schema import CLIP_FRAMES, WINDOW_STRIDE, LayerGeometry, halo_frames, traced_stages
from ..weights import RANDOM_INIT, WeightsError, WeightsSpec, load_matching, read_checkpoint, state_dict_of
from .resnet_designs import DESIGNS, KINETICS_CLASSES, NAMED_WEIGHTS, STAGE_CHANNELS, Design

CLASSIFIER_KEYS = ("fc.weight", "fc.bias")
"""The Kinetics-400 classifier: loaded when present, never used for features."""

WEIGHTS_URL = "https://download.pytorch.org/models/{file}"


def factorised_channels(in_channels: int, out_channels: int) -> int:
    """M of a (2+1)D pair: ⌊27·N_in·N_out / (9·N_in + 3·N_out)⌋, a 3×3×3 convolution's parameter count."""
    return (in_channels * out_channels * 27) // (in_channels * 9 + 3 * out_channels)


def convolution(kind: str, in_channels: int, out_channels: int, middle: int, stride: int = 1) -> nn.Module:
    """One stage convolution, no bias (BatchNorm follows): (B, C_in, T, H, W) → (B, C_out, T′, H′, W′)."""
    if kind == "full":
        return nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
    if kind == "spatial":
        return nn.Conv3d(in_channels, out_channels, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
    return nn.Sequential(
        nn.Conv3d(in_channels, middle, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
        nn.BatchNorm3d(middle),
        nn.ReLU(inplace=True),
        nn.Conv3d(middle, out_channels, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
    )


class BasicBlock(nn.Module):
    """relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)); the shortcut projects (1×1×1, strided) when the shape changes."""

    def __init__(self, kind: str, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        middle = factorised_channels(in_channels, out_channels)
        self.conv1 = nn.Sequential(
            convolution(kind, in_channels, out_channels, middle, stride), nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(convolution(kind, out_channels, out_channels, middle), nn.BatchNorm3d(out_channels))
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            time_stride = 1 if kind == "spatial" else stride
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=(time_stride, stride, stride), bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.conv2(self.conv1(x)) + shortcut)


class VideoResNet(nn.Module):
    """An 18-layer video ResNet; ``stored_maps`` gives what a store holds of a whole video."""

    def __init__(self, design: Design) -> None:
        super().__init__()
        self.design = design
        self.stored_layers: tuple[LayerGeometry, ...] = traced_stages(design.stage_operations())
        self.halo_frames = halo_frames(self.stored_layers[-1])
        if design.stem == "full":
            self.stem = nn.Sequential(
                nn.Conv3d(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False), nn.BatchNorm3d(64), nn.ReLU(inplace=True)
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv3d(3, 45, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False), nn.BatchNorm3d(45), nn.ReLU(inplace=True),
                nn.Conv3d(45, 64, (3, 1, 1), padding=(1, 0, 0), bias=False), nn.BatchNorm3d(64), nn.ReLU(inplace=True),
            )
        in_channels = 64
        for index, (kind, channels) in enumerate(zip(design.convolutions, STAGE_CHANNELS)):
            stride = 1 if index == 0 else 2
            blocks = [BasicBlock(kind, in_channels, channels, stride), BasicBlock(kind, channels, channels, 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
            in_channels = channels
        self.fc = nn.Linear(STAGE_CHANNELS[-1], KINETICS_CLASSES)

    def stored_maps(self, video: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Stage outputs and per-window top features of a whole video.

        Args:
            video: (B, 3, N′, 112, 112) preprocessed frames, N′ a multiple of 16.

        Returns:
            ``layer1`` … ``layer4`` as (B, C, N′/time_stride, H, W), after ReLU, and the
            top features (B, N′/8 − 1, 512): layer4 averaged over each window of frames
            [8j, 8j + 16) and over space.
        """
        maps = {}
        x = self.stem(video)
        for geometry in self.stored_layers:
            x = maps[geometry.name] = getattr(self, geometry.name)(x)
        top = self.stored_layers[-1]
        pooled = nn.functional.avg_pool3d(
            x, (CLIP_FRAMES // top.time_stride, *x.shape[-2:]), stride=(WINDOW_STRIDE // top.time_stride, 1, 1)
        )  # (B, 512, N′/8 − 1, 1, 1)
        return maps, pooled.flatten(2).transpose(1, 2)

    def forward(self, clip: Tensor) -> Tensor:
        """Kinetics-400 logits for 16-frame clips: (B, 3, 16, 112, 112) → (B, 400)."""
        _, top = self.stored_maps(clip)
        return self.fc(top[:, 0])


def random_init(design: Design, seed: int = 0) -> tuple[VideoResNet, WeightsSpec]:
    """A network with deterministic weights: He-normal (fan-out) convolutions, unit BatchNorm, as torchvision initialises."""
    generator = torch.Generator().manual_seed(seed)
    model = VideoResNet(design)
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01, generator=generator)
            nn.init.zeros_(module.bias)
    spec = WeightsSpec(name=RANDOM_INIT, format=RANDOM_INIT, preprocessing=KINETICS, seed=seed, architecture=design.name)
    return model.eval(), spec


def load_weights(design: Design, path: str | Path) -> tuple[VideoResNet, WeightsSpec]:
    """Load a torchvision state dict (``r3d_18-b3b3357e.pth`` …) into ``design``'s network.

    Raises:
        WeightsError: unreadable file, pickled code, or keys that are not this network's (named).
    """
    checkpoint, digest = read_checkpoint(path)
    model = VideoResNet(design)
    load_matching(model, state_dict_of(checkpoint, path), path, f"torchvision {design.name}", optional=CLASSIFIER_KEYS)
    spec = WeightsSpec(name=Path(path).name, format="torchvision", preprocessing=KINETICS, sha256=digest, architecture=design.name)
    return model.eval(), spec


def download_weights(design: Design, name: str) -> Path:
    """The file of torchvision's weights ``name``, downloaded through torchvision (into torch's hub cache).

    Raises:
        WeightsError: torchvision does not import here (one line: where to get the file instead).
    """
    url = WEIGHTS_URL.format(file=design.weights_file)
    try:
        import torchvision.models
    except Exception:  # any import failure (missing, or built for another torch) means the same to the user
        raise WeightsError(
            f"{name}: downloading torchvision weights needs torchvision importable with this torch; "
            f"download {url} and pass the file as --weights"
        ) from None
    weights = torchvision.models.get_weight(f"{_enum_name(design)}.{name}")
    weights.get_state_dict(progress=True)
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def _enum_name(design: Design) -> str:
    """torchvision's weights enum of a design: ``R3D_18_Weights``, ``MC3_18_Weights``, ``R2Plus1D_18_Weights``."""
    return {"r3d_18": "R3D_18_Weights", "mc3_18": "MC3_18_Weights", "r2plus1d_18": "R2Plus1D_18_Weights"}[design.name]


def build_network(name: str, weights: str | None, seed: int = 0) -> tuple[VideoResNet, WeightsSpec]:
    """The network of design ``name``: random init (``weights`` None), a torchvision weights name, or a file."""
    design = DESIGNS[name]
    if weights is None:
        return random_init(design, seed)
    if weights in NAMED_WEIGHTS and not Path(weights).exists():
        model, spec = load_weights(design, download_weights(design, weights))
        return model, WeightsSpec(weights, spec.format, spec.preprocessing, spec.sha256, architecture=design.name)
    return load_weights(design, weights)
