"""Word2vec loading (Section 4.2): GoogleNews binary and text formats, on tiny generated files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from astar.train.data.word2vec import load_word2vec

DIM = 4
STORED = {"man": [0.5, -1.0, 2.0, 0.25], "Dog": [1.0, 2.0, 3.0, 4.0], "dog": [-1.0, -2.0, -3.0, -4.0], "Cat": [3.0, 1.0, 0.0, -1.0]}


def write_binary(path: Path, newline: bool = True) -> Path:
    with path.open("wb") as stream:
        stream.write(f"{len(STORED)} {DIM}\n".encode())
        for word, vector in STORED.items():
            stream.write(word.encode() + b" " + np.asarray(vector, dtype="<f4").tobytes() + (b"\n" if newline else b""))
    return path


def write_text(path: Path, header: bool = True) -> Path:
    lines = [f"{len(STORED)} {DIM}"] if header else []
    lines += [" ".join([word, *map(str, vector)]) for word, vector in STORED.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(params=["binary", "binary-no-newline", "text", "text-no-header"])
def vectors_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param.startswith("binary"):
        return write_binary(tmp_path / "vectors.bin", newline=request.param == "binary")
    return write_text(tmp_path / "vectors.txt", header=request.param == "text")


def test_found_words_take_their_vectors_in_vocabulary_order(vectors_file: Path) -> None:
    embeddings = load_word2vec(vectors_file, ["<pad>", "dog", "man"], dim=DIM)
    assert embeddings.shape == (3, DIM)
    torch.testing.assert_close(embeddings[1], torch.tensor(STORED["dog"]))  # exact spelling beats "Dog"
    torch.testing.assert_close(embeddings[2], torch.tensor(STORED["man"]))


def test_lowercased_vocabulary_falls_back_to_capitalised_vectors(vectors_file: Path) -> None:
    torch.testing.assert_close(load_word2vec(vectors_file, ["cat"], dim=DIM)[0], torch.tensor(STORED["Cat"]))


def test_missing_words_are_random_on_the_scale_of_the_found_ones(vectors_file: Path) -> None:
    vocab = ["man"] + [f"unknown{i}" for i in range(2000)]
    embeddings = load_word2vec(vectors_file, vocab, dim=DIM, generator=torch.Generator().manual_seed(0))
    assert embeddings[1:].std().item() == pytest.approx(np.std(STORED["man"]), rel=0.05)
    assert not torch.equal(embeddings[1], embeddings[2])


def test_an_explicit_format_overrides_detection(tmp_path: Path) -> None:
    path = write_binary(tmp_path / "vectors.bin")
    torch.testing.assert_close(load_word2vec(path, ["man"], dim=DIM, binary=True)[0], torch.tensor(STORED["man"]))


def test_a_file_of_another_width_is_refused_naming_it(tmp_path: Path) -> None:
    path = write_binary(tmp_path / "vectors.bin")
    with pytest.raises(ValueError, match="vectors.bin.*width 4, expected 300"):
        load_word2vec(path, ["man"])
