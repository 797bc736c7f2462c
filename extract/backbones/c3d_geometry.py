"""C3D's architecture as plain data (paper Appendix B): layer widths and the geometry of the stored layers.

Torch-free, so the backbone registry, a store reader and ``--help`` know C3D's layers
without building it; ``astar.extract.c3d`` builds the network from these facts.
"""
from __future__ import annotations

from ..store.schema import LayerGeometry, Operation, traced_stages

SPORTS1M_CLASSES = 487
FC7_DIM = 4096
"""Width of C3D's fc6 and fc7 layers."""

CONV_LAYERS: tuple[tuple[str, int, int], ...] = (
    ("conv1", 3, 64),
    ("conv2", 64, 128),
    ("conv3a", 128, 256),
    ("conv3b", 256, 256),
    ("conv4a", 256, 512),
    ("conv4b", 512, 512),
    ("conv5a", 512, 512),
    ("conv5b", 512, 512),
)
"""(name, input channels, output channels) of the eight 3×3×3 convolutions."""

_CONV: Operation = ((3, 1, 1), (3, 1, 1))
_POOL: Operation = ((2, 2, 0), (2, 2, 0))
_STAGES: tuple[tuple[str, int, tuple[Operation, ...]], ...] = (
    ("pool2", 128, (_CONV, ((1, 1, 0), (2, 2, 0)), _CONV, _POOL)),  # conv1, pool1 (1×2×2), conv2, pool2
    ("pool3", 256, (_CONV, _CONV, _POOL)),
    ("pool4", 512, (_CONV, _CONV, _POOL)),
    ("pool5", 512, (_CONV, _CONV, ((2, 2, 0), (2, 2, 1)))),  # pool5 pads (0, 1, 1): 7×7 → 4×4
)
"""C3D's operations (time, space) from the input to each stored layer (Appendix B)."""

LAYERS: tuple[LayerGeometry, ...] = traced_stages(_STAGES)
"""The four convolutional layers a C3D store holds, in order (Appendix C's pool2 … pool5)."""
