"""One registry of the models astar trains: the architectures (``--variant``) and the named
configurations built from them (ablation rows, test matrix), as timm's ``register_model``
feeds both its factory and its tests (STYLE habit 11).

``VARIANTS`` describes each architecture of Section 4.3 and Appendix D; ``NAMED_MODELS``
names every configuration worth training on its own: the rows of the paper's Tables 1–2
(``astar-ablate``'s rows, labelled in ``astar.pipelines.paper_tables``) and the layer-first
attention order of Section 3.2. ``--variant``'s choices, the ablation rows and the
model tests all read these two tables.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from astar.extract import DEFAULT_BACKBONE, get_backbone


@dataclass(frozen=True)
class Variant:
    """One architecture.

    Attributes:
        name: the ``--variant`` value.
        summary: what it is, in the paper's terms (``--help`` shows it).
        two_level: attends over positions and abstraction levels (β_t of eq. 6); the
            others attend over positions only, or not at all.
        single_layer: reads exactly one of the stored layers.
    """

    name: str
    summary: str
    two_level: bool = False
    single_layer: bool = False


VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in (
        Variant("astar", "3D-convolution alignment (eq. 4) + two-level attention (eqs. 5-8)", two_level=True),
        Variant("fc7", "C3D fc7 + LSTM: no context vector z_t"),
        Variant("single", "C3D fc7 + poolN: position attention on one raw layer, z_t = s_t", single_layer=True),
        Variant("mlp", "Appendix D: MLP alignment per pool5 cell, then two-level attention", two_level=True),
        Variant("maxpool", "Appendix D: max over each pool5 cell's field, an MLP, two-level attention", two_level=True),
        Variant("avgpool", "Appendix D: mean over each pool5 cell's field, an MLP, two-level attention", two_level=True),
        Variant("hypercolumn", "every layer sampled at the pool5 cell centre and concatenated; positions only"),
    )
}
"""The architectures, ASTAR first."""


@dataclass(frozen=True)
class NamedModel:
    """A named model configuration: the ``ModelConfig`` / ``TrainConfig`` fields that select it.

    Attributes:
        name: the configuration's name (an ``astar-ablate`` row when the paper has it).
        variant: one of ``VARIANTS``.
        layers: the stored layers read; None keeps all of them.
        attention: ``soft`` (eq. 7), ``hard`` (eqs. 8-14 on positions and layers, the
            paper's) or ``hard_layer`` (layers only; ``astar.train.model.attention``).
        order: ``position_first`` (the paper's) or ``layer_first`` (Section 3.2's alternative).
    """

    name: str
    variant: str
    layers: tuple[str, ...] | None = None
    attention: str = "soft"
    order: str = "position_first"

    def model_fields(self) -> dict[str, object]:
        """The fields that select this model, for ``ModelConfig`` or ``TrainConfig``."""
        fields: dict[str, object] = {"variant": self.variant, "attention": self.attention, "order": self.order}
        if self.layers is not None:
            fields["layers"] = self.layers
        return fields


def named_models(layer_names: Sequence[str]) -> dict[str, NamedModel]:
    """Every named configuration over a store's layers, in the paper's table order, then the
    layer-first ones and the layer-only hard attention: the top feature alone (``fc7``), one single-layer model per stored layer
    (C3D: pool2 … pool5; the video ResNets: layer1 … layer4), the multi-level baselines and ASTAR."""
    return {
        model.name: model
        for model in (
            NamedModel("fc7", "fc7"),
            *(NamedModel(layer, "single", (layer,)) for layer in layer_names),
            NamedModel("mlp", "mlp"),
            NamedModel("maxpool", "maxpool"),
            NamedModel("avgpool", "avgpool"),
            NamedModel("hypercolumn", "hypercolumn"),
            NamedModel("astar-soft", "astar"),
            NamedModel("astar-hard", "astar", attention="hard"),
            NamedModel("astar-soft-layer-first", "astar", order="layer_first"),
            NamedModel("astar-hard-layer-first", "astar", attention="hard", order="layer_first"),
            NamedModel("astar-hard-layer-only", "astar", attention="hard_layer"),
        )
    }


NAMED_MODELS: dict[str, NamedModel] = named_models(get_backbone(DEFAULT_BACKBONE).layer_names)
"""Every named configuration on C3D's layers (the paper's)."""


def named_model(name: str, layer_names: Sequence[str] = get_backbone(DEFAULT_BACKBONE).layer_names) -> NamedModel:
    """The configuration called ``name`` over ``layer_names`` (C3D's unless given); an unknown
    name is a ``ValueError`` that lists the known ones."""
    models = named_models(layer_names)
    try:
        return models[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(models)}") from None
