"""The training loop of Section 4.2: ``train(TrainConfig) -> TrainResult``.

Recipe: Adam (lr 2e-4), mini-batches of 32 (video, caption) pairs bucketed by video
length, ``ASTAR.loss`` (cross-entropy per word for soft attention; for hard attention
the K-sample bound with VIMCO, eqs. 10–14), gradient norm clipped at 5, dropout from
the model config, and early stopping on the validation split: after every
``eval_every`` epochs the model captions the val videos greedily and
``score_captions`` scores them (CIDEr by default, METEOR with Java), or the
validation loss decides. ``patience`` evaluations without improvement end the run.

A run may start from another's best checkpoint (``init_from``: its weights, vocabulary
and input scales), and may train by self-critical sequence training instead
(``objective="scst"``, ``astar.train.objectives.scst``): an epoch then passes over the training
*videos*, ``batch_size`` at a time, sampling K captions of each and rewarding them by
CIDEr-D against the video's training references, with document frequencies counted once
from the training split and kept in the run (``cider_df.npz``). Validation, early
stopping, checkpoints and exact resuming are the same for both objectives.

On CUDA the forward pass runs under autocast (bf16, or fp16 with loss scaling); on
CPU everything is fp32 and a run is exactly reproducible from its seed. A run stops
cleanly at a step boundary on Ctrl-C or SIGTERM (a second Ctrl-C aborts), writes
``last.pt`` and continues with ``resume`` / ``--resume`` exactly where it stopped:
same parameters, optimizer moments, RNG states, batch order and early-stopping state
as an uninterrupted run. The run directory layout is ``astar.train.rundir``'s; one
process's loop is ``astar.train.loop.Trainer`` and one step ``astar.train.steps``.

Under ``torchrun`` N processes train one run with DistributedDataParallel: the same
global batches shared by whole videos, validation shared and scored once by rank 0,
checkpoints and logs from rank 0, a stop on any process obeyed by all at the same step
(``astar.train.distributed``).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from astar.extract import AstarError, open_store
from astar.extract.devices import resolve_device
from astar.extract.provenance import random_init_warning

from .data.captions import caption_data
from .data.loader import FeatureReader, feature_statistics
from .distributed import Processes, from_main
from .errors import TrainingError
from .loaded_run import load_run
from .loop import Trainer
from .model.astar import ASTAR
from .model.config import ModelConfig, model_layers
from .objectives.cider import CiderD, DocumentFrequencies
from .objectives.scst import CaptionReward
from .rundir import (
    RESUME_OVERRIDES, RunPaths, create_run_folder, prepare_run, resume_config, saved_run_differences, write_run_config,
    write_text,
)
from .runlock import RunLock
from .scoring import JAVA_INSTALL_HINT
from .signals import stop_requests
from .train_config import TrainConfig


@dataclass
class TrainResult:
    """What a run ended with.

    Attributes:
        run_dir: the run directory (``astar.train.loaded_run.load_run`` reads it).
        stopped: ``early stopping``, ``max epochs``, ``max steps`` or ``interrupted``.
        epochs, steps: completed epochs and optimizer steps.
        metric: the stopping metric; best, best_epoch: its best validation value and epoch.
        history: one dict per validation (``metrics.csv``).
    """

    run_dir: Path
    stopped: str
    epochs: int
    steps: int
    metric: str
    best: float | None
    best_epoch: int | None
    history: list[dict[str, Any]]


def start_from(model: ASTAR, run_dir: str, model_config: ModelConfig) -> dict[str, Any]:
    """Load ``run_dir``'s best weights (input statistics included) into ``model``.

    Returns:
        the [init] record of ``config.toml`` (run, checkpoint, epoch, step).

    Raises:
        TrainingError: the run's model differs from ``model_config``.
    """
    origin = load_run(run_dir, "best")
    if origin.model_config != model_config:
        changed = [name for name, value in asdict(model_config).items() if getattr(origin.model_config, name) != value]
        raise TrainingError(f"--init-from {run_dir}: its model differs in {', '.join(changed)}; "
                            "start from a run of the same preset and model flags")
    model.load_state_dict(origin.model.state_dict())
    return {"run": str(origin.run_dir), "checkpoint": origin.checkpoint, "epoch": origin.epoch, "step": origin.step}


def train(config: TrainConfig) -> TrainResult:
    """Train (or, with ``config.resume``, continue) an ASTAR model; see the module docstring.

    Prints the store's provenance (loudly if its C3D weights were random-init), how
    the annotations matched the store, and one line per validation on stderr.

    Under torchrun every process calls this and they train one run together
    (``astar.train.distributed``): rank 0 prepares the run directory, writes it and
    prints; the run directory and ``--init-from`` run must be on a filesystem every
    process reads (a resumed run reads ``last.pt`` on each).

    Raises:
        StoreError: the store is missing or of another schema version.
        AnnotationError: the annotations are unreadable or share no video with the store.
        TrainingError: the run cannot start or continue (message in one line);
            ``RunError`` and ``CheckpointError`` for unusable run directories and checkpoints.
        torch.OutOfMemoryError: the device ran out of memory.
    """
    processes = Processes.from_environment()
    processes.start(processes.device(resolve_device(config.device)))
    try:
        with RunLock() as lock:
            return _train(config, processes, lock)
    finally:
        processes.stop()


def _train(config: TrainConfig, processes: Processes, lock: RunLock) -> TrainResult:
    """``train`` in this process, one of ``processes``; rank 0 holds the run directory with ``lock``."""
    if config.metric == "METEOR" and shutil.which("java") is None:
        raise TrainingError(f"--metric METEOR needs Java: {JAVA_INSTALL_HINT}; or use --metric CIDEr or loss")
    store = open_store(config.store, config.storage_options)
    config, paths, vocabulary = from_main(lambda: prepare_run(config, store, lock), AstarError)
    data = caption_data(config, store, vocabulary)
    warning = random_init_warning(store.attrs.get("model", {}))
    if warning:
        processes.say(warning)
    processes.say(data.report.summary())
    try:  # --layers are checked against the store's layers here, where they are known
        model_config = config.model_config(len(data.vocabulary), store.layers, store.top_channels)
        reader = FeatureReader(store, model_config, config.storage_options)
        reader.check_widths(data.train_ids[0])
    except ValueError as error:
        raise TrainingError(f"{store.url}: {error}" if store.url not in str(error) else str(error)) from None
    reward = None
    if config.objective == "scst":
        frequencies = (DocumentFrequencies.load(paths.cider_frequencies) if config.resume
                       else DocumentFrequencies.from_references(data.train_references))
        reward = CaptionReward(CiderD(frequencies, data.train_references), data.vocabulary, config.bleu_weight)
    trainer = Trainer(config, paths, data, reader, model_config, reward, processes)
    if config.resume:
        trainer.restore()
        processes.say(f"resuming {paths.root} at epoch {trainer.progress.epoch + 1}, step {trainer.progress.step}")
    else:
        origin = None
        if config.init_from:
            origin = start_from(trainer.model, config.init_from, model_config)
            processes.say(f"starting from {config.init_from} (best checkpoint, epoch {origin['epoch']}, step {origin['step']})")
        else:
            trainer.model.set_feature_statistics(feature_statistics(trainer.features, data.train_ids))
            processes.say(f"inputs normalised ({model_config.input_norm}) by statistics of training videos: "
                          + ", ".join(f"{name} ÷{value['scale']:.3g}" for name, value in trainer.model.normaliser.summary().items()
                                      if name in (*model_layers(model_config), "fc7")))
        if processes.is_main:
            create_run_folder(paths, lock)
            if reward is not None:
                reward.cider.frequencies.save(paths.cider_frequencies)
            write_run_config(paths, config, model_config, trainer.model.normaliser.summary(), origin)
            data.vocabulary.save(paths.vocabulary)
            write_text(paths.store_attrs, json.dumps(store.attrs, indent=1) + "\n")
    on = f"{processes.world_size} × {trainer.device.type}" if processes.distributed else trainer.device.type
    trained_on = (f"{len(data.train_references):,} training videos" if reward is not None  # SCST passes over videos
                  else f"{len(data.train_ids):,} training pairs")
    processes.say(f"{trained_on}, {len(data.references):,} val videos, vocabulary "
                  f"{len(data.vocabulary):,} words; {config.preset} {config.variant} ({config.attention} attention) on "
                  f"{on}{'' if trainer.autocast is None else f' ({trainer.autocast})'} → {paths.root}")
    from torch.utils.tensorboard import SummaryWriter  # here: tensorboard loads when an event file is written

    writer = (SummaryWriter(log_dir=str(paths.tensorboard), purge_step=trainer.progress.step if config.resume else None)
              if processes.is_main else None)
    try:
        with stop_requests() as stop:
            stopped = trainer.run(writer, stop)
    finally:
        if writer is not None:
            writer.close()
    progress = trainer.progress
    processes.say(f"{stopped} after {progress.epoch} epochs, {progress.step} steps; best {config.metric} "
                  f"{'none yet' if progress.best is None else f'{progress.best:.4g} at epoch {progress.best_epoch}'}")
    return TrainResult(paths.root, stopped, progress.epoch, progress.step, config.metric, progress.best,
                       progress.best_epoch, progress.history)


def train_resumably(config: TrainConfig) -> TrainResult:
    """Train ``config`` into ``config.out``, continuing the run there if one was started.

    A run directory with a ``last.pt`` is resumed (a finished run returns at once),
    with ``config``'s ``RESUME_OVERRIDES`` (store, epochs, device, …) applied; one that
    stopped before its first checkpoint is started again.

    Raises:
        TrainingError: ``config.out`` holds a run with other settings.
    """
    paths = RunPaths(Path(config.out))
    if paths.checkpoint("last").is_file():
        changed = saved_run_differences(config)
        if changed:
            raise TrainingError(f"{paths.root}: trained with other {', '.join(changed)}; "
                                "choose another --out for these settings")
        return train(resume_config(paths.root, **{name: getattr(config, name) for name in RESUME_OVERRIDES}))
    return train(config)  # a run stopped before its first checkpoint starts again; a folder astar did not make is refused
