"""Caption scores of paper Section 4.3: BLEU-1…4, METEOR, ROUGE-L and CIDEr(-D).

The numbers are pycocoevalcap's (the COCO caption evaluation code every video
captioning paper reports), so they compare with published tables: captions are
tokenised by the Stanford PTB tokenizer and scored by pycocoevalcap's ``Bleu``,
``Meteor``, ``Rouge`` and ``Cider`` classes, unchanged. Scores are fractions in
[0, 1] as pycocoevalcap returns them (papers print them ×100); CIDEr is CIDEr-D
(clipped n-gram counts, Gaussian length penalty with sigma = 6, ×10), so it lies
in [0, 10].

What this wrapper adds around pycocoevalcap:

* **No Java, still scores.** The PTB tokenizer and METEOR both run Java. Without
  ``java`` on PATH, METEOR is skipped and captions are tokenised by
  ``python_tokenize`` instead; one warning line says what to install. On lower-case
  captions without punctuation (the form ``astar.train.text.normalize`` produces)
  ``python_tokenize`` gives exactly the PTB tokenizer's tokens, so BLEU, ROUGE-L and
  CIDEr are unchanged.
* **No leaked JVM.** pycocoevalcap's ``Meteor`` starts its JVM in ``__init__`` and
  only stops it in ``__del__``; here the JVM is killed and reaped in a ``finally``.
* **No hang.** A newline or ``|||`` in a caption breaks METEOR's line protocol and
  leaves the client waiting forever, so captions are sanitised first (``sanitize``);
  METEOR and the tokenizer also run under timeouts, and a METEOR timeout kills the
  JVM and reports METEOR as missing with a warning.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor import meteor as meteor_module
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer import ptbtokenizer

from astar.extract import AstarError

METRICS: tuple[str, ...] = ("BLEU", "METEOR", "ROUGE-L", "CIDEr")
"""Metric families ``score_captions`` can compute; ``BLEU`` gives BLEU-1…BLEU-4."""

BLEU_ORDERS = 4
BLEU_KEYS: tuple[str, ...] = tuple(f"BLEU-{order}" for order in range(1, BLEU_ORDERS + 1))

DEFAULT_METEOR_TIMEOUT_S = 600.0
"""METEOR on a full MSR-VTT test split (2,990 videos × 20 references) takes about a
minute; ten minutes means something is stuck, not slow."""

DEFAULT_TOKENIZER_TIMEOUT_S = 300.0

JAVA_INSTALL_HINT = "install a Java runtime (e.g. `apt-get install default-jre-headless`)"

PTB_TOKENIZER = "ptb"
PYTHON_TOKENIZER = "python"

SCORES_FILE = "scores.json"
PER_VIDEO_FILE = "per_video.csv"
REFERENCE_SEPARATOR = " | "

_PTB_JAR = Path(ptbtokenizer.__file__).with_name(ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
_METEOR_JAR = Path(meteor_module.__file__).with_name(meteor_module.METEOR_JAR)
_PYTHON_EDGE_PUNCTUATION = "\"'`.,?!:;"


class ScoresError(AstarError):
    """A ``scores.json`` that cannot be read back (truncated, not JSON, no ``metrics``); the message names it."""


@dataclass
class CaptionScores:
    """Scores of generated captions against references (Section 4.3).

    ``corpus`` maps ``BLEU-1``…``BLEU-4``, ``METEOR``, ``ROUGE-L``, ``CIDEr`` to the
    corpus score (fractions; CIDEr on its ×10 scale) for each metric that could be
    computed; ``missing`` names requested metrics that could not (their reason is in
    ``warnings``). ``per_video`` has one row per video: ``video_id``, ``caption``
    (the generated one), ``references`` (joined with ``" | "``) and one column per
    key of ``corpus`` with that video's score. ``tokenizer`` is ``"ptb"`` or
    ``"python"`` (see ``python_tokenize``).
    """

    corpus: dict[str, float]
    per_video: pd.DataFrame
    tokenizer: str
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def sanitize(caption: str) -> str:
    """``caption`` on one line, without METEOR's field separator ``|||``.

    Every run of whitespace (newlines, tabs and Unicode line separators included)
    becomes one space: METEOR and the PTB tokenizer read one caption per line, and
    an extra line shifts every later answer. ``|||`` separates METEOR's fields, and
    pycocoevalcap removes it from hypotheses but not from references.
    """
    return " ".join(caption.replace("|||", " ").split())


def python_tokenize(caption: str) -> str:
    """Java-free stand-in for the PTB tokenizer: lower case, space-separated tokens.

    Splits on whitespace and strips quotes and sentence punctuation (``"'`.,?!:;``)
    from both ends of each token, dropping tokens left empty. On lower-case text
    without punctuation this is exactly what the PTB tokenizer and pycocoevalcap's
    punctuation filter give. Elsewhere it differs: PTB splits clitics (``it's`` →
    ``it 's``), keeps ``!!`` and turns brackets into ``-lrb-``/``-rrb-``.
    """
    tokens = (token.strip(_PYTHON_EDGE_PUNCTUATION) for token in caption.lower().split())
    return " ".join(token for token in tokens if token)


def ptb_tokenize(captions: Sequence[str], timeout_s: float = DEFAULT_TOKENIZER_TIMEOUT_S) -> list[str]:
    """Tokens of each caption as pycocoevalcap's ``PTBTokenizer`` gives them, space-joined.

    Same Java command and punctuation filter as ``PTBTokenizer.tokenize``, but the
    temporary file goes to a temporary folder (pycocoevalcap writes it into its own
    installed package folder) and the JVM runs under ``timeout_s`` seconds.
    Captions must be ``sanitize``-d (one line each). Raises ``FileNotFoundError``
    without Java, ``subprocess.TimeoutExpired`` on timeout and
    ``subprocess.CalledProcessError`` or ``RuntimeError`` if the tokenizer fails.
    """
    # An empty line may or may not come back as an empty output line; such captions
    # have no tokens anyway, so they never reach the tokenizer.
    nonempty = [index for index, caption in enumerate(captions) if caption]
    tokenized = [""] * len(captions)
    if not nonempty:
        return tokenized
    with tempfile.TemporaryDirectory(prefix="astar-ptb-") as folder:
        sentences = Path(folder) / "captions.txt"
        sentences.write_text("\n".join(captions[index] for index in nonempty), encoding="utf-8")
        command = [
            "java", "-cp", str(_PTB_JAR), "edu.stanford.nlp.process.PTBTokenizer",
            "-preserveLines", "-lowerCase", str(sentences),
        ]
        completed = subprocess.run(command, capture_output=True, check=True, timeout=timeout_s)
    lines = completed.stdout.decode("utf-8").split("\n")
    if len(lines) < len(nonempty):
        raise RuntimeError(f"PTB tokenizer returned {len(lines)} lines for {len(nonempty)} captions")
    for index, line in zip(nonempty, lines):
        tokenized[index] = " ".join(word for word in line.rstrip().split(" ") if word not in ptbtokenizer.PUNCTUATIONS)
    return tokenized


class _ReapedMeteor(Meteor):
    """pycocoevalcap's METEOR client whose JVM ``close()`` always stops.

    ``compute_score`` is pycocoevalcap's, so the numbers are its numbers. Two
    changes to the process: the JVM's stderr goes to a file (pycocoevalcap pipes it
    and never reads it, so a chatty JVM blocks once the pipe fills), and ``close()``
    kills and reaps the JVM without the lock that ``Meteor.__del__`` waits on, which
    a ``compute_score`` interrupted by an exception never releases.
    """

    def __init__(self) -> None:
        self._stderr = tempfile.TemporaryFile()
        self.meteor_cmd = ["java", "-jar", "-Xmx2G", str(_METEOR_JAR), "-", "-", "-stdio", "-l", "en", "-norm"]
        self.meteor_p = subprocess.Popen(
            self.meteor_cmd,
            cwd=_METEOR_JAR.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.lock = threading.Lock()

    def stderr_tail(self) -> str:
        """Last line the JVM wrote to stderr, for warnings ("" if none)."""
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else ""

    def close(self) -> None:
        """Kill and reap the JVM, close its pipes; safe to call more than once."""
        if not hasattr(self, "meteor_p"):
            return  # Popen itself failed: there is no JVM
        self.meteor_p.kill()
        self.meteor_p.wait()
        for stream in (self.meteor_p.stdin, self.meteor_p.stdout, self._stderr):
            try:
                stream.close()
            except BrokenPipeError:
                pass  # flushing stdin into the dead JVM; the stream is closed all the same

    def __del__(self) -> None:
        self.close()


def _meteor_scores(
    references: dict[str, list[str]], predictions: dict[str, list[str]], timeout_s: float
) -> tuple[float, list[float]] | str:
    """pycocoevalcap METEOR (corpus, per-video) or, if it fails, the warning saying why."""
    try:
        meteor = _ReapedMeteor()
    except OSError as error:
        return f"METEOR skipped: could not start Java ({error})"
    worker = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="meteor")
    try:
        corpus, per_video = worker.submit(meteor.compute_score, references, predictions).result(timeout=timeout_s)
        return corpus, per_video
    except futures.TimeoutError:
        return f"METEOR skipped: no answer from the METEOR JVM within {timeout_s:g} s; it was killed"
    except (OSError, ValueError) as error:
        # The worker's reads and writes fail like this when the JVM exits early.
        return f"METEOR skipped: the METEOR JVM failed ({meteor.stderr_tail() or error})"
    finally:
        # Killing the JVM is what unblocks a worker stuck reading from it.
        meteor.close()
        worker.shutdown(wait=True)


def _tokenize_all(
    captions: Sequence[str], java: bool, timeout_s: float
) -> tuple[list[str], str, str | None]:
    """(tokenised captions, tokenizer name, warning or None)."""
    if java:
        try:
            return ptb_tokenize(captions, timeout_s), PTB_TOKENIZER, None
        except subprocess.TimeoutExpired:
            reason = f"the PTB tokenizer did not finish within {timeout_s:g} s"
        except (OSError, RuntimeError, subprocess.CalledProcessError) as error:
            stderr = getattr(error, "stderr", None)
            reason = f"the PTB tokenizer failed ({stderr.decode('utf-8', 'replace').strip() if stderr else error})"
        warning = f"{reason}; captions were tokenised by python_tokenize instead"
    else:
        warning = None
    return [python_tokenize(caption) for caption in captions], PYTHON_TOKENIZER, warning


def _check_inputs(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], metrics: Sequence[str]
) -> None:
    """Raise ``ValueError`` for inputs pycocoevalcap would reject with a bare assertion."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
    if not predictions:
        raise ValueError("no predictions to score")
    unmatched = sorted(set(predictions) ^ set(references))
    if unmatched:
        raise ValueError(
            f"predictions and references must cover the same videos; {len(unmatched)} do not, e.g. {unmatched[:5]}"
        )
    unreferenced = sorted(video_id for video_id in predictions if not references[video_id])
    if unreferenced:
        raise ValueError(f"{len(unreferenced)} videos have no reference caption, e.g. {unreferenced[:5]}")


def score_captions(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    metrics: Sequence[str] = METRICS,
    meteor_timeout_s: float = DEFAULT_METEOR_TIMEOUT_S,
    tokenizer_timeout_s: float = DEFAULT_TOKENIZER_TIMEOUT_S,
) -> CaptionScores:
    """Score one generated caption per video against that video's references (Section 4.3).

    ``predictions`` maps video id → generated caption; ``references`` maps the same
    ids → one or more reference captions. ``metrics`` is a subset of ``METRICS``.
    Captions are ``sanitize``-d, PTB-tokenised (``python_tokenize`` without Java)
    and scored by pycocoevalcap. Never raises for a missing or failing Java: the
    affected metric goes to ``missing`` and the reason to ``warnings``. Empty
    captions never crash it: a generated caption without words scores zero, a
    reference without words is dropped, and a video left without references is
    left out of the corpus scores (NaN in ``per_video``) with a warning; when no
    video is left, every requested metric is ``missing``. Raises
    ``ValueError`` if the two mappings cover different videos or a video has no
    reference.
    """
    _check_inputs(predictions, references, metrics)
    video_ids = list(predictions)
    clean_predictions = [sanitize(predictions[video_id]) for video_id in video_ids]
    clean_references = [[sanitize(reference) for reference in references[video_id]] for video_id in video_ids]

    java = shutil.which("java") is not None
    warnings: list[str] = []
    if not java:
        lost = "METEOR skipped and captions tokenised by python_tokenize" if "METEOR" in metrics else (
            "captions tokenised by python_tokenize"
        )
        warnings.append(f"Java not found on PATH: {lost}; {JAVA_INSTALL_HINT}")

    flat = clean_predictions + [reference for video_refs in clean_references for reference in video_refs]
    tokens, tokenizer, tokenizer_warning = _tokenize_all(flat, java, tokenizer_timeout_s)
    if tokenizer_warning:
        warnings.append(tokenizer_warning)
    tokenized_references: dict[str, list[str]] = {}
    start = len(video_ids)
    for video_id, video_refs in zip(video_ids, clean_references):
        # A reference without a word (only punctuation) is no reference: CIDEr's document
        # frequencies would be empty and pycocoevalcap would fail on max() of nothing.
        words = [reference for reference in tokens[start : start + len(video_refs)] if reference]
        if words:
            tokenized_references[video_id] = words
        start += len(video_refs)
    scored = list(tokenized_references)
    tokenized_predictions = {video_id: [tokens[index]] for index, video_id in enumerate(video_ids) if video_id in tokenized_references}
    if len(scored) < len(video_ids):
        unscored = [video_id for video_id in video_ids if video_id not in tokenized_references]
        warnings.append(
            f"{len(unscored)} of {len(video_ids)} videos have no reference caption with a word "
            f"(e.g. {unscored[:3]}); they are left out of the scores"
        )

    corpus: dict[str, float] = {}
    per_video: dict[str, list[float]] = {}
    missing: list[str] = []
    if not scored:
        missing = [name for name in METRICS if name in metrics]
        warnings.append(f"nothing to score: {', '.join(missing)} missing")
    if "BLEU" in metrics and scored:
        bleu_corpus, bleu_per_video = Bleu(BLEU_ORDERS).compute_score(
            tokenized_references, tokenized_predictions, verbose=0
        )
        for key, corpus_score, video_scores in zip(BLEU_KEYS, bleu_corpus, bleu_per_video):
            corpus[key], per_video[key] = corpus_score, video_scores
    if "METEOR" in metrics and scored:
        meteor = _meteor_scores(tokenized_references, tokenized_predictions, meteor_timeout_s) if java else None
        if isinstance(meteor, tuple):
            corpus["METEOR"], per_video["METEOR"] = meteor
        else:
            missing.append("METEOR")
            if meteor is not None:
                warnings.append(meteor)
    for name, scorer in (("ROUGE-L", Rouge), ("CIDEr", Cider)):
        if name in metrics and scored:
            corpus_score, video_scores = scorer().compute_score(tokenized_references, tokenized_predictions)
            corpus[name], per_video[name] = corpus_score, video_scores
    row = {video_id: index for index, video_id in enumerate(scored)}

    table = pd.DataFrame(
        {
            "video_id": video_ids,
            "caption": clean_predictions,
            "references": [REFERENCE_SEPARATOR.join(video_refs) for video_refs in clean_references],
            **{
                key: [float(scores[row[video_id]]) if video_id in row else math.nan for video_id in video_ids]
                for key, scores in per_video.items()
            },
        }
    )
    return CaptionScores(
        corpus={key: float(score) for key, score in corpus.items()},
        per_video=table,
        tokenizer=tokenizer,
        missing=missing,
        warnings=warnings,
    )


def write_scores(scores: CaptionScores, out_dir: Path, extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``scores.json`` and ``per_video.csv`` into ``out_dir``; return their paths.

    ``scores.json`` holds ``metrics`` (corpus scores, ``null`` for missing ones),
    ``tokenizer``, ``n_videos``, ``warnings`` and the entries of ``extra`` (``astar-eval``
    adds ``evaluation``, the settings it captioned with). ``per_video.csv`` is
    ``scores.per_video`` (columns ``video_id, caption, references, <metrics…>``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, float | None] = dict(scores.corpus)
    metrics.update({name: None for name in scores.missing})
    summary = {
        "metrics": metrics,
        "tokenizer": scores.tokenizer,
        "n_videos": len(scores.per_video),
        "warnings": scores.warnings,
        **(extra or {}),
    }
    scores_path = out_dir / SCORES_FILE
    scores_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    per_video_path = out_dir / PER_VIDEO_FILE
    scores.per_video.to_csv(per_video_path, index=False)
    return scores_path, per_video_path


def read_scores(out_dir: str | Path) -> dict[str, Any] | None:
    """The ``scores.json`` document ``write_scores`` wrote into ``out_dir``; None if there is none.

    Raises:
        ScoresError: the file is there but is no such document: cut short by a killed
            evaluation, not JSON, or without its ``metrics`` mapping.
    """
    path = Path(out_dir) / SCORES_FILE
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError both are
        raise ScoresError(f"{path}: not a JSON scores file ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("metrics"), dict):
        raise ScoresError(f"{path}: holds no metrics")
    return document
