"""A run's captions as token ids: annotations matched with the store, encoded with the vocabulary (Section 4.1)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

from astar.extract import FeatureStore

from ..errors import TrainingError
from ..text import Vocabulary, build_vocabulary
from .datasets import MatchReport, load_annotations, match_store, references_by_video


class CaptionSettings(Protocol):
    """What ``caption_data`` reads of a run's settings (``TrainConfig`` has them): the data layer
    takes them as a shape, without importing the training configuration above it."""

    dataset: str
    annotations: str | None
    store: str
    paper_split: bool
    vocabulary_from: str
    min_count: int
    max_caption_len: int


@dataclass
class CaptionData:
    """The matched captions of a run, as token ids.

    Attributes:
        vocabulary: built from the training captions, or every split's with
            ``vocabulary_from="all"`` (or the run's, when resuming or starting from another run).
        train_ids, train_captions: one (video id, token ids ending in <eos>) per training pair.
        val_ids, val_captions: the same for the validation pairs (validation loss).
        references: val video id → its normalised reference captions (scores).
        train_references: the same for the training videos (self-critical rewards).
        report: how the annotations matched the store.
    """

    vocabulary: Vocabulary
    train_ids: list[str]
    train_captions: list[list[int]]
    val_ids: list[str]
    val_captions: list[list[int]]
    references: dict[str, list[str]]
    train_references: dict[str, list[str]]
    report: MatchReport

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of every pair and reference: a resumed run must see the same data."""
        content = [self.vocabulary.tokens, self.train_ids, self.train_captions, self.val_ids, self.val_captions,
                   self.references]
        return hashlib.sha256(json.dumps(content).encode("utf-8")).hexdigest()


def encode_caption(vocabulary: Vocabulary, text: str, max_words: int) -> list[int]:
    """Token ids of ``text``'s first ``max_words`` words, then <eos>."""
    ids = vocabulary.encode(text)
    return ids if len(ids) <= max_words + 1 else ids[:max_words] + ids[-1:]


def caption_data(config: CaptionSettings, store: FeatureStore, vocabulary: Vocabulary | None = None) -> CaptionData:
    """Read ``config.dataset``'s annotations, match them with ``store`` and encode them.

    Raises:
        AnnotationError: annotations unreadable, or none of their videos is in the store.
        TrainingError: no training or no validation captions among the stored videos, or
            a ``min_count`` that keeps no word of them.
    """
    annotations = Path(config.annotations) if config.annotations else None
    captions = load_annotations(config.dataset, annotations, store=config.store, paper_split=config.paper_split)
    kept, report = match_store(captions, store.video_ids)
    by_split = {split: [caption for caption in kept if caption.split == split] for split in ("train", "val")}
    for split, what in (("train", "training"), ("val", "early stopping (Section 4.2)")):
        if not by_split[split]:
            raise TrainingError(f"no {split} captions among the stored videos; {what} needs them ({report.summary()})")
    counted = by_split["train"] if config.vocabulary_from == "train" else kept
    try:
        vocabulary = vocabulary or build_vocabulary([caption.text for caption in counted], config.min_count)
    except ValueError as error:  # a min_count that leaves no word
        raise TrainingError(str(error)) from None

    def encoded(split: str) -> list[list[int]]:
        return [encode_caption(vocabulary, caption.text, config.max_caption_len) for caption in by_split[split]]

    return CaptionData(
        vocabulary=vocabulary,
        train_ids=[caption.video_id for caption in by_split["train"]],
        train_captions=encoded("train"),
        val_ids=[caption.video_id for caption in by_split["val"]],
        val_captions=encoded("val"),
        references=references_by_video(by_split["val"], "val"),
        train_references=references_by_video(by_split["train"], "train"),
        report=report,
    )
