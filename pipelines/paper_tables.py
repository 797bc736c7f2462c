"""The paper's published scores (Tables 1 and 2) and results tables in the paper's layout.

Pu et al. (ICLR 2017) Table 1 reports Youtube2Text (``msvd``) and M-VAD (``m-vad``),
Table 2 MSR-VTT (``msr-vtt``), as BLEU-4, METEOR and CIDEr ×100. Only the rows this
package can train are kept (``ROWS``): the C3D fc7 + LSTM baseline, the single-layer
spatiotemporal-attention models, the multi-level baselines of Appendix D and ASTAR
itself. The paper's other rows (S2VT, LSTM-E, GRU-RCN, h-RNN, ResNet + LSTM) use
features or models outside it. The multi-level baselines were run on Youtube2Text only.

The same rows exist for every backbone (``table_rows``): its top feature alone in place of
fc7 and one single-layer row per stored layer in place of pool2 … pool5; the published
numbers are C3D's and are shown beside C3D rows only.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from astar.extract import DEFAULT_BACKBONE, get_backbone
from astar.extract.backbones import Backbone
from astar.train import named_models
from astar.train.model.variants import NamedModel

METRICS: tuple[str, ...] = ("BLEU-4", "METEOR", "CIDEr")
"""The paper's columns, named as ``astar.train.scoring`` names its corpus scores."""

PAPER_DATASETS: dict[str, str] = {"msvd": "Youtube2Text", "m-vad": "M-VAD", "msr-vtt": "MSR-VTT"}
"""Our dataset names (``astar.train.data.datasets.DATASETS``) → the paper's."""

MISSING = "—"


@dataclass(frozen=True)
class TableRow:
    """One model of the paper's tables and how to train it here.

    Attributes:
        model: the named configuration astar trains for the row (``astar.train.named_models``).
        label: the method as the paper prints it.
        group: the paper's heading above the row.
    """

    model: NamedModel
    label: str
    group: str

    @property
    def key(self) -> str:
        """astar's name for the row (``astar-ablate --rows`` takes it): the configuration's name."""
        return self.model.name

    def model_fields(self) -> dict[str, object]:
        """The ``ModelConfig`` (or training settings) fields that select this row's model."""
        return self.model.model_fields()


BASELINES = "Baselines"
SPATIOTEMPORAL = "Spatiotemporal attention + LSTM"
MULTI_LEVEL = "Baselines of multi-level features with attention"
ASTAR = "ASTAR"



def table_rows(backbone: Backbone) -> tuple[TableRow, ...]:
    """The paper's rows over ``backbone``'s stored layers, in its order, each a registered named model.

    Labels are the paper's with the backbone's names: "C3D fc7 + LSTM", "C3D fc7 + pool3"
    for C3D; "R(2+1)D-18 pooled layer4 + layer3" for R(2+1)D-18.
    """
    top = f"{backbone.label} {backbone.top_label}"
    labels: dict[str, tuple[str, str]] = {
        "fc7": (f"{top} + LSTM", BASELINES),
        **{name: (f"{top} + {name}", SPATIOTEMPORAL) for name in backbone.layer_names},
        "mlp": ("MLP + soft attention", MULTI_LEVEL),
        "maxpool": ("Max-pooling + soft attention", MULTI_LEVEL),
        "avgpool": ("Average-pooling + soft attention", MULTI_LEVEL),
        "hypercolumn": ("Hypercolumn + soft attention", MULTI_LEVEL),
        "astar-soft": ("Soft Attention", ASTAR),
        "astar-hard": ("Hard Attention", ASTAR),
    }
    models = named_models(backbone.layer_names)
    return tuple(TableRow(models[name], *labels[name]) for name in labels)


ROWS: tuple[TableRow, ...] = table_rows(get_backbone(DEFAULT_BACKBONE))
"""The paper's rows (C3D's layers), in its order."""

ROW_KEYS: tuple[str, ...] = tuple(row.key for row in ROWS)

Scores = tuple[float, float, float]
"""(BLEU-4, METEOR, CIDEr) ×100, as printed."""

PAPER_SCORES: dict[str, dict[str, Scores]] = {
    "msvd": {  # Table 1, Youtube2Text
        "fc7": (45.34, 31.21, 66.12),
        "pool2": (45.46, 31.53, 67.38),
        "pool3": (48.07, 33.52, 69.97),
        "pool4": (48.18, 34.47, 70.97),
        "pool5": (47.75, 33.35, 69.71),
        "mlp": (35.99, 23.56, 44.21),
        "maxpool": (45.35, 31.50, 62.99),
        "avgpool": (48.53, 33.59, 65.07),
        "hypercolumn": (44.92, 30.18, 63.18),
        "astar-soft": (51.74, 36.39, 72.18),
        "astar-hard": (51.64, 34.99, 72.08),
    },
    "m-vad": {  # Table 1, M-VAD
        "fc7": (0.83, 6.31, 5.96),
        "pool2": (0.98, 6.42, 6.01),
        "pool3": (1.12, 6.71, 6.97),
        "pool4": (1.24, 6.89, 7.12),
        "pool5": (1.02, 6.49, 6.48),
        "astar-soft": (1.94, 7.72, 7.98),
        "astar-hard": (1.82, 7.12, 8.12),
    },
    "msr-vtt": {  # Table 2, on the paper's own split of the official training set
        "fc7": (40.17, 26.86, 45.95),
        "pool2": (40.43, 26.93, 47.15),
        "pool3": (42.04, 27.18, 48.93),
        "pool4": (41.98, 27.42, 48.21),
        "pool5": (40.83, 27.01, 47.86),
        "astar-soft": (43.72, 29.67, 50.21),
        "astar-hard": (43.89, 28.71, 50.29),
    },
}
"""Published scores per dataset and row key; rows the paper did not run are absent."""


def table_row(key: str, rows: tuple[TableRow, ...] = ROWS) -> TableRow:
    """The row named ``key`` among ``rows`` (the paper's C3D rows unless given)."""
    for row in rows:
        if row.key == key:
            return row
    raise ValueError(f"unknown table row {key!r}; choose from {', '.join(row.key for row in rows)}")


def format_results_table(
    dataset: str, results: Mapping[str, Mapping[str, float]], backbone: Backbone = get_backbone(DEFAULT_BACKBONE)
) -> str:
    """Our scores in the layout of the paper's Tables 1–2, with the paper's beside them.

    Args:
        dataset: the dataset name; for ``msvd``, ``m-vad`` and ``msr-vtt`` the paper's
            published numbers get their own columns.
        results: row key → corpus scores as ``astar.train.scoring`` returns them
            (fractions: ``BLEU-4``, ``METEOR``, ``CIDEr``), printed ×100 like the paper.
            Rows not run yet, and metrics that could not be computed (METEOR without
            Java), are shown as "—".
        backbone: whose rows (``table_rows``); the published numbers are shown for C3D only.

    Returns:
        A plain-text table, one heading line per group of rows.
    """
    rows = table_rows(backbone)
    keys = [row.key for row in rows]
    unknown = sorted(set(results) - set(keys))
    if unknown:
        raise ValueError(f"unknown table rows {unknown}; choose from {', '.join(keys)}")
    published = PAPER_SCORES.get(dataset) if backbone.name == DEFAULT_BACKBONE else None
    header = ["Method", *METRICS]
    if published is not None:
        header += [f"{metric} (paper)" for metric in METRICS]
    lines: list[list[str] | str] = [header]
    group = None
    for row in rows:
        if row.group != group:
            group = row.group
            lines.append(group)
        ours = results.get(row.key, {})
        cells = [row.label, *(_percent(ours.get(metric)) for metric in METRICS)]
        if published is not None:
            paper = published.get(row.key)
            cells += [f"{value:.2f}" for value in paper] if paper else [MISSING] * len(METRICS)
        lines.append(cells)
    title = f"{PAPER_DATASETS.get(dataset, dataset)} ({backbone.label} features): BLEU-4, METEOR and CIDEr ×100"
    return title + "\n" + _render(lines)


def _percent(value: float | None) -> str:
    return MISSING if value is None or math.isnan(value) else f"{100 * value:.2f}"


def _render(lines: list[list[str] | str]) -> str:
    """Columns aligned: the method left, numbers right; headings on their own line."""
    table = [line for line in lines if isinstance(line, list)]
    widths = [max(len(cells[column]) for cells in table) for column in range(len(table[0]))]
    rendered = []
    for line in lines:
        if isinstance(line, str):
            rendered.append(line)
            continue
        method, *numbers = line
        rendered.append("  ".join([method.ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(numbers, widths[1:]))]))
    rule = "-" * len(rendered[0])
    return "\n".join([rendered[0], rule, *rendered[1:]])
