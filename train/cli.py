"""Command-line entry points of the training stage: ``astar-train``, ``astar-eval`` and ``astar-caption``."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, get_args

import click
from click.core import ParameterSource

from astar.extract import AstarError
from astar.extract.clitools import (
    CONTEXT_SETTINGS, EXIT_INTERRUPTED, EXIT_SOME_FAILED, FiniteFloat, command_error, decode_timeout_option,
    storage_option,
)
from astar.extract.console import printable, say
from astar.extract.options import DEVICES
from astar.extract.provenance import random_init_warning

from .data.datasets import DATASETS, SPLITS
from .model.config import Attention
from .model.variants import VARIANTS
from .options import ALIGNED_NORMS, CHECKPOINTS, DEFAULT_BEAM_SIZE, DEFAULT_LOADER_WORKERS, DEVICE_MEMORY_SHARE, FEATURE_CACHES, HOST_MEMORY_SHARE, INPUT_NORMS
from .presets import PRESETS, preset_help
from .recipe_options import DEFAULTS, RECIPE_HELP, recipe_options
from .train_config import MODEL_FIELDS, OBJECTIVES, SCST_BASELINES, TrainConfig

# Each command imports torch and the modules that need it in its body, after click has
# parsed the arguments: --help and usage errors answer without loading them.

TRAIN_EPILOG = f"""\b
Examples:
  astar-train feats.zarr --dataset msvd --annotations data/msvd/
  astar-train feats.zarr --dataset m-vad            # annotations in annotations/m-vad/ beside feats.zarr
  astar-train demo.zarr --dataset csv --annotations demo/captions.csv --preset small --epochs 20
  astar-train feats.zarr --dataset msr-vtt --variant single --layers pool4 --metric METEOR
  astar-train feats.zarr --dataset msvd --attention hard --samples 10 --device cuda
  astar-train --resume runs/msvd-astar-20250101-120000 --epochs 80
  astar-train feats.zarr --dataset msvd --init-from runs/msvd-astar-20250101-120000 --objective scst --lr 5e-5
  torchrun --standalone --nproc_per_node 8 -m astar.train.cli feats.zarr --dataset msr-vtt   # 8 GPUs, one run

\b
Writes RUN_DIR/config.toml, vocab.json, store_attrs.json, metrics.csv, tensorboard/
and checkpoints/{{last,best}}.pt. Without --annotations the captions are looked for in
annotations/<dataset>/ beside the store, then in $ASTAR_DATA/<dataset>/.
Exit codes: 0 finished; 1 an error stopped the run; 2 usage error;
{EXIT_INTERRUPTED} stopped by Ctrl-C/SIGTERM (checkpoint saved; --resume continues).
"""


def split_layers(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...] | None:
    """``--layers pool3 --layers pool4`` or ``--layers pool3,pool4`` → ("pool3", "pool4"); none → None."""
    layers = tuple(name.strip() for value in values for name in value.split(",") if name.strip())
    return layers or None


def _config_values(ctx: click.Context, values: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """CLI values renamed to ``TrainConfig`` fields, and the names given on the command line."""
    explicit = {
        name for name in values
        if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    }
    values = dict(values)
    values["progress"] = not values.pop("quiet")
    values["storage_options"] = dict(values["storage_options"])
    renamed = {"quiet": "progress"}
    return values, {renamed.get(name, name) for name in explicit}


@click.command(epilog=TRAIN_EPILOG, context_settings=CONTEXT_SETTINGS)
@click.argument("store", required=False)
@click.option("--dataset", type=click.Choice(DATASETS), help="Annotation format: msvd (YouTube2Text), msr-vtt, m-vad (LSMDC form) or csv (video_id,caption,split).")
@click.option("--annotations", type=click.Path(), help="Annotation file or folder. Default: annotations/<dataset>/ beside the store, then $ASTAR_DATA/<dataset>/.")
@click.option("--out", metavar="RUN_DIR", help="Run directory to create. Default: runs/<dataset>-<variant>-<timestamp>.")
@click.option("--preset", type=click.Choice(tuple(PRESETS)), default=DEFAULTS["preset"], show_default=True, help=preset_help())
@click.option("--variant", type=click.Choice(tuple(VARIANTS)), default=DEFAULTS["variant"], show_default=True, help="ASTAR or one of the paper's baselines (Table 1). " + "; ".join(f"{v.name}: {v.summary}" for v in VARIANTS.values()) + ".")
@click.option("--layers", multiple=True, callback=split_layers, help="Layers attended to, named as the store names them (C3D: pool2-pool5; video ResNets: layer1-layer4), e.g. --layers pool4,pool5 (repeatable). Default: every stored layer; exactly one for --variant single.")
@click.option("--attention", type=click.Choice(get_args(Attention)), default=DEFAULTS["attention"], show_default=True, help="soft (eq. 7); hard, the paper's hard attention (Section 3.2): a position i ~ Mult(alpha_t) and a layer l ~ Mult(beta_t) per word, trained by the K-sample VIMCO bound (eqs. 8-14), the most probable pair at test time; hard_layer: only the layer is sampled, positions stay soft (lower-variance).")
@click.option("--order", type=click.Choice(["position_first", "layer_first"]), default=DEFAULTS["order"], show_default=True, help="Which attention comes first (Section 3.2).")
@recipe_options
@click.option("--input-norm", type=click.Choice(INPUT_NORMS), default=DEFAULTS["input_norm"], show_default=True, help="How stored maps are scaled before the eq. 4 alignment: channel (centred and scaled per channel by training-video statistics) or rms (one divisor per layer, not centred: most alignment channels die in training). See README, 'Input and aligned-map normalisation'.")
@click.option("--aligned-norm", type=click.Choice(ALIGNED_NORMS), default=DEFAULTS["aligned_norm"], show_default=True, help="rms: each video's aligned map of each layer is divided by its RMS over valid positions before attention (eqs. 5-6), so no layer saturates the scores and positions keep their contrast; layer: every position vector normalised over its channels; none: as aligned.")
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULTS["epochs"], show_default=True, help="Most epochs (passes over every training video-caption pair).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Video-caption pairs per step (videos for --objective scst). Default: the preset's recipe, " + RECIPE_HELP["batch_size"] + ".")
@click.option("--captions-per-video", type=click.IntRange(min=1), default=DEFAULTS["captions_per_video"], show_default=True, help="Captions of one video per batch, sharing its alignment (eq. 4 runs once per video): a batch holds batch-size / C videos. 1 = the paper's independent pairs.")
@click.option("--paper-split", is_flag=True, help="MSR-VTT: the paper's re-split of the official training set.")
@click.option("--device", type=click.Choice(DEVICES), default=DEFAULTS["device"], show_default=True, help="auto picks CUDA when present.")
@click.option("--seed", type=int, default=DEFAULTS["seed"], show_default=True, help="Seeds initialisation, dropout, hard-attention samples and batch order.")
@click.option("--objective", type=click.Choice(OBJECTIVES), default=DEFAULTS["objective"], show_default=True, help="xent: maximum likelihood (eq. 3). scst: self-critical sequence training on CIDEr-D of the training references (needs --init-from).")
@click.option("--init-from", metavar="RUN_DIR", help="Start from this run's best checkpoint (weights, vocabulary, input scales); its model flags are taken unless given. Recorded in the new run's config.toml.")
@click.option("--scst-samples", type=click.IntRange(min=1), default=DEFAULTS["scst_samples"], show_default=True, help="Captions sampled per video by --objective scst.")
@click.option("--scst-baseline", type=click.Choice(SCST_BASELINES), default=DEFAULTS["scst_baseline"], show_default=True, help="Reward baseline: mean (mean reward of the video's other samples; measured better on the demo data) or greedy (the greedy caption's reward, Rennie et al.).")
@click.option("--temperature", type=FiniteFloat(min=0, min_open=True), help="--objective scst samples words from softmax(logits / temperature). Default: the preset's recipe, " + RECIPE_HELP["scst_temperature"] + ".")
@click.option("--bleu-weight", type=FiniteFloat(min=0), default=DEFAULTS["bleu_weight"], show_default=True, help="--objective scst rewards CIDEr-D + this weight x BLEU-4.")
@click.option("--loader-workers", type=click.IntRange(min=0), default=DEFAULTS["loader_workers"], show_default=True, help="Processes reading features from the store (0: in the training process).")
@click.option("--feature-cache", type=click.Choice(FEATURE_CACHES), default=DEFAULTS["feature_cache"], show_default=True, help="Decompress the train and val features the model reads once and serve them from memory: device (on the training GPU), host (one copy in shared RAM for every loader worker), none (stream from the store), auto (device if it fits " + f"{DEVICE_MEMORY_SHARE:.0%} of the GPU's free memory, else host if it fits {HOST_MEMORY_SHARE:.0%} of the available RAM, else none; prints which). Same results whichever.")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=DEFAULTS["checkpoint_every"], show_default=True, help="Also save last.pt every this many steps (0: only at epoch ends).")
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after this many optimizer steps in total (resumable).")
@storage_option(" Not saved in the run (give again with --resume).")
@click.option("--resume", metavar="RUN_DIR", help="Continue a run exactly where it stopped; its config.toml fixes every setting but store, epochs, patience, max-steps, device, loader-workers, feature-cache, checkpoint-every and storage options.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.pass_context
def train_command(ctx: click.Context, **values: Any) -> None:
    """Train ASTAR (or a baseline) on a feature store and a dataset's captions (Section 4.2).

    STORE is a feature store written by astar-extract (path or fsspec URL). Adam
    (lr 2e-4; small preset 1e-2), batches of 32 video-caption pairs (small: 16)
    bucketed by length, gradient clipping at 5, early stopping on the val split.
    --objective scst then fine-tunes a trained run on CIDEr-D. Ctrl-C stops at the next step
    with a checkpoint; --resume continues exactly.
    """
    import torch

    from .distributed import Processes
    from .rundir import resume_config
    from .trainer import train

    values, explicit = _config_values(ctx, values)
    main = Processes.from_environment().is_main
    try:
        config = (resume_config(values["resume"], **{name: values[name] for name in explicit - {"resume"}})
                  if values["resume"] else _fresh_config(values, explicit))
    except ValueError as error:
        raise command_error(error, usage=True) if main else click.exceptions.Exit(2) from None
    except AstarError as error:
        raise _failure(str(error), main) from None
    try:
        result = train(config)
    except AstarError as error:
        raise _failure(str(error), main) from None
    except torch.OutOfMemoryError:
        raise _failure(f"out of memory at batch size {config.batch_size}; try a smaller --batch-size "
                       f"(e.g. {max(config.batch_size // 2, 1)}) or the small --preset", main) from None
    except OSError as error:
        raise _failure(f"{error.filename or 'run directory'}: {error.strerror or error}", main) from None
    if main:
        say(f"run directory: {result.run_dir}")
    if result.stopped == "interrupted":
        if main:
            say(f"stopped; continue with: astar-train --resume {result.run_dir}")
        sys.exit(EXIT_INTERRUPTED)


def _failure(message: str, main: bool) -> Exception:
    """The one-line error of a run that cannot start or go on; under torchrun only rank 0 prints it, the others just exit 1."""
    if main:
        return command_error(message)
    return click.exceptions.Exit(1)


def _fresh_config(values: dict[str, Any], explicit: set[str]) -> TrainConfig:
    """A new run's config; with --init-from, the model flags not given are the starting run's.

    ``--layers`` are checked against the layers the store holds (a usage error).
    """
    from astar.extract import open_store

    from .rundir import read_run_config

    if not values["store"] or not values["dataset"]:
        raise ValueError("give STORE and --dataset (or --resume RUN_DIR)")
    if values["init_from"]:
        origin, _ = read_run_config(values["init_from"])
        values = {**values, **{name: getattr(origin, name) for name in MODEL_FIELDS if name not in explicit}}
    config = TrainConfig(**values)
    if config.layers:
        stored = open_store(config.store, config.storage_options).layer_names
        unknown = [name for name in config.layers if name not in stored]
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: choose from {', '.join(stored)} (the store's layers)")
    return config


# ---------------------------------------------------------------------------
# astar-eval, astar-caption

def _warn_random_init(store_attrs: dict[str, Any]) -> None:
    warning = random_init_warning(store_attrs.get("model", {}))
    if warning:
        click.echo(warning, err=True)


def decoding_options(command: Any) -> Any:
    """The beam search and model options ``astar-eval`` and ``astar-caption`` share."""
    for option in reversed([
        click.option("--checkpoint", type=click.Choice(CHECKPOINTS), default="best", show_default=True, help="best: the best validation score; last: the latest state."),
        click.option("--beam-size", type=click.IntRange(min=1), default=DEFAULT_BEAM_SIZE, show_default=True, help="Beam search width; 1 is greedy decoding."),
        click.option("--length-penalty", type=FiniteFloat(min=0), default=0.0, show_default=True, help="alpha of GNMT's length penalty ((5+n)/6)^alpha; larger favours longer captions."),
        click.option("--max-len", type=click.IntRange(min=1), help="Most tokens per caption, <eos> included. Default: the run's --max-caption-len + 1."),
        click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True, help="auto picks CUDA when present."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
    ]):
        command = option(command)
    return command


EVAL_EPILOG = """\b
Examples:
  astar-eval runs/msvd-astar-20250101-120000
  astar-eval runs/msvd-astar-20250101-120000 --split val --beam-size 1 --checkpoint last
  astar-eval demo_output/run --store /data/feats.zarr --out demo_output/eval-test-beam3 --beam-size 3

\b
Writes OUT/scores.json (corpus BLEU-1..4, METEOR, ROUGE-L, CIDEr; warnings; the
decoding settings) and OUT/per_video.csv (video_id, caption, references, per-video
scores). METEOR and the PTB tokenizer need Java; without it METEOR is left out and
one warning says what to install. Exit codes: 0 scored; 1 an error; 2 usage error.
"""


@click.command(epilog=EVAL_EPILOG, context_settings=CONTEXT_SETTINGS)
@click.argument("run_dir")
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True, help="Split to caption and score.")
@decoding_options
@click.option("--store", help="Feature store to read. Default: the one the run was trained on.")
@click.option("--annotations", type=click.Path(), help="Annotation file or folder. Default: the run's.")
@storage_option()
@click.option("--out", help="Output folder. Default: RUN_DIR/eval-<split>.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Videos per beam search. Default: the run's batch size.")
@click.option("--loader-workers", type=click.IntRange(min=0), default=DEFAULT_LOADER_WORKERS, show_default=True, help="Processes reading features from the store (0: this process).")
def eval_command(run_dir: str, quiet: bool, **values: Any) -> None:
    """Caption a split with a trained run and score it with pycocoevalcap (Section 4.3).

    RUN_DIR is a run directory written by astar-train. Every video of the split that
    is in the store is captioned by beam search and scored against its references.
    """
    from .evaluate import EvalConfig, evaluate, format_scores

    options = EvalConfig(**{**values, "storage_options": dict(values["storage_options"])}, progress=not quiet)
    try:
        result = evaluate(run_dir, options)
    except AstarError as error:
        raise command_error(str(error)) from None
    click.echo(result.report.summary(), err=True)
    for warning in result.scores.warnings:
        click.echo(f"warning: {warning}", err=True)
    _warn_random_init(result.store_attrs)
    settings = result.settings
    click.echo(f"{settings['split']} split, {len(result.scores.per_video)} videos, beam size {settings['beam_size']}, "
               f"{settings['checkpoint']} checkpoint (epoch {settings['epoch']}); scores ×100:")
    click.echo(format_scores(result.scores))
    say(f"wrote {result.out_dir / 'scores.json'} and {result.out_dir / 'per_video.csv'}")


CAPTION_EPILOG = f"""\b
Examples:
  astar-caption runs/msvd-astar-20250101-120000 cat.mp4 dog.mkv --weights c3d.pickle
  astar-caption demo_output/run demo_output/heldout/heldout.mp4 --attention figures/
  astar-caption demo_output/run clips/*.mp4 --json > captions.json

\b
Videos are decoded and run through C3D exactly as the run's store was made: the
same preprocessing and weights (a random-init run re-creates its random network from
the recorded seed; a run on a weights file needs --weights with that file, checked by
sha256). Prints "video: caption" per video, or with --json a list of
{{video, caption, log_prob, error}}. A missing or corrupt file gets one line on stderr
and the others are still captioned. Exit codes: 0 all captioned; 1 an error; 2 usage
error; {EXIT_SOME_FAILED} some videos failed.
"""


@click.command(epilog=CAPTION_EPILOG, context_settings=CONTEXT_SETTINGS)
@click.argument("run_dir")
@click.argument("videos", nargs=-1, required=True)
@click.option("--weights", type=click.Path(dir_okay=False), help="C3D weights file the run's store was extracted with (not for random-init runs).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {video, caption, log_prob, error} instead of lines.")
@click.option("--attention", type=click.Path(file_okay=False, path_type=Path), help="Folder for one attention figure per video (PNG, as the paper's Figure 3).")
@decode_timeout_option
@decoding_options
def caption_command(run_dir: str, videos: tuple[str, ...], weights: str | None, as_json: bool, attention: Path | None,
                    decode_timeout: float, checkpoint: str, beam_size: int, length_penalty: float, max_len: int | None,
                    device: str, quiet: bool) -> None:
    """Caption new video files with a trained run.

    RUN_DIR is a run directory written by astar-train; VIDEOS are video files.
    """
    from astar.extract.devices import resolve_device

    from .caption import caption_videos, prepare_extraction
    from .loaded_run import load_run

    try:
        torch_device = resolve_device(device)
        run = load_run(run_dir, checkpoint, torch_device)
        settings, extractor = prepare_extraction(run, weights, torch_device.type, decode_timeout)
    except AstarError as error:
        raise command_error(str(error)) from None
    _warn_random_init(run.store_attrs)
    try:
        results = caption_videos(run, videos, settings, extractor, beam_size, length_penalty, max_len, attention,
                                 progress=not quiet)
    except AstarError as error:  # an --attention folder astar may not write into
        raise command_error(str(error)) from None
    for result in results:
        if result.error is not None:
            say(f"failed: {result.video}: {result.error}")
        elif not as_json:
            click.echo(printable(f"{result.video}: {result.caption}"))
        if attention is not None and result.error is None:
            say(f"attention figure: {result.figure}" if result.figure else
                f"{result.video}: no attention figure (the {run.model_config.variant} model attends to nothing "
                "or the caption is empty)")
    if as_json:
        click.echo(json.dumps([result.to_json() for result in results], indent=2))
    if any(result.error is not None for result in results):
        sys.exit(EXIT_SOME_FAILED)


if __name__ == "__main__":
    train_command()
