"""Video ids and their store keys (command-line inputs become ids in ``inputs``).

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

SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
MAX_KEY_LENGTH = 200
"""Longer keys are shortened and end in ``~~`` plus a hash; their id is read from the store."""


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


def has_scheme(source: str) -> bool:
    """Whether ``source`` is written as a URL (``s3://…``, ``file://…``): kept as given, never made absolute."""
    return "://" in source


def is_url(source: str) -> bool:
    """Whether ``source`` is remote: a URL of any protocol but ``file://``, which names a local path."""
    return has_scheme(source) and not source.startswith("file://")


def local_path(source: str) -> str | None:
    """The local path a plain path or ``file://`` URL names; None for a remote URL."""
    return None if is_url(source) else source.removeprefix("file://")
