"""Caption text: normalisation, tokenizer and the word vocabulary (paper Section 4.1).

Section 4.1: "We convert all captions to lower case and remove the punctuation."
Here that means, in order:

1. Unicode NFKC normalisation, so that look-alike forms (full-width letters,
   ligatures, composed and decomposed accents) become one token;
2. lower case;
3. every character that is not a letter, digit, combining mark or whitespace
   (Unicode categories L*, N*, M*) becomes a space. Punctuation *and* symbols go,
   apostrophes included: ``it's`` becomes ``it s`` and ``t-shirt`` becomes
   ``t shirt``. This is exactly how the widely shared MSVD caption file was made
   (``a squirrel is eating a peanut in it s shell``), so both MSVD forms give the
   same tokens. Non-ASCII letters stay (``étouffée``).

The tokenizer then splits on whitespace. The vocabulary is built from the
training split's captions only, keeps words seen at least ``min_count`` times
(default ``DEFAULT_MIN_COUNT`` = 2), and puts the specials first:
``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3.
"""
from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(len(SPECIALS))

DEFAULT_MIN_COUNT = 2
"""Words seen once in training are dropped: they are mostly crowd-worker typos, and
keeping some rare words out is what gives ``<unk>`` training examples, so that test
words never seen in training map to a learned embedding. Pass ``min_count=1`` to
keep every training word (the paper's vocabulary sizes suggest it kept nearly all)."""

VOCABULARY_FORMAT = "astar-vocabulary"
VOCABULARY_VERSION = 1


def normalize(text: str) -> str:
    """Lower-cased ``text`` with punctuation and symbols turned into spaces (Section 4.1).

    Runs of whitespace are collapsed to one space and the ends stripped; see the
    module docstring for the exact rule.
    """
    lowered = unicodedata.normalize("NFKC", text).lower()
    kept = "".join(
        char if char.isspace() or unicodedata.category(char)[0] in "LNM" else " " for char in lowered
    )
    return " ".join(kept.split())


def tokenize(text: str) -> list[str]:
    """Words of ``normalize(text)``, split on whitespace."""
    return normalize(text).split()


@dataclass(frozen=True)
class Vocabulary:
    """Word ↔ id map of the decoder's 1-of-V outputs (Section 2; V includes the specials).

    ``tokens[i]`` is the word with id ``i``; the first four are ``SPECIALS``.
    """

    tokens: tuple[str, ...]
    min_count: int = DEFAULT_MIN_COUNT
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tokens[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}, got {self.tokens[:len(SPECIALS)]}")
        ids = {token: index for index, token in enumerate(self.tokens)}
        if len(ids) != len(self.tokens):
            raise ValueError("a vocabulary must not repeat a token")
        object.__setattr__(self, "_ids", ids)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def id(self, token: str) -> int:
        """Id of ``token``; ``UNK_ID`` for a word outside the vocabulary."""
        return self._ids.get(token, UNK_ID)

    def encode(self, text: str) -> list[int]:
        """Ids of ``tokenize(text)`` followed by ``EOS_ID``; unknown words become ``UNK_ID``.

        No ``BOS_ID`` is added: it is the decoder's first input, not a target.
        """
        return [self.id(token) for token in tokenize(text)] + [EOS_ID]

    def decode(self, ids: Iterable[int]) -> str:
        """Words of ``ids`` joined by spaces, stopping at the first ``EOS_ID``; specials are skipped.

        Raises:
            ValueError: an id outside ``0 … len(self) - 1``.
        """
        words = []
        for token_id in ids:
            if token_id == EOS_ID:
                break
            if not 0 <= token_id < len(self.tokens):
                raise ValueError(f"token id {token_id} is outside the vocabulary of {len(self.tokens)} tokens")
            if token_id >= len(SPECIALS):
                words.append(self.tokens[token_id])
        return " ".join(words)

    def save(self, path: str | Path) -> None:
        """Write the vocabulary to ``path`` as JSON (UTF-8, one token list, ids are positions)."""
        document = {
            "format": VOCABULARY_FORMAT,
            "version": VOCABULARY_VERSION,
            "min_count": self.min_count,
            "tokens": list(self.tokens),
        }
        Path(path).write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary written by ``save``.

        Raises:
            ValueError: the file is not a vocabulary of this format (the message names it).
            OSError: the file cannot be read.
        """
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not JSON: {error}") from None
        if not isinstance(document, dict) or document.get("format") != VOCABULARY_FORMAT:
            raise ValueError(f"{path}: not an {VOCABULARY_FORMAT} file")
        if document.get("version") != VOCABULARY_VERSION:
            raise ValueError(f"{path}: vocabulary version {document.get('version')!r}, expected {VOCABULARY_VERSION}")
        try:
            return cls(tokens=tuple(document["tokens"]), min_count=document["min_count"])
        except (KeyError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None


def build_vocabulary(texts: Iterable[str], min_count: int = DEFAULT_MIN_COUNT) -> Vocabulary:
    """Vocabulary of the words in ``texts`` seen at least ``min_count`` times.

    Pass the *training split's* captions only (Section 4.1), so that validation and
    test words stay unknown. Words are ordered by count, most frequent first, ties
    alphabetically, after the four specials, so the same captions always give the
    same ids.

    Raises:
        ValueError: ``min_count`` below 1, or so high that no word is kept (a model that
            can only say ``<unk>`` would train and caption nothing); the message gives the
            largest usable value.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    counts = Counter(token for text in texts for token in tokenize(text))
    if not counts:
        raise ValueError("the captions the vocabulary is counted on hold no word")
    words = sorted((word for word, count in counts.items() if count >= min_count), key=lambda w: (-counts[w], w))
    if not words:
        commonest, most = counts.most_common(1)[0]
        raise ValueError(f"min_count {min_count} keeps no word: the most frequent, {commonest!r}, is seen {most} times; "
                         f"the largest usable min_count is {most}")
    return Vocabulary(tokens=SPECIALS + tuple(words), min_count=min_count)
