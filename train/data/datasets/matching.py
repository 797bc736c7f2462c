"""Captions matched with a feature store's videos, and the references the scorer compares against."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from ...text import normalize
from .common import EXAMPLES, AnnotationError, Caption, examples


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
                f"(e.g. {examples(self.not_in_store_examples)})"
            )
        if self.videos_without_captions:
            parts.append(
                f"{self.videos_without_captions:,} stored videos have no captions and are unused "
                f"(e.g. {examples(self.without_captions_examples)})"
            )
        return "; ".join(parts)


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
            f"(captions name e.g. {examples(captioned[:EXAMPLES])}; "
            f"the store holds e.g. {examples(stored[:EXAMPLES])}); check --dataset and --annotations"
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
