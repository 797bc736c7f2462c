"""Caption annotations of the paper's datasets (Section 4.1) and their match with a feature store.

Every adapter reads the published annotation files as they are distributed and
returns one ``Caption`` per sentence, with the split the paper uses. Caption text
is returned as written; ``astar.train.text`` normalises it.

- ``load_msvd``: YouTube2Text / MSVD, 1,970 clips split 1200 / 100 / 670 by their
  ``vidN`` number (vid1–1200 train, vid1201–1300 val, vid1301–1970 test, as in
  Venugopalan et al. 2015b). Video ids are YouTube clip names
  ``<YouTubeID>_<start>_<end>``, the names of the clip files.
- ``load_msrvtt``: MSR-VTT ``videodatainfo`` JSON, official train/validate/test
  split, or with ``paper_split`` the paper's re-split of the official training set.
- ``load_mvad``: M-VAD in the LSMDC 2016 tab-separated form, split by file name.
- ``load_csv``: custom data, a CSV with header columns ``video_id,caption,split``.

``load_annotations`` picks the adapter by dataset name and, when no path is
given, finds the annotations at the default location: the first existing of

1. ``<folder holding the store>/annotations/<dataset>/`` (local stores only),
   e.g. ``annotations/m-vad/`` beside ``feats.zarr``;
2. ``$ASTAR_DATA/<dataset>/`` when the ``ASTAR_DATA`` environment variable is set.

``match_store`` keeps the captions whose video is in the store and reports, in one
line, the captioned videos the store lacks and the stored videos without captions.

Files may have LF or CRLF line endings, a UTF-8 byte-order mark, and no final
newline. A file that cannot be used raises ``AnnotationError`` naming the file,
and the line or record where one applies (``videodatainfo.json: sentences[17]:
'caption' is null, expected text``), with the reason in one line. Every adapter
refuses annotations with no caption at all and a video captioned in two splits.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from astar.extract import AstarError, local_path

from .text import normalize

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}
"""Split names accepted in annotation files, mapped to ``SPLITS`` (MSR-VTT says ``validate``)."""

MSVD_MAPPING = "youtube_mapping.txt"
MSVD_LAST_TRAIN, MSVD_LAST_VAL = 1200, 1300
"""vid1–1200 train, vid1201–1300 val, vid1301–1970 test."""
MSVD_CORPUS_COLUMNS = ("VideoID", "Start", "End", "Language", "Description")

MSRVTT_PAPER_TRAIN_VIDEOS = 5513
"""With ``paper_split``, official training videos video0–video5512 train, video5513–video6512 test."""

MVAD_SUFFIXES = (".csv", ".tsv", ".txt")
LSMDC_FIELDS = 6
"""CLIP_ID, START_ALIGNED, END_ALIGNED, START_EXTRACTED, END_EXTRACTED, SENTENCE."""
LSMDC_MOVIE = re.compile(r"(\d)\d{3}_")
"""LSMDC clip ids start with a 4-digit movie number: 3XXX is M-VAD, 0XXX and 1XXX are MPII-MD."""

CSV_COLUMNS = ("video_id", "caption", "split")
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


@dataclass(frozen=True)
class MatchReport:
    """How captions and stored videos matched (see ``match_store``)."""

    captions: int
    kept_captions: int
    matched_videos: int
    videos_not_in_store: int
    videos_without_captions: int
    not_in_store_examples: tuple[str, ...]
    without_captions_examples: tuple[str, ...]

    def summary(self) -> str:
        """The report as one line, with counts and a few example ids."""
        parts = [
            f"{self.matched_videos:,} captioned videos are in the store "
            f"({self.kept_captions:,} of {self.captions:,} captions kept)"
        ]
        if self.videos_not_in_store:
            parts.append(
                f"{self.videos_not_in_store:,} captioned videos are not in the store, their "
                f"{self.captions - self.kept_captions:,} captions skipped "
                f"(e.g. {_examples(self.not_in_store_examples)})"
            )
        if self.videos_without_captions:
            parts.append(
                f"{self.videos_without_captions:,} stored videos have no captions and are unused "
                f"(e.g. {_examples(self.without_captions_examples)})"
            )
        return "; ".join(parts)


def _examples(ids: Iterable[str]) -> str:
    return ", ".join(ids) or "none"


# ---------------------------------------------------------------------------
# Reading files


def _read_text(path: Path, errors: str = "strict") -> str:
    """Text of ``path`` decoded as UTF-8 (a byte-order mark is dropped)."""
    try:
        return path.read_bytes().decode("utf-8-sig", errors=errors)
    except OSError as error:
        raise AnnotationError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{path}: byte {error.start}: not UTF-8") from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines of ``path`` with their 1-based numbers; LF and CRLF both end a line.

    Only ``\\n`` splits lines (not ``str.splitlines``, which also splits at form feeds
    and Unicode separators that can occur inside a sentence).
    """
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line


def _tab_rows(path: Path, fields: int) -> Iterator[tuple[int, list[str]]]:
    """Numbered rows of a headerless tab-separated file; quotes are literal text."""
    for number, line in _lines(path):
        row = line.split("\t")
        if len(row) != fields:
            raise AnnotationError(f"{path}: line {number}: expected {fields} tab-separated fields, got {len(row)}")
        yield number, row


def _csv_rows(path: Path, columns: tuple[str, ...], errors: str = "strict") -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with a header holding ``columns``, with the line number where each ends."""
    reader = csv.DictReader(io.StringIO(_read_text(path, errors), newline=""))
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


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """``[path]`` for a file; for a folder, its files ending in one of ``suffixes``, sorted by name."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise AnnotationError(f"{path}: no such file or folder")
    files = sorted(child for child in path.iterdir() if child.is_file() and child.suffix.lower() in suffixes)
    if not files:
        raise AnnotationError(f"{path}: folder holds no {' or '.join(suffixes)} annotation files")
    return files


def _split(name: str, where: str) -> str:
    """``SPLITS`` member for a split ``name`` read at ``where`` (``file: line N``), for errors."""
    try:
        return SPLIT_NAMES[name.strip().lower()]
    except KeyError:
        raise AnnotationError(f"{where}: split {name!r} is not one of {', '.join(SPLIT_NAMES)}") from None


def _checked(captions: list[Caption], path: Path) -> list[Caption]:
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


# ---------------------------------------------------------------------------
# YouTube2Text / MSVD


def _msvd_split(number: int) -> str:
    return "train" if number <= MSVD_LAST_TRAIN else "val" if number <= MSVD_LAST_VAL else "test"


def _vid_number(name: str) -> int | None:
    match = re.fullmatch(r"vid(\d+)", name)
    return int(match.group(1)) if match else None


def read_msvd_mapping(path: Path) -> dict[str, int]:
    """``youtube_mapping.txt``: YouTube clip name → N of ``vidN`` (lines ``<clip> vid<N>``)."""
    numbers = {}
    for line, text in _lines(path):
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
    for line, (vid, text) in _tab_rows(path, 2):
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
        for _, row in _csv_rows(path, MSVD_CORPUS_COLUMNS, errors="replace")
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
            path, len(unmapped), mapping, _examples(unmapped[:EXAMPLES]),
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
    candidates = [file for file in _files(path, (".csv", ".txt")) if file.name != MSVD_MAPPING]
    if len(candidates) != 1:
        found = ", ".join(file.name for file in candidates) or "none"
        raise AnnotationError(f"{path}: expected one MSVD caption file beside {MSVD_MAPPING}, found {found}")
    captions_file = candidates[0]
    mapping = Path(mapping) if mapping is not None else captions_file.parent / MSVD_MAPPING
    is_corpus_csv = _read_text(captions_file, errors="replace").startswith("VideoID,")
    read = _msvd_corpus_csv if is_corpus_csv else _msvd_vid_tab
    return _checked(read(captions_file, mapping), captions_file)


# ---------------------------------------------------------------------------
# MSR-VTT


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
    for file in _files(Path(path), (".json",)):
        try:
            document = json.loads(_read_text(file))
        except json.JSONDecodeError as error:
            raise AnnotationError(f"{file}: not JSON: {error}") from None
        for where, video in _records(document, "videos", file):
            video_id = _field(video, "video_id", str, where)
            where = f"{file}: video {video_id!r}"
            number = _field(video, "id", int, where)
            splits[video_id] = (_split(_field(video, "split", str, where), where), number)
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
    return _checked(captions, Path(path))


# ---------------------------------------------------------------------------
# M-VAD (LSMDC form)


def _split_from_file_name(file: Path) -> str | None:
    """Split named in ``file``'s name; None for a blind test file (no sentences)."""
    name = file.name.lower()
    if "blindtest" in name:
        return None
    found = [split for split in SPLITS if split in name]
    if len(found) != 1:
        raise AnnotationError(f"{file}: cannot tell the split from the file name (name one of train, val, test)")
    return found[0]


def load_mvad(path: Path, drop_mpii_md: bool = True) -> list[Caption]:
    """M-VAD captions from LSMDC-form files, split by file name (Section 4.1).

    ``path`` is a file or a folder of ``.csv``/``.tsv``/``.txt`` files whose names
    contain ``train``, ``val`` or ``test`` (``LSMDC16_annos_training.csv``…). Rows
    are headerless and tab-separated: clip id, four times, sentence; double quotes
    are literal text. Blind test files (``blindtest`` in the name) carry no
    sentences: a folder's are skipped, and naming one directly is an error.

    LSMDC 2016 merges M-VAD (movie numbers 3XXX) with MPII-MD (0XXX, 1XXX); with
    ``drop_mpii_md`` (default) only M-VAD clips are kept, as in the paper.
    """
    path = Path(path)
    captions = []
    for file in _files(path, MVAD_SUFFIXES):
        split = _split_from_file_name(file)
        if split is None:
            if file == path:
                raise AnnotationError(f"{file}: blind test file, it has no captions")
            logger.info("%s: blind test file, no captions; skipped", file)
            continue
        rows = [(row[0], row[LSMDC_FIELDS - 1]) for _, row in _tab_rows(file, LSMDC_FIELDS)]
        kept = [(clip, text) for clip, text in rows if not (drop_mpii_md and _is_mpii_md(clip))]
        if len(kept) < len(rows):
            logger.info("%s: skipped %d MPII-MD clips (not M-VAD)", file, len(rows) - len(kept))
        captions += [Caption(clip, text, split) for clip, text in kept]
    return _checked(captions, path)


def _is_mpii_md(clip: str) -> bool:
    movie = LSMDC_MOVIE.match(clip)
    return movie is not None and movie.group(1) != "3"


# ---------------------------------------------------------------------------
# Generic CSV


def load_csv(path: Path) -> list[Caption]:
    """Custom captions: a CSV file (or a folder of ``.csv`` files) with columns ``video_id,caption,split``.

    Standard CSV quoting; other columns are ignored; ``split`` is ``train``,
    ``val`` (or ``validate``/``validation``) or ``test``, in any case.
    """
    captions = []
    for file in _files(Path(path), (".csv",)):
        captions += [
            Caption(row["video_id"], row["caption"], _split(row["split"], f"{file}: line {line}"))
            for line, row in _csv_rows(file, CSV_COLUMNS)
        ]
    return _checked(captions, Path(path))


# ---------------------------------------------------------------------------
# By name, default location


ADAPTERS: dict[str, Callable[[Path], list[Caption]]] = {
    "msvd": load_msvd,
    "msr-vtt": load_msrvtt,
    "m-vad": load_mvad,
    "csv": load_csv,
}
DATASETS = tuple(ADAPTERS)


def default_annotation_paths(dataset: str, store: str | Path | None = None) -> list[Path]:
    """Where ``load_annotations`` looks when given no path, in order (see the module docstring)."""
    paths = []
    store_path = None if store is None else local_path(str(store))
    if store_path is not None:
        paths.append(Path(store_path).absolute().parent / "annotations" / dataset)
    if os.environ.get("ASTAR_DATA"):
        paths.append(Path(os.environ["ASTAR_DATA"]) / dataset)
    return paths


def load_annotations(
    dataset: str, path: Path | None = None, *, store: str | Path | None = None, paper_split: bool = False
) -> list[Caption]:
    """Captions of ``dataset`` (one of ``DATASETS``) read from ``path`` by its adapter.

    With ``path`` None, the first existing of ``default_annotation_paths(dataset,
    store)`` is read. ``paper_split`` applies to ``msr-vtt`` only (the other
    adapters always give the paper's split).

    Raises:
        AnnotationError: no annotations at the default location (the message lists
            the paths looked at), or a file cannot be used.
    """
    if dataset not in ADAPTERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if paper_split and dataset != "msr-vtt":
        raise ValueError(f"paper_split applies to msr-vtt only; {dataset} always uses the paper's split")
    if path is None:
        looked = default_annotation_paths(dataset, store)
        path = next((candidate for candidate in looked if candidate.exists()), None)
        if path is None:
            places = ", ".join(str(candidate) for candidate in looked) or "nowhere (no local store, ASTAR_DATA unset)"
            raise AnnotationError(f"no {dataset} annotations found; looked in {places}; pass --annotations PATH")
    if dataset == "msr-vtt":
        return load_msrvtt(Path(path), paper_split=paper_split)
    return ADAPTERS[dataset](Path(path))


# ---------------------------------------------------------------------------
# Matching with the store


def references_by_video(captions: Iterable[Caption], split: str) -> dict[str, list[str]]:
    """Video id → its ``split`` captions, ``normalize``-d as the scorer compares them (Section 4.1)."""
    references: dict[str, list[str]] = {}
    for caption in captions:
        if caption.split == split:
            references.setdefault(caption.video_id, []).append(normalize(caption.text))
    return references


def match_store(captions: Iterable[Caption], store_video_ids: Iterable[str]) -> tuple[list[Caption], MatchReport]:
    """Captions whose video is in the store, and a report of what did not match.

    A caption's video matches a stored id equal to it, or else a stored id whose
    last ``/`` segment equals it when only one does (stores made from a folder of
    per-movie or per-split subfolders hold ``3009_MOVIE/3009_MOVIE_00.03…``). Kept
    captions carry the stored id.

    Raises:
        AnnotationError: no caption's video is in the store (the message shows
            example ids of both sides).
    """
    captions = list(captions)
    if not captions:
        raise AnnotationError("no captions to match with the store")
    stored = list(dict.fromkeys(store_video_ids))
    by_name: dict[str, list[str]] = {}
    for video_id in stored:
        by_name.setdefault(PurePosixPath(video_id).name, []).append(video_id)
    stored_set = set(stored)

    def stored_id(video_id: str) -> str | None:
        if video_id in stored_set:
            return video_id
        same_name = by_name.get(video_id, [])
        return same_name[0] if len(same_name) == 1 else None

    captioned = list(dict.fromkeys(caption.video_id for caption in captions))
    resolved = {video_id: stored_id(video_id) for video_id in captioned}
    missing = [video_id for video_id, found in resolved.items() if found is None]
    used = {found for found in resolved.values() if found is not None}
    if not used:
        raise AnnotationError(
            f"none of the {len(captioned):,} captioned videos is in the store "
            f"(captions name e.g. {_examples(captioned[:EXAMPLES])}; "
            f"the store holds e.g. {_examples(stored[:EXAMPLES])}); check --dataset and --annotations"
        )
    kept = [replace(caption, video_id=resolved[caption.video_id]) for caption in captions if resolved[caption.video_id]]
    unused = [video_id for video_id in stored if video_id not in used]
    return kept, MatchReport(
        captions=len(captions),
        kept_captions=len(kept),
        matched_videos=len(used),
        videos_not_in_store=len(missing),
        videos_without_captions=len(unused),
        not_in_store_examples=tuple(missing[:EXAMPLES]),
        without_captions_examples=tuple(unused[:EXAMPLES]),
    )
