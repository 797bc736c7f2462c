"""One training process's loop: the ``Trainer`` (model, optimizer, loaders, checkpoints) and its ``Progress``.

``astar.train.trainer.train`` builds one per process and runs it; epochs, validations,
early stopping and the ``last.pt`` / ``best.pt`` checkpoints that make resuming exact
are here.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from astar.extract import StoreError
from astar.extract.devices import autocast_dtype, resolve_device
from astar.extract.progress import progress as progress_display

from .checkpoint import capture_rng, load_checkpoint, restore_rng, restore_weights, save_checkpoint
from .data.cache_plan import plan_read_path
from .data.captions import CaptionData
from .data.feature_cache import FeatureCache
from .data.loader import BucketBatchSampler, CaptionBatches, FeatureReader, FeatureSource, make_loader
from .data.word2vec import load_word2vec
from .distributed import Processes, from_main, gather_to_main, mean_and_any
from .errors import TrainingError
from .model.astar import ASTAR
from .model.batch import CaptionBatch
from .model.config import ModelConfig
from .model.health import combined_figures, health_line, tally_videos
from .model.search import decode_captions
from .objectives.modules import Objective, ScstSettings, SelfCritical
from .objectives.scst import CaptionReward
from .rundir import RunPaths, edited_settings, write_metrics
from .scoring import METRICS, score_captions
from .steps import finite_weights, optimizer_step, seed_everything, self_critical_optimizer_step, validation_loss
from .train_config import TrainConfig

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


TEXT_METRICS = ("BLEU", "ROUGE-L", "CIDEr")
"""Validation scores when stopping on CIDEr or loss: no METEOR JVM per validation."""


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


def improved(metric: str, value: float, best: float | None) -> bool:
    """True if ``value`` beats ``best`` (lower is better for loss, higher for scores)."""
    return best is None or (value < best if metric == "loss" else value > best)


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
        restore_weights(self.model, document["model"], self.paths.checkpoint("last"))
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
