"""The one rule for every folder astar writes into or deletes: only its own, or an empty one.

Every command that writes a folder (``astar-extract --out``, ``astar-train --out``,
``astar-eval --out``, ``astar-ablate --out`` and its rows, the demo's ``--out``,
``astar-caption --attention``) claims it first with ``claim_folder``:

- a folder that is absent is created, and one that is empty is taken;
- a folder astar made for the same purpose (its *kind*) is used again;
- anything else is refused in one line naming it: a file, a non-empty folder astar
  did not make, or one astar made for another purpose;
- ``overwrite=True`` first removes the entries the caller names as its kind's own (a
  store's schema nodes, a run's files from before its first checkpoint), and only in a
  folder astar made for this purpose: user data cannot be deleted, neither the folder nor
  a file a user put beside astar's, and a folder reached through a symlink stays one.

A folder is recognised as astar's by what astar writes into it first: a feature store
by its root ``zarr.json`` with an ``astar_schema_version`` attribute
(storage_schema.md §1 and §3), every other kind by the marker file ``.astar-folder.json``
(``{"kind": …, "astar_version": …, "created": …}``). Paths may be local or fsspec URLs.
Each stage registers the kinds it writes (``register_kind``): this module knows only the store.
"""
from __future__ import annotations

import datetime as _dt
import json
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AstarError

if TYPE_CHECKING:
    import fsspec

MARKER = ".astar-folder.json"
"""File that marks a folder (other than a store) as astar's, with the kind it was made for."""

KIND_WORDS: dict[str, str] = {}
"""Every registered kind of folder (its marker's ``kind``) → the words astar's messages use for it."""


def register_kind(kind: str, words: str) -> str:
    """Register a kind of folder that a stage writes (``RUN_FOLDER = register_kind("run", "training run
    directory")``), so that ``claim_folder`` takes it and messages name it; returns ``kind``.

    Raises:
        ValueError: ``kind`` is registered already with other words.
    """
    if KIND_WORDS.setdefault(kind, words) != words:
        raise ValueError(f"folder kind {kind!r} is registered already as {KIND_WORDS[kind]!r}")
    return kind


STORE = register_kind("store", "feature store")


class FolderError(AstarError):
    """A folder astar may not write into or delete; the message names it and says why, in one line."""


def _a(kind: str) -> str:
    """``a feature store``, ``an evaluation output folder``: the kind's words with their article."""
    words = _words(kind)
    return f"{'an' if words[0] in 'aeiou' else 'a'} {words}"


def _words(kind: str) -> str:
    """A kind's words; a marker's kind this process has not registered (its stage is not imported) by its name."""
    return KIND_WORDS.get(kind, f"{kind} folder")


def astar_version() -> str:
    try:
        return version("astar")
    except PackageNotFoundError:
        return "unknown"


def _filesystem(url: str, storage_options: dict | None) -> tuple[fsspec.AbstractFileSystem, str]:
    import fsspec  # here: importing this module (astar-ablate's --help does) should not load every filesystem

    return fsspec.core.url_to_fs(str(url), **{"use_listings_cache": False, **(storage_options or {})})


def _read_json(fs: fsspec.AbstractFileSystem, path: str) -> dict[str, Any] | None:
    """A JSON object stored at ``path``, or None when absent or unreadable."""
    try:
        with fs.open(path, "rb") as stream:
            document = json.loads(stream.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def folder_kind(url: str, storage_options: dict | None = None) -> str | None:
    """The kind of astar folder at ``url`` (its marker's ``kind``, registered or not), or None when astar did not make it."""
    fs, path = _filesystem(url, storage_options)
    root = _read_json(fs, f"{path}/zarr.json")
    if root is not None and "astar_schema_version" in root.get("attributes", {}):
        return STORE
    marker = _read_json(fs, f"{path}/{MARKER}")
    kind = marker.get("kind") if marker is not None else None
    return kind if isinstance(kind, str) and kind else None


def _entries(fs: fsspec.AbstractFileSystem, path: str) -> list[str] | None:
    """Names in the folder at ``path``; None when nothing is there."""
    try:
        return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False)]
    except FileNotFoundError:
        return None


def check_folder(url: str, kind: str, overwrite: bool = False, storage_options: dict | None = None) -> bool:
    """Whether ``claim_folder`` may take ``url`` for ``kind``, leaving nothing behind; True when it holds something.

    Raises:
        FolderError: ``url`` is a file, a non-empty folder astar did not make, or one
            it made for another kind (whether or not ``overwrite`` is given), or a local
            folder this process cannot write (``_writable_or_raise``).
    """
    if kind not in KIND_WORDS:
        raise ValueError(f"unknown folder kind {kind!r} (register_kind it); registered: {', '.join(KIND_WORDS)}")
    fs, path = _filesystem(url, storage_options)
    try:
        if fs.isfile(path):
            raise FolderError(f"{url}: is a file, not {_a(kind)}; choose another path")
        entries = _entries(fs, path)
    except OSError as error:
        raise FolderError(f"{url}: cannot read ({error.strerror or error})") from None
    found = folder_kind(url, storage_options) if entries else None
    if entries and found != kind:
        made = f"is astar's {_words(found)}" if found else "is not empty and was not made by astar"
        deleting = " (--overwrite deletes only what astar made for this)" if overwrite else ""
        raise FolderError(f"{url}: {made}, not {_a(kind)}; choose another path{deleting}")
    if _is_local(fs):
        _writable_or_raise(url, path)
    return bool(entries)


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _writable_or_raise(url: str, path: str) -> None:
    """Create and remove a file in ``path``, or in its deepest existing folder when it does not exist yet.

    Permission bits do not say it (root passes them on a read-only mount): only a write does.
    """
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise FolderError(f"{url}: cannot write here ({error.strerror or error}); choose another path") from None


def claim_folder(
    url: str, kind: str, overwrite: bool = False, storage_options: dict | None = None, own: tuple[str, ...] = ()
) -> bool:
    """Make ``url`` a folder of ``kind`` to write into, by the module's rule; True when it was new or emptied.

    Args:
        own: with ``overwrite``, the names of the entries astar writes for ``kind``; only
            these are removed, and the folder itself stays (with any foreign file in it).

    Raises:
        FolderError: as ``check_folder``, or the folder cannot be written.
    """
    if overwrite and not own:
        raise ValueError(f"overwriting {_a(kind)} needs the names of its own entries")
    held = check_folder(url, kind, overwrite, storage_options)
    fs, path = _filesystem(url, storage_options)
    refuse_missing_bucket(fs, path, url)
    try:
        if held and overwrite:
            remove_entries(fs, path, own)
            held = False
        fs.makedirs(path, exist_ok=True)
        if kind != STORE and not held:
            _write_marker(fs, path, kind)
    except OSError as error:
        raise FolderError(f"{url}: cannot write here ({error.strerror or error})") from None
    return not held


BUCKET_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
"""Object stores whose first path component is a bucket (or container), which astar never creates."""
PROCESS_LOCAL_PROTOCOLS = frozenset({"memory"})
"""File systems that live inside one process: each Dask worker would write its own."""


def _protocols(fs: fsspec.AbstractFileSystem) -> set[str]:
    return {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)


def refuse_missing_bucket(fs: fsspec.AbstractFileSystem, path: str, url: str) -> None:
    """Refuse a path in a bucket that does not exist: writing there would create it (s3fs
    does), so a typo in a bucket name would make a new bucket.

    Raises:
        FolderError: naming the bucket.
    """
    if not _protocols(fs) & BUCKET_PROTOCOLS:
        return
    bucket = path.strip("/").split("/", 1)[0]
    try:
        exists = fs.exists(bucket)
    except OSError as error:
        raise FolderError(f"{url}: cannot read bucket {bucket} ({error.strerror or error})") from None
    if not exists:
        raise FolderError(f"{url}: bucket {bucket} does not exist; astar never creates buckets (check its name)")


def is_process_local(url: str, storage_options: dict | None = None) -> bool:
    """Whether ``url`` is on a file system only this process sees (``memory://``)."""
    return bool(_protocols(_filesystem(url, storage_options)[0]) & PROCESS_LOCAL_PROTOCOLS)


def _write_marker(fs: fsspec.AbstractFileSystem, path: str, kind: str) -> None:
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    document = {"kind": kind, "astar_version": astar_version(), "created": created}
    with fs.open(f"{path}/{MARKER}", "wb") as stream:
        stream.write((json.dumps(document) + "\n").encode("utf-8"))


def remove_entries(fs: fsspec.AbstractFileSystem, path: str, names: tuple[str, ...]) -> None:
    """Delete the entries ``names`` of the folder at ``path`` that exist; nothing else in it."""
    present = set(_entries(fs, path) or ())
    for name in names:
        if name in present:
            fs.rm(f"{path}/{name}", recursive=True)
