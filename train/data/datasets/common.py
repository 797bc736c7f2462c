"""What every annotation adapter shares: the splits, the ``Caption`` record, the one error, and reading files.

Files may have LF or CRLF line endings, a UTF-8 byte-order mark and no final newline; a file
that cannot be used raises ``AnnotationError`` naming it, and the line or record where one
applies, with the reason in one line.
"""
from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from astar.extract import AstarError

from ...text import normalize

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}
"""Split names accepted in annotation files, mapped to ``SPLITS`` (MSR-VTT says ``validate``)."""

EXAMPLES = 3
"""How many example ids a one-line report or error shows."""


class AnnotationError(AstarError):
    """An annotation file or folder cannot be used; the message names it and the reason in one line."""


@dataclass(frozen=True)
class Caption:
    """One reference sentence of one video.

    ``video_id`` is the name of the video in the dataset (and, after ``match_store``,
    in the feature store); ``split`` is one of ``SPLITS``.
    """

    video_id: str
    text: str
    split: str


def examples(ids: Iterable[str]) -> str:
    return ", ".join(ids) or "none"


def read_text(path: Path, errors: str = "strict") -> str:
    """Text of ``path`` decoded as UTF-8 (a byte-order mark is dropped)."""
    try:
        return path.read_bytes().decode("utf-8-sig", errors=errors)
    except OSError as error:
        raise AnnotationError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{path}: byte {error.start}: not UTF-8") from None


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines of ``path`` with their 1-based numbers; LF and CRLF both end a line.

    Only ``\\n`` splits lines (not ``str.splitlines``, which also splits at form feeds
    and Unicode separators that can occur inside a sentence).
    """
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line


def tab_rows(path: Path, fields: int) -> Iterator[tuple[int, list[str]]]:
    """Numbered rows of a headerless tab-separated file; quotes are literal text."""
    for number, line in numbered_lines(path):
        row = line.split("\t")
        if len(row) != fields:
            raise AnnotationError(f"{path}: line {number}: expected {fields} tab-separated fields, got {len(row)}")
        yield number, row


def csv_rows(path: Path, columns: tuple[str, ...], errors: str = "strict") -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with a header holding ``columns``, with the line number where each ends."""
    reader = csv.DictReader(io.StringIO(read_text(path, errors), newline=""))
    try:
        missing = [column for column in columns if column not in (reader.fieldnames or ())]
        if missing:
            raise AnnotationError(f"{path}: line 1: header lacks column(s) {', '.join(missing)}")
        for row in reader:
            if None in row or None in row.values():
                raise AnnotationError(
                    f"{path}: line {reader.line_num}: expected {len(reader.fieldnames)} comma-separated fields "
                    "(quote fields that contain commas)"
                )
            yield reader.line_num, row
    except csv.Error as error:
        raise AnnotationError(f"{path}: line {reader.line_num}: {error}") from None


def annotation_files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """``[path]`` for a file; for a folder, its files ending in one of ``suffixes``, sorted by name."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise AnnotationError(f"{path}: no such file or folder")
    files = sorted(child for child in path.iterdir() if child.is_file() and child.suffix.lower() in suffixes)
    if not files:
        raise AnnotationError(f"{path}: folder holds no {' or '.join(suffixes)} annotation files")
    return files


def split_named(name: str, where: str) -> str:
    """``SPLITS`` member for a split ``name`` read at ``where`` (``file: line N``), for errors."""
    try:
        return SPLIT_NAMES[name.strip().lower()]
    except KeyError:
        raise AnnotationError(f"{where}: split {name!r} is not one of {', '.join(SPLIT_NAMES)}") from None


def checked(captions: list[Caption], path: Path) -> list[Caption]:
    """What every adapter returns: ``captions`` with a word each, one split per video.

    Sentences without a word once normalised (blank, or only punctuation such as
    ``...``) are dropped with a logged count: they would teach the decoder to say
    nothing and give the scorer references with no n-gram. A source with no caption left, or
    a video with captions in two splits (training on test videos would inflate every
    score), is refused.
    """
    kept = [caption for caption in captions if normalize(caption.text)]
    if len(kept) < len(captions):
        logger.warning("%s: skipped %d captions without words (blank or only punctuation)", path, len(captions) - len(kept))
    if not kept:
        raise AnnotationError(f"{path}: no captions (the annotations hold no caption text)")
    splits: dict[str, str] = {}
    for caption in kept:
        first = splits.setdefault(caption.video_id, caption.split)
        if first != caption.split:
            both = sorted((first, caption.split), key=SPLITS.index)
            raise AnnotationError(
                f"{path}: video {caption.video_id!r} has captions in both {both[0]} and {both[1]}; "
                "a video must belong to one split"
            )
    return kept
