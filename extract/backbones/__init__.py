"""The one registry of backbones: it feeds ``astar-extract --backbone``, the store's layer
geometry, the trainer's layer list and the tests, as timm's ``register_model`` feeds its
factory and its test matrix.

A ``Backbone`` is everything extraction needs from a network: how to build it (random
init, a weights file, or a named torchvision weights set) and the geometry of the layers
a store holds, computed from the architecture. Its network's ``stored_maps(video)``
returns those layers for a whole video plus the per-window top features (fc7's role).

The registry is plain data and imports no torch: a store reader, a Dask worker or
``--help`` asks it for names and layer geometry without loading the networks, whose
module (and torch) is imported at the first ``Backbone.build``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import c3d_geometry, resnet_designs
from ..store.schema import TOP_FEATURE, TOP_WINDOWS, CLIP_FRAMES, WINDOW_STRIDE, LayerGeometry, traced_stages

if TYPE_CHECKING:
    from torch import nn

    from ..weights import WeightsSpec

DEFAULT_BACKBONE = "c3d"


@dataclass(frozen=True)
class Backbone:
    """A registered backbone.

    Attributes:
        name: the ``--backbone`` value, recorded in the store.
        label: how messages name it (``C3D``, ``R(2+1)D-18``).
        architecture: what its weights identity records (``WeightsSpec.architecture``).
        pretrained_on: the data set its published weights were trained on.
        weights_example: what to pass as ``--weights`` for real features.
        summary: one line for help texts.
        layers: geometry of the stored maps a_1 … a_L, lowest first; the last is the top grid.
        top_channels: width of a_{L+1} (the ``fc7`` arrays).
        top_label: how tables name a_{L+1} (C3D: ``fc7``).
        top_reduction: how a window's a_{L+1} comes from the top map (recorded in the store).
        network: the module that builds the network, imported at the first ``build``: its
            ``build_network(name, weights, seed)`` → (network in eval mode, its ``WeightsSpec``).
        named_weights: torchvision weights names ``--weights`` also accepts (downloaded through torchvision).
    """

    name: str
    label: str
    architecture: str
    pretrained_on: str
    weights_example: str
    summary: str
    layers: tuple[LayerGeometry, ...]
    top_channels: int
    top_label: str
    top_reduction: str
    network: str
    named_weights: tuple[str, ...] = ()

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    def build(self, weights: str | None, seed: int = 0) -> tuple[nn.Module, WeightsSpec]:
        """(network in eval mode, its ``WeightsSpec``) from ``weights``; None is random init from ``seed``."""
        return importlib.import_module(self.network).build_network(self.name, weights, seed)

    def geometry(self, name: str) -> LayerGeometry:
        """The geometry of stored layer ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"{self.name} stores no layer {name!r}; its layers are {', '.join(self.layer_names)}")

    def describe(self) -> dict[str, Any]:
        """Root attributes a store of this backbone carries (storage_schema.md §3): ``backbone``, ``layers``, ``fc7``."""
        return {
            "backbone": self.name,
            "layers": [layer.describe() for layer in self.layers],
            TOP_FEATURE: {
                "channels": self.top_channels, "window_frames": CLIP_FRAMES, "window_stride": WINDOW_STRIDE,
                "reduction": "mean", "window_feature": self.top_reduction, "windows_array": TOP_WINDOWS,
            },
        }


BACKBONES: dict[str, Backbone] = {}
"""Every backbone by name, in registration order (C3D first: the paper's and the default)."""


def register_backbone(backbone: Backbone) -> Backbone:
    """Add ``backbone`` to ``BACKBONES``; a name is registered once."""
    if backbone.name in BACKBONES:
        raise ValueError(f"backbone {backbone.name!r} is registered twice")
    BACKBONES[backbone.name] = backbone
    return backbone


def backbone_of(architecture: str | None) -> Backbone | None:
    """The backbone whose weights record ``architecture`` (a weights identity's); C3D when none is
    recorded, None for an architecture no registered backbone has."""
    for backbone in BACKBONES.values():
        if backbone.architecture == (architecture or BACKBONES[DEFAULT_BACKBONE].architecture):
            return backbone
    return None


def get_backbone(name: str) -> Backbone:
    """The registered backbone ``name``; a ``KeyError`` lists the choices."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}") from None


register_backbone(Backbone(
    name="c3d",
    label="C3D",
    architecture="c3d-sports1m",
    pretrained_on="Sports-1M",
    weights_example="c3d.pickle",
    summary="C3D Sports-1M (the paper's): pool2–pool5 + fc7",
    layers=c3d_geometry.LAYERS,
    top_channels=c3d_geometry.FC7_DIM,
    top_label="fc7",
    top_reduction="fc6 → ReLU → fc7 → ReLU of the window's pool5 (max over its 2 conv5b steps)",
    network="astar.extract.c3d",
))
for _design in resnet_designs.DESIGNS.values():
    register_backbone(Backbone(
        name=_design.name,
        label=_design.label,
        architecture=_design.name,
        pretrained_on="Kinetics-400",
        weights_example=f"{_design.weights_file} (or KINETICS400_V1)",
        summary=f"torchvision {_design.name} (Kinetics-400): layer1–layer4 + pooled layer4",
        layers=traced_stages(_design.stage_operations()),
        top_channels=resnet_designs.STAGE_CHANNELS[-1],
        top_label="pooled layer4",
        top_reduction="mean of layer4 over the window's frames and over space (torchvision's avgpool)",
        network="astar.extract.backbones.video_resnet",
        named_weights=resnet_designs.NAMED_WEIGHTS,
    ))
