"""M-VAD (Section 4.1) in the LSMDC 2016 tab-separated form, split by file name."""
from __future__ import annotations

import logging
import re
from pathlib import Path

from .common import SPLITS, AnnotationError, Caption, annotation_files, checked, tab_rows

logger = logging.getLogger(__name__)

MVAD_SUFFIXES = (".csv", ".tsv", ".txt")
LSMDC_FIELDS = 6
"""CLIP_ID, START_ALIGNED, END_ALIGNED, START_EXTRACTED, END_EXTRACTED, SENTENCE."""
LSMDC_MOVIE = re.compile(r"(\d)\d{3}_")
"""LSMDC clip ids start with a 4-digit movie number: 3XXX is M-VAD, 0XXX and 1XXX are MPII-MD."""


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
    for file in annotation_files(path, MVAD_SUFFIXES):
        split = _split_from_file_name(file)
        if split is None:
            if file == path:
                raise AnnotationError(f"{file}: blind test file, it has no captions")
            logger.info("%s: blind test file, no captions; skipped", file)
            continue
        rows = [(row[0], row[LSMDC_FIELDS - 1]) for _, row in tab_rows(file, LSMDC_FIELDS)]
        kept = [(clip, text) for clip, text in rows if not (drop_mpii_md and _is_mpii_md(clip))]
        if len(kept) < len(rows):
            logger.info("%s: skipped %d MPII-MD clips (not M-VAD)", file, len(rows) - len(kept))
        captions += [Caption(clip, text, split) for clip, text in kept]
    return checked(captions, path)


def _is_mpii_md(clip: str) -> bool:
    movie = LSMDC_MOVIE.match(clip)
    return movie is not None and movie.group(1) != "3"
