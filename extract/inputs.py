"""Turning command-line inputs (files, folders, list files, URLs) into the videos to extract.

One scanner serves every command. Its rules:

- A **file** named on the command line (or in a list file) is kept whatever it is,
  so that a missing, dangling or special file is reported and recorded as that
  video's failure (``decode_video`` refuses anything but a regular file at once).
- A **folder** is walked recursively in name order. Symlinked folders are followed
  once; regular files with a video suffix (``VIDEO_SUFFIXES``) become videos with
  ids relative to the folder. Everything else is skipped *and counted*: files
  without a video suffix, dangling symlinks, symlink loops, folders reached twice
  through symlinks, special files (FIFOs, sockets, devices) and unreadable folders.
  ``InputScan.summary`` gives the one line that says so.
- A path that is **not UTF-8** (Linux names are bytes; Python keeps the undecodable ones
  as lone surrogates) is skipped and counted too, wherever it was found: the store
  records ids and sources as text, so it cannot hold that video (storage_schema.md §2).
- A **list file** (``.txt``, ``.lst``, ``.list``; UTF-8, a byte-order mark is
  dropped) names one path or URL per line, relative to the list's folder; blank
  lines and ``#`` comments are skipped. Paths are normalised (``sub/../sub/c.mp4``
  is ``sub/c.mp4``), so one file never gets two ids, and a listed folder is
  scanned as above with ids prefixed by its listed path.
- Sources are absolute, normalised paths that keep the names the user gave
  (symlinks are not resolved), so every message names what the user typed.

Two inputs that map to one video id are refused, unless they are the same file.

A stored video remembers its source's size and modification time
(``source_fingerprint``); ``source_change`` says when the file an id now names is
not the one its features were extracted from.
"""
from __future__ import annotations

import datetime as _dt
import errno
import os
import stat
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import AstarError
from .store.ids import VideoInput, has_scheme, is_url

VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .flv .wmv .3gp .ogv .ts .mts .m2ts .y4m .gif .h264 .264 .hevc .h265".split()
)
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})

NO_VIDEO_SUFFIX = "without a video suffix"
DANGLING_SYMLINK = "dangling symlink"
SYMLINK_LOOP = "symlink loop"
REPEATED_FOLDER = "folder reached twice through symlinks"
SPECIAL_FILE = "special file (FIFO, socket or device)"
UNREADABLE = "unreadable"
NOT_UTF8 = "path not UTF-8 (the store records ids and sources as text)"
EXAMPLES = 2
"""Example names a skip line shows per reason."""


class InputError(AstarError):
    """Inputs that cannot be turned into videos (an unreadable list file, two inputs for one id)."""


@dataclass(frozen=True)
class Skipped:
    """An input or folder entry that is not a video to extract, and why (one of the reasons above)."""

    path: str
    reason: str


@dataclass(frozen=True)
class InputScan:
    """What ``scan_inputs`` found: the videos, in a stable order, and the entries it skipped."""

    videos: tuple[VideoInput, ...]
    skipped: tuple[Skipped, ...]

    def summary(self) -> str | None:
        """One line counting the skipped entries by reason, with examples; None when nothing was skipped."""
        if not self.skipped:
            return None
        counts = Counter(entry.reason for entry in self.skipped)
        parts = []
        for reason, count in counts.most_common():
            examples = [entry.path for entry in self.skipped if entry.reason == reason][:EXAMPLES]
            parts.append(f"{count} {reason} (e.g. {', '.join(examples)})")
        return f"skipped {len(self.skipped)} entries: " + "; ".join(parts)


def collect_inputs(inputs: list[str]) -> list[VideoInput]:
    """The videos of ``scan_inputs(inputs)`` (for callers that do not report skipped entries)."""
    return list(scan_inputs(inputs).videos)


def scan_inputs(inputs: list[str]) -> InputScan:
    """Expand files, folders (recursive), list files and URLs into videos (see the module docstring).

    Raises:
        InputError: a list file cannot be read or decoded, or two different files
            map to the same video id (the message names both).
    """
    found: list[VideoInput] = []
    skipped: list[Skipped] = []
    for item in inputs:
        if is_url(item):
            _scan_url(item, found, skipped)
            continue
        path = Path(item)
        if path.is_dir():
            _scan_folder(path, PurePosixPath(), found, skipped)
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            _scan_list(path, found, skipped)
        else:
            _add_video(PurePosixPath(path.name), absolute_source(str(path)), found, skipped)
    return InputScan(_unique(found), tuple(skipped))


SHOWN_CLASHES = 5
"""Video ids whose clashing inputs the one-line error spells out; the rest are counted."""


def _unique(found: list[VideoInput]) -> tuple[VideoInput, ...]:
    """``found`` without repeats of one file; refuses every id that two different files claim, naming them all."""
    by_id: dict[str, VideoInput] = {}
    clashes: dict[str, list[str]] = {}
    for video in found:
        other = by_id.setdefault(video.video_id, video)
        if other.source != video.source and not _same_file(other.source, video.source):
            clashes.setdefault(video.video_id, [other.source]).append(video.source)
    if clashes:
        shown = "; ".join(f"{video_id!r}: {' and '.join(sources)}" for video_id, sources in list(clashes.items())[:SHOWN_CLASHES])
        more = f"; and {len(clashes) - SHOWN_CLASHES} more" if len(clashes) > SHOWN_CLASHES else ""
        ids = "a video id" if len(clashes) == 1 else f"{len(clashes)} video ids"
        raise InputError(f"{ids} claimed by more than one input (rename or move them): {shown}{more}")
    return tuple(by_id.values())


def _same_file(first: str, second: str) -> bool:
    try:
        return not is_url(first) and not is_url(second) and os.path.samefile(first, second)
    except OSError:
        return False


def _scan_folder(folder: Path, prefix: PurePosixPath, found: list[VideoInput], skipped: list[Skipped]) -> None:
    """Walk ``folder``: videos get ids ``prefix/<relative path>``; everything else goes to ``skipped``."""
    visited: set[tuple[int, int]] = set()

    def walk(current: Path, relative: PurePosixPath, ancestors: frozenset[tuple[int, int]]) -> Iterator[tuple[Path, PurePosixPath]]:
        try:
            identity = _identity(current.stat())
            entries = sorted(os.scandir(current), key=lambda entry: entry.name)
        except OSError as error:
            skipped.append(Skipped(str(current), f"{UNREADABLE} ({error.strerror or error})"))
            return
        if identity in visited:
            reason = SYMLINK_LOOP if identity in ancestors else REPEATED_FOLDER
            skipped.append(Skipped(str(current), reason))
            return
        visited.add(identity)
        for entry in entries:
            path, name = Path(entry.path), relative / entry.name
            kind = _kind(path)
            if kind == "folder":
                yield from walk(path, name, ancestors | {identity})
            elif kind == "file":
                yield path, name
            else:
                skipped.append(Skipped(str(path), kind))

    for path, relative in walk(folder, PurePosixPath(), frozenset()):
        if path.suffix.lower() in VIDEO_SUFFIXES:
            _add_video(prefix / relative, absolute_source(str(path)), found, skipped)
        else:
            skipped.append(Skipped(str(path), NO_VIDEO_SUFFIX))


def _identity(status: os.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino


def _kind(path: Path) -> str:
    """``folder``, ``file`` (regular), or the reason a folder scan skips it."""
    try:
        mode = path.stat().st_mode  # follows symlinks
    except OSError as error:
        if error.errno == errno.ELOOP:
            return SYMLINK_LOOP
        if error.errno == errno.ENOENT and path.is_symlink():
            return DANGLING_SYMLINK
        return f"{UNREADABLE} ({error.strerror or error})"
    if stat.S_ISDIR(mode):
        return "folder"
    return "file" if stat.S_ISREG(mode) else SPECIAL_FILE


def _scan_list(path: Path, found: list[VideoInput], skipped: list[Skipped]) -> None:
    for entry in _list_entries(path):
        if is_url(entry):
            _scan_url(entry, found, skipped)
            continue
        listed = Path(entry)
        source = listed if listed.is_absolute() else path.parent / os.path.normpath(entry)
        relative = PurePosixPath(source.name) if listed.is_absolute() else PurePosixPath(Path(os.path.normpath(entry)).as_posix())
        if source.is_dir():
            _scan_folder(source, PurePosixPath() if listed.is_absolute() else relative, found, skipped)
        else:
            _add_video(relative, absolute_source(str(source)), found, skipped)


def _list_entries(path: Path) -> list[str]:
    """Non-blank, non-comment lines of a list file, stripped."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: byte {error.start}: list files must be UTF-8") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _scan_url(url: str, found: list[VideoInput], skipped: list[Skipped]) -> None:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    protocol = url.split("://", 1)[0]
    if not fs.isdir(root):
        _add_video(PurePosixPath(PurePosixPath(root).name), url, found, skipped)
        return
    for file in sorted(fs.find(root)):
        if PurePosixPath(file).suffix.lower() in VIDEO_SUFFIXES:
            _add_video(PurePosixPath(file).relative_to(root), f"{protocol}://{file}", found, skipped)
        else:
            skipped.append(Skipped(f"{protocol}://{file}", NO_VIDEO_SUFFIX))


def _add_video(relative: PurePosixPath, source: str, found: list[VideoInput], skipped: list[Skipped]) -> None:
    """Add the video at ``source`` under the id ``relative`` gives, or skip it when the store cannot record them."""
    video_id = _id(relative)
    if not (_is_utf8(video_id) and _is_utf8(source)):
        skipped.append(Skipped(source, NOT_UTF8))
        return
    found.append(VideoInput(video_id, source))


def _is_utf8(text: str) -> bool:
    """False for a name with bytes that were not UTF-8 (decoded as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _id(relative: PurePosixPath) -> str:
    """``nested/clip.mp4`` → ``nested/clip`` (only the last suffix goes)."""
    return str(relative.with_suffix("")) if relative.suffix else str(relative)


def absolute_source(source: str) -> str:
    """Sources are recorded absolute so a store says where every video came from, by the name the user gave.

    Symlinks are not resolved: a failure line names the link, never what it points to.
    """
    return source if has_scheme(source) else os.path.normpath(os.path.abspath(source))


def source_fingerprint(source: str) -> dict[str, int | None]:
    """``source_size`` (bytes) and ``source_mtime_ns`` of a source as it is now; None where unknown.

    A local file is ``stat``-ed (symlinks followed); a URL gives the size its file system
    reports and no time (object stores' times are upload times, not content times).
    """
    try:
        if is_url(source):
            import fsspec

            fs, path = fsspec.core.url_to_fs(source)
            return {"source_size": fs.info(path).get("size"), "source_mtime_ns": None}
        status = os.stat(source.removeprefix("file://"))
    except (OSError, ValueError):
        return {"source_size": None, "source_mtime_ns": None}
    return {"source_size": status.st_size, "source_mtime_ns": status.st_mtime_ns}


def source_change(recorded: Mapping[str, Any], source: str) -> str | None:
    """Why ``source`` is not the file a stored video (its attributes ``recorded``) was extracted from; None if it is.

    The content counts, not the path: a file moved or copied with its time kept is the
    same video. A store written before fingerprints were recorded can only compare paths.
    """
    now = source_fingerprint(source)
    if now["source_size"] is None:
        return None  # unreadable now: decoding it would fail, the stored features are all there is
    before = {key: recorded.get(key) for key in now}
    if before["source_size"] is None:
        same = recorded.get("source") in (None, source)
        return None if same else f"extracted from {recorded['source']}, now {source} (the store cannot compare contents)"
    differences = []
    if before["source_size"] != now["source_size"]:
        differences.append(f"size {before['source_size']:,} → {now['source_size']:,} bytes")
    if None not in (before["source_mtime_ns"], now["source_mtime_ns"]) and before["source_mtime_ns"] != now["source_mtime_ns"]:
        differences.append(f"modified {_times(before['source_mtime_ns'], now['source_mtime_ns'])}")
    if not differences:
        return None
    where = "" if recorded.get("source") == source else f"extracted from {recorded.get('source')}, now {source}: "
    return where + ", ".join(differences)


def _times(before_ns: int, after_ns: int) -> str:
    """``before → after`` as UTC times, to the microsecond when they share their second."""
    spec = "seconds" if before_ns // 10**9 != after_ns // 10**9 else "microseconds"
    before, after = (_dt.datetime.fromtimestamp(ns / 1e9, _dt.timezone.utc).isoformat(timespec=spec) for ns in (before_ns, after_ns))
    return f"{before} → {after}"
