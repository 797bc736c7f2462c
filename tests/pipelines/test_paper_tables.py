"""The paper's Tables 1–2 as data, and results tables printed in their layout."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from astar.pipelines.paper_tables import (
    MISSING,
    PAPER_SCORES,
    ROW_KEYS,
    ROWS,
    format_results_table,
    table_row,
    table_rows,
)
from astar.extract import get_backbone
from astar.train.model.config import ModelConfig

PAPER_TEXT = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "000_c4da59e5334ceffe.txt"


def printed_rows(text: str, start: str, end: str) -> dict[str, list[float]]:
    """Method label (lower case) → the numbers printed on its line, between two markers."""
    block = text[text.index(start) : text.index(end)]
    rows = {}
    for line in block.splitlines():
        cells = [cell.strip() for cell in line.replace("$+$", "+").split("\t") if cell.strip()]
        numbers = [cell for cell in cells[1:] if re.fullmatch(r"\d+\.\d+", cell)]
        if cells and numbers:
            rows[cells[0].lower()] = [float(number) for number in numbers]
    return rows


def test_spot_checks_against_the_paper() -> None:
    assert PAPER_SCORES["msvd"]["astar-soft"] == (51.74, 36.39, 72.18)
    assert PAPER_SCORES["msvd"]["avgpool"] == (48.53, 33.59, 65.07)
    assert PAPER_SCORES["m-vad"]["astar-hard"] == (1.82, 7.12, 8.12)
    assert PAPER_SCORES["msr-vtt"]["pool3"] == (42.04, 27.18, 48.93)
    assert "mlp" not in PAPER_SCORES["m-vad"] and "hypercolumn" not in PAPER_SCORES["msr-vtt"]


def test_every_published_number_is_the_one_in_the_paper_text() -> None:
    if not PAPER_TEXT.is_file():
        pytest.skip(f"paper text not found at {PAPER_TEXT}")
    text = PAPER_TEXT.read_text(encoding="utf-8")
    table_1 = printed_rows(text, "C3D fc7 + LSTM", "Table 1:")
    table_2 = printed_rows(text, "pared to baselines on MSR-VTT", "It is worth noting")
    for row in ROWS:
        label = row.label.lower()
        youtube = tuple(table_1[label][:3])
        assert PAPER_SCORES["msvd"][row.key] == youtube, row.key
        if len(table_1[label]) == 6:
            assert PAPER_SCORES["m-vad"][row.key] == tuple(table_1[label][3:]), row.key
            assert PAPER_SCORES["msr-vtt"][row.key] == tuple(table_2[label]), row.key
        else:
            assert row.key not in PAPER_SCORES["m-vad"] and label not in table_2


@pytest.mark.parametrize("key", ROW_KEYS)
def test_each_row_selects_the_model_it_names(key: str) -> None:
    row = table_row(key)
    config = ModelConfig.small(12, **row.model_fields())
    assert (config.variant, config.attention) == (row.model.variant, row.model.attention)
    if key.startswith("pool"):
        assert config.layers == (key,)
    else:
        assert config.layers == ("pool2", "pool3", "pool4", "pool5")


def test_our_fractions_are_printed_as_percent_beside_the_papers_numbers() -> None:
    table = format_results_table("msvd", {"fc7": {"BLEU-4": 0.40125, "METEOR": 0.3, "CIDEr": 0.5512}})
    line = next(line for line in table.splitlines() if line.startswith("C3D fc7 + LSTM"))
    assert line.split()[-6:] == ["40.12", "30.00", "55.12", "45.34", "31.21", "66.12"]
    assert table.splitlines()[0].startswith("Youtube2Text")


def test_rows_not_run_and_metrics_not_computed_show_a_dash() -> None:
    table = format_results_table("m-vad", {"astar-hard": {"BLEU-4": 0.02, "CIDEr": 0.09}})
    lines = {line.split("  ")[0].strip(): line.split() for line in table.splitlines()}
    assert lines["Hard Attention"][-6:] == ["2.00", MISSING, "9.00", "1.82", "7.12", "8.12"]
    assert lines["C3D fc7 + pool2"][-6:] == [MISSING] * 3 + ["0.98", "6.42", "6.01"]
    assert lines["MLP + soft attention"][-6:] == [MISSING] * 6  # M-VAD has no multi-level rows


def test_a_dataset_outside_the_paper_gets_only_our_columns() -> None:
    table = format_results_table("synthetic", {"astar-soft": {"BLEU-4": 0.5, "METEOR": 0.25, "CIDEr": 1.5}})
    assert "paper" not in table
    line = next(line for line in table.splitlines() if line.startswith("Soft Attention"))
    assert line.split()[-3:] == ["50.00", "25.00", "150.00"]


def test_rows_are_grouped_under_the_papers_headings_in_its_order() -> None:
    lines = format_results_table("msr-vtt", {}).splitlines()
    headings = [line for line in lines if not any(char.isdigit() for char in line) and MISSING not in line]
    assert headings[-4:] == [
        "Baselines",
        "Spatiotemporal attention + LSTM",
        "Baselines of multi-level features with attention",
        "ASTAR",
    ]
    assert lines.index("ASTAR") < next(index for index, line in enumerate(lines) if line.startswith("Soft Attention"))


def test_an_unknown_row_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown table rows"):
        format_results_table("msvd", {"resnet": {"BLEU-4": 0.4}})


def test_another_backbones_rows_put_its_layers_and_top_feature_in_place_of_c3ds() -> None:
    backbone = get_backbone("r2plus1d_18")
    rows = table_rows(backbone)
    assert [row.key for row in rows] == ["fc7", "layer1", "layer2", "layer3", "layer4", *ROW_KEYS[5:]]
    assert table_row("layer3", rows).label == "R(2+1)D-18 pooled layer4 + layer3"
    assert table_row("layer3", rows).model_fields()["layers"] == ("layer3",)
    assert table_row("fc7", rows).label == "R(2+1)D-18 pooled layer4 + LSTM"


def test_published_c3d_numbers_are_not_shown_beside_another_backbone() -> None:
    table = format_results_table("msvd", {"fc7": {"BLEU-4": 0.4, "METEOR": 0.3, "CIDEr": 0.5}}, get_backbone("r3d_18"))
    header = table.splitlines()[1]
    assert "(paper)" not in header and "R3D-18 features" in table.splitlines()[0]
    line = next(line for line in table.splitlines() if line.startswith("R3D-18 pooled layer4 + LSTM"))
    assert line.split()[-3:] == ["40.00", "30.00", "50.00"]
