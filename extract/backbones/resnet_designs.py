"""The three 18-layer video ResNets as plain data: what distinguishes each design, stage widths, weights names.

Torch-free, so the backbone registry knows their layers without building them;
``video_resnet`` builds the networks from these designs (its docstring has the
architecture facts and their source).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..store.schema import Operation

KINETICS_CLASSES = 400
STAGE_CHANNELS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2


@dataclass(frozen=True)
class Design:
    """What distinguishes one video ResNet: its stem and each stage's convolution kind.

    Attributes:
        name: ``r3d_18``, ``mc3_18`` or ``r2plus1d_18``.
        label: the paper's name (``R(2+1)D-18``).
        stem: ``full`` (3×7×7 conv) or ``factorised`` (1×7×7 to 45 channels, then 3×1×1).
        convolutions: per stage, ``full`` (3×3×3), ``spatial`` (1×3×3) or ``factorised`` ((2+1)D).
        weights_file: torchvision's file name of its KINETICS400_V1 weights.
    """

    name: str
    label: str
    stem: str
    convolutions: tuple[str, str, str, str]
    weights_file: str

    def stage_operations(self) -> tuple[tuple[str, int, tuple[Operation, ...]], ...]:
        """(name, channels, operations since the previous stage) of layer1 … layer4, as traced geometry."""
        stem: tuple[Operation, ...] = (((3, 1, 1), (7, 2, 3)),) if self.stem == "full" else (((1, 1, 0), (7, 2, 3)), ((3, 1, 1), (1, 1, 0)))
        stages = []
        for index, (kind, channels) in enumerate(zip(self.convolutions, STAGE_CHANNELS)):
            stride = 1 if index == 0 else 2
            operations = [_operation(kind, stride if block == 0 and conv == 0 else 1)
                          for block in range(BLOCKS_PER_STAGE) for conv in range(2)]
            stages.append((f"layer{index + 1}", channels, tuple((stem if index == 0 else ()) + tuple(operations))))
        return tuple(stages)


def _operation(kind: str, stride: int) -> Operation:
    """A stage convolution's (time, space) geometry; a (2+1)D pair composes like one 3×3×3."""
    if kind == "spatial":
        return ((1, 1, 0), (3, stride, 1))
    return ((3, stride, 1), (3, stride, 1))


DESIGNS: dict[str, Design] = {
    design.name: design
    for design in (
        Design("r3d_18", "R3D-18", "full", ("full",) * 4, "r3d_18-b3b3357e.pth"),
        Design("mc3_18", "MC3-18", "full", ("full", "spatial", "spatial", "spatial"), "mc3_18-a90a0ba3.pth"),
        Design("r2plus1d_18", "R(2+1)D-18", "factorised", ("factorised",) * 4, "r2plus1d_18-91a641e6.pth"),
    )
}

NAMED_WEIGHTS = ("KINETICS400_V1",)
"""torchvision weights names astar knows for these networks (Kinetics-400, 16-frame clips)."""
