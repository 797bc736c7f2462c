"""YouTube2Text / MSVD (Section 4.1): 1,970 clips split 1200 / 100 / 670 by their ``vidN`` number."""
from __future__ import annotations

import logging
import re
from pathlib import Path

from .common import (
    EXAMPLES, AnnotationError, Caption, annotation_files, checked, csv_rows, examples, numbered_lines, read_text,
    tab_rows,
)

logger = logging.getLogger(__name__)

MSVD_MAPPING = "youtube_mapping.txt"
MSVD_LAST_TRAIN, MSVD_LAST_VAL = 1200, 1300
"""vid1–1200 train, vid1201–1300 val, vid1301–1970 test."""
MSVD_CORPUS_COLUMNS = ("VideoID", "Start", "End", "Language", "Description")


def _msvd_split(number: int) -> str:
    return "train" if number <= MSVD_LAST_TRAIN else "val" if number <= MSVD_LAST_VAL else "test"


def _vid_number(name: str) -> int | None:
    match = re.fullmatch(r"vid(\d+)", name)
    return int(match.group(1)) if match else None


def read_msvd_mapping(path: Path) -> dict[str, int]:
    """``youtube_mapping.txt``: YouTube clip name → N of ``vidN`` (lines ``<clip> vid<N>``)."""
    numbers = {}
    for line, text in numbered_lines(path):
        fields = text.split()
        number = _vid_number(fields[-1]) if len(fields) == 2 else None
        if number is None:
            raise AnnotationError(f"{path}: line {line}: expected '<clip> vid<N>'")
        numbers[fields[0]] = number
    return numbers


def _msvd_vid_tab(path: Path, mapping: Path) -> list[Caption]:
    """The shared ``vid<N><TAB><caption>`` file; ``mapping`` names the clips."""
    if not mapping.is_file():
        raise AnnotationError(f"{path}: vidN captions need {mapping} to name their clips; not found")
    clips = {number: clip for clip, number in read_msvd_mapping(mapping).items()}
    captions = []
    for line, (vid, text) in tab_rows(path, 2):
        number = _vid_number(vid)
        if number not in clips:
            raise AnnotationError(f"{path}: line {line}: {vid!r} is not a vidN listed in {mapping}")
        captions.append(Caption(clips[number], text, _msvd_split(number)))
    return captions


def _msvd_corpus_csv(path: Path, mapping: Path) -> list[Caption]:
    """The Microsoft corpus CSV: English rows, clips named ``VideoID_Start_End``.

    Bytes that are not UTF-8 are replaced: only the English rows are kept, and the
    encoding of the other languages' rows is not documented.
    """
    english = [
        (f"{row['VideoID'].strip()}_{row['Start'].strip()}_{row['End'].strip()}", row["Description"])
        for _, row in csv_rows(path, MSVD_CORPUS_COLUMNS, errors="replace")
        if row["Language"].strip() == "English"
    ]
    if mapping.is_file():
        numbers = read_msvd_mapping(mapping)
    else:
        numbers = {clip: number for number, clip in enumerate(sorted({clip for clip, _ in english}), start=1)}
        logger.warning(
            "%s: %s not found; clips numbered in sorted order (%d clips), which is the standard split "
            "only when they are the standard 1,970",
            path, mapping, len(numbers),
        )
    unmapped = list(dict.fromkeys(clip for clip, _ in english if clip not in numbers))
    if unmapped:
        logger.warning(
            "%s: %d clips are not in %s and have no split; skipped (e.g. %s)",
            path, len(unmapped), mapping, examples(unmapped[:EXAMPLES]),
        )
    return [Caption(clip, text, _msvd_split(numbers[clip])) for clip, text in english if clip in numbers]


def load_msvd(path: Path, mapping: Path | None = None) -> list[Caption]:
    """YouTube2Text / MSVD captions, split 1200 / 100 / 670 clips (Section 4.1).

    ``path`` is a caption file or a folder holding exactly one (``.csv`` or ``.txt``
    other than ``youtube_mapping.txt``). Two forms are read, told apart by the
    first line:

    - the Microsoft corpus CSV (header ``VideoID,Start,End,WorkerID,Source,
      AnnotationTime,Language,Description``; all languages in one file): English
      rows only; clip ``VideoID_Start_End``;
    - the widely shared ``vid<N><TAB><caption>`` file: ``mapping`` is required to
      turn ``vidN`` into the clip name.

    ``mapping`` (default: ``youtube_mapping.txt`` beside the caption file) lists
    ``<clip> vid<N>``; N gives the split. For the CSV without a mapping, the
    English clips are numbered in sorted order, the order of the standard mapping,
    and a warning says so; CSV clips missing from a mapping are skipped with a
    warning.
    """
    path = Path(path)
    candidates = [file for file in annotation_files(path, (".csv", ".txt")) if file.name != MSVD_MAPPING]
    if len(candidates) != 1:
        found = ", ".join(file.name for file in candidates) or "none"
        raise AnnotationError(f"{path}: expected one MSVD caption file beside {MSVD_MAPPING}, found {found}")
    captions_file = candidates[0]
    mapping = Path(mapping) if mapping is not None else captions_file.parent / MSVD_MAPPING
    is_corpus_csv = read_text(captions_file, errors="replace").startswith("VideoID,")
    read = _msvd_corpus_csv if is_corpus_csv else _msvd_vid_tab
    return checked(read(captions_file, mapping), captions_file)
