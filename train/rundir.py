"""The run directory and resuming: the one place that knows its layout and what a resumed run may
change (``loaded_run`` loads a trained model from one).

Layout of ``RUN_DIR`` (written by ``astar-train``)::

    config.toml          [train]: every astar-train flag (TrainConfig, storage options left out);
                         [model]: the resolved ModelConfig; [features]: store vs model widths
                         and the mean shift and scale each input is normalised by (the
                         checkpoints hold the per-channel values; astar.train.model.normalise);
                         [init]: for a run started from another (--init-from), that run,
                         its checkpoint and the epoch and step the weights came from
    vocab.json           the Vocabulary (text.Vocabulary.save)
    store_attrs.json     the store's root attributes: schema version, preprocessing, C3D
                         weights name / sha256 / random_init, precision (extraction identity)
    metrics.csv          one row per validation: epoch, step, train_loss, val_loss, scores
    tensorboard/         TensorBoard events (train/loss per step, val/* per validation)
    checkpoints/last.pt  everything to resume (model, optimizer, RNG, progress, early stopping)
    checkpoints/best.pt  the model at the best validation so far (model and its metadata)
    cider_df.npz         self-critical runs: CIDEr-D document frequencies of the training
                         references, counted once when the run starts (astar.train.objectives.cider)

Every file is written atomically (``checkpoint.write_atomically``).
"""
from __future__ import annotations

import csv
import io
import json
import tomllib
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import tomli_w

from astar.extract import AstarError, FeatureStore
from astar.extract.console import say
from astar.extract.folders import MARKER as FOLDER_MARKER, check_folder, claim_folder, register_kind
from astar.extract.store.ids import has_scheme
from astar.extract.store.root_attributes import upgraded_attributes
from astar.extract.store.schema import FEATURE_IDENTITY_KEYS

from .checkpoint import write_atomically
from .errors import TrainingError
from .model.config import ModelConfig, model_layers
from .options import CHECKPOINTS
from .runlock import LOCK_FILE, RunLock
from .text import Vocabulary
from .train_config import TrainConfig

RUN_FOLDER = register_kind("run", "training run directory")
"""The ``folders`` kind of a run directory."""
RUN_FORMAT = "astar-run"
RUN_VERSION = 2
"""2: inputs normalised per channel and aligned maps normalised (``astar.train.model.normalise``);
a version-1 run's weights expect other inputs, so it is refused rather than misread."""

RESUME_OVERRIDES = frozenset(
    {"store", "epochs", "patience", "max_steps", "device", "loader_workers", "feature_cache", "checkpoint_every",
     "storage_options", "progress"}
)
"""Fields a resumed run may change: where the store now is, how long to go on, and
where and how fast it runs. Everything that defines the model and its data is fixed
by the run's ``config.toml``."""

METRIC_COLUMNS = ("epoch", "step", "train_loss", "val_loss")
"""First columns of ``metrics.csv``; the validation scores (BLEU-1 … CIDEr) follow."""


class RunError(AstarError):
    """A run directory that cannot be used; the message names it and the reason in one line."""


@dataclass(frozen=True)
class RunPaths:
    """Where each file of a run lives (module docstring)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def vocabulary(self) -> Path:
        return self.root / "vocab.json"

    @property
    def cider_frequencies(self) -> Path:
        return self.root / "cider_df.npz"

    @property
    def store_attrs(self) -> Path:
        return self.root / "store_attrs.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        """``checkpoints/<name>.pt``; ``name`` is ``best`` or ``last``."""
        if name not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}; got {name!r}")
        return self.checkpoints / f"{name}.pt"


def write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda stream: stream.write(text.encode("utf-8")))


def write_run_config(
    paths: RunPaths, config: TrainConfig, model_config: ModelConfig, normalisation: dict[str, dict[str, float]],
    origin: dict[str, Any] | None = None,
) -> None:
    """``config.toml``: the flags, the resolved model, how its feature widths relate to the store's,
    and each input's mean normalisation shift and scale (``InputNormaliser.summary``; the checkpoints
    hold the per-channel values) and, for
    a run started from another, where its weights came from (``origin``, the [init] table)."""
    model = model_config.to_dict()
    read = {name: model_config.channels(name) for name in model_layers(model_config)} | {"fc7": model_config.fc7_dim}
    document = {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "train": config.to_dict(),
        "model": model,
        "features": {
            "note": "the loader reads the first N channels of each stored array (N = read); see astar.train.data.loader",
            "read": read,
            "store": {name: model_config.layer(name).channels for name in read if name != "fc7"},
            "normalisation": normalisation,
        },
    }
    if origin is not None:
        document["init"] = origin
    write_text(paths.config, tomli_w.dumps(document))


def read_run_config(run_dir: str | Path) -> tuple[TrainConfig, ModelConfig]:
    """The ``TrainConfig`` and ``ModelConfig`` saved in ``run_dir/config.toml``.

    Raises:
        RunError: not a run directory, or its config is unreadable or foreign.
    """
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file():
        raise RunError(f"{paths.root}: not an astar-train run directory (no config.toml)")
    try:
        document = tomllib.loads(paths.config.read_text(encoding="utf-8"))
        if document.get("format") != RUN_FORMAT or document.get("version") != RUN_VERSION:
            raise ValueError(f"not an {RUN_FORMAT} version {RUN_VERSION} config; runs of another astar version "
                             "must be trained again")
        config = TrainConfig.from_dict(document["train"])
        model_config = ModelConfig.from_dict(document["model"])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as error:
        raise RunError(f"{paths.config}: unusable run config ({error})") from None
    return config, model_config


def edited_settings(paths: RunPaths, config: TrainConfig, checkpoint: dict[str, Any]) -> str:
    """The settings of ``config.toml`` that a hand edit changed since ``checkpoint`` (``last.pt``) was written,
    as "lr 0.5 (was 0.01), [model] hidden_dim" words; empty when none.

    ``config`` is the resumed run's (``config.toml``'s [train] with ``RESUME_OVERRIDES`` applied);
    its [model] table must still describe the checkpoint's model, which resuming builds from [train]
    alone and evaluation from [model]. A checkpoint written before it kept its settings is
    compared on its model only.
    """
    changed = []
    saved = checkpoint.get("train_config")
    if saved is not None:
        trained = TrainConfig.from_dict(saved)
        changed = [f"{name} {getattr(config, name)!r} (was {getattr(trained, name)!r})"
                   for name in trained.differences(config, ignore=RESUME_OVERRIDES | {"out", "resume"})]
    _, model = read_run_config(paths.root)
    if not model.describes(checkpoint.get("model_config")):
        changed.append("[model]")
    return ", ".join(changed)


def read_vocabulary(paths: RunPaths) -> Vocabulary:
    try:
        return Vocabulary.load(paths.vocabulary)
    except (OSError, ValueError) as error:
        raise RunError(f"{paths.vocabulary}: unusable vocabulary ({error})") from None


def read_store_attrs(paths: RunPaths) -> dict[str, Any]:
    try:
        return upgraded_attributes(json.loads(paths.store_attrs.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as error:
        raise RunError(f"{paths.store_attrs}: unusable ({error})") from None


def identity_differences(run_attrs: dict[str, Any], store_attrs: dict[str, Any]) -> list[str]:
    """``FEATURE_IDENTITY_KEYS`` on which two stores' root attributes disagree, as 'key: a vs b' lines."""
    run_attrs, store_attrs = json.loads(json.dumps(run_attrs)), json.loads(json.dumps(store_attrs))
    return [
        f"{key}: {run_attrs.get(key)!r} vs {store_attrs.get(key)!r}"
        for key in FEATURE_IDENTITY_KEYS
        if run_attrs.get(key) != store_attrs.get(key)
    ]


def write_metrics(paths: RunPaths, history: list[dict[str, float | int | None]]) -> None:
    """Rewrite ``metrics.csv`` from the full validation history (empty cells for missing scores)."""
    extra = [key for key in dict.fromkeys(key for row in history for key in row) if key not in METRIC_COLUMNS]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[*METRIC_COLUMNS, *extra], lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(paths.metrics, text.getvalue())


def default_run_dir(config: TrainConfig) -> Path:
    """``runs/<dataset>-<variant>-<YYYYmmdd-HHMMSS>``."""
    return Path("runs") / f"{config.dataset}-{config.variant}-{datetime.now():%Y%m%d-%H%M%S}"


def resume_config(run_dir: str | Path, **overrides: Any) -> TrainConfig:
    """The config that continues ``run_dir``: its ``config.toml`` with ``overrides`` applied.

    Overrides equal to the saved values are no change; the others must be among
    ``RESUME_OVERRIDES``.

    Raises:
        RunError: not a usable run directory.
        ValueError: an override outside ``RESUME_OVERRIDES`` (it would change the run).
    """
    saved, _ = read_run_config(run_dir)
    changes = {name: value for name, value in overrides.items() if value != getattr(saved, name)}
    fixed = sorted(set(changes) - RESUME_OVERRIDES)
    if fixed:
        raise ValueError(
            f"{', '.join(fixed)} cannot change when resuming (the run keeps its config.toml); "
            f"only {', '.join(sorted(RESUME_OVERRIDES))} can"
        )
    return replace(saved, resume=str(run_dir), out=str(run_dir), **changes)


def _absolute(path: str | None) -> str | None:
    """Local paths made absolute, so a run resumes from any folder; URLs as they are."""
    return path if path is None or has_scheme(path) else str(Path(path).absolute())


def absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with its store, annotations and word2vec paths as a new run saves them (``_absolute``)."""
    return replace(config, store=_absolute(config.store), annotations=_absolute(config.annotations),
                   word2vec=_absolute(config.word2vec), init_from=_absolute(config.init_from))


LEFTOVERS = ("config.toml", "vocab.json", "store_attrs.json", "metrics.csv", "tensorboard", "checkpoints", "cider_df.npz")
"""What astar writes in a run directory before its first ``last.pt``: all a restart removes."""
KEPT = (FOLDER_MARKER, LOCK_FILE)
"""astar's own entries that a restart keeps: the folder's marker and its lock."""


def restart_check(paths: RunPaths) -> None:
    """Allow restarting a run directory without ``last.pt`` only if it holds nothing but
    ``LEFTOVERS`` (``KEPT`` aside) and no saved checkpoint (a crashed write's ``.partial`` aside).

    Raises:
        TrainingError: naming what it holds that a restart would lose (``best.pt``,
            ``eval-test``, a user's notes): a finished run whose ``last.pt`` was deleted to
            save space is never wiped.
    """
    held = [entry.name for entry in paths.root.iterdir() if entry.name not in LEFTOVERS + KEPT]
    if paths.checkpoints.is_dir():
        held += [f"checkpoints/{entry.name}" for entry in paths.checkpoints.iterdir() if not entry.name.endswith(".partial")]
    if held:
        raise TrainingError(f"{paths.root}: has no checkpoints/last.pt to resume from, and holds {', '.join(sorted(held))}, "
                            "which starting it again would delete; choose another --out")


def prepare_run(config: TrainConfig, store: FeatureStore, lock: RunLock) -> tuple[TrainConfig, RunPaths, Vocabulary | None]:
    """Check the run directory, holding ``lock`` on it: resumable (with its vocabulary) or, for a new run, free.

    A new run started from another (``init_from``) gets that run's vocabulary, and its
    store must have been extracted like that run's; it never writes into that run.

    A new run's directory is only created once everything else has been checked
    (``create_run_folder``). A directory astar made for a run that stopped before its first
    checkpoint is started again, by ``--out`` or ``--resume``, if it holds nothing else
    (``restart_check``); any other non-empty folder or file is refused (``folders.check_folder``).
    """
    if config.resume:
        if not Path(config.resume).is_dir():
            raise RunError(f"{config.resume}: no such run directory")
        lock.take(Path(config.resume))
    if config.resume and not RunPaths(Path(config.resume)).checkpoint("last").is_file():
        config = replace(config, resume=None, out=config.resume)  # started again below, if it may be
    if config.resume:
        paths = RunPaths(Path(config.resume))
        saved, _ = read_run_config(paths.root)
        changed = saved.differences(config, ignore=RESUME_OVERRIDES | {"out", "resume"})
        if changed:
            raise TrainingError(f"{paths.root}: {', '.join(changed)} differ from the run's config.toml; "
                                "a resumed run keeps its settings")
        differences = identity_differences(read_store_attrs(paths), store.attrs)
        if differences:
            raise TrainingError(f"{store.url}: extracted differently from the run's store ({'; '.join(differences)})")
        return replace(config, out=str(paths.root)), paths, read_vocabulary(paths)
    paths = RunPaths(Path(config.out) if config.out else default_run_dir(config))
    if config.init_from and Path(config.init_from).resolve() == paths.root.resolve():
        raise TrainingError(f"{paths.root}: is the run --init-from starts from; choose another --out for the new run")
    if check_folder(str(paths.root), RUN_FOLDER):
        lock.take(paths.root)
        if paths.checkpoint("last").is_file():
            raise TrainingError(f"{paths.root}: holds a run; pass --resume {paths.root} to continue it "
                                "or choose another --out")
        restart_check(paths)
        say(f"{paths.root}: stopped before its first checkpoint; starting it again")
    config = replace(absolute_paths(config), out=_absolute(str(paths.root)))
    vocabulary = None
    if config.init_from:
        origin = RunPaths(Path(config.init_from))
        read_run_config(origin.root)
        differences = identity_differences(read_store_attrs(origin), store.attrs)
        if differences:
            raise TrainingError(f"{store.url}: extracted differently from the store of --init-from {origin.root} "
                                f"({'; '.join(differences)})")
        vocabulary = read_vocabulary(origin)
    return config, RunPaths(Path(config.out)), vocabulary


def create_run_folder(paths: RunPaths, lock: RunLock) -> None:
    """Create a new run's directory, marked as astar's and held by ``lock``; a stopped run's
    ``LEFTOVERS`` are removed, and nothing else (``restart_check`` ran under the same lock).

    Raises:
        TrainingError: another process took the folder since ``prepare_run``.
    """
    claim_folder(str(paths.root), RUN_FOLDER)
    lock.take(paths.root)
    restart_check(paths)
    claim_folder(str(paths.root), RUN_FOLDER, overwrite=True, own=LEFTOVERS)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)


def saved_run_differences(config: TrainConfig) -> list[str]:
    """Settings of the run saved in ``config.out`` that ``config`` changes, beyond ``RESUME_OVERRIDES``.

    Empty when the folder holds no run. Paths are compared as the run saved them
    (absolute); changed captions are caught on resume by the run's data fingerprint, so
    ``annotations`` is not compared.
    """
    paths = RunPaths(Path(config.out))
    if not paths.config.is_file():
        return []
    saved, _ = read_run_config(paths.root)
    return saved.differences(absolute_paths(config), ignore=RESUME_OVERRIDES | {"out", "resume", "annotations"})
