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
(``objective="scst"``, ``astar.train.scst``): an epoch then passes over the training
*videos*, ``batch_size`` at a time, sampling K captions of each and rewarding them by
CIDEr-D against the video's training references, with document frequencies counted once
from the training split and kept in the run (``cider_df.npz``). Validation, early
stopping, checkpoints and exact resuming are the same for both objectives.

On CUDA the forward pass runs under autocast (bf16, or fp16 with loss scaling); on
CPU everything is fp32 and a run is exactly reproducible from its seed. A run stops
cleanly at a step boundary on Ctrl-C or SIGTERM (a second Ctrl-C aborts), writes
``last.pt`` and continues with ``resume`` / ``--resume`` exactly where it stopped:
same parameters, optimizer moments, RNG states, batch order and early-stopping state
as an uninterrupted run. The run directory layout is ``astar.train.rundir``'s.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils import clip_grad_norm_
from torch.utils.tensorboard import SummaryWriter

from astar.extract import StoreError, autocast_dtype, open_store, progress as progress_display, random_init_warning, resolve_device, say

from .captions import CaptionData, caption_data
from .checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from .cider import CiderD, DocumentFrequencies
from .distributed import Processes
from .errors import TrainingError
from .loader import BucketBatchSampler, CaptionBatch, CaptionBatches, FeatureReader, feature_rms, make_loader, model_layers
from .model import ASTAR
from .model_config import ModelConfig
from .rundir import (
    RESUME_OVERRIDES, RunPaths, create_run_folder, load_run, prepare_run, resume_config, saved_run_differences, write_metrics,
    write_run_config, write_text,
)
from .scoring import JAVA_INSTALL_HINT, METRICS, score_captions
from .scst import CaptionReward, self_critical_step
from .search import decode_captions
from .signals import stop_requests
from .text import PAD_ID
from .train_config import TrainConfig
from .word2vec import load_word2vec

TEXT_METRICS = ("BLEU", "ROUGE-L", "CIDEr")
"""Validation scores when stopping on CIDEr or loss: no METEOR JVM per validation."""


# ---------------------------------------------------------------------------
# One step, validation


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def optimizer_step(
    model: ASTAR, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, batch: CaptionBatch,
    clip_norm: float, autocast: torch.dtype | None = None,
) -> float:
    """One optimizer step on a batch: ``model.loss`` (eq. 3, or −L^K for hard attention),
    gradients unscaled and clipped to norm ``clip_norm``; returns the loss."""
    assert batch.tokens is not None
    device = next(model.parameters()).device
    videos, tokens = batch.videos.to(device), batch.tokens.to(device)
    with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        loss = model.loss(videos, tokens, batch.caption_videos.to(device))
    return apply_gradients(model, optimizer, scaler, loss, clip_norm)


def self_critical_optimizer_step(
    model: ASTAR, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, batch: CaptionBatch,
    reward: CaptionReward, config: TrainConfig, autocast: torch.dtype | None = None,
) -> tuple[float, float]:
    """One SCST step on a batch of videos (``astar.train.scst``); returns the loss and the mean sampled reward."""
    device = next(model.parameters()).device
    with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        step = self_critical_step(model, batch.videos.to(device), batch.video_ids, reward, config.scst_samples,
                                  config.scst_baseline, config.max_caption_len + 1, config.temperature)
    return apply_gradients(model, optimizer, scaler, step.loss, config.clip_norm), step.sample_reward


def apply_gradients(
    model: ASTAR, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor, clip_norm: float,
) -> float:
    """Backpropagate ``loss`` (scaled for fp16), clip the gradient norm to ``clip_norm``, step; the loss."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    clip_grad_norm_(model.parameters(), clip_norm)
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())



@torch.no_grad()
def validation_loss(model: ASTAR, batches: Iterator[CaptionBatch], device: torch.device, autocast: torch.dtype | None) -> float:
    """Mean negative log-likelihood per word (``<eos>`` included) over every validation pair."""
    total, words = 0.0, 0
    for batch in batches:
        assert batch.tokens is not None
        tokens = batch.tokens.to(device)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            loss = model.loss(batch.videos.to(device), tokens, batch.caption_videos.to(device))
        count = int((tokens != PAD_ID).sum())
        total, words = total + float(loss) * count, words + count
    return total / words


# ---------------------------------------------------------------------------
# Progress, results


@dataclass
class Progress:
    """Where a run stands; saved in ``last.pt`` and restored on resume.

    Attributes:
        epoch: completed epochs. batches_done: batches of the current epoch done.
        step: optimizer steps in total.
        loss_sum, loss_batches: training loss summed over the batches since the last validation.
        best, best_epoch: best validation value of the stopping metric and when.
        bad_evaluations: validations since the last improvement.
        stopped_early: early stopping ended the run.
        history: one dict per validation (the rows of ``metrics.csv``).
    """

    epoch: int = 0
    batches_done: int = 0
    step: int = 0
    loss_sum: float = 0.0
    loss_batches: int = 0
    best: float | None = None
    best_epoch: int | None = None
    bad_evaluations: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainResult:
    """What a run ended with.

    Attributes:
        run_dir: the run directory (``astar.train.rundir.load_run`` reads it).
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


def improved(metric: str, value: float, best: float | None) -> bool:
    """True if ``value`` beats ``best`` (lower is better for loss, higher for scores)."""
    return best is None or (value < best if metric == "loss" else value > best)


# ---------------------------------------------------------------------------
# The run


class Trainer:
    """The state of one training process: model, optimizer, loaders, run directory, progress."""

    def __init__(self, config: TrainConfig, paths: RunPaths, data: CaptionData, reader: FeatureReader,
                 model_config: ModelConfig, reward: CaptionReward | None = None) -> None:
        self.config, self.paths, self.data, self.model_config = config, paths, data, model_config
        self.reward = reward
        self.device = resolve_device(config.device)
        self.autocast = autocast_dtype(self.device, config.precision)
        self.progress = Progress()
        seed_everything(config.seed)
        vectors = None
        if config.word2vec:
            generator = torch.Generator().manual_seed(config.seed)
            try:
                vectors = load_word2vec(config.word2vec, list(data.vocabulary.tokens), model_config.embedding_dim,
                                        generator=generator)
            except (OSError, ValueError) as error:
                raise TrainingError(f"--word2vec: {error}") from None
        self.model = ASTAR(model_config, word_vectors=vectors).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast == torch.float16)

        workers = config.loader_workers
        if reward is not None:
            train_set = CaptionBatches(reader, list(data.train_references))
            self.sampler = BucketBatchSampler(train_set.lengths, config.batch_size, seed=config.seed)
        else:
            train_set = CaptionBatches(reader, data.train_ids, data.train_captions)
            self.sampler = BucketBatchSampler(train_set.lengths, config.batch_size, seed=config.seed,
                                              captions_per_video=config.captions_per_video, videos=data.train_ids)
        self.train_loader = make_loader(train_set, self.sampler, workers, persistent=True)
        val_pairs = CaptionBatches(reader, data.val_ids, data.val_captions)
        val_sampler = BucketBatchSampler(val_pairs.lengths, config.batch_size, shuffle=False,
                                         captions_per_video=config.captions_per_video, videos=data.val_ids)
        self.val_pairs = make_loader(val_pairs, val_sampler, workers)
        val_videos = CaptionBatches(reader, list(data.references))
        self.val_videos = make_loader(val_videos, BucketBatchSampler(val_videos.lengths, config.batch_size, shuffle=False), workers)

    # -- checkpoints -------------------------------------------------------

    def restore(self) -> None:
        """Continue from ``last.pt``: model, optimizer, scaler, RNG states and progress."""
        document = load_checkpoint(self.paths.checkpoint("last"), map_location=self.device)
        if not self.model_config.describes(document.get("model_config")):
            raise TrainingError(f"{self.paths.checkpoint('last')}: its model differs from {self.paths.config}")
        if document.get("data_fingerprint") != self.data.fingerprint:
            raise TrainingError(
                f"{self.paths.root}: the captions or the stored videos changed since the run started; "
                "resume needs the same data (start a new run instead)"
            )
        self.model.load_state_dict(document["model"])
        self.optimizer.load_state_dict(document["optimizer"])
        self.scaler.load_state_dict(document["scaler"])
        restore_rng(document["rng"])
        self.progress = Progress(**document["progress"])

    def _model_document(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "model_config": self.model_config.to_dict(),
                "progress": asdict(self.progress)}

    def save_last(self) -> None:
        save_checkpoint(
            {
                **self._model_document(),
                "kind": "last",
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": capture_rng(),
                "data_fingerprint": self.data.fingerprint,
            },
            self.paths.checkpoint("last"),
        )

    def save_best(self) -> None:
        save_checkpoint({**self._model_document(), "kind": "best", "metric": self.config.metric},
                        self.paths.checkpoint("best"))

    # -- the loop ----------------------------------------------------------

    def finished(self) -> str | None:
        """Why the run is over, or None."""
        if self.progress.stopped_early:
            return "early stopping"
        if self.progress.epoch >= self.config.epochs:
            return "max epochs"
        if self.config.max_steps is not None and self.progress.step >= self.config.max_steps:
            return "max steps"
        return None

    def run(self, writer: SummaryWriter, stop: threading.Event) -> str:
        """Train until finished or asked to stop; return why it ended (``TrainResult.stopped``).

        ``last.pt`` is saved at the end of every epoch *before* its validation, so a
        validation that fails (a broken Java, damaged features) never loses the epoch's
        training; a resumed run then validates that epoch first. Damaged data met in a
        training batch saves ``last.pt`` at the step before it (``stop_for``), so after the
        store is repaired ``--resume`` continues exactly; skipping the video would change
        the data unnoticed.
        """
        while True:
            if self.validation_due():
                try:
                    self.validate(writer)
                except StoreError as damage:  # last.pt already holds the epoch, its validation due
                    raise self.stop_for(damage, save=False) from None
                self.save_last()
                write_metrics(self.paths, self.progress.history)
            if stop.is_set():
                return "interrupted"
            if (reason := self.finished()) is not None:
                return reason
            if not self.train_epoch(writer, stop):
                return "interrupted" if stop.is_set() else "max steps"
            self.progress.epoch += 1
            self.progress.batches_done = 0
            self.save_last()

    def validation_due(self) -> bool:
        """True when the last finished epoch is one to validate and has no validation row yet."""
        epoch, history = self.progress.epoch, self.progress.history
        scheduled = epoch % self.config.eval_every == 0 or epoch == self.config.epochs
        return epoch > 0 and scheduled and (not history or history[-1]["epoch"] != epoch)

    def train_epoch(self, writer: SummaryWriter, stop: threading.Event) -> bool:
        """Train on the rest of the current epoch; False if stopped before its end."""
        progress, config = self.progress, self.config
        self.model.train()
        self.sampler.set_epoch(progress.epoch, skip=progress.batches_done)
        started, pairs = time.perf_counter(), 0
        bar = progress_display(total=progress.batches_done + len(self.sampler), initial=progress.batches_done,
                               unit="batch", desc=f"epoch {progress.epoch + 1}/{config.epochs}", enabled=config.progress)
        with bar:
            for batch in self._batches():
                if self.reward is None:
                    loss = optimizer_step(self.model, self.optimizer, self.scaler, batch, config.clip_norm, self.autocast)
                else:
                    loss, reward = self_critical_optimizer_step(self.model, self.optimizer, self.scaler, batch,
                                                                self.reward, config, self.autocast)
                    writer.add_scalar("train/reward", reward, progress.step + 1)
                progress.batches_done += 1
                progress.step += 1
                progress.loss_sum += loss
                progress.loss_batches += 1
                pairs += len(batch.video_ids)
                writer.add_scalar("train/loss", loss, progress.step)
                bar.update()
                bar.set_postfix(loss=f"{progress.loss_sum / progress.loss_batches:.3f}",
                                captions_per_s=f"{pairs / (time.perf_counter() - started):.1f}")
                at_max_steps = config.max_steps is not None and progress.step >= config.max_steps
                if at_max_steps or stop.is_set():
                    self.save_last()
                    return False
                if config.checkpoint_every and progress.step % config.checkpoint_every == 0:
                    self.save_last()
        return True

    def _batches(self) -> Iterator[CaptionBatch]:
        """The rest of the epoch's training batches; a damaged video stops training after saving (``run``)."""
        try:
            yield from self.train_loader
        except StoreError as damage:
            raise self.stop_for(damage) from None

    def stop_for(self, damage: StoreError, save: bool = True) -> TrainingError:
        """Save ``last.pt`` (unless it is current) and say, in one line, what stopped training and how to go on."""
        if save:
            self.save_last()
        return TrainingError(f"{damage}; training so far is saved in {self.paths.checkpoint('last')}, and "
                             f"astar-train --resume {self.paths.root} continues exactly once the store is repaired")

    def validate(self, writer: SummaryWriter) -> None:
        """Validation loss and scores, one history row, early-stopping bookkeeping, ``best.pt``."""
        progress, config = self.progress, self.config
        self.model.eval()
        row: dict[str, Any] = {
            "epoch": progress.epoch,
            "step": progress.step,
            "train_loss": progress.loss_sum / max(progress.loss_batches, 1),
            "val_loss": validation_loss(self.model, iter(self.val_pairs), self.device, self.autocast),
        }
        progress.loss_sum, progress.loss_batches = 0.0, 0
        if config.metric != "loss":
            predictions = decode_captions(self.model, iter(self.val_videos), self.data.vocabulary,
                                          config.max_caption_len + 1, self.device, self.autocast)
            scores = score_captions(predictions, self.data.references,
                                    metrics=METRICS if config.metric == "METEOR" else TEXT_METRICS)
            if config.metric in scores.missing:
                raise TrainingError(f"{config.metric} could not be computed for early stopping: "
                                    f"{'; '.join(scores.warnings)}; use --metric CIDEr or --metric loss")
            row.update(scores.corpus)
        progress.history.append(row)
        for key, value in row.items():
            if key not in ("epoch", "step"):
                writer.add_scalar(f"val/{key}" if key != "train_loss" else "train/epoch_loss", value, progress.step)
        value = row["val_loss" if config.metric == "loss" else config.metric]
        if improved(config.metric, value, progress.best):
            progress.best, progress.best_epoch, progress.bad_evaluations = value, progress.epoch, 0
            self.save_best()
        else:
            progress.bad_evaluations += 1
            progress.stopped_early = progress.bad_evaluations >= config.patience
        shown = ", ".join(f"{key} {value:.4g}" for key, value in row.items() if key not in ("epoch", "step"))
        say(f"epoch {progress.epoch}: {shown}" + (" (best)" if progress.best_epoch == progress.epoch else ""))
        self.model.train()


# ---------------------------------------------------------------------------
# Entry point


def start_from(model: ASTAR, run_dir: str, model_config: ModelConfig) -> tuple[dict[str, Any], dict[str, float]]:
    """Load ``run_dir``'s best weights (input scales included) into ``model``.

    Returns:
        the [init] record of ``config.toml`` (run, checkpoint, epoch, step) and the input scales.

    Raises:
        TrainingError: the run's model differs from ``model_config``.
    """
    origin = load_run(run_dir, "best")
    if origin.model_config != model_config:
        changed = [name for name, value in asdict(model_config).items() if getattr(origin.model_config, name) != value]
        raise TrainingError(f"--init-from {run_dir}: its model differs in {', '.join(changed)}; "
                            "start from a run of the same preset and model flags")
    model.load_state_dict(origin.model.state_dict())
    scales = {name: float(model.feature_scale[model.scaled_inputs.index(name)]) for name in (*model_layers(model_config), "fc7")}
    record = {"run": str(origin.run_dir), "checkpoint": origin.checkpoint, "epoch": origin.epoch, "step": origin.step}
    return record, scales


def train(config: TrainConfig) -> TrainResult:
    """Train (or, with ``config.resume``, continue) an ASTAR model; see the module docstring.

    Prints the store's provenance (loudly if its C3D weights were random-init), how
    the annotations matched the store, and one line per validation on stderr.

    Raises:
        StoreError: the store is missing or of another schema version.
        AnnotationError: the annotations are unreadable or share no video with the store.
        TrainingError: the run cannot start or continue (message in one line);
            ``RunError`` and ``CheckpointError`` for unusable run directories and checkpoints.
        torch.OutOfMemoryError: the device ran out of memory.
    """
    if Processes.from_environment().distributed:
        raise TrainingError("astar-train does not run as several torchrun processes yet: each would train its own "
                            "copy into one run directory (README, Multi-GPU training); start one process")
    if config.metric == "METEOR" and shutil.which("java") is None:
        raise TrainingError(f"--metric METEOR needs Java: {JAVA_INSTALL_HINT}; or use --metric CIDEr or loss")
    store = open_store(config.store, config.storage_options)
    config, paths, vocabulary = prepare_run(config, store)
    data = caption_data(config, store, vocabulary)
    warning = random_init_warning(store.attrs.get("model", {}))
    if warning:
        say(warning)
    say(data.report.summary())
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
    trainer = Trainer(config, paths, data, reader, model_config, reward)
    if config.resume:
        trainer.restore()
        say(f"resuming {paths.root} at epoch {trainer.progress.epoch + 1}, step {trainer.progress.step}")
    else:
        origin = None
        if config.init_from:
            origin, scales = start_from(trainer.model, config.init_from, model_config)
            say(f"starting from {config.init_from} (best checkpoint, epoch {origin['epoch']}, step {origin['step']})")
        else:
            scales = feature_rms(reader, data.train_ids)
            trainer.model.set_feature_scale(scales)
            say("input scale (RMS over training videos, divided out): " + ", ".join(f"{k} {v:.3g}" for k, v in scales.items()))
        create_run_folder(paths)
        if reward is not None:
            reward.cider.frequencies.save(paths.cider_frequencies)
        write_run_config(paths, config, model_config, scales, origin)
        data.vocabulary.save(paths.vocabulary)
        write_text(paths.store_attrs, json.dumps(store.attrs, indent=1) + "\n")
    say(f"{len(data.train_ids):,} training pairs, {len(data.references):,} val videos, vocabulary "
        f"{len(data.vocabulary):,} words; {config.preset} {config.variant} ({config.attention} attention) on "
        f"{trainer.device.type}{'' if trainer.autocast is None else f' ({trainer.autocast})'} → {paths.root}")
    writer = SummaryWriter(log_dir=str(paths.tensorboard), purge_step=trainer.progress.step if config.resume else None)
    try:
        with stop_requests() as stop:
            stopped = trainer.run(writer, stop)
    finally:
        writer.close()
    progress = trainer.progress
    say(f"{stopped} after {progress.epoch} epochs, {progress.step} steps; best {config.metric} "
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
