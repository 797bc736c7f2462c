"""Initial word embeddings from word2vec vectors (Section 4.2), read from a local file.

Two formats are read: the binary format of Google's word2vec tool (GoogleNews-vectors-
negative300.bin: a ``count dim`` header line, then per word its UTF-8 bytes, a space,
``dim`` little-endian float32 and an optional newline) and the text format (an optional
``count dim`` header, then ``word v1 … v_dim`` per line). Nothing is downloaded.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch import Tensor

READ_CHUNK = 1 << 20


def load_word2vec(
    path: str | Path,
    vocab: list[str],
    dim: int = 300,
    binary: bool | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(V, dim) embeddings for ``vocab``, rows in vocabulary order.

    A word takes the vector stored under exactly its spelling, else under the first
    spelling that lowercases to it (our captions are lowercased, GoogleNews is not).
    Words found in neither way get random normal vectors with the per-element standard
    deviation of the vectors found, so they start on the same scale.

    Args:
        path: the vectors file.
        vocab: the words, index = token id.
        dim: expected vector width; a file of another width is an error.
        binary: the file's format; None detects it from the content.
        generator: randomness for the words not found.

    Raises:
        ValueError: the file is not word2vec vectors of width ``dim`` (file and reason said).
    """
    path = Path(path)
    index = {word: row for row, word in enumerate(vocab)}
    exact: dict[int, np.ndarray] = {}
    folded: dict[int, np.ndarray] = {}
    with path.open("rb") as stream:
        if binary is None:
            binary = _is_binary(stream, dim)
            stream.seek(0)
        records = _binary_records(stream, dim, path) if binary else _text_records(stream, dim, path)
        for word, vector in records:
            if word in index:
                exact.setdefault(index[word], vector)
            elif word.lower() in index:
                folded.setdefault(index[word.lower()], vector)
    found = {**folded, **exact}
    scale = float(np.std(np.stack(list(found.values())))) if found else 1.0
    embeddings = torch.randn(len(vocab), dim, generator=generator) * scale
    for row, vector in found.items():
        embeddings[row] = torch.from_numpy(vector)
    return embeddings


def _is_binary(stream: BinaryIO, dim: int) -> bool:
    """True unless the first vector line reads as text: a word and ``dim`` numbers."""
    lines = stream.read(READ_CHUNK).split(b"\n")
    header = lines[0].split()
    first = lines[1] if len(header) == 2 and len(lines) > 1 else lines[0]
    fields = first.split()
    if len(fields) != dim + 1:
        return True
    try:
        [float(field) for field in fields[1:]]
    except ValueError:
        return True
    return False


def _parse_header(line: bytes, dim: int, path: Path) -> bool:
    """True if ``line`` is a ``count dim`` header; a header of another width is an error."""
    fields = line.split()
    if len(fields) != 2 or not all(field.isdigit() for field in fields):
        return False
    if int(fields[1]) != dim:
        raise ValueError(f"{path}: vectors have width {int(fields[1])}, expected {dim}")
    return True


def _binary_records(stream: BinaryIO, dim: int, path: Path) -> Iterator[tuple[str, np.ndarray]]:
    header = stream.readline()
    if not _parse_header(header, dim, path):
        raise ValueError(f"{path}: binary word2vec needs a 'count dim' header, got {header[:80]!r}")
    vector_bytes = 4 * dim
    buffer, position = b"", 0
    while True:
        space = buffer.find(b" ", position)
        if space < 0 or len(buffer) < space + 1 + vector_bytes:
            chunk = stream.read(READ_CHUNK)
            if not chunk:
                if buffer[position:].strip():
                    raise ValueError(f"{path}: truncated record at the end of the file")
                return
            buffer, position = buffer[position:] + chunk, 0
            continue
        word = buffer[position:space].lstrip(b"\n").decode("utf-8", errors="replace")
        start = space + 1
        yield word, np.frombuffer(buffer, dtype="<f4", count=dim, offset=start).astype(np.float32)
        position = start + vector_bytes


def _text_records(stream: BinaryIO, dim: int, path: Path) -> Iterator[tuple[str, np.ndarray]]:
    for number, line in enumerate(stream, start=1):
        if number == 1 and _parse_header(line, dim, path):
            continue
        fields = line.rstrip().split(b" ")
        if len(fields) == 1 and not fields[0]:
            continue
        if len(fields) != dim + 1:
            raise ValueError(f"{path}:{number}: expected a word and {dim} numbers, got {len(fields)} fields")
        word = fields[0].decode("utf-8", errors="replace")
        yield word, np.array([float(field) for field in fields[1:]], dtype=np.float32)
