"""Captions for new video files (``astar-caption``): C3D features made as the run's were, then beam search.

A model only understands features extracted the way its training store was, so new
videos go through the same extraction: the preprocessing and C3D weights recorded in
the run's ``store_attrs.json``. A run trained on random-init features re-creates the
same random network from the recorded seed (and refuses ``--weights``); a run trained
on a weights file needs that file again, checked by sha256. Any other difference from
the training store's identity (schema, frame rate, frame size) is refused too.

The videos are extracted with ``astar.extract.extract_videos`` into a temporary store,
so each one decodes in an isolated child process: a missing or corrupt file fails
alone with a one-line reason, and the others are still captioned. Their features are
read through the run's ``FeatureReader`` (narrowed to the model's widths) and
captioned by ``model.search.beam_search`` in batches. With an attention folder, each video
also gets a Figure-3 PNG (``figures.save_attention_figure``): per word, β and the
most attended frame with α over it.
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astar.extract import AstarError, ExtractionConfig, Extractor, VideoInput, decode_video, extract_videos, open_store
from astar.extract.folders import claim_folder
from astar.extract.provenance import weights_line

from .data.loader import collate_videos
from .figures import FIGURES_FOLDER, WordAttention, caption_words, save_attention_figure
from .model.astar import CaptionAttention
from .model.search import beam_search
from .options import DEFAULT_BEAM_SIZE
from .loaded_run import LoadedRun

CAPTION_BATCH = 8
"""Videos captioned per beam search."""


class CaptionError(AstarError):
    """Videos that cannot be captioned with this run as asked; one line saying why."""


@dataclass
class VideoCaption:
    """The outcome for one input video.

    Attributes:
        video: the path as given.
        caption: the best caption, or None if the video failed.
        log_prob: log p(caption | video) (eq. 3), ``<eos>`` included.
        error: why the video failed (one line), else None.
        figure: the attention figure written for it, if any.
    """

    video: str
    caption: str | None = None
    log_prob: float | None = None
    error: str | None = None
    figure: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """``video``, ``caption``, ``log_prob`` and ``error`` (null when fine); ``figure`` when written."""
        record: dict[str, Any] = {"video": self.video, "caption": self.caption, "log_prob": self.log_prob,
                                  "error": self.error}
        if self.figure is not None:
            record["figure"] = str(self.figure)
        return record


def prepare_extraction(
    run: LoadedRun, weights: str | None = None, device: str = "cpu", decode_timeout: float = ExtractionConfig.decode_timeout
) -> tuple[ExtractionConfig, Extractor]:
    """Extraction settings and a built backbone that reproduce the run's training features.

    Args:
        run: the loaded run; its ``store_attrs`` say how its store was extracted (backbone,
            preprocessing, weights, seed).
        weights: the weights file (or torchvision weights name), needed exactly when the run's store used one.
        device: where the backbone runs (``cpu`` or ``cuda``).
        decode_timeout: seconds one video may take to decode before it fails (a FIFO fails at once).

    Raises:
        CaptionError: ``weights`` given for a random-init run, missing for a file-weights
            run, or a different file (sha256); or another identity difference.
        WeightsError: ``weights`` is not a usable weights file for the run's backbone.
    """
    recorded = run.store_attrs.get("model", {})
    random_init = bool(recorded.get("random_init"))
    if random_init and weights is not None:
        raise CaptionError(
            f"{weights}: {run.run_dir} was trained on features from {weights_line(recorded)}, "
            "so features from other weights mean nothing to it; leave out --weights"
        )
    if not random_init and weights is None:
        raise CaptionError(f"{run.run_dir} was trained on features from {weights_line(recorded)}; "
                           "pass --weights with that file")
    preprocessing = run.store_attrs.get("preprocessing", {}).get("name")
    settings = ExtractionConfig(weights=weights, backbone=run.store_attrs["backbone"], preprocess=preprocessing,
                                device=device, seed=recorded.get("seed") or 0, decode_timeout=decode_timeout)
    extractor = Extractor.build(settings)
    if not random_init and extractor.weights.sha256 != recorded.get("sha256"):
        raise CaptionError(
            f"{weights}: sha256 {str(extractor.weights.sha256)[:12]}… is not the run's {weights_line(recorded)}; "
            "pass the file its store was extracted with"
        )
    differences = run.identity_differences(extractor.identity())
    if differences:
        raise CaptionError(f"features made here would differ from those {run.run_dir} was trained on "
                           f"({'; '.join(differences)})")
    return settings, extractor


def caption_videos(
    run: LoadedRun,
    videos: Sequence[str],
    settings: ExtractionConfig,
    extractor: Extractor,
    beam_size: int = DEFAULT_BEAM_SIZE,
    length_penalty: float = 0.0,
    max_len: int | None = None,
    attention_dir: Path | None = None,
    progress: bool = False,
) -> list[VideoCaption]:
    """Caption each of ``videos`` (paths), in order; failures are recorded, not raised.

    Args:
        run: the run whose model captions.
        videos: video files.
        settings, extractor: from ``prepare_extraction``.
        beam_size, length_penalty: beam search settings (``model.search.beam_search``).
        max_len: most tokens per caption, ``<eos>`` included; None gives the run's
            ``max_caption_len`` + 1.
        attention_dir: write ``<video stem>.png`` attention figures here (not for the
            fc7 baseline, which has no attention).
        progress: show extraction's progress bar.

    Raises:
        FolderError: ``attention_dir`` is a file or a non-empty folder astar did not make for figures.
    """
    if attention_dir is not None:
        claim_folder(str(attention_dir), FIGURES_FOLDER)
    inputs = [VideoInput(f"video{index:05d}", str(video)) for index, video in enumerate(videos)]
    results = {video.video_id: VideoCaption(video.source) for video in inputs}
    with tempfile.TemporaryDirectory(prefix="astar-caption-") as folder:
        # Each failure is reported once, by the caller, from ``VideoCaption.error``.
        summary = extract_videos(inputs, str(Path(folder) / "features.zarr"), settings, progress=progress,
                                 extractor=extractor, report_failures=False)
        for outcome in summary.outcomes:
            results[outcome.video_id].error = outcome.error if outcome.status == "failed" else None
        done = [video for video in inputs if results[video.video_id].error is None]
        reader = run.reader(open_store(str(Path(folder) / "features.zarr")))
        device = next(run.model.parameters()).device
        figures = _FigureNames(attention_dir) if attention_dir is not None else None
        for start in range(0, len(done), CAPTION_BATCH):
            chunk = done[start : start + CAPTION_BATCH]
            batch = collate_videos([reader.read(video.video_id) for video in chunk],
                                   [reader.top_steps(video.video_id) for video in chunk])
            found = beam_search(run.model, batch.to(device), max_len or run.config.max_caption_len + 1, beam_size,
                                length_penalty, with_attention=figures is not None)
            for row, video in enumerate(chunk):
                tokens = found.tokens[row].tolist()
                result = results[video.video_id]
                result.caption, result.log_prob = run.vocabulary.decode(tokens), float(found.log_probs[row])
                if figures is not None:
                    result.figure = _attention_figure(run, extractor, result, tokens, found.attention, row, figures)
    return [results[video.video_id] for video in inputs]


class _FigureNames:
    """``<stem>.png`` in a folder, ``<stem>-2.png``, ``-3`` … when the name is taken (a.mp4, a-2.mp4, a.mkv)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.used = Path(folder), set()

    def next(self, video: str) -> Path:
        stem = Path(video).stem
        name, number = stem, 1
        while name in self.used:
            number += 1
            name = f"{stem}-{number}"
        self.used.add(name)
        return self.folder / f"{name}.png"


def _attention_figure(
    run: LoadedRun, extractor: Extractor, result: VideoCaption, tokens: list[int],
    attention: CaptionAttention | None, row: int, figures: _FigureNames,
) -> Path | None:
    """Write one video's Figure-3 PNG; None when there is nothing to draw (fc7, or no word)."""
    words = caption_words(tokens, run.vocabulary)
    if attention is None or not words:
        return None
    frames = decode_video(result.video, extractor.preprocessing).frames
    word_attention = WordAttention.of_video(attention, row, len(words), run.model_config)
    return save_attention_figure(figures.next(result.video), frames, words, word_attention,
                                 title=f"{Path(result.video).name}: {result.caption}")

