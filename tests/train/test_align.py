"""Spatiotemporal alignment (eq. 4, Appendix C): receptive fields and their centres.

A position's field in a_l is measured, not computed: with every alignment weight set
to 1 and biases to 0, aligned position i is non-zero exactly when a lit plane of a_l
falls inside its field, so lighting one plane at a time along an axis reads off the
field along that axis.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from astar.train.align import pool5_field
from astar.train.video_batch import LAYER_NAMES, LAYER_SIDE, POOL5_RATIO
from astar.train.model_config import ModelConfig
from astar.train.model import ASTAR

POOL5_STEPS = 3
SECTION_4_2_KERNEL = {"pool2": 7, "pool3": 5, "pool4": 3, "pool5": 1}


def ones_alignment() -> ASTAR:
    config = replace(ModelConfig.small(8), layer_channels=(1, 1, 1, 1))
    model = ASTAR(config)
    with torch.no_grad():
        for name, parameter in model.aligner.named_parameters():
            parameter.fill_(1.0 if name.endswith("weight") else 0.0)
    return model


def measured_field(model: ASTAR, layer: str, axis: str) -> list[list[int]]:
    """For each aligned index along ``axis`` ("time" or "row"), the layer-l indices it sees."""
    steps, side = POOL5_STEPS * POOL5_RATIO[layer], LAYER_SIDE[layer]
    planes = steps if axis == "time" else side
    features = {name: torch.zeros(planes, POOL5_STEPS * POOL5_RATIO[name], LAYER_SIDE[name], LAYER_SIDE[name], 1)
                for name in LAYER_NAMES}
    for plane in range(planes):
        if axis == "time":
            features[layer][plane, plane] = 1.0
        else:
            features[layer][plane, :, plane] = 1.0
    aligned = model.align(features)[:, LAYER_NAMES.index(layer), :, 0].reshape(planes, POOL5_STEPS, 4, 4)
    # Read along one axis at a position of the other two that every lit plane reaches.
    lit = aligned[:, :, 1, 1] if axis == "time" else aligned[:, 1, :, 1]
    return [torch.nonzero(lit[:, index] > 0).flatten().tolist() for index in range(lit.shape[1])]


def expected_field(layer: str, axis: str, index: int) -> list[int]:
    """Section 4.2: 'same' k³ convolution, then r³ max-pooling padded like pool5, (0, r/2, r/2)."""
    kernel, ratio = SECTION_4_2_KERNEL[layer], POOL5_RATIO[layer]
    first = ratio * index - (0 if axis == "time" else ratio // 2)
    size = POOL5_STEPS * ratio if axis == "time" else LAYER_SIDE[layer]
    low, high = first - kernel // 2, first + ratio - 1 + kernel // 2
    return list(range(max(low, 0), min(high, size - 1) + 1))


@pytest.mark.parametrize("layer", LAYER_NAMES)
@pytest.mark.parametrize("axis", ["time", "row"])
def test_every_aligned_position_sees_exactly_its_section_4_2_field(layer: str, axis: str) -> None:
    measured = measured_field(ones_alignment(), layer, axis)
    expected = [expected_field(layer, axis, index) for index in range(len(measured))]
    assert measured == expected


def test_border_fields_are_clipped_by_zero_padding() -> None:
    model = ones_alignment()
    assert measured_field(model, "pool2", "row")[0] == list(range(0, 7))  # [−7, 6] before clipping
    assert measured_field(model, "pool2", "row")[3] == list(range(17, 28))  # [17, 30]
    assert measured_field(model, "pool2", "time")[POOL5_STEPS - 1] == list(range(13, 24))  # [13, 26]


def input_centre(layer: str, axis: str, index: float) -> float:
    """Centre, in input pixels or frames, of cell ``index`` of C3D layer ``layer``.

    pool1 (1×2×2) … pool4 pool without padding and every conv is 'same', so cell j of
    a layer with stride s is centred at s·j + (s − 1)/2; pool5 pads (0, 1, 1), pooling
    conv5b rows 2j − 1 and 2j, whose centres average to 32j − 1/2.
    """
    frames_per_step = 16 // POOL5_RATIO[layer]
    if axis == "row" and layer == "pool5":
        return 32 * index - 0.5
    stride = frames_per_step if axis == "time" else 32 // POOL5_RATIO[layer]
    return stride * index + (stride - 1) / 2


@pytest.mark.parametrize("axis", ["time", "row"])
def test_field_centres_coincide_across_layers_in_the_input(axis: str) -> None:
    model = ones_alignment()
    interior = [1] if axis == "time" else [1, 2]
    for index in interior:
        centres = set()
        for layer in LAYER_NAMES:
            field = measured_field(model, layer, axis)[index]
            centres.add(input_centre(layer, axis, (field[0] + field[-1]) / 2))
        assert centres == {input_centre("pool5", axis, index)}


def test_pool5_field_composes_c3d_layers_above_each_layer() -> None:
    # Appendix C: pool5 cell i sees conv5b 2i−1…2i (space), 2t…2t+1 (time); two 3³ convs widen by ±2.
    assert pool5_field("pool4") == ((6, 2, 2), (6, 2, 3))
    assert pool5_field("pool3") == ((16, 4, 6), (16, 4, 8))
    assert pool5_field("pool2") == ((36, 8, 14), (36, 8, 18))
    assert pool5_field("pool5") == ((1, 1, 0), (1, 1, 0))


def test_align_returns_batch_layers_positions_width() -> None:
    config = ModelConfig.small(8)
    model = ASTAR(config)
    features = {name: torch.rand(2, 2 * POOL5_RATIO[name], LAYER_SIDE[name], LAYER_SIDE[name], channels)
                for name, channels in zip(LAYER_NAMES, config.layer_channels)}
    aligned = model.align(features)
    assert aligned.shape == (2, 4, 2 * 16, config.context_dim)
    # â_L = a_L, positions row-major over (t, y, x).
    torch.testing.assert_close(aligned[:, 3], features["pool5"].flatten(1, 3))
