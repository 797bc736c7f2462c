"""``astar-ablate``: the rows of the paper's Tables 1–2, trained and evaluated with one budget and seed.

    astar-ablate feats.zarr --dataset msvd --annotations data/msvd/
    astar-ablate demo_output/feats.zarr --dataset csv --preset small --epochs 40 --rows fc7,pool4,astar-soft

Each row of ``paper_tables.table_rows`` for the store's backbone (fc7, pool2 … pool5 for
C3D; the top feature and layer1 … layer4 for a video ResNet; MLP, max-pool, avg-pool,
hypercolumn, ASTAR soft and hard) is one ``astar-train`` run in ``OUT/<row>`` with
the same preset, recipe (the preset's lr and batch size unless given; every recipe
flag of ``astar-train``, ``--word2vec`` and ``--lr`` included), epochs and seed, then
one ``astar-eval`` on the split,
in ``OUT/<row>/eval-<split>``. Per row it is resumable: a row whose evaluation with
these settings exists is skipped, a half-trained row continues from its
``last.pt``. ``OUT/results.json`` and ``results.csv`` are rewritten after every row,
and the table is printed in the paper's layout (BLEU-4, METEOR, CIDEr ×100) with
the published numbers beside ours for msvd, m-vad and msr-vtt (C3D stores only).

Built on the public API of ``astar.train`` and on ``astar.pipelines.paper_tables``.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from astar.extract import DEFAULT_BACKBONE, AstarError, get_backbone
from astar.extract.backbones import Backbone
from astar.extract.clitools import CONTEXT_SETTINGS, command_error, storage_option
from astar.extract.console import say
from astar.extract.folders import claim_folder, register_kind
from astar.extract.options import DEVICES
from astar.pipelines.paper_tables import (
    METRICS, PAPER_SCORES, ROW_KEYS, TableRow, format_results_table, table_row, table_rows,
)
from astar.train import DATASETS, PRESETS, TrainConfig
from astar.train.data.datasets import SPLITS
from astar.train.options import DEFAULT_BEAM_SIZE
from astar.train.presets import preset_help
from astar.train.recipe_options import RECIPE_FIELDS, RECIPE_HELP, recipe_options

if TYPE_CHECKING:
    from astar.train import EvalConfig

# Training, evaluation and the store reader (torch, Zarr, pandas) are imported where a row
# runs, so --help and usage errors answer without them.

ABLATION_FOLDER = register_kind("ablation", "ablation output folder")
"""The ``folders`` kind of ``astar-ablate --out``."""
RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
TRAIN_DEFAULTS = TrainConfig(store="", dataset="csv")
"""``astar-train``'s defaults, for this command's defaults."""


@dataclass(frozen=True)
class AblationConfig:
    """One ablation: the store and captions, the rows, and the budget every row gets.

    Attributes:
        store, dataset, annotations, paper_split, storage_options: as for ``astar-train``.
        rows: keys of the store backbone's rows (``paper_tables.table_rows``) to run, in the
            paper's order; None runs every row.
        out: folder with one run directory per row; None gives ``ablation-<dataset>``.
        preset, epochs, seed, batch_size, device, loader_workers: the training budget,
            the same for every row (``TrainConfig``); batch_size None is the preset's.
        recipe: further ``TrainConfig`` fields every row gets (``RECIPE_FIELDS``: lr,
            word2vec, samples, patience, metric, …); a field left out keeps its default.
        split, beam_size: what each row is evaluated on and how it decodes.
        progress: show progress bars.
    """

    store: str
    dataset: str
    annotations: str | None = None
    paper_split: bool = False
    rows: tuple[str, ...] | None = None
    out: str | None = None
    preset: str = TRAIN_DEFAULTS.preset
    epochs: int = TRAIN_DEFAULTS.epochs
    seed: int = TRAIN_DEFAULTS.seed
    batch_size: int | None = None
    device: str = TRAIN_DEFAULTS.device
    loader_workers: int = TRAIN_DEFAULTS.loader_workers
    split: str = "test"
    beam_size: int = DEFAULT_BEAM_SIZE
    storage_options: dict[str, str] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.recipe) - set(RECIPE_FIELDS))
        if unknown:
            raise ValueError(f"not recipe settings: {', '.join(unknown)}; choose from {', '.join(RECIPE_FIELDS)}")

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"ablation-{self.dataset}")

    def run_dir(self, row: TableRow) -> Path:
        return self.out_dir / row.key

    def backbone(self) -> Backbone:
        """The backbone of the store (its rows name its layers)."""
        from astar.extract import open_store

        return get_backbone(open_store(self.store, self.storage_options).backbone)

    def table_rows(self, backbone: Backbone) -> list[TableRow]:
        """The chosen rows of ``backbone``'s table, in the paper's order; an unknown key is a ``ValueError``."""
        rows = table_rows(backbone)
        for key in self.rows or ():
            table_row(key, rows)
        return [row for row in rows if self.rows is None or row.key in self.rows]

    def train_config(self, row: TableRow) -> TrainConfig:
        """The ``astar-train`` settings of ``row``: this budget and the row's model fields."""
        return TrainConfig(
            store=self.store, dataset=self.dataset, annotations=self.annotations, paper_split=self.paper_split,
            out=str(self.run_dir(row)),
            preset=self.preset, epochs=self.epochs, seed=self.seed, batch_size=self.batch_size, device=self.device,
            loader_workers=self.loader_workers, storage_options=self.storage_options, progress=self.progress,
            **self.recipe, **row.model_fields(),
        )

    def eval_options(self, row: TableRow) -> EvalConfig:
        from astar.train import EvalConfig

        return EvalConfig(
            split=self.split, beam_size=self.beam_size, store=self.store, annotations=self.annotations,
            storage_options=self.storage_options, out=str(self.run_dir(row) / f"eval-{self.split}"),
            device=self.device, loader_workers=self.loader_workers, progress=self.progress,
        )


def finished_scores(settings: AblationConfig, row: TableRow) -> dict[str, float] | None:
    """The row's corpus scores if it was trained with these settings and epochs and evaluated on this split and beam size.

    A ``scores.json`` that cannot be read back (an evaluation killed while writing it)
    counts as no evaluation: one line says so, and the row is evaluated again.
    """
    from astar.train.rundir import read_run_config, saved_run_differences
    from astar.train.scoring import ScoresError, read_scores

    try:
        document = read_scores(settings.run_dir(row) / f"eval-{settings.split}")
    except ScoresError as error:
        say(f"{row.key}: {error}; evaluating it again")
        return None
    if document is None:
        return None
    done = document.get("evaluation")
    if not isinstance(done, dict) or (done.get("split"), done.get("beam_size")) != (settings.split, settings.beam_size):
        return None
    trained, _ = read_run_config(settings.run_dir(row))
    if trained.epochs != settings.epochs or saved_run_differences(settings.train_config(row)):
        return None  # run_row resumes it, or refuses a run made with other settings
    return {key: value for key, value in document["metrics"].items() if value is not None}


def run_row(settings: AblationConfig, row: TableRow) -> dict[str, float]:
    """Train (or resume) and evaluate one row, unless already done; its corpus scores."""
    from astar.train import evaluate, train_resumably

    scores = finished_scores(settings, row)
    if scores is not None:
        say(f"{row.key}: already trained and evaluated on {settings.split}; skipped")
        return scores
    train_resumably(settings.train_config(row))
    result = evaluate(settings.run_dir(row), settings.eval_options(row))
    for warning in result.scores.warnings:
        say(f"warning: {warning}")
    return result.scores.corpus


def write_results(settings: AblationConfig, results: dict[str, dict[str, float]], backbone: Backbone) -> tuple[Path, Path]:
    """``results.json`` and ``results.csv`` in the output folder: our scores and the paper's (C3D rows)."""
    from astar.train.evaluate import TABLE_METRICS

    published = PAPER_SCORES.get(settings.dataset, {}) if backbone.name == DEFAULT_BACKBONE else {}
    records = []
    for key, scores in results.items():
        row = table_row(key, table_rows(backbone))
        paper = dict(zip(METRICS, published[key])) if key in published else {}
        records.append({
            "row": key, "method": row.label, "group": row.group, "run_dir": str(settings.run_dir(row)),
            **{metric: scores.get(metric) for metric in TABLE_METRICS},
            **{f"paper {metric}": paper.get(metric) for metric in METRICS},
        })
    document = {
        "dataset": settings.dataset, "backbone": backbone.name, "split": settings.split, "preset": settings.preset,
        "epochs": settings.epochs, "seed": settings.seed, "batch_size": settings.batch_size, "recipe": settings.recipe,
        "beam_size": settings.beam_size, "scale": "fractions; the paper prints ×100",
        "rows": records,
    }
    json_path, csv_path = settings.out_dir / RESULTS_JSON, settings.out_dir / RESULTS_CSV
    json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return json_path, csv_path


def ablate(settings: AblationConfig, backbone: Backbone | None = None) -> dict[str, dict[str, float]]:
    """Every row in ``settings.rows`` of the store backbone's table, in the paper's order; row key → corpus scores."""
    backbone = backbone or settings.backbone()
    rows = settings.table_rows(backbone)
    claim_folder(str(settings.out_dir), ABLATION_FOLDER)
    results: dict[str, dict[str, float]] = {}
    for number, row in enumerate(rows, start=1):
        say(f"[{number}/{len(rows)}] {row.key}: {row.label}")
        results[row.key] = run_row(settings, row)
        write_results(settings, results, backbone)
    return results


def split_rows(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    """``fc7,pool4,astar-soft`` → the keys (checked against the store's rows later); none → None, every row."""
    if not value:
        return None
    return tuple(key.strip() for key in value.split(",") if key.strip())


EPILOG = f"""\b
Examples:
  astar-ablate feats.zarr --dataset msvd --annotations data/msvd/
  astar-ablate feats.zarr --dataset msr-vtt --paper-split --rows fc7,pool3,pool4,astar-soft,astar-hard
  astar-ablate demo_output/feats.zarr --dataset csv --preset small --epochs 40 --out ablation-demo
  astar-ablate feats.zarr --dataset msvd --word2vec GoogleNews-vectors-negative300.bin --lr 1e-4

\b
Rows (C3D stores): {', '.join(ROW_KEYS)}; a video ResNet store has layer1 … layer4
in place of pool2 … pool5.
Writes OUT/<row>/ (an astar-train run with eval-<split>/ inside), OUT/results.json
and OUT/results.csv. Run it again to resume: evaluated rows are skipped and a
half-trained row continues from its last checkpoint.
"""


@click.command(epilog=EPILOG, context_settings=CONTEXT_SETTINGS)
@click.argument("store")
@click.option("--dataset", type=click.Choice(DATASETS), required=True, help="Annotation format (as for astar-train).")
@click.option("--annotations", type=click.Path(), help="Annotation file or folder. Default: annotations/<dataset>/ beside the store.")
@click.option("--paper-split", is_flag=True, help="MSR-VTT: the paper's re-split of the official training set (Table 2).")
@click.option("--rows", callback=split_rows, help="Comma-separated rows to run. Default: all, in the paper's order.")
@click.option("--out", help="Folder for the runs and results. Default: ablation-<dataset>.")
@click.option("--preset", type=click.Choice(tuple(PRESETS)), default=TRAIN_DEFAULTS.preset, show_default=True, help=f"Model sizes and recipe for every row. {preset_help()}")
@click.option("--epochs", type=click.IntRange(min=1), default=TRAIN_DEFAULTS.epochs, show_default=True, help="Most epochs per row (early stopping on val may end a row sooner).")
@click.option("--seed", type=int, default=TRAIN_DEFAULTS.seed, show_default=True, help="The same seed for every row.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Video-caption pairs per step. Default: the preset's recipe, " + RECIPE_HELP["batch_size"] + ".")
@recipe_options
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True, help="Split every row is scored on.")
@click.option("--beam-size", type=click.IntRange(min=1), default=DEFAULT_BEAM_SIZE, show_default=True, help="Beam search width for the scored captions.")
@click.option("--device", type=click.Choice(DEVICES), default=TRAIN_DEFAULTS.device, show_default=True, help="auto picks CUDA when present.")
@click.option("--loader-workers", type=click.IntRange(min=0), default=TRAIN_DEFAULTS.loader_workers, show_default=True, help="Processes reading features from the store.")
@storage_option()
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def main(quiet: bool, **values: Any) -> None:
    """Train and evaluate the paper's Table 1-2 rows with one budget and seed; print the table.

    STORE is a feature store written by astar-extract (path or fsspec URL).
    """
    try:
        recipe = {name: values.pop(name) for name in RECIPE_FIELDS}
        recipe = {name: value for name, value in recipe.items() if value is not None}
        settings = AblationConfig(**{**values, "storage_options": dict(values["storage_options"])}, recipe=recipe,
                                  progress=not quiet)
        backbone = settings.backbone()
        for row in settings.table_rows(backbone):
            settings.train_config(row)  # a ValueError here names a row this preset cannot train
    except ValueError as error:
        raise command_error(error, usage=True) from None
    except AstarError as error:
        raise command_error(str(error)) from None
    try:
        results = ablate(settings, backbone)
    except AstarError as error:
        raise command_error(str(error)) from None
    click.echo(format_results_table(settings.dataset, results, backbone))
    say(f"results: {settings.out_dir / RESULTS_JSON}, {settings.out_dir / RESULTS_CSV}")


if __name__ == "__main__":
    main()
