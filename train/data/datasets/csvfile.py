"""Custom data: a CSV with header columns ``video_id,caption,split``."""
from __future__ import annotations

from pathlib import Path

from .common import Caption, annotation_files, checked, csv_rows, split_named

CSV_COLUMNS = ("video_id", "caption", "split")


def load_csv(path: Path) -> list[Caption]:
    """Custom captions: a CSV file (or a folder of ``.csv`` files) with columns ``video_id,caption,split``.

    Standard CSV quoting; other columns are ignored; ``split`` is ``train``,
    ``val`` (or ``validate``/``validation``) or ``test``, in any case.
    """
    captions = []
    for file in annotation_files(Path(path), (".csv",)):
        captions += [
            Caption(row["video_id"], row["caption"], split_named(row["split"], f"{file}: line {line}"))
            for line, row in csv_rows(file, CSV_COLUMNS)
        ]
    return checked(captions, Path(path))
