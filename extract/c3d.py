"""C3D (Sports-1M architecture, paper Appendix B), its weights definitions and loading.

Parameter names follow the widely shared PyTorch Sports-1M state dict
(``c3d.pickle``: ``conv1.weight`` … ``fc8.bias``) so that file loads as it is;
mmaction2 checkpoints (``backbone.conv1a.conv.weight`` …) load through an explicit
key mapping. Loading never executes pickled code (``torchfile.load_plain``).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .backbones.c3d_geometry import CONV_LAYERS, FC7_DIM, LAYERS, SPORTS1M_CLASSES
from .preprocessing import C3D_CAFFE, PAPER
from .store.schema import halo_frames
from .weights import RANDOM_INIT, WeightsSpec, load_matching, read_checkpoint, state_dict_of

CPU_REDUCED_CONV4B_STEPS = 8
"""conv4b's output time steps per call in bf16/fp16 on the CPU.

oneDNN's AMX kernel (torch 2.13) runs conv4b, 512→512 channels on 14×14 maps, 2.2–2.7×
slower when handed more than 8 time steps at once (55 ms instead of 24 ms at 16 steps,
259 instead of 103 at 64); no other C3D layer does this, and fp32 gets slower when cut."""

CLASSIFIER_KEYS = ("fc8.weight", "fc8.bias")
"""The Sports-1M classifier: loaded when present, never used for features."""


class C3D(nn.Module):
    """The C3D network of Tran et al. (2015) as drawn in the paper's Appendix B.

    All convolutions are 3×3×3, padding 1; pool1 is 1×2×2, pool2–pool5 are 2×2×2,
    pool5 pads (0, 1, 1) so a 7×7 map pools to 4×4. fc6/fc7 outputs are taken
    after ReLU, as Caffe's in-place ReLU gave.
    """

    stored_layers = LAYERS
    halo_frames = halo_frames(LAYERS[-1])

    def __init__(self) -> None:
        super().__init__()
        for name, in_channels, out_channels in CONV_LAYERS:
            self.add_module(name, nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1))
        self.pool1 = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.pool = nn.MaxPool3d(kernel_size=2, stride=2)
        self.fc6 = nn.Linear(512 * 4 * 4, FC7_DIM)
        self.fc7 = nn.Linear(FC7_DIM, FC7_DIM)
        self.fc8 = nn.Linear(FC7_DIM, SPORTS1M_CLASSES)
        # Stride 1 in time: every 8-frame-offset 16-frame window; stride-2 picks give pool5.
        self.window_pool = nn.MaxPool3d(kernel_size=2, stride=(1, 2, 2), padding=(0, 1, 1))

    def convolutions(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the convolutional stack over a whole video.

        Args:
            video: (B, 3, N′, 112, 112) preprocessed frames, N′ a multiple of 16.

        Returns:
            ``pool2`` (B, 128, N′/2, 28, 28), ``pool3`` (B, 256, N′/4, 14, 14),
            ``pool4`` (B, 512, N′/8, 7, 7) and ``conv5b`` (B, 512, N′/8, 7, 7), all after ReLU.
        """
        relu = torch.relu_  # after each pool, on 4-8× fewer values: max and ReLU commute exactly
        # oneDNN's bf16/fp16 CPU kernels are slow for two of C3D's shapes; the helpers say how and why.
        cpu_reduced = video.device.type == "cpu" and video.dtype != torch.float32
        conv1 = conv_with_rgb_padded(self.conv1, video) if cpu_reduced else self.conv1(video)
        x = relu(self.pool1(conv1))
        pool2 = relu(self.pool(self.conv2(x)))
        pool3 = relu(self.pool(self.conv3b(relu(self.conv3a(pool2)))))
        conv4a = relu(self.conv4a(pool3))
        conv4b = conv_in_time_chunks(self.conv4b, conv4a, CPU_REDUCED_CONV4B_STEPS) if cpu_reduced else self.conv4b(conv4a)
        pool4 = relu(self.pool(conv4b))
        conv5b = relu(self.conv5b(relu(self.conv5a(pool4))))
        return {"pool2": pool2, "pool3": pool3, "pool4": pool4, "conv5b": conv5b}

    def windows(self, conv5b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pool5 and per-window fc7 from conv5b.

        Window j covers frames [8j, 8j + 16): max over conv5b steps j and j+1,
        exactly what pool5 computes for a 16-frame clip; pool5 is every second window.

        Args:
            conv5b: (B, 512, N′/8, 7, 7).

        Returns:
            pool5 (B, 512, N′/16, 4, 4) and fc7 (B, N′/8 − 1, 4096), after ReLU.
        """
        pooled = self.window_pool(conv5b)  # (B, 512, N′/8 − 1, 4, 4)
        pool5 = pooled[:, :, ::2]
        batch, channels, windows = pooled.shape[:3]
        flat = pooled.permute(0, 2, 1, 3, 4).reshape(batch, windows, channels * 16)
        fc7 = torch.relu(self.fc7(torch.relu(self.fc6(flat))))
        return pool5, fc7

    def stored_maps(self, video: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """What a store holds of a (B, 3, N′, 112, 112) video: ``LAYERS`` as (B, C, T, H, W) and fc7 (B, N′/8 − 1, 4096)."""
        maps = self.convolutions(video)
        maps["pool5"], fc7 = self.windows(maps.pop("conv5b"))
        return maps, fc7

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """Sports-1M class logits for 16-frame clips: (B, 3, 16, 112, 112) → (B, 487)."""
        _, fc7 = self.windows(self.convolutions(clip)["conv5b"])
        return self.fc8(fc7[:, 0])


def conv_with_rgb_padded(conv: nn.Conv3d, video: torch.Tensor) -> torch.Tensor:
    """``conv(video)`` for conv1 with a fourth, all-zero input channel (and zero weights for it).

    oneDNN's bf16 kernel for 4 input channels is 1.6× faster than its 3-channel one; the
    zero products change no value, though the kernel sums in another order (one bf16
    step apart in 2·10⁻⁵ of the outputs).

    Args:
        video: (B, 3, T, H, W). Returns (B, 64, T, H, W).
    """
    video = nn.functional.pad(video, (0, 0, 0, 0, 0, 0, 0, 1)).contiguous(memory_format=torch.channels_last_3d)
    weight = nn.functional.pad(conv.weight, (0, 0, 0, 0, 0, 0, 0, 1))
    return nn.functional.conv3d(video, weight, conv.bias, padding=1)


def conv_in_time_chunks(conv: nn.Conv3d, x: torch.Tensor, steps: int) -> torch.Tensor:
    """``conv(x)`` for a 3×3×3 convolution with padding 1, computed ``steps`` output time steps per call.

    Each call sees its steps plus one input step on either side (zeros at the ends, as
    the padding gives), so every output value is computed exactly as in one call.

    Args:
        x: (B, C_in, T, H, W). Returns (B, C_out, T, H, W) in ``x``'s memory format.
    """
    padded = nn.functional.pad(x, (0, 0, 0, 0, 1, 1))
    time = x.shape[2]
    pieces = [
        nn.functional.conv3d(padded[:, :, start : min(time, start + steps) + 2], conv.weight, conv.bias, padding=(0, 1, 1))
        for start in range(0, time, steps)
    ]
    joined = torch.cat(pieces, dim=2)
    # Some CPU kernels (bfloat16 without native support) return contiguous pieces.
    if x.is_contiguous(memory_format=torch.channels_last_3d):
        return joined.contiguous(memory_format=torch.channels_last_3d)
    return joined


def random_init(seed: int = 0) -> tuple[C3D, WeightsSpec]:
    """A C3D with deterministic He-normal weights: the same seed gives the same network."""
    generator = torch.Generator().manual_seed(seed)
    model = C3D()
    for module in model.modules():
        if isinstance(module, (nn.Conv3d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
            nn.init.zeros_(module.bias)
    return model.eval(), WeightsSpec(name=RANDOM_INIT, format=RANDOM_INIT, preprocessing=PAPER, seed=seed)


def mmaction2_key(key: str) -> str | None:
    """Map an mmaction2 C3D checkpoint key to its ``c3d.pickle`` name (None: not a C3D weight)."""
    key = key.removeprefix("backbone.")
    if key.startswith("cls_head.fc_cls."):
        return "fc8." + key.rsplit(".", 1)[1]
    parts = key.split(".")
    if len(parts) == 3 and parts[1] == "conv":
        layer = parts[0]
        layer = {"conv1a": "conv1", "conv2a": "conv2"}.get(layer, layer)
        return f"{layer}.{parts[2]}"
    if len(parts) == 2 and parts[0] in ("fc6", "fc7"):
        return key
    return None


def load_weights(path: str | Path) -> tuple[C3D, WeightsSpec]:
    """Load C3D weights from a ``c3d.pickle`` state dict or an mmaction2 checkpoint.

    Raises:
        WeightsError: unreadable file, pickled code, unknown layout, or
            missing/unexpected keys and wrong shapes (all named in the message).
    """
    checkpoint, digest = read_checkpoint(path)
    state, weights_format = _normalise_state(checkpoint, path)
    model = C3D()
    load_matching(model, state, path, "C3D Sports-1M", optional=CLASSIFIER_KEYS)
    spec = WeightsSpec(name=Path(path).name, format=weights_format, preprocessing=C3D_CAFFE, sha256=digest)
    return model.eval(), spec


def _normalise_state(checkpoint: object, path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """Unwrap a checkpoint into ``c3d.pickle`` names; returns (state dict, format)."""
    checkpoint = state_dict_of(checkpoint, path)
    if any("conv1a.conv." in key for key in checkpoint):
        mapped = {mmaction2_key(k): v for k, v in checkpoint.items()}
        return {k: v for k, v in mapped.items() if k is not None}, "mmaction2"
    return dict(checkpoint), "c3d.pickle"


def build_network(name: str, weights: str | Path | None, seed: int = 0) -> tuple[C3D, WeightsSpec]:
    """The C3D to extract with (``name`` is the registry's, ``c3d``): loaded from ``weights``, or random-init when None."""
    return load_weights(weights) if weights is not None else random_init(seed)
