"""Spatiotemporal alignment (eq. 4, Appendix C): receptive fields and their centres, per backbone.

A position's field in a_l is measured, not computed: with every alignment weight set
to 1 and biases to 0, aligned position i is non-zero exactly when a lit plane of a_l
falls inside its field, so lighting one plane at a time along an axis reads off the
field along that axis.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from astar.extract import get_backbone
from astar.extract.backbones import BACKBONES
from astar.train.model.align import ConvAlignment, axis_alignments, top_field
from astar.train.model.astar import ASTAR
from astar.train.model.config import ModelConfig

TOP_STEPS = 3
SECTION_4_2_KERNEL = {"pool2": 7, "pool3": 5, "pool4": 3, "pool5": 1}
C3D = get_backbone("c3d")


def ones_alignment(backbone: str = "c3d", variant: str = "astar") -> ASTAR:
    geometry = get_backbone(backbone).layers
    config = replace(ModelConfig.small(8, geometry=geometry, variant=variant), layer_channels=(1,) * len(geometry))
    model = ASTAR(config)
    with torch.no_grad():
        for name, parameter in model.aligner.named_parameters():
            parameter.fill_(1.0 if name.endswith("weight") else 0.0)
    return model


def measured_field(model: ASTAR, layer: str, axis: str) -> list[list[int]]:
    """For each aligned index along ``axis`` ("time" or "row"), the layer-l indices it sees."""
    config = model.config
    geometry, top = config.layer(layer), config.top
    steps = TOP_STEPS * config.time_ratio(layer)
    planes = steps if axis == "time" else geometry.height
    features = {
        other.name: torch.zeros(planes, TOP_STEPS * config.time_ratio(other.name), other.height, other.width, 1)
        for other in config.geometry
    }
    for plane in range(planes):
        if axis == "time":
            features[layer][plane, plane] = 1.0
        else:
            features[layer][plane, :, plane] = 1.0
    aligned = model.align(features)[:, config.layer_names.index(layer), :, 0].reshape(planes, TOP_STEPS, top.height, top.width)
    # Read along one axis at a position of the other two that every lit plane reaches.
    lit = aligned[:, :, 1, 1] if axis == "time" else aligned[:, 1, :, 1]
    return [torch.nonzero(lit[:, index] > 0).flatten().tolist() for index in range(lit.shape[1])]


def expected_c3d_field(layer: str, axis: str, index: int) -> list[int]:
    """Section 4.2: 'same' k³ convolution, then r³ max-pooling padded like pool5, (0, r/2, r/2)."""
    kernel, ratio = SECTION_4_2_KERNEL[layer], 16 // C3D.geometry(layer).time_stride
    first = ratio * index - (0 if axis == "time" else ratio // 2)
    size = TOP_STEPS * ratio if axis == "time" else C3D.geometry(layer).height
    low, high = first - kernel // 2, first + ratio - 1 + kernel // 2
    return list(range(max(low, 0), min(high, size - 1) + 1))


@pytest.mark.parametrize("layer", C3D.layer_names)
@pytest.mark.parametrize("axis", ["time", "row"])
def test_every_aligned_c3d_position_sees_exactly_its_section_4_2_field(layer: str, axis: str) -> None:
    measured = measured_field(ones_alignment(), layer, axis)
    expected = [expected_c3d_field(layer, axis, index) for index in range(len(measured))]
    assert measured == expected


def test_c3d_alignment_is_section_4_2s_kernels_and_ratios() -> None:
    top = C3D.layers[-1]
    derived = {layer.name: axis_alignments(layer, top) for layer in C3D.layers[:-1]}
    assert {name: (time.kernel, space.kernel) for name, (time, space) in derived.items()} == {
        "pool2": (7, 7), "pool3": (5, 5), "pool4": (3, 3)}
    assert {name: (time.window, time.ratio, space.window, space.ratio) for name, (time, space) in derived.items()} == {
        "pool2": (8, 8, 8, 8), "pool3": (4, 4, 4, 4), "pool4": (2, 2, 2, 2)}
    assert {name: (time.padding, space.padding) for name, (time, space) in derived.items()} == {
        "pool2": (0, 4), "pool3": (0, 2), "pool4": (0, 1)}


def test_border_fields_are_clipped_by_zero_padding() -> None:
    model = ones_alignment()
    assert measured_field(model, "pool2", "row")[0] == list(range(0, 7))  # [−7, 6] before clipping
    assert measured_field(model, "pool2", "row")[3] == list(range(17, 28))  # [17, 30]
    assert measured_field(model, "pool2", "time")[TOP_STEPS - 1] == list(range(13, 24))  # [13, 26]


def input_centre(backbone: str, layer: str, axis: str, index: float) -> float:
    """Centre, in input pixels or frames, of cell ``index`` of a stored layer, from its stored geometry.

    C3D: pool1 (1×2×2) … pool4 pool without padding and every conv is 'same', so cell j of
    a layer with stride s is centred at s·j + (s − 1)/2; pool5 pads (0, 1, 1), pooling
    conv5b rows 2j − 1 and 2j, whose centres average to 32j − 1/2. Video ResNets: s·j.
    """
    geometry = get_backbone(backbone).geometry(layer)
    if axis == "time":
        return geometry.time_stride * index + geometry.time_centre
    return geometry.space_stride * index + geometry.space_centre


def test_c3d_stored_centres_are_appendix_cs() -> None:
    assert [input_centre("c3d", name, "row", 1) for name in C3D.layer_names] == [5.5, 11.5, 23.5, 31.5]
    assert [input_centre("c3d", name, "time", 1) for name in C3D.layer_names] == [2.5, 5.5, 11.5, 23.5]


@pytest.mark.parametrize("backbone", list(BACKBONES))
@pytest.mark.parametrize("axis", ["time", "row"])
def test_field_centres_coincide_across_layers_in_the_input(backbone: str, axis: str) -> None:
    model = ones_alignment(backbone)
    top = model.config.top
    interior = [1] if axis == "time" else list(range(1, top.height - 1))
    for index in interior:
        centres = set()
        for layer in model.config.layer_names:
            field = measured_field(model, layer, axis)[index]
            centres.add(input_centre(backbone, layer, axis, (field[0] + field[-1]) / 2))
        assert centres == {input_centre(backbone, top.name, axis, index)}, (backbone, axis, index)


@pytest.mark.parametrize("backbone", ["r3d_18", "mc3_18"])
def test_video_resnet_alignment_pools_odd_windows_centred_on_a_cell(backbone: str) -> None:
    layers = get_backbone(backbone).layers
    time, space = axis_alignments(layers[0], layers[-1])
    assert (space.kernel, space.window, space.ratio, space.padding) == (7, 9, 8, 4)
    assert (time.ratio, time.window) == ((8, 9) if backbone == "r3d_18" else (1, 1))


def test_top_field_composes_c3d_layers_above_each_layer() -> None:
    # Appendix C: pool5 cell i sees conv5b 2i−1…2i (space), 2t…2t+1 (time); two 3³ convs widen by ±2.
    top = C3D.layers[-1]
    assert top_field(C3D.geometry("pool4"), top) == ((6, 2, 2), (6, 2, 3))
    assert top_field(C3D.geometry("pool3"), top) == ((16, 4, 6), (16, 4, 8))
    assert top_field(C3D.geometry("pool2"), top) == ((36, 8, 14), (36, 8, 18))
    assert top_field(top, top) == ((1, 1, 0), (1, 1, 0))


@pytest.mark.parametrize("backbone", list(BACKBONES))
@pytest.mark.parametrize("variant", ["astar", "mlp", "maxpool", "hypercolumn"])
def test_every_variant_aligns_every_backbone_onto_the_top_grid(backbone: str, variant: str) -> None:
    geometry = get_backbone(backbone).layers
    config = ModelConfig.small(8, geometry=geometry, variant=variant)
    model = ASTAR(config)
    top = config.top
    features = {layer.name: torch.rand(2, 2 * config.time_ratio(layer.name), layer.height, layer.width, channels)
                for layer, channels in zip(geometry, config.layer_channels)}
    aligned = model.align(features)
    layers = 1 if variant == "hypercolumn" else len(geometry)
    assert aligned.shape == (2, layers, 2 * top.height * top.width, config.context_dim)
    if variant == "astar":  # â_L = a_L, positions row-major over (t, y, x).
        torch.testing.assert_close(aligned[:, -1], features[top.name].flatten(1, 3))


def test_alignment_kernels_stay_channels_last_through_training_and_loading():
    # The stored maps reach eq. (4)'s convolutions channels-last; a weight in the other layout is copied every pass.
    torch.manual_seed(0)
    model = ASTAR(ModelConfig.small(20))
    kernels = [module.conv.weight for module in model.modules() if isinstance(module, ConvAlignment)]
    assert kernels and all(kernel.is_contiguous(memory_format=torch.channels_last_3d) for kernel in kernels)
    optimizer = torch.optim.Adam(model.parameters())
    sum(kernel.square().sum() for kernel in kernels).backward()
    optimizer.step()
    model.load_state_dict({name: value.contiguous() for name, value in model.state_dict().items()})
    assert all(kernel.is_contiguous(memory_format=torch.channels_last_3d) for kernel in kernels)
