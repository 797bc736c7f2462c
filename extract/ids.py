"""Video ids, their store keys, and turning command-line inputs into (id, source) pairs.

A video id is the input path relative to the folder it was found in, without
extension, with ``/`` separators (``nested/clip``, ``-4wsuPCjDBc_5_15``). Its
store key is an injective, reversible encoding that is a single safe path
segment on every file system and object store: lowercase letters, digits, ``-``
and ``_`` stand for themselves, every other UTF-8 byte becomes ``~`` plus two
lowercase hex digits. Keys therefore never contain ``/`` or ``.``, never differ
only by case, and never start with Zarr's reserved ``__``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
MAX_KEY_LENGTH = 200
"""Longer keys are shortened and end in ``~~`` plus a hash; their id is read from the store."""

VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .flv .wmv .3gp .ogv .ts .mts .m2ts .y4m .gif".split()
)
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})


@dataclass(frozen=True)
class VideoInput:
    """One video to extract: its id in the store and where to read it (path or URL)."""

    video_id: str
    source: str


def video_key(video_id: str) -> str:
    """Store key of ``video_id`` (see the module docstring)."""
    encoded = "".join(
        char if char in SAFE else "".join(f"~{byte:02x}" for byte in char.encode("utf-8")) for char in video_id
    )
    if encoded.startswith("__"):
        encoded = "~5f" + encoded[1:]
    if len(encoded) > MAX_KEY_LENGTH:
        digest = hashlib.sha256(video_id.encode("utf-8")).hexdigest()[:32]
        cut = encoded[: MAX_KEY_LENGTH - 34]
        escape = cut.find("~", len(cut) - 2)  # never cut an escape in half
        encoded = (cut if escape == -1 else cut[:escape]) + "~~" + digest
    return encoded


def video_id_from_key(key: str) -> str | None:
    """Invert ``video_key``; None for shortened keys, whose id must be read from the store."""
    if "~~" in key:
        return None
    out = bytearray()
    position = 0
    while position < len(key):
        if key[position] == "~":
            out.append(int(key[position + 1 : position + 3], 16))
            position += 3
        else:
            out.extend(key[position].encode("ascii"))
            position += 1
    return out.decode("utf-8")


def is_url(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


def collect_inputs(inputs: list[str]) -> list[VideoInput]:
    """Expand files, folders (recursive) and list files into videos, in a stable order.

    A folder contributes every file with a video suffix below it, with ids
    relative to the folder. A ``.txt``/``.lst``/``.list`` file lists one path per
    line (relative to the list's folder; blank lines and ``#`` comments skipped).
    A missing path is kept, so that it is reported and recorded as a failure.

    Raises:
        ValueError: two inputs map to the same video id (the message names both).
    """
    found: list[VideoInput] = []
    for item in inputs:
        if is_url(item):
            found.extend(_collect_url(item))
            continue
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            found.extend(VideoInput(_id(p.relative_to(path)), str(p)) for p in files)
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            found.extend(_collect_list(path))
        else:
            found.append(VideoInput(_id(PurePosixPath(path.name)), str(path)))
    by_id: dict[str, VideoInput] = {}
    for video in found:
        other = by_id.setdefault(video.video_id, video)
        if other.source != video.source:
            raise ValueError(f"two inputs map to video id {video.video_id!r}: {other.source} and {video.source}")
    return list(by_id.values())


def _collect_list(path: Path) -> list[VideoInput]:
    videos = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if is_url(entry):
            videos.extend(_collect_url(entry))
            continue
        source = (path.parent / entry) if not Path(entry).is_absolute() else Path(entry)
        relative = PurePosixPath(entry) if not Path(entry).is_absolute() else PurePosixPath(source.name)
        videos.append(VideoInput(_id(relative), str(source)))
    return videos


def _collect_url(url: str) -> list[VideoInput]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    protocol = url.split("://", 1)[0]
    if fs.isdir(root):
        files = sorted(f for f in fs.find(root) if PurePosixPath(f).suffix.lower() in VIDEO_SUFFIXES)
        return [VideoInput(_id(PurePosixPath(f).relative_to(root)), f"{protocol}://{f}") for f in files]
    return [VideoInput(_id(PurePosixPath(PurePosixPath(root).name)), url)]


def _id(relative: PurePosixPath | Path) -> str:
    """``nested/clip.mp4`` → ``nested/clip`` (only the last suffix goes)."""
    posix = PurePosixPath(relative.as_posix())
    return str(posix.with_suffix("")) if posix.suffix else str(posix)
