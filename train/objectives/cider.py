"""CIDEr-D as pycocoevalcap computes it, fast enough to be a training reward (SCST).

For a candidate c and the references S = {s_1 … s_m} of its video, with g_n(x) the
vector of tf-idf weights of the n-grams of x (term count × (log N − log max(1, df))),

    CIDEr-D_n(c, S) = (1/m) Σ_j  Σ_g min(g_n(c), g_n(s_j)) g_n(s_j) / (‖g_n(c)‖ ‖g_n(s_j)‖)
                      · exp(−(ℓ(c) − ℓ(s_j))² / (2σ²))
    CIDEr-D(c, S)   = 10 · (1/4) Σ_{n=1}^{4} CIDEr-D_n(c, S)

with σ = 6, df the number of videos whose references contain the n-gram and N the
number of videos (Vedantam et al. 2015). These are pycocoevalcap's ``CiderScorer``
numbers, quirks included: ℓ(x) counts x's *bigrams* (pycocoevalcap's ``length``), a
norm of zero leaves the sum undivided (it is then zero anyway), and words are split on
spaces.

What differs is when the document frequencies are counted. pycocoevalcap counts them
on the videos being scored, on every call; here they are counted once, from a fixed
corpus (``DocumentFrequencies``, for SCST the training split's references, saved in the
run), and every later call reuses them with per-video reference vectors computed once.
Scored against its own corpus the numbers are pycocoevalcap's.

N-grams are counted with NumPy: words become ids ≥ 1, and the n-gram (w_1 … w_n) the
integer Σ_j id(w_j) · BASE^(j−1), so that n-grams of every order share one sorted code
array and are matched by ``np.searchsorted``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from astar.extract import AstarError

MAX_ORDER = 4
"""n-grams of 1 … 4 words."""

SIGMA = 6.0
"""Standard deviation of CIDEr-D's Gaussian length penalty."""

SCALE = 10.0
"""CIDEr-D is multiplied by 10 (pycocoevalcap; published tables print it ×100 again as a percentage)."""

BASE = 55_000
"""Radix of the n-gram codes: BASE⁴ < 2⁶³, so a 4-gram of word ids < BASE fits an int64."""

FREQUENCIES_FORMAT = "astar-cider-df"
FREQUENCIES_VERSION = 1


class CiderError(AstarError):
    """Document frequencies that cannot be used; the message names the file and the reason."""


def ngram_codes(sentences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count the 1- to 4-grams of each sentence of word ids (each id in 1 … BASE − 1).

    Returns:
        sentence (G,) int64, code (G,) int64 and count (G,) float64: one row per distinct
        n-gram of each sentence, sorted by (sentence, code).
    """
    longest = max((len(words) for words in sentences), default=0)
    if longest == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    ids = np.zeros((len(sentences), longest + MAX_ORDER - 1), dtype=np.int64)  # 0 pads: ends every n-gram
    for row, words in enumerate(sentences):
        ids[row, : len(words)] = words
    rows, codes = [], []
    window = np.zeros((len(sentences), longest), dtype=np.int64)
    complete = np.ones((len(sentences), longest), dtype=bool)
    for order in range(MAX_ORDER):
        digit = ids[:, order : order + longest]
        window = window + digit * BASE**order
        complete &= digit > 0
        row_index, start = np.nonzero(complete)
        rows.append(row_index)
        codes.append(window[row_index, start])
    sentence, code = np.concatenate(rows), np.concatenate(codes)
    keys = np.stack([sentence, code], axis=1)
    unique, counts = np.unique(keys, axis=0, return_counts=True)
    return unique[:, 0], unique[:, 1], counts.astype(np.float64)


def code_orders(codes: np.ndarray) -> np.ndarray:
    """(G,) n − 1 of each n-gram code (every digit of a code is ≥ 1, so its size gives n)."""
    orders = np.zeros(codes.shape, dtype=np.int64)
    for order in range(1, MAX_ORDER):
        orders += codes >= BASE**order
    return orders


@dataclass(frozen=True)
class DocumentFrequencies:
    """df of every reference n-gram of a corpus, and the word ids its codes use.

    Attributes:
        words: the corpus's words; word ``words[k]`` has id k + 1.
        codes: (G,) int64 sorted n-gram codes (module docstring).
        counts: (G,) float64 number of videos whose references contain each n-gram.
        videos: N, the number of videos of the corpus.
    """

    words: tuple[str, ...]
    codes: np.ndarray
    counts: np.ndarray
    videos: int
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.words) >= BASE:
            raise ValueError(f"at most {BASE - 1} words fit the n-gram codes, got {len(self.words)}")
        object.__setattr__(self, "_ids", {word: index + 1 for index, word in enumerate(self.words)})

    @classmethod
    def from_references(cls, references: Mapping[str, Sequence[str]]) -> DocumentFrequencies:
        """Count df over ``references`` (video id → its reference captions, words split on spaces)."""
        words = tuple(sorted({word for captions in references.values() for caption in captions for word in caption.split()}))
        frequencies = cls(words, np.zeros(0, dtype=np.int64), np.zeros(0), len(references))
        per_video = [np.unique(frequencies.reference_codes(captions)[1]) for captions in references.values()]
        codes, counts = np.unique(np.concatenate(per_video) if per_video else np.zeros(0, np.int64), return_counts=True)
        return cls(words, codes, counts.astype(np.float64), len(references))

    def word_ids(self, caption: str, unknown: dict[str, int]) -> list[int]:
        """Ids of ``caption``'s words; words outside the corpus get fresh ids from ``unknown``."""
        ids = []
        for word in caption.split():
            known = self._ids.get(word)
            if known is None:
                known = unknown.setdefault(word, len(self.words) + 1 + len(unknown))
                if known >= BASE:
                    raise ValueError(f"more than {BASE - 1} distinct words in one scoring call")
            ids.append(known)
        return ids

    def reference_codes(self, captions: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``ngram_codes`` of ``captions``."""
        unknown: dict[str, int] = {}
        return ngram_codes([self.word_ids(caption, unknown) for caption in captions])

    def idf(self, codes: np.ndarray) -> np.ndarray:
        """(G,) log N − log max(1, df) of each code (df 0 for n-grams outside the corpus)."""
        where = np.searchsorted(self.codes, codes).clip(max=max(len(self.codes) - 1, 0))
        found = self.codes[where] == codes if len(self.codes) else np.zeros(codes.shape, dtype=bool)
        df = np.where(found, self.counts[where] if len(self.counts) else 0.0, 0.0)
        return np.log(float(self.videos)) - np.log(np.maximum(1.0, df))

    def save(self, path: str | Path) -> None:
        """Write the frequencies to ``path`` (.npz)."""
        with open(path, "wb") as stream:
            np.savez_compressed(
                stream, format=np.array(FREQUENCIES_FORMAT), version=np.array(FREQUENCIES_VERSION),
                words=np.array(self.words, dtype=str), codes=self.codes, counts=self.counts,
                videos=np.array(self.videos),
            )

    @classmethod
    def load(cls, path: str | Path) -> DocumentFrequencies:
        """Read frequencies written by ``save``.

        Raises:
            CiderError: missing, unreadable or not this format (the message names the file).
        """
        try:
            with np.load(path, allow_pickle=False) as document:
                if str(document["format"]) != FREQUENCIES_FORMAT or int(document["version"]) != FREQUENCIES_VERSION:
                    raise ValueError(f"not an {FREQUENCIES_FORMAT} version {FREQUENCIES_VERSION} file")
                return cls(tuple(str(word) for word in document["words"]), document["codes"].astype(np.int64),
                           document["counts"].astype(np.float64), int(document["videos"]))
        except (OSError, KeyError, ValueError) as error:
            raise CiderError(f"{path}: unusable CIDEr-D document frequencies ({error})") from None


@dataclass(frozen=True)
class _ReferenceVectors:
    """One video's references as tf-idf rows over the n-grams they contain.

    Attributes:
        codes: (G,) sorted codes of every n-gram of the references.
        orders: (G,) n − 1 of each.
        weights: (m, G) g_n(s_j), tf × idf.
        norms: (m, 4) ‖g_n(s_j)‖ per order.
        lengths: (m,) bigrams per reference (ℓ).
    """

    codes: np.ndarray
    orders: np.ndarray
    weights: np.ndarray
    norms: np.ndarray
    lengths: np.ndarray


def _norms(rows: np.ndarray, orders: np.ndarray, weights: np.ndarray, count: int) -> np.ndarray:
    """(count, 4) Euclidean norm per order of sparse rows (row index, order, weight)."""
    squares = np.zeros((count, MAX_ORDER))
    np.add.at(squares, (rows, orders), weights**2)
    return np.sqrt(squares)


def _bigrams(rows: np.ndarray, orders: np.ndarray, counts: np.ndarray, count: int) -> np.ndarray:
    """(count,) number of bigrams per sentence: pycocoevalcap's ``length``."""
    return np.bincount(rows[orders == 1], weights=counts[orders == 1], minlength=count)


class CiderD:
    """CIDEr-D of candidates against their video's references, with fixed document frequencies.

    Args:
        frequencies: df and word ids (``DocumentFrequencies``), e.g. the training split's.
        references: video id → its reference captions (normalised text).
    """

    def __init__(self, frequencies: DocumentFrequencies, references: Mapping[str, Sequence[str]]) -> None:
        self.frequencies = frequencies
        self.references = references
        self._vectors: dict[str, _ReferenceVectors] = {}

    def _reference_vectors(self, video_id: str) -> _ReferenceVectors:
        vectors = self._vectors.get(video_id)
        if vectors is None:
            captions = self.references[video_id]
            rows, codes, counts = self.frequencies.reference_codes(captions)
            orders = code_orders(codes)
            weights = counts * self.frequencies.idf(codes)
            unique, columns = np.unique(codes, return_inverse=True)
            dense = np.zeros((len(captions), len(unique)))
            dense[rows, columns] = weights
            vectors = _ReferenceVectors(unique, code_orders(unique), dense, _norms(rows, orders, weights, len(captions)),
                                        _bigrams(rows, orders, counts, len(captions)))
            self._vectors[video_id] = vectors
        return vectors

    def score(self, video_id: str, candidates: Sequence[str]) -> np.ndarray:
        """(K,) CIDEr-D of each candidate caption (space-separated words) of ``video_id``."""
        unknown: dict[str, int] = {}
        return self.score_ids(video_id, [self.frequencies.word_ids(caption, unknown) for caption in candidates])

    def score_ids(self, video_id: str, candidates: Sequence[Sequence[int]]) -> np.ndarray:
        """(K,) CIDEr-D of candidates given as word ids (``DocumentFrequencies.word_ids``)."""
        refs = self._reference_vectors(video_id)
        rows, codes, counts = ngram_codes(candidates)
        orders = code_orders(codes)
        weights = counts * self.frequencies.idf(codes)
        norms = _norms(rows, orders, weights, len(candidates))  # (K, 4)
        lengths = _bigrams(rows, orders, counts, len(candidates))  # (K,)
        where = np.searchsorted(refs.codes, codes).clip(max=max(len(refs.codes) - 1, 0))
        shared = refs.codes[where] == codes if len(refs.codes) else np.zeros(codes.shape, dtype=bool)
        dense = np.zeros((len(candidates), len(refs.codes)))
        dense[rows[shared], where[shared]] = weights[shared]  # n-grams no reference has add nothing to the sums
        clipped = np.minimum(dense[:, None, :], refs.weights[None]) * refs.weights[None]  # (K, m, G)
        by_order = np.zeros((len(refs.codes), MAX_ORDER))
        by_order[np.arange(len(refs.codes)), refs.orders] = 1.0
        similarity = clipped @ by_order  # (K, m, 4)
        denominator = norms[:, None, :] * refs.norms[None]
        similarity = np.where(denominator != 0, similarity / np.where(denominator != 0, denominator, 1.0), similarity)
        penalty = np.exp(-((lengths[:, None] - refs.lengths[None]) ** 2) / (2 * SIGMA**2))  # (K, m)
        return SCALE * (similarity * penalty[..., None]).mean(-1).mean(-1)
