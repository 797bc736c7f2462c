"""The datasets by name, and where their annotations are found when no path is given."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from astar.extract.store.ids import local_path

from .common import AnnotationError, Caption
from .csvfile import load_csv
from .msrvtt import load_msrvtt
from .msvd import load_msvd
from .mvad import load_mvad


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
