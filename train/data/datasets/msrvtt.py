"""MSR-VTT (Section 4.1): the official ``videodatainfo`` JSON, with its split or the paper's re-split."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import AnnotationError, Caption, annotation_files, checked, read_text, split_named

MSRVTT_PAPER_TRAIN_VIDEOS = 5513
"""With ``paper_split``, official training videos video0–video5512 train, video5513–video6512 test."""


def _records(document: object, name: str, file: Path) -> Iterator[tuple[str, dict]]:
    """``document[name]``'s records, each with where it is (``file: videos[3]``) for errors."""
    records = document.get(name) if isinstance(document, dict) else None
    if not isinstance(records, list):
        raise AnnotationError(f"{file}: not an MSR-VTT videodatainfo file (no {name!r} list)")
    for index, record in enumerate(records):
        where = f"{file}: {name}[{index}]"
        if not isinstance(record, dict):
            raise AnnotationError(f"{where}: expected an object, got {_json_type(record)}")
        yield where, record


def _field(record: dict, name: str, kind: type, where: str) -> Any:
    """``record[name]`` if it is a ``kind`` (an integer may be written as a string of digits)."""
    if name not in record:
        raise AnnotationError(f"{where}: no {name!r} field")
    value = record[name]
    if kind is int and isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = "text" if kind is str else "an integer"
        raise AnnotationError(f"{where}: {name!r} is {_json_type(value)}, expected {expected}")
    return value


def _json_type(value: object) -> str:
    """How a JSON value reads in an error: ``null``, ``the number 3``, ``a list`` …"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return {str: "text", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _msrvtt_paper_split(official: str, number: int) -> str | None:
    if official == "train":
        return "train" if number < MSRVTT_PAPER_TRAIN_VIDEOS else "test"
    return "val" if official == "val" else None


def load_msrvtt(path: Path, paper_split: bool = False) -> list[Caption]:
    """MSR-VTT captions from the official ``videodatainfo`` JSON.

    ``path`` is a JSON file or a folder whose every ``.json`` is one (the 2016
    release's ``train_val_videodatainfo.json`` and ``test_videodatainfo.json``
    together, or one combined file). Videos carry their split (``validate`` → val).

    With ``paper_split`` (Section 4.1: the official test captions were not yet
    public), the official training set is re-split: video0–video5512 (5,513 clips)
    train, video5513–video6512 (1,000 clips) test; validation stays val, and the
    official test videos are left out.
    """
    splits: dict[str, tuple[str, int]] = {}
    sentences: list[tuple[Path, str, str]] = []
    for file in annotation_files(Path(path), (".json",)):
        try:
            document = json.loads(read_text(file))
        except json.JSONDecodeError as error:
            raise AnnotationError(f"{file}: not JSON: {error}") from None
        for where, video in _records(document, "videos", file):
            video_id = _field(video, "video_id", str, where)
            where = f"{file}: video {video_id!r}"
            number = _field(video, "id", int, where)
            splits[video_id] = (split_named(_field(video, "split", str, where), where), number)
        for where, sentence in _records(document, "sentences", file):
            sentences.append((file, _field(sentence, "video_id", str, where), _field(sentence, "caption", str, where)))
    captions = []
    for file, video_id, text in sentences:
        if video_id not in splits:
            raise AnnotationError(f"{file}: sentence of {video_id!r}, which is not among the videos")
        split, number = splits[video_id]
        split = _msrvtt_paper_split(split, number) if paper_split else split
        if split is not None:
            captions.append(Caption(video_id, text, split))
    return checked(captions, Path(path))
