"""The store's codec, chosen by measurement: bytes stored against CPU seconds per sampled frame.

Reads every stored layer of the complete videos of one or more real stores (the demo's,
``demo_output/feats.zarr``, and one extracted here from a larger synthetic set), cuts each
array into the chunks the store writes (``FeatureStore.array(...).chunks``), and for every
candidate blosc setting times, on one core (blosc's own threads off, one chunk at a time):

1. encode: the float16 chunk → compressed bytes;
2. decode: back, checked bit for bit;

and prints per sampled frame the bytes stored (and their share of float16) and encode and
decode milliseconds per core (``benchmarks/datapath.py`` turns the store codec's into the
cores a GPU's C3D rate needs). Then encoding the same chunks from 1 and 2 threads
(target: 2 threads ≥ 1.8× one).

    .venv/bin/python benchmarks/codec_choice.py                       # demo store if present, plus a generated set
    .venv/bin/python benchmarks/codec_choice.py feats.zarr --clips 0  # only a store of yours

Random-init C3D's maps are what tests and the demo store; pretrained maps are sparser after
ReLU and compress further, so the ratios here are an upper bound on bytes stored.
"""
from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import numcodecs
import numpy as np
from numcodecs import Blosc

from astar.extract import ExtractionConfig, collect_inputs, extract_videos, open_store
from astar.extract.store.writer import COMPRESSOR
from astar.pipelines.synthetic import generate_dataset

SHUFFLES = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
CANDIDATES = (
    ("zstd", 1, "shuffle"), ("zstd", 3, "shuffle"), ("zstd", 1, "bitshuffle"),
    ("lz4", 1, "shuffle"), ("lz4", 5, "shuffle"), ("lz4", 9, "shuffle"), ("lz4", 5, "bitshuffle"),
    ("lz4hc", 1, "shuffle"), ("blosclz", 5, "shuffle"),
)
"""(cname, clevel, shuffle) settings of blosc, the codec the store already uses (storage_schema.md §3)."""


@dataclass(frozen=True)
class Chunks:
    """The float16 chunks of some stored videos, as the store writes them, and their sampled frames."""

    arrays: list[np.ndarray]
    frames: int

    @property
    def raw_bytes(self) -> int:
        return sum(chunk.nbytes for chunk in self.arrays)


@dataclass(frozen=True)
class CodecRate:
    """One codec over ``Chunks``: bytes stored and single-core seconds to encode and decode."""

    name: str
    stored_bytes: int
    encode_s: float
    decode_s: float


def stored_chunks(url: str, limit: int) -> Chunks:
    """Every layer's chunks (time-chunked as stored) of up to ``limit`` complete videos of a store."""
    store = open_store(url)
    arrays, frames = [], 0
    for video_id in store.video_ids[:limit]:
        frames += store.padded_frames(video_id)
        for name in store.layer_names:
            step = store.array(video_id, name).chunks[0]
            data = store.read(video_id, name)
            arrays += [np.ascontiguousarray(data[start : start + step]) for start in range(0, len(data), step)]
    return Chunks(arrays, frames)


def blosc(cname: str, clevel: int, shuffle: str) -> Blosc:
    """The numcodecs codec zarr's ``BloscCodec`` builds for these settings on float16 (typesize 2)."""
    return Blosc(cname=cname, clevel=clevel, shuffle=SHUFFLES[shuffle], typesize=2)


def rate(codec: Blosc, name: str, chunks: Chunks) -> CodecRate:
    """Encode then decode every chunk on one core, best of two passes; every chunk must come back bit for bit."""
    best_encode = best_decode = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        encoded = [codec.encode(chunk) for chunk in chunks.arrays]
        best_encode = min(best_encode, time.perf_counter() - started)
        started = time.perf_counter()
        decoded = [codec.decode(blob) for blob in encoded]
        best_decode = min(best_decode, time.perf_counter() - started)
    for chunk, blob in zip(chunks.arrays, decoded):
        if bytes(blob) != chunk.tobytes():
            raise AssertionError(f"{name} did not round-trip")
    return CodecRate(name, sum(len(blob) for blob in encoded), best_encode, best_decode)


def threaded_encode_seconds(codec: Blosc, chunks: Chunks, threads: int) -> float:
    """Seconds to encode every chunk from ``threads`` threads (as zarr's codec pipeline does), best of two."""
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(2):
            started = time.perf_counter()
            list(pool.map(codec.encode, chunks.arrays))
            best = min(best, time.perf_counter() - started)
    return best


def report(label: str, chunks: Chunks) -> None:
    raw_per_frame = chunks.raw_bytes / chunks.frames
    print(f"\n{label}: {len(chunks.arrays)} chunks, {chunks.frames} sampled frames, "
          f"{raw_per_frame / 1024:.1f} KiB float16 per frame")
    print(f"{'codec':<24} {'stored':>8} {'KiB/frame':>10} {'encode ms/frame':>16} {'decode ms/frame':>16} "
          f"{'encode MB/s':>12} {'cores @ 30k fps':>16}")
    for cname, clevel, shuffle in CANDIDATES:
        name = f"{cname} {clevel} {shuffle}" + (" (default)" if _is_default(cname, clevel, shuffle) else "")
        measured = rate(blosc(cname, clevel, shuffle), name, chunks)
        encode_ms = 1e3 * measured.encode_s / chunks.frames
        print(f"{name:<24} {measured.stored_bytes / chunks.raw_bytes:>7.1%} {measured.stored_bytes / chunks.frames / 1024:>10.1f} "
              f"{encode_ms:>16.3f} {1e3 * measured.decode_s / chunks.frames:>16.3f} "
              f"{chunks.raw_bytes / measured.encode_s / 1e6:>12.0f}")
    default = blosc(COMPRESSOR.cname.name, COMPRESSOR.clevel, COMPRESSOR.shuffle.name)
    one, two = (threaded_encode_seconds(default, chunks, threads) for threads in (1, 2))
    print(f"default codec encoding from 2 threads: {one / two:.2f}× one thread (target ≥ 1.8×)")


def _is_default(cname: str, clevel: int, shuffle: str) -> bool:
    return (cname, clevel, shuffle) == (COMPRESSOR.cname.name, COMPRESSOR.clevel, COMPRESSOR.shuffle.name)


@click.command()
@click.argument("stores", nargs=-1)
@click.option("--clips", default=24, show_default=True, help="Clips of 2–20 s to generate and extract here (0: none).")
@click.option("--videos", default=48, show_default=True, help="Videos read from each store.")
def main(stores: tuple[str, ...], clips: int, videos: int) -> None:
    """Bytes stored against CPU seconds per frame for blosc settings, on the chunks of real stores."""
    numcodecs.blosc.use_threads = False  # one core per chunk, as zarr's threads call it
    stores = stores or tuple(path for path in ("demo_output/feats.zarr",) if Path(path).is_dir())
    for url in stores:
        report(url, stored_chunks(url, videos))
    if clips:
        with tempfile.TemporaryDirectory() as tmp:
            generate_dataset(Path(tmp) / "videos", n_videos=clips, seed=1, duration_range_s=(2.0, 20.0))
            out = str(Path(tmp) / "feats.zarr")
            extract_videos(collect_inputs([str(Path(tmp) / "videos")]), out, ExtractionConfig(device="cpu"), progress=False)
            report(f"{clips} generated clips of 2–20 s", stored_chunks(out, videos))


if __name__ == "__main__":
    main()
