"""``astar-extract``: videos → a backbone's multi-level features in a Zarr store (storage_schema.md)."""
from __future__ import annotations

import sys

import click

from .backbones import BACKBONES, DEFAULT_BACKBONE
from .clitools import (
    CONTEXT_SETTINGS, EXIT_INTERRUPTED, EXIT_SOME_FAILED, command_error, decode_timeout_option, run_exit_code,
    storage_option,
)
from .console import say
from .errors import AstarError
from .inputs import InputError, scan_inputs
from .options import DEVICES, MAX_FRAMES_PER_PASS, PRECISION_NAMES
from .preprocessing import PREPROCESSINGS
from .provenance import random_init_warning

EPILOG = f"""\b
Examples:
  astar-extract videos/ --out feats.zarr
  astar-extract clips.txt --out feats.zarr --weights c3d.pickle --device cuda
  astar-extract videos/ --out f.zarr --backbone r2plus1d_18 --weights r2plus1d_18-91a641e6.pth
  astar-extract a.mp4 b.webm --out feats.zarr --precision bf16
  astar-extract videos/ --out s3://bucket/feats.zarr --workers 4
  astar-extract clips.txt --out feats.zarr --scheduler tcp://10.0.0.5:8786

\b
Exit codes: 0 every video stored; {EXIT_SOME_FAILED} some videos failed (recorded in the
store's failures table; re-running retries them); 1 an error stopped the run
(store or weights unusable); 2 usage error.
"""


@click.command(epilog=EPILOG, context_settings=CONTEXT_SETTINGS)
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "-o", required=True, help="Feature store to create or add to (path or fsspec URL such as s3://bucket/feats.zarr).")
@click.option("--backbone", type=click.Choice(list(BACKBONES)), default=DEFAULT_BACKBONE, show_default=True, help="Network whose layers are stored: " + "; ".join(f"{b.name}: {b.summary}" for b in BACKBONES.values()) + ".")
@click.option("--weights", type=click.Path(dir_okay=False), help="The backbone's weights. C3D: the PyTorch c3d.pickle state dict or an mmaction2 C3D checkpoint. Video ResNets: a torchvision .pth state dict, or KINETICS400_V1 (downloaded through torchvision when it imports). Default: random-init (said loudly everywhere).")
@click.option("--preprocess", type=click.Choice(sorted(PREPROCESSINGS)), help="paper: resize to 112×112 RGB (Section 4.2). c3d: Caffe recipe (128×171, BGR, Sports-1M mean, centre crop 112). kinetics: torchvision's (128×171, crop 112, Kinetics mean/std). Default: what the weights expect (c3d for c3d.pickle, paper for random-init C3D, kinetics for the video ResNets).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True, help="Where the backbone runs; auto picks CUDA when present.")
@click.option("--precision", type=click.Choice(sorted(PRECISION_NAMES)), help="Compute precision. Default: fp32 on CPU, bf16 on CUDA. Features are stored as float16 either way.")
@click.option("--overwrite", is_flag=True, help="Start the store afresh instead of resuming: deletes what it holds, and refuses anything at --out that is not an astar store.")
@click.option("--decoders", type=click.IntRange(min=1), help="Decoder processes feeding C3D. Default: every core but one with CUDA, one on the CPU (C3D takes the cores); on Dask, each worker's thread count.")
@click.option("--reextract-changed", is_flag=True, help="Extract again the stored videos whose source changed (size or modification time) since they were stored; without it they are kept and listed.")
@decode_timeout_option
@click.option("--max-frames-per-pass", type=click.IntRange(min=112), default=MAX_FRAMES_PER_PASS, show_default=True, help="Longer videos go through C3D in overlapping tiles (identical result, bounded memory).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of random-init weights.")
@storage_option()
@click.option("--workers", type=click.IntRange(min=1), help="Run on a local Dask cluster of this many worker processes (one thread each) instead of in this process.")
@click.option("--scheduler", metavar="ADDRESS_OR_FILE", help="Run on an existing Dask cluster: scheduler address (tcp://host:8786) or scheduler file. Workers must see the inputs, weights and store.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def main(
    inputs: tuple[str, ...],
    out: str,
    backbone: str,
    weights: str | None,
    preprocess: str | None,
    device: str,
    precision: str | None,
    overwrite: bool,
    reextract_changed: bool,
    decode_timeout: float,
    decoders: int | None,
    max_frames_per_pass: int,
    seed: int,
    storage_options: tuple[tuple[str, str], ...],
    workers: int | None,
    scheduler: str | None,
    quiet: bool,
) -> None:
    """Extract a backbone's feature maps (C3D: pool2–pool5) and top feature (fc7) into a Zarr feature store.

    INPUTS are video files, folders (searched recursively; video ids are paths
    relative to the folder, without extension) or .txt/.lst files listing one
    path or folder per line; what a folder scan skips is counted in one line. Videos are sampled at 2 fps, the whole video goes through the
    backbone
    once, and a run resumes where the last one stopped: completed videos are
    skipped, failed ones retried.
    """
    # Imported once the arguments are parsed: torch, Dask and PyAV are not needed for --help or a usage error.
    from .dask_executor import dask_client
    from .extraction import extract_videos
    from .extractor import ExtractionConfig, Extractor
    from .store.reader import StoreMismatchError

    if workers and scheduler:
        raise click.UsageError("--workers starts a local cluster and --scheduler uses an existing one; give one")
    try:
        scan = scan_inputs(list(inputs))
    except InputError as error:
        raise command_error(error, usage=True) from None
    except OSError as error:
        raise command_error(f"cannot read inputs: {error}") from None
    if scan.summary():
        say(scan.summary())
    videos = list(scan.videos)
    if not videos:
        raise command_error(f"no videos found in {', '.join(inputs)}", usage=True)
    settings = ExtractionConfig(
        weights=weights,
        backbone=backbone,
        preprocess=preprocess,
        device=device,
        precision=precision,
        seed=seed,
        max_frames_per_pass=max_frames_per_pass,
        decode_timeout=decode_timeout,
        decoders=decoders,
        storage_options=dict(storage_options),
    )
    try:
        extractor = Extractor.build(settings)
    except AstarError as error:
        raise command_error(str(error)) from None
    click.echo(extractor.banner(), err=True)
    say(f"{len(videos)} videos → {out} on {extractor.device.type} ({extractor.precision}, "
        f"preprocessing {extractor.preprocessing.name})")
    try:
        if workers or scheduler:
            with dask_client(workers, scheduler) as client:
                click.echo(f"Dask dashboard: {client.dashboard_link}", err=True)
                summary = extract_videos(videos, out, settings, client=client, overwrite=overwrite,
                                         progress=not quiet, extractor=extractor, reextract_changed=reextract_changed)
        else:
            summary = extract_videos(videos, out, settings, overwrite=overwrite, progress=not quiet, extractor=extractor,
                                     reextract_changed=reextract_changed)
    except StoreMismatchError as error:
        raise command_error(f"{error}; use --overwrite to start it afresh, or another --out") from None
    except AstarError as error:
        raise command_error(str(error)) from None
    except KeyboardInterrupt:
        click.echo("interrupted: completed videos are kept; re-run the same command to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    click.echo(summary.line())
    warning = random_init_warning(extractor.weights.describe())
    if warning:
        click.echo(warning, err=True)
    sys.exit(run_exit_code(summary.count("failed")))


if __name__ == "__main__":
    main()
