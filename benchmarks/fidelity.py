"""Can the benchmark tell methods apart? The paper's rows over several seeds on synthetic clips big enough to rank.

    .venv/bin/python benchmarks/fidelity.py                       # 300 clips, seeds 0,1,2, 15 epochs
    .venv/bin/python benchmarks/fidelity.py --videos 120 --seeds 0,1 --epochs 6 --rows fc7,pool5,astar-soft
    .venv/bin/python benchmarks/fidelity.py --epochs 10 --rows astar-soft --scst 10   # and SCST from each seed's row

1. generates ``--videos`` captioned synthetic clips (``pipelines.synthetic``) lasting
   ``--durations`` seconds, so that the longer ones give C3D's pool5 two or more time
   steps (one step per 8 s at 2 fps), with a data seed that no recipe was tuned on;
2. extracts them once (random-init C3D, said loudly) into ``OUT/feats.zarr``;
3. for every seed, runs ``astar-ablate``'s rows (``--rows``: fc7, every single layer, the
   pooling baselines, ASTAR soft and hard) with the small preset and its recipe into
   ``OUT/seed-<s>/<row>``: one training to early stopping or ``--epochs``, then beam-search
   captions of the test split;
4. prints, per row, the mean ± s.d. over seeds of test CIDEr-D, the val NLL at the best
   epoch, how often the test captions name each attribute right (chance beside it), and
   the mechanism's health on the test videos (``health.json``: the largest share of dead
   alignment channels over layers, α's entropy against uniform);
5. with ``--scst EPOCHS``, fine-tunes each ``--scst-rows`` row's best checkpoint by
   self-critical training (``TrainConfig.self_critical``: the small preset's SCST recipe)
   into ``OUT/seed-<s>/<row>-scst``, adds its ``<row>+scst`` line to the table and prints
   the relative change of test CIDEr-D per seed and its mean ± s.d.

Everything is resumable: clips, store and finished rows are reused (an SCST row is scored
again on each run). The figures depend on the data and budget, and a little on the CPU
(its convolution kernels round C3D's features differently); the wall time is printed per row.
"""
from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import click

from astar.extract import DEFAULT_BACKBONE, ExtractionConfig, collect_inputs, extract_videos, get_backbone
from astar.pipelines.ablate import AblationConfig, run_row
from astar.train import evaluate, train_resumably
from astar.pipelines.paper_tables import TableRow, table_rows
from astar.pipelines.synthetic import ATTRIBUTES, CAPTIONS_FILE, attribute_accuracy, generate_dataset

DEFAULT_ROWS = ("fc7", "pool2", "pool3", "pool4", "pool5", "maxpool", "avgpool", "astar-soft", "astar-hard")
DATA_SEED = 20261202
"""The clips' seed: a date, chosen before any row was run, and tuned to nothing."""


def prepare_store(out: Path, videos: int, durations: tuple[float, float]) -> Path:
    """Generate the clips and extract them into ``OUT/feats.zarr`` unless a previous run did."""
    video_dir, store = out / "videos", out / "feats.zarr"
    if not (video_dir / CAPTIONS_FILE).is_file():
        generate_dataset(video_dir, n_videos=videos, seed=DATA_SEED, duration_range_s=durations)
    summary = extract_videos(collect_inputs([str(video_dir)]), str(store), ExtractionConfig(seed=DATA_SEED),
                             progress=False)
    click.echo(f"store: {summary.line()}", err=True)
    return store


def row_figures(run_dir: Path) -> dict[str, float]:
    """Test CIDEr-D, val NLL at the best epoch, attribute accuracies and health of one trained and evaluated row."""
    scores = json.loads((run_dir / "eval-test" / "scores.json").read_text(encoding="utf-8"))
    health = json.loads((run_dir / "eval-test" / "health.json").read_text(encoding="utf-8"))["health"]
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as handle:
        history = list(csv.DictReader(handle))
    best = max(history, key=lambda row: float(row["CIDEr"] or "nan"))
    with open(run_dir / "eval-test" / "per_video.csv", newline="", encoding="utf-8") as handle:
        pairs = [(row["caption"], row["references"].split(" | ")[0]) for row in csv.DictReader(handle)]
    accuracy = attribute_accuracy(pairs)
    dead = [value for key, value in health.items() if key.startswith("dead_")]
    return {
        "CIDEr-D": 100 * scores["metrics"]["CIDEr"], "val NLL": float(best["val_loss"]),
        **{attribute: 100 * hits / total for attribute, (hits, total) in accuracy.items()},
        "dead": 100 * max(dead) if dead else float("nan"),
        "α entropy": health.get("alpha_entropy", float("nan")),
    }


def mean_sd(values: list[float], digits: int) -> str:
    """"m ± s" over seeds (the sample s.d.), "m" alone for one seed, "—" where a row has no such figure."""
    if any(math.isnan(value) for value in values):
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def format_table(results: dict[str, list[dict[str, float]]]) -> str:
    """One line per row: every figure's mean ± s.d. over seeds; chance under the attribute columns."""
    columns = ["CIDEr-D", "val NLL", *ATTRIBUTES, "dead", "α entropy"]
    lines = [" | ".join(["row", *columns])]
    for row, seeds in results.items():
        cells = [mean_sd([figures[column] for figures in seeds], 3 if column in ("val NLL", "α entropy") else 1)
                 for column in columns]
        lines.append(" | ".join([row, *cells]))
    chance = ["", "", *(f"{100 / len(values):.0f}" for values in ATTRIBUTES.values()), "", ""]
    lines.append(" | ".join(["chance", *chance]))
    return "\n".join(lines)


def collect(results: dict[str, list[dict[str, float]]], seed: int, label: str, run: Callable[[], Path]) -> None:
    """Run (or reuse) one seed's row with ``run``, which returns its run directory; add its figures
    to ``results[label]`` and say them on stderr with the seconds it took."""
    started = time.perf_counter()
    results[label].append(row_figures(run()))
    click.echo(f"seed {seed} {label}: {results[label][-1]['CIDEr-D']:.1f} CIDEr-D "
               f"({time.perf_counter() - started:.0f} s)", err=True)


def trained_row(settings: AblationConfig, row: TableRow) -> Path:
    """Train and evaluate ``row`` (``astar-ablate``'s way, reusing a finished one); its run directory."""
    run_row(settings, row)
    return settings.run_dir(row)


def self_critical_row(settings: AblationConfig, row: TableRow, epochs: int) -> Path:
    """Fine-tune ``row``'s best checkpoint by SCST for up to ``epochs`` epochs and evaluate it
    as the row was (test split, beam size); the SCST run directory."""
    trained = settings.train_config(row)
    scst_dir = Path(f"{trained.out}-scst")
    train_resumably(trained.self_critical(str(scst_dir), epochs))
    evaluate(scst_dir, replace(settings.eval_options(row), out=str(scst_dir / f"eval-{settings.split}")))
    return scst_dir


def relative_changes(results: dict[str, list[dict[str, float]]], rows: tuple[str, ...]) -> list[str]:
    """Per SCST row: test CIDEr-D's relative change per seed, and its mean ± s.d."""
    lines = []
    for key in rows:
        changes = [100 * (after["CIDEr-D"] / before["CIDEr-D"] - 1)
                   for before, after in zip(results[key], results[f"{key}+scst"])]
        lines.append(f"SCST on {key}: test CIDEr-D {' '.join(f'{change:+.1f} %' for change in changes)} per seed; "
                     f"mean {mean_sd(changes, 1)} %")
    return lines


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("fidelity_output"), show_default=True)
@click.option("--videos", type=click.IntRange(min=24), default=300, show_default=True)
@click.option("--durations", nargs=2, type=float, default=(2.0, 20.0), show_default=True, help="Shortest and longest clip, seconds.")
@click.option("--seeds", default="0,1,2", show_default=True, help="Training seeds, comma-separated.")
@click.option("--epochs", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--rows", default=",".join(DEFAULT_ROWS), show_default=True)
@click.option("--loader-workers", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--scst", "scst_epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Then fine-tune each --scst-rows row by self-critical training for up to this many epochs (0: skip).")
@click.option("--scst-rows", default="astar-soft", show_default=True, help="Rows --scst fine-tunes (among --rows).")
def main(out: Path, videos: int, durations: tuple[float, float], seeds: str, epochs: int, rows: str, loader_workers: int,
         scst_epochs: int, scst_rows: str) -> None:
    store = prepare_store(out, videos, durations)
    keys = tuple(key.strip() for key in rows.split(","))
    table = {row.key: row for row in table_rows(get_backbone(DEFAULT_BACKBONE))}
    scst_keys = tuple(key.strip() for key in scst_rows.split(",")) if scst_epochs else ()
    if set(scst_keys) - set(keys):
        raise click.BadParameter(f"{', '.join(sorted(set(scst_keys) - set(keys)))} not among --rows", param_hint="--scst-rows")
    results: dict[str, list[dict[str, float]]] = {key: [] for key in (*keys, *(f"{key}+scst" for key in scst_keys))}
    for seed in (int(value) for value in seeds.split(",")):
        settings = AblationConfig(
            store=str(store), dataset="csv", annotations=str(out / "videos" / CAPTIONS_FILE), rows=keys,
            out=str(out / f"seed-{seed}"), preset="small", epochs=epochs, seed=seed, device="cpu",
            loader_workers=loader_workers, progress=False,
        )
        settings.out_dir.mkdir(parents=True, exist_ok=True)
        for key in keys:
            collect(results, seed, key, lambda: trained_row(settings, table[key]))
        for key in scst_keys:
            collect(results, seed, f"{key}+scst", lambda: self_critical_row(settings, table[key], scst_epochs))
    click.echo(f"{videos} clips of {durations[0]:g}-{durations[1]:g} s, small preset, up to {epochs} epochs, "
               f"seeds {seeds}; mean ± s.d. over seeds (accuracies and dead channels in %)")
    click.echo(format_table(results))
    for line in relative_changes(results, scst_keys):
        click.echo(line)


if __name__ == "__main__":
    main()
