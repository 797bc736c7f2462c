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
as an uninterrupted run. The run directory layout is ``astar.train.rundir``'s.

Under ``torchrun`` N processes train one run with DistributedDataParallel: the same
global batches shared by whole videos, validation shared and scored once by rank 0,
checkpoints and logs from rank 0, a stop on any process obeyed by all at the same step
(``astar.train.distributed``).
"""
from __future__ import annotations

import json
import math
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import clip_grad_norm_

from astar.extract import AstarError, StoreError, autocast_dtype, open_store, progress as progress_display, random_init_warning, resolve_device

from .checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from .data.cache_plan import plan_read_path
from .data.captions import CaptionData, caption_data
from .data.feature_cache import FeatureCache
from .data.loader import (
    BucketBatchSampler, CaptionBatch, CaptionBatches, FeatureReader, FeatureSource, feature_statistics, make_loader, model_layers,
)
from .data.word2vec import load_word2vec
from .distributed import (
    Objective, Processes, ScstSettings, SelfCritical, from_main, gather_to_main, global_mean, mean_and_any, sum_over_processes,
    word_mean,
)
from .errors import TrainingError
from .model.astar import ASTAR
from .model.config import ModelConfig
from .model.health import combined_figures, health_line, tally_videos
from .model.search import decode_captions
from .objectives.cider import CiderD, DocumentFrequencies
from .objectives.scst import CaptionReward
from .rundir import (
    RESUME_OVERRIDES, RunPaths, create_run_folder, edited_settings, load_run, prepare_run, resume_config,
    saved_run_differences, write_metrics, write_run_config, write_text,
)
from .runlock import RunLock
from .scoring import JAVA_INSTALL_HINT, METRICS, score_captions
from .signals import stop_requests
from .text import PAD_ID
from .train_config import TrainConfig

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

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
    objective: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, batch: CaptionBatch,
    clip_norm: float, autocast: torch.dtype | None = None,
) -> float:
    """One optimizer step on a batch: ``objective`` (``Objective``: eq. 3, or −L^K for hard
    attention; or that under DDP), gradients unscaled and clipped to norm ``clip_norm``;
    returns the loss (this process's share of the global batch's, ``word_mean``)."""
    assert batch.tokens is not None
    device = next(objective.parameters()).device
    batch = batch.to(device)
    with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        loss = word_mean(objective(batch.videos, batch.tokens, batch.caption_videos), batch.tokens, PAD_ID)
    return apply_gradients(objective, optimizer, scaler, loss, clip_norm)


def self_critical_optimizer_step(
    objective: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, batch: CaptionBatch,
    clip_norm: float, autocast: torch.dtype | None = None,
) -> tuple[float, float]:
    """One SCST step on a batch of videos (``SelfCritical``, or that under DDP); returns the loss and the mean sampled reward."""
    device = next(objective.parameters()).device
    with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        step = objective(batch.videos.to(device), batch.video_ids)
        loss = global_mean(step.loss, len(batch.video_ids))
    return apply_gradients(objective, optimizer, scaler, loss, clip_norm), step.sample_reward


def apply_gradients(
    objective: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor, clip_norm: float,
) -> float:
    """Backpropagate ``loss`` (scaled for fp16), clip the gradient norm to ``clip_norm``, step; the loss."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    clip_grad_norm_(objective.parameters(), clip_norm)
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def finite_weights(model: nn.Module) -> bool:
    """True if every floating-point parameter and buffer of ``model`` is finite (no inf, no NaN)."""
    return all(bool(torch.isfinite(value).all()) for value in model.state_dict().values() if value.is_floating_point())


@torch.no_grad()
def validation_loss(model: ASTAR, batches: Iterator[CaptionBatch], device: torch.device, autocast: torch.dtype | None) -> float:
    """Mean negative log-likelihood per word (``<eos>`` included) over every validation pair
    (each process takes its share of the ``batches``; the sums meet, ``sum_over_processes``)."""
    total, words = 0.0, 0
    for batch in batches:
        assert batch.tokens is not None
        batch = batch.to(device)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            loss = model.loss(batch.videos, batch.tokens, batch.caption_videos)
        count = int((batch.tokens != PAD_ID).sum())
        total, words = total + float(loss) * count, words + count
    total, words = sum_over_processes(torch.tensor([total, words], dtype=torch.float64)).tolist()
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
    """The state of one training process: model, optimizer, loaders, run directory, progress.

    Under torchrun (``processes.distributed``) every process holds one, all in step:
    each trains and validates on its share of every batch, and rank 0 alone writes
    (``astar.train.distributed``).
    """

    def __init__(self, config: TrainConfig, paths: RunPaths, data: CaptionData, reader: FeatureReader,
                 model_config: ModelConfig, reward: CaptionReward | None = None,
                 processes: Processes = Processes()) -> None:
        self.config, self.paths, self.data, self.model_config = config, paths, data, model_config
        self.reward, self.processes = reward, processes
        self.device = processes.device(resolve_device(config.device))
        self.autocast = autocast_dtype(self.device, config.precision)
        self.progress = Progress()
        self.saved_step: int | None = None  # the step last.pt holds, once this run wrote or read one
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
        if processes.distributed:  # the same initial weights (DDP copies rank 0's), then each its own dropout and samples
            seed_everything(config.seed + processes.rank)
        objective = (Objective(self.model) if reward is None else
                     SelfCritical(self.model, reward, ScstSettings(config.scst_samples, config.scst_baseline,
                                                                   config.max_caption_len + 1, config.temperature)))
        self.objective = processes.wrap(objective, self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast == torch.float16)

        self.features = self.read_path(reader)
        workers, features, on = config.loader_workers, self.features, self.device
        share = {"rank": processes.rank, "world_size": processes.world_size}
        if reward is not None:
            train_set = CaptionBatches(features, list(data.train_references))
            self.sampler = BucketBatchSampler(train_set.lengths, config.batch_size, seed=config.seed, **share)
        else:
            train_set = CaptionBatches(features, data.train_ids, data.train_captions)
            self.sampler = BucketBatchSampler(train_set.lengths, config.batch_size, seed=config.seed,
                                              captions_per_video=config.captions_per_video, videos=data.train_ids, **share)
        self.train_loader = make_loader(train_set, self.sampler, workers, persistent=True, target=on)
        val_pairs = CaptionBatches(features, data.val_ids, data.val_captions)
        val_sampler = BucketBatchSampler(val_pairs.lengths, config.batch_size, shuffle=False,
                                         captions_per_video=config.captions_per_video, videos=data.val_ids, **share)
        self.val_pairs = make_loader(val_pairs, val_sampler, workers, target=on)
        val_videos = CaptionBatches(features, list(data.references))
        self.val_videos = make_loader(
            val_videos, BucketBatchSampler(val_videos.lengths, config.batch_size, shuffle=False, **share), workers, target=on)

    def read_path(self, reader: FeatureReader) -> FeatureSource:
        """What the run reads its training and val videos from (``--feature-cache``, ``astar.train.data.cache_plan``),
        said in one line; damage met while caching stops the run before it trains, in one line."""
        data = self.data
        videos = [*data.train_ids, *data.train_references, *data.val_ids, *data.references]
        plan = plan_read_path(self.config.feature_cache, reader, videos, self.device, self.processes.local_world_size)
        self.processes.say(plan.line)
        if plan.device is None:
            return reader
        try:
            return FeatureCache.build(reader, videos, plan.device)
        except StoreError as damage:
            kept = (f"{self.paths.checkpoint('last')} is as it was, and astar-train --resume {self.paths.root} continues "
                    "exactly once the store is repaired" if self.config.resume else "repair the store and start again")
            raise TrainingError(f"{damage}; met while caching features, before training: {kept}") from None

    def scalar(self, writer: SummaryWriter | None, name: str, value: float) -> None:
        """One TensorBoard point at the current step (rank 0 holds the only writer)."""
        if writer is not None:
            writer.add_scalar(name, value, self.progress.step)

    # -- checkpoints -------------------------------------------------------

    def restore(self) -> None:
        """Continue from ``last.pt``: model, optimizer, scaler, RNG states and progress."""
        document = load_checkpoint(self.paths.checkpoint("last"), map_location=self.device)
        edited = edited_settings(self.paths, self.config, document)
        if edited:
            raise TrainingError(f"{self.paths.config}: {edited} differ from what {self.paths.checkpoint('last')} was "
                                "trained with; the file was edited, and a resumed run keeps its settings: restore it, "
                                "or start a new run with --init-from")
        if not self.model_config.describes(document.get("model_config")):
            raise TrainingError(f"{self.paths.checkpoint('last')}: its model differs from {self.paths.config}")
        if document.get("data_fingerprint") != self.data.fingerprint:
            raise TrainingError(
                f"{self.paths.root}: the captions or the stored videos changed since the run started; "
                "resume needs the same data (start a new run instead)"
            )
        states = document["rng"] if isinstance(document["rng"], list) else [document["rng"]]  # one per process
        if len(states) != self.processes.world_size:
            raise TrainingError(f"{self.paths.checkpoint('last')}: written by {len(states)} training process(es); "
                                f"resume it with {len(states)} (torchrun --nproc_per_node …) to continue exactly")
        self.model.load_state_dict(document["model"])
        self.optimizer.load_state_dict(document["optimizer"])
        self.scaler.load_state_dict(document["scaler"])
        restore_rng(states[self.processes.rank])
        self.progress = Progress(**document["progress"])
        self.saved_step = self.progress.step

    def _model_document(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "model_config": self.model_config.to_dict(),
                "progress": asdict(self.progress)}

    def save_last(self) -> None:
        """Write ``last.pt`` (rank 0), with every process's RNG state; every process must call it together.

        Raises:
            TrainingError: the weights are no longer finite (``diverged``); nothing is written.
        """
        self.check_weights()
        states = gather_to_main(capture_rng())
        if states is not None:
            save_checkpoint(
                {
                    **self._model_document(),
                    "kind": "last",
                    "optimizer": self.optimizer.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "rng": states if self.processes.distributed else states[0],
                    "data_fingerprint": self.data.fingerprint,
                    "train_config": self.config.to_dict(),  # what resume checks config.toml against
                },
                self.paths.checkpoint("last"),
            )
        self.saved_step = self.progress.step

    def save_best(self) -> None:
        """Write ``best.pt`` (rank 0); every process must call it together. Raises as ``save_last`` does."""
        self.check_weights()
        if self.processes.is_main:
            save_checkpoint({**self._model_document(), "kind": "best", "metric": self.config.metric},
                            self.paths.checkpoint("best"))

    def check_weights(self) -> None:
        """Raise ``diverged`` if a weight is inf or NaN: such a model is never saved. Under DDP every
        process holds the same weights, so all raise together."""
        if not finite_weights(self.model):
            raise self.diverged("the weights are no longer finite numbers")

    def diverged(self, what: str) -> TrainingError:
        """The one line that stops a run whose numbers stopped being finite, at the current step:
        which figure, and that the checkpoints on disk hold the training before it."""
        kept = (f"{self.paths.checkpoint('last')} keeps step {self.saved_step}" if self.saved_step is not None
                else "no checkpoint was written")
        return TrainingError(f"training diverged at step {self.progress.step}: {what}; {kept}; try a lower --lr")

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

    def run(self, writer: SummaryWriter | None, stop: threading.Event) -> str:
        """Train until finished or asked to stop; return why it ended (``TrainResult.stopped``).

        ``last.pt`` is saved at the end of every epoch *before* its validation, so a
        validation that fails (a broken Java, damaged features) never loses the epoch's
        training; a resumed run then validates that epoch first. Damaged data met in a
        training batch saves ``last.pt`` at the step before it (``stop_for``), so after the
        store is repaired ``--resume`` continues exactly; skipping the video would change
        the data unnoticed. A training or validation loss, or a weight about to be saved,
        that is inf or NaN stops the run at that step (``diverged``): the checkpoints on
        disk keep the training before it, and no such model ever becomes ``best.pt``.

        Several processes take every decision together: stop requests are shared at each
        step (``mean_and_any``), and validation scores are rank 0's, handed to all.
        """
        while True:
            if self.validation_due():
                try:
                    self.validate(writer)
                except StoreError as damage:  # last.pt already holds the epoch, its validation due
                    raise self.stop_for(damage, save=False) from None
                self.save_last()
                if self.processes.is_main:
                    write_metrics(self.paths, self.progress.history)
            if mean_and_any((), stop.is_set())[1]:
                return "interrupted"
            if (reason := self.finished()) is not None:
                return reason
            if (stopped := self.train_epoch(writer, stop)) is not None:
                return stopped
            self.progress.epoch += 1
            self.progress.batches_done = 0
            self.save_last()

    def validation_due(self) -> bool:
        """True when the last finished epoch is one to validate and has no validation row yet.

        A run started from another (``init_from``) also validates its starting point, as
        epoch 0: the best checkpoint then starts as the starting model, and fine-tuning
        that never beats it ends with it (SCST's best is never worse on val than its start).
        """
        epoch, history = self.progress.epoch, self.progress.history
        scheduled = epoch % self.config.eval_every == 0 or epoch == self.config.epochs
        starting = epoch == 0 and self.config.init_from is not None
        return (epoch > 0 and scheduled or starting) and (not history or history[-1]["epoch"] != epoch)

    def train_epoch(self, writer: SummaryWriter | None, stop: threading.Event) -> str | None:
        """Train on the rest of the current epoch; None at its end, else why it stopped before
        (``interrupted`` on any process, or ``max steps``)."""
        progress, config = self.progress, self.config
        self.model.train()
        self.sampler.set_epoch(progress.epoch, skip=progress.batches_done)
        started, pairs = time.perf_counter(), 0
        bar = progress_display(total=progress.batches_done + len(self.sampler), initial=progress.batches_done,
                               unit="batch", desc=f"epoch {progress.epoch + 1}/{config.epochs}",
                               enabled=config.progress and self.processes.is_main)
        with bar:
            for batch in self._batches():
                if self.reward is None:
                    measured = (optimizer_step(self.objective, self.optimizer, self.scaler, batch, config.clip_norm,
                                               self.autocast),)
                else:  # (loss, mean sampled reward)
                    measured = self_critical_optimizer_step(self.objective, self.optimizer, self.scaler, batch,
                                                            config.clip_norm, self.autocast)
                measured, stopping = mean_and_any(measured, stop.is_set())
                loss = measured[0]
                progress.batches_done += 1
                progress.step += 1
                if not math.isfinite(loss):  # the mean of every process's: all stop here together
                    raise self.diverged(f"the training loss is {loss}")
                progress.loss_sum += loss
                progress.loss_batches += 1
                pairs += len(batch.video_ids) * self.processes.world_size
                self.scalar(writer, "train/loss", loss)
                if self.reward is not None:
                    self.scalar(writer, "train/reward", measured[1])
                bar.update()
                bar.set_postfix(loss=f"{progress.loss_sum / progress.loss_batches:.3f}",
                                captions_per_s=f"{pairs / (time.perf_counter() - started):.1f}")
                at_max_steps = config.max_steps is not None and progress.step >= config.max_steps
                if at_max_steps or stopping:
                    self.save_last()
                    return "interrupted" if stopping else "max steps"
                if config.checkpoint_every and progress.step % config.checkpoint_every == 0:
                    self.save_last()
        return None

    def _batches(self) -> Iterator[CaptionBatch]:
        """The rest of the epoch's training batches; a damaged video stops training after saving (``run``)."""
        try:
            yield from self.train_loader
        except StoreError as damage:
            raise self.stop_for(damage) from None

    def stop_for(self, damage: StoreError, save: bool = True) -> TrainingError:
        """Save ``last.pt`` (unless it is current) and say, in one line, what stopped training and how to go on.

        Under torchrun only the process that met the damage knows of it, so nothing is
        saved (saving needs all of them); ``last.pt`` then holds the last checkpoint.
        """
        saved = "training so far is saved in"
        if self.processes.distributed:
            saved = "training up to the last checkpoint is in"
        elif save:
            self.save_last()
        return TrainingError(f"{damage}; {saved} {self.paths.checkpoint('last')}, and "
                             f"astar-train --resume {self.paths.root} continues exactly once the store is repaired")

    def validate(self, writer: SummaryWriter | None) -> None:
        """Validation loss and scores, one history row, early-stopping bookkeeping, ``best.pt``.

        Each process takes its share of the validation batches; the loss sums meet, and
        rank 0 scores every process's captions and hands the scores to all.
        """
        progress, config = self.progress, self.config
        self.model.eval()
        row: dict[str, Any] = {
            "epoch": progress.epoch,
            "step": progress.step,
            "train_loss": progress.loss_sum / progress.loss_batches if progress.loss_batches else None,  # None: epoch 0
            "val_loss": validation_loss(self.model, iter(self.val_pairs), self.device, self.autocast),
        }
        progress.loss_sum, progress.loss_batches = 0.0, 0
        if config.metric != "loss":
            predictions = gather_to_main(decode_captions(self.model, iter(self.val_videos), self.data.vocabulary,
                                                         config.max_caption_len + 1, self.device, self.autocast))
            row.update(from_main(lambda: self.scores({key: value for share in predictions for key, value in share.items()}),
                                 TrainingError))
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            tally = tally_videos(self.model, (batch.videos.to(self.device) for batch in self.val_videos),
                                 config.max_caption_len + 1)
        tallies = gather_to_main(tally)
        health = from_main(lambda: combined_figures(tallies or ()), TrainingError)
        progress.history.append({**row, **health})
        measured = {key: value for key, value in row.items() if key not in ("epoch", "step") and value is not None}
        for key, value in measured.items():
            self.scalar(writer, f"val/{key}" if key != "train_loss" else "train/epoch_loss", value)
        for key, value in health.items():
            self.scalar(writer, f"health/{key}", value)
        if not math.isfinite(row["val_loss"]):  # no score of such a model may become the best
            raise self.diverged(f"the validation loss is {row['val_loss']}")
        value = row["val_loss" if config.metric == "loss" else config.metric]
        if improved(config.metric, value, progress.best):
            progress.best, progress.best_epoch, progress.bad_evaluations = value, progress.epoch, 0
            self.save_best()
        else:
            progress.bad_evaluations += 1
            progress.stopped_early = progress.bad_evaluations >= config.patience
        shown = ", ".join(f"{key} {value:.4g}" for key, value in measured.items())
        self.processes.say(f"epoch {progress.epoch}: {shown}" + (" (best)" if progress.best_epoch == progress.epoch else "")
                           + health_line(health))
        self.model.train()

    def scores(self, predictions: dict[str, str]) -> dict[str, float]:
        """Corpus scores of val ``predictions`` (video id → caption) for the history row."""
        metric = self.config.metric
        scores = score_captions(predictions, self.data.references, metrics=METRICS if metric == "METEOR" else TEXT_METRICS)
        if metric in scores.missing:
            raise TrainingError(f"{metric} could not be computed for early stopping: "
                                f"{'; '.join(scores.warnings)}; use --metric CIDEr or --metric loss")
        return scores.corpus


# ---------------------------------------------------------------------------
# Entry point


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
