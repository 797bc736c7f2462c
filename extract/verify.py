"""``astar-verify``: read a whole feature store, find damaged videos, mark them for re-extraction."""
from __future__ import annotations

import sys

import click

from .clitools import CONTEXT_SETTINGS, EXIT_SOME_FAILED, command_error, run_exit_code, storage_option
from .console import say
from .errors import AstarError

EPILOG = f"""\b
Examples:
  astar-verify feats.zarr
  astar-verify feats.zarr --dry-run
  astar-verify s3://bucket/feats.zarr --storage-option endpoint_url=http://127.0.0.1:9000

\b
Every complete video is read in full: its group and status, each array's shape against
its completion marker, and every chunk (checksum, decoding, none missing). A damaged
video loses its completion marker and gets a failure record, so readers no longer list
it and the next astar-extract over its source writes it again; the store index is
rebuilt from the markers (not with --dry-run). Prints one line per
damaged video on stderr and a summary on stdout. Exit codes: 0 nothing damaged;
{EXIT_SOME_FAILED} damaged videos found (and marked, unless --dry-run); 1 the store
cannot be read or marked; 2 usage error.
"""


@click.command(epilog=EPILOG, context_settings=CONTEXT_SETTINGS)
@click.argument("store")
@click.option("--dry-run", is_flag=True, help="Only report damaged videos; leave them marked complete.")
@storage_option()
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
def main(store: str, dry_run: bool, storage_options: tuple[tuple[str, str], ...], quiet: bool) -> None:
    """Check every complete video of a feature store and mark damaged ones for re-extraction.

    STORE is a feature store written by astar-extract (path or fsspec URL).
    """
    from .progress import progress  # the store reader (Zarr) and tqdm load after parsing, not for --help
    from .store.reader import open_store
    from .store.verify import verify_store

    options = dict(storage_options)
    try:
        total = len(open_store(store, options, use_index=False))  # the markers, as verify_store reads them
        with progress(total=total, desc="verify", unit="video", enabled=not quiet) as bar:
            damaged = verify_store(store, options, mark=not dry_run, progress=bar.update)
    except AstarError as error:
        raise command_error(str(error)) from None
    for damage in damaged:
        say(f"damaged: {damage.reason}")
    action = "found" if dry_run else "marked for re-extraction"
    click.echo(f"{total} complete videos checked; {len(damaged)} damaged {action}")
    if damaged and not dry_run:
        say(f"re-run astar-extract with the same inputs and --out {store} to rewrite them")
    sys.exit(run_exit_code(len(damaged)))


if __name__ == "__main__":
    main()
