"""Caption scores (paper Section 4.3): known answers, pycocoevalcap agreement, Java hygiene."""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pandas as pd
import psutil
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from astar.train.scoring import (
    BLEU_KEYS,
    JAVA_INSTALL_HINT,
    PER_VIDEO_FILE,
    SCORES_FILE,
    CaptionScores,
    ptb_tokenize,
    python_tokenize,
    score_captions,
    write_scores,
)

TEXT_METRICS = ("BLEU", "ROUGE-L", "CIDEr")
"""Everything but METEOR: these need no long-running JVM, so their tests stay fast."""

CAT_REFERENCES = ["the cat is on the mat", "there is a cat on the mat"]


def java_children() -> list[psutil.Process]:
    """Live ``java`` processes started (directly or not) by this test process."""
    return [child for child in psutil.Process(os.getpid()).children(recursive=True) if "java" in child.name()]


@pytest.fixture(scope="module")
def msrvtt(shared_fixtures: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Real MSR-VTT captions: sentence 0 of each video as its prediction, the rest as references."""
    info = json.loads((shared_fixtures / "annotations/msrvtt/videodatainfo_excerpt.json").read_text())
    by_video: dict[str, list[tuple[int, str]]] = {}
    for sentence in info["sentences"]:
        by_video.setdefault(sentence["video_id"], []).append((sentence["sen_id"], sentence["caption"]))
    captions = {video_id: [caption for _, caption in sorted(pairs)] for video_id, pairs in by_video.items()}
    return (
        {video_id: sentences[0] for video_id, sentences in captions.items()},
        {video_id: sentences[1:] for video_id, sentences in captions.items()},
    )


@pytest.fixture(scope="module")
def clean_and_dirty_scores() -> CaptionScores:
    """All metrics, METEOR's JVM included, on one video twice: clean, and with newlines and ``|||``."""
    clean = ["a man sings a song", "a person is singing on stage"]
    dirty = ["a man sings ||| a song", "a person\r\nis singing on\u2028stage"]
    return score_captions(
        {"clean": "a man is singing", "dirty": "a man is\nsinging"}, {"clean": clean, "dirty": dirty}
    )


def reference_tokens(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    """pycocoevalcap's own PTBTokenizer on ``{video: [caption, ...]}``."""
    return PTBTokenizer().tokenize({video: [{"caption": c} for c in texts] for video, texts in captions.items()})


def test_caption_identical_to_a_reference_has_bleu_of_one() -> None:
    scores = score_captions({"v": "a small red circle moves to the left"},
                            {"v": ["a small red circle moves to the left", "a red circle is moving left"]},
                            metrics=("BLEU",))
    for key in BLEU_KEYS:
        assert scores.corpus[key] == pytest.approx(1.0, rel=1e-6)


def test_bleu_clips_repeated_ngrams_to_their_reference_count() -> None:
    # "the cat the cat on the mat", 7 words; closest reference has 7 words, so no brevity penalty.
    # 1-grams: the×3 clipped to 2 (ref 1), cat×2 clipped to 1, on, mat        -> 5/7
    # 2-grams: the cat×2 clipped to 1, cat the 0, cat on, on the, the mat      -> 4/6
    # 3-grams: the cat the, cat the cat, the cat on: 0; cat on the, on the mat -> 2/5
    # 4-grams: only "cat on the mat" (ref 2)                                   -> 1/4
    precisions = [5 / 7, 4 / 6, 2 / 5, 1 / 4]
    scores = score_captions({"v": "the cat the cat on the mat"}, {"v": CAT_REFERENCES}, metrics=("BLEU",))
    for order, key in enumerate(BLEU_KEYS, start=1):
        expected = math.prod(precisions[:order]) ** (1 / order)
        assert scores.corpus[key] == pytest.approx(expected, rel=1e-6)


def test_bleu_brevity_penalty_uses_the_closest_reference_length() -> None:
    # "the cat on the mat", 5 words; references have 6 and 7 words, the closest is 6:
    # BP = exp(1 - 6/5). Precisions: 5/5, 4/4, 2/3 ("the cat on" is in neither), 1/2.
    brevity = math.exp(1 - 6 / 5)
    scores = score_captions({"v": "the cat on the mat"}, {"v": CAT_REFERENCES}, metrics=("BLEU",))
    assert scores.corpus["BLEU-1"] == pytest.approx(brevity, rel=1e-6)
    assert scores.corpus["BLEU-4"] == pytest.approx(brevity * (1 * 1 * 2 / 3 * 1 / 2) ** 0.25, rel=1e-6)


def test_corpus_bleu_pools_ngram_counts_over_videos() -> None:
    # The two cases above as two videos: clipped counts and lengths add up before dividing,
    # so BLEU-4 = exp(1 - 13/12) * ((10/12)(8/10)(4/8)(2/6))^(1/4), not a mean of the two.
    scores = score_captions(
        {"clipped": "the cat the cat on the mat", "short": "the cat on the mat"},
        {"clipped": CAT_REFERENCES, "short": CAT_REFERENCES},
        metrics=("BLEU",),
    )
    expected = math.exp(1 - 13 / 12) * (10 / 12 * 8 / 10 * 4 / 8 * 2 / 6) ** 0.25
    assert scores.corpus["BLEU-4"] == pytest.approx(expected, rel=1e-6)


def test_cider_d_follows_its_definition_on_two_videos() -> None:
    # CIDEr-D: tf-idf n-gram vectors (n = 1..4), idf = log(#videos / df) with df counted over
    # each video's references; per n the clipped cosine sum(min(h, r) * r) / (|h| |r|); a
    # Gaussian penalty exp(-delta^2 / (2 * 6^2)); mean over n, times 10.
    # "a" and "moves" are in both videos' references: idf = log(2/2) = 0, so they drop out.
    # Every other n-gram has idf log 2, which cancels in each cosine.
    # pycocoevalcap's delta counts bigrams (words - 1): 3 vs 4 for "left", 2 vs 4 for "up".
    left = (1 + 3 / (math.sqrt(3) * 2) + 2 / (math.sqrt(2) * math.sqrt(3)) + 1 / math.sqrt(2)) / 4
    up = (2 / (math.sqrt(2) * math.sqrt(3)) + 2 / (math.sqrt(2) * 2) + 1 / math.sqrt(3) + 0) / 4
    expected_left = 10 * math.exp(-(1**2) / 72) * left
    expected_up = 10 * math.exp(-(2**2) / 72) * up
    scores = score_captions(
        {"left": "red circle moves left", "up": "a blue square"},
        {"left": ["a red circle moves left"], "up": ["a blue square moves up"]},
        metrics=("CIDEr",),
    )
    per_video = scores.per_video.set_index("video_id")["CIDEr"]
    assert per_video["left"] == pytest.approx(expected_left, rel=1e-9)
    assert per_video["up"] == pytest.approx(expected_up, rel=1e-9)
    assert scores.corpus["CIDEr"] == pytest.approx((expected_left + expected_up) / 2, rel=1e-9)


def test_bleu_rouge_and_cider_equal_pycocoevalcap_on_msrvtt(msrvtt: tuple[dict, dict]) -> None:
    predictions, references = msrvtt
    raw_references = reference_tokens(references)
    raw_predictions = reference_tokens({video: [caption] for video, caption in predictions.items()})
    bleu, bleu_per_video = Bleu(4).compute_score(raw_references, raw_predictions, verbose=0)
    rouge, rouge_per_video = Rouge().compute_score(raw_references, raw_predictions)
    cider, cider_per_video = Cider().compute_score(raw_references, raw_predictions)

    scores = score_captions(predictions, references, metrics=TEXT_METRICS)

    assert scores.tokenizer == "ptb" and scores.warnings == []
    assert [scores.corpus[key] for key in BLEU_KEYS] == bleu
    assert scores.corpus["ROUGE-L"] == rouge
    assert scores.corpus["CIDEr"] == cider
    assert scores.per_video["video_id"].tolist() == list(raw_predictions)
    assert scores.per_video["BLEU-4"].tolist() == bleu_per_video[3]
    assert scores.per_video["ROUGE-L"].tolist() == rouge_per_video.tolist()
    assert scores.per_video["CIDEr"].tolist() == cider_per_video.tolist()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_meteor_equals_pycocoevalcap_on_msrvtt(msrvtt: tuple[dict, dict]) -> None:
    predictions, references = msrvtt
    raw_references = reference_tokens(references)
    raw_predictions = reference_tokens({video: [caption] for video, caption in predictions.items()})
    meteor = Meteor()
    try:
        expected, expected_per_video = meteor.compute_score(raw_references, raw_predictions)
    finally:
        meteor.__del__()  # pycocoevalcap's only way to stop its JVM
    scores = score_captions(predictions, references, metrics=("METEOR",))
    assert scores.corpus["METEOR"] == expected
    assert scores.per_video["METEOR"].tolist() == expected_per_video


@pytest.mark.timeout(300)
def test_scoring_leaves_no_java_process_alive(clean_and_dirty_scores: CaptionScores) -> None:
    assert set(clean_and_dirty_scores.corpus) == {*BLEU_KEYS, "METEOR", "ROUGE-L", "CIDEr"}
    assert java_children() == []


@pytest.mark.timeout(60)
def test_meteor_timeout_kills_its_jvm_and_reports_meteor_missing(msrvtt: tuple[dict, dict]) -> None:
    predictions, references = msrvtt
    # The JVM needs seconds to load METEOR's paraphrase table, so it cannot answer in 0.2 s.
    scores = score_captions(predictions, references, meteor_timeout_s=0.2)
    assert scores.missing == ["METEOR"]
    assert "METEOR" not in scores.corpus and "METEOR" not in scores.per_video
    assert any("METEOR" in warning and "0.2 s" in warning for warning in scores.warnings)
    assert {*BLEU_KEYS, "ROUGE-L", "CIDEr"} <= set(scores.corpus)
    assert java_children() == []


@pytest.mark.timeout(300)
def test_newlines_and_meteor_separators_in_captions_are_scored_as_spaces(clean_and_dirty_scores: CaptionScores) -> None:
    assert clean_and_dirty_scores.missing == []
    rows = clean_and_dirty_scores.per_video.set_index("video_id")
    metric_columns = [*BLEU_KEYS, "METEOR", "ROUGE-L", "CIDEr"]
    assert 0 < rows.loc["clean", "METEOR"] < 1
    assert rows.loc["dirty", metric_columns].tolist() == rows.loc["clean", metric_columns].tolist()
    assert rows.loc["dirty", "references"] == "a man sings a song | a person is singing on stage"


def test_missing_java_gives_one_install_line_and_the_other_metrics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    scores = score_captions({"v": "a red circle moves left"}, {"v": ["a red circle moves left", "a circle moves"]})
    assert scores.warnings == [
        "Java not found on PATH: METEOR skipped and captions tokenised by python_tokenize; " + JAVA_INSTALL_HINT
    ]
    assert scores.tokenizer == "python"
    assert scores.missing == ["METEOR"]
    assert scores.corpus["BLEU-4"] == pytest.approx(1.0, rel=1e-6)
    assert {"ROUGE-L", "CIDEr"} <= set(scores.corpus)


@pytest.mark.timeout(60)
def test_a_java_that_cannot_start_gives_its_error_and_the_other_metrics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken_java = tmp_path / "java"
    broken_java.write_text("#!/bin/sh\necho 'Error: Could not create the Java Virtual Machine.' >&2\nexit 1\n")
    broken_java.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    scores = score_captions({"v": "a red circle moves left"}, {"v": ["a red circle moves left"]})
    assert scores.tokenizer == "python" and scores.missing == ["METEOR"]
    assert len(scores.warnings) == 2
    assert all("Could not create the Java Virtual Machine" in warning for warning in scores.warnings)
    assert scores.corpus["BLEU-4"] == pytest.approx(1.0, rel=1e-6)


def test_python_tokenizer_equals_ptb_on_normalised_captions(msrvtt: tuple[dict, dict]) -> None:
    predictions, references = msrvtt
    captions = [*predictions.values(), *(c for texts in references.values() for c in texts)]
    normalised = [c for c in captions if re.fullmatch(r"[a-z0-9]+( [a-z0-9]+)*", c)]
    assert len(normalised) > 200  # the claim is tested on most of the fixture, not a handful
    assert [python_tokenize(c) for c in normalised] == ptb_tokenize(normalised)


def test_python_tokenizer_lowercases_and_strips_sentence_punctuation() -> None:
    assert python_tokenize('A Red circle, "moving" LEFT!  ') == "a red circle moving left"
    assert python_tokenize("a t-shirt ... costs 3.5") == "a t-shirt costs 3.5"


def test_write_scores_writes_json_summary_and_per_video_csv(tmp_path: Path) -> None:
    scores = score_captions(
        {"left": "red circle moves left", "up": "a blue square"},
        {"left": ["a red circle moves left"], "up": ["a blue square moves up", "a square goes up"]},
        metrics=TEXT_METRICS,
    )
    scores.missing.append("METEOR")
    scores_path, per_video_path = write_scores(scores, tmp_path / "eval")

    summary = json.loads(scores_path.read_text())
    assert scores_path.name == SCORES_FILE and per_video_path.name == PER_VIDEO_FILE
    assert summary["metrics"] == {**scores.corpus, "METEOR": None}
    assert summary["n_videos"] == 2 and summary["tokenizer"] == "ptb"
    table = pd.read_csv(per_video_path)
    assert table.columns.tolist() == ["video_id", "caption", "references", *BLEU_KEYS, "ROUGE-L", "CIDEr"]
    assert table.loc[1, "references"] == "a blue square moves up | a square goes up"
    assert table["CIDEr"].mean() == pytest.approx(summary["metrics"]["CIDEr"], rel=1e-12)


def test_predictions_for_videos_without_references_are_rejected() -> None:
    with pytest.raises(ValueError, match="same videos"):
        score_captions({"a": "x", "b": "y"}, {"a": ["x"]}, metrics=("BLEU",))


def test_unknown_metric_is_rejected() -> None:
    with pytest.raises(ValueError, match="SPICE"):
        score_captions({"a": "x"}, {"a": ["x"]}, metrics=("SPICE",))


# Empty captions: punctuation-only references or hypotheses never crash scoring.

NO_METEOR = ("BLEU", "ROUGE-L", "CIDEr")


def test_a_video_whose_references_have_no_word_is_left_out_with_a_warning() -> None:
    with_empty = score_captions({"a": "a dog runs", "b": "a cat sits"}, {"a": ["a dog runs"], "b": ["...", "!"]}, NO_METEOR)
    alone = score_captions({"a": "a dog runs"}, {"a": ["a dog runs"]}, NO_METEOR)
    assert with_empty.corpus == alone.corpus
    assert math.isnan(with_empty.per_video.loc[1, "CIDEr"])
    assert any("1 of 2 videos have no reference caption with a word" in warning for warning in with_empty.warnings)


def test_when_no_reference_has_a_word_every_metric_is_missing() -> None:
    scores = score_captions({"a": "a dog"}, {"a": ["..."]}, NO_METEOR)
    assert scores.corpus == {} and scores.missing == ["BLEU", "ROUGE-L", "CIDEr"]


def test_an_empty_generated_caption_scores_zero() -> None:
    scores = score_captions({"a": "a dog runs", "b": "?!"}, {"a": ["a dog runs"], "b": ["a cat sits"]}, NO_METEOR)
    assert scores.per_video.loc[1, ["BLEU-1", "ROUGE-L", "CIDEr"]].tolist() == pytest.approx([0, 0, 0], abs=1e-9)
    assert scores.per_video.loc[0, "ROUGE-L"] == pytest.approx(1.0)
