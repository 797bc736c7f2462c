"""The data path's stage budget: what each stage does per core, and the cores a GPU's C3D rate needs.

Extraction is decode → network → compress → write; training is read → decompress → batch.
Measured here, each on one core, in sampled frames per second:

1. decode: a one-decoder ``DecoderPool`` over 640×360 H.264 clips (``extract.pool_rate``);
2. network: random-init C3D fp32 on this CPU, 64 frames a pass; and the arithmetic rate of
   an H100 at ``GPU_EFFICIENCY`` of its bf16 peak (``benchmarks/extract.py``'s sizing line);
3. compress / decompress: the store's codec on the chunks of a real store (``codec_choice.rate``);
4. write / read: those compressed chunks as files on the store's disk, and back;

then, for each C3D rate R, the cores each stage needs (R ÷ its per-core rate). Then:

5. everything but decoding and the network, as an extraction runs it (``outcomes.store_decoded``:
   preprocessing tile by tile, float16, the write-behind queue, compression and writes
   in the writer thread), with C3D replaced by a zero-cost stand-in that hands back real
   maps it computed once: its sampled frames/s against 2 × the per-core decode rate
   (target ≥ 1: writing is never the slowest stage);
6. the loader: batches/s at the paper's widths from ``--loader-workers`` processes against
   the step rate a GPU trains the paper model at (its FLOPs per step at batch 32 × 64 frames,
   counted on the meta device, at ``GPU_EFFICIENCY`` of the peak), as features MB/s;
7. opening a store of 1k, 10k and 100k synthetic videos: seconds and objects read
   (``store_index.lengths``).

    .venv/bin/python benchmarks/datapath.py                      # the demo store's maps when present
    .venv/bin/python benchmarks/datapath.py --quick              # smoke run
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import click
import numcodecs
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from astar.extract import ExtractionConfig, Extractor, VideoInput, decode_video
from astar.extract.cores import machine_cores
from astar.extract.features import extract_features
from astar.extract.outcomes import store_decoded
from astar.extract.preprocessing import PAPER
from astar.extract.store.writer import COMPRESSOR, StoreWriter
from astar.extract.writebehind import WriteBehind
from astar.train.model.astar import ASTAR
from astar.train.model.batch import random_batch
from astar.train.model.config import ModelConfig
from ceilings import GPU_PEAK_TFLOPS, best_seconds
from codec_choice import blosc, rate, stored_chunks, threaded_encode_seconds
from extract import GPU_EFFICIENCY, count_flops, pool_rate, write_clip
from loader import VOCAB, loader_rate, pairs, small_store
from store_index import lengths, synthetic_store

PAPER_BATCH, PAPER_FRAMES, CAPTION_WORDS = 32, 64, 12
"""The paper's training batch (Section 4.2) at 64 sampled frames a video, 12-word captions."""


def per_core_rates(folder: Path, store: str, quick: bool) -> dict[str, float]:
    """Sampled frames/s on one core for every stage but the network; prints the codec's ratio and thread scaling."""
    videos = [VideoInput(f"d{i}", str(write_clip(folder / f"d{i}.mp4", seconds=5 if quick else 20))) for i in range(2)]
    decode, _ = pool_rate(videos, decoders=1)
    chunks = stored_chunks(store, 16 if quick else 48)
    codec = blosc(COMPRESSOR.cname.name, COMPRESSOR.clevel, COMPRESSOR.shuffle.name)
    coded = rate(codec, "store codec", chunks)
    blobs = [codec.encode(chunk) for chunk in chunks.arrays]
    write_s, read_s = file_seconds(folder / "chunks", blobs)
    rates = {"decode": decode, "compress": chunks.frames / coded.encode_s, "write": chunks.frames / write_s,
             "read": chunks.frames / read_s, "decompress": chunks.frames / coded.decode_s}
    print(f"store codec {COMPRESSOR.cname.name} {COMPRESSOR.clevel} {COMPRESSOR.shuffle.name}: "
          f"{coded.stored_bytes / chunks.raw_bytes:.1%} of float16, {chunks.raw_bytes / chunks.frames / 1024:.1f} KiB a frame raw; "
          f"compressing from 2 threads {threaded_encode_seconds(codec, chunks, 1) / threaded_encode_seconds(codec, chunks, 2):.2f}× "
          "one (target ≥ 1.8×)")
    return rates


def file_seconds(folder: Path, blobs: list[bytes]) -> tuple[float, float]:
    """Seconds to write ``blobs`` as one file each (as a local store holds chunks), and to read them back."""
    folder.mkdir()

    def write() -> None:
        for number, blob in enumerate(blobs):
            (folder / str(number)).write_bytes(blob)

    def read() -> None:
        for number in range(len(blobs)):
            (folder / str(number)).read_bytes()

    return best_seconds(write, repeats=2), best_seconds(read, repeats=2)


def network_rates() -> tuple[float, float]:
    """C3D fp32 frames/s here (one pass of 64 frames, every core) and an H100's arithmetic rate."""
    extractor = Extractor.build(ExtractionConfig(device="cpu", precision="fp32"))
    video = torch.randn(3, 64, 112, 112) * 60
    flops_per_frame = count_flops(extractor.model, lambda: extract_features(extractor.model, video)) / 64
    here = 64 / best_seconds(lambda: extract_features(extractor.model, video), repeats=2)
    return here, GPU_EFFICIENCY * GPU_PEAK_TFLOPS["H100"]["bf16"] * 1e12 / flops_per_frame


EXTRACTION, TRAINING = ("decode", "compress", "write"), ("read", "decompress")


class ZeroCostNetwork(nn.Module):
    """A backbone that computes nothing: the maps of one real pass over ``frames`` frames, cut to each clip's length."""

    def __init__(self, real: nn.Module, frames: int) -> None:
        super().__init__()
        self.stored_layers, self.halo_frames = real.stored_layers, real.halo_frames
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)  # gives the device and dtype a pass reads
        self.maps, self.fc7 = real.stored_maps(torch.randn(1, 3, frames, 112, 112).contiguous(memory_format=torch.channels_last_3d) * 60)

    def stored_maps(self, clip: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        frames = clip.shape[2]
        maps = {layer.name: self.maps[layer.name][:, :, : frames // layer.time_stride] for layer in self.stored_layers}
        return maps, self.fc7[:, : frames // 8 - 1]


@torch.inference_mode()
def non_network_rate(folder: Path, quick: bool) -> float:
    """Sampled frames/s of an extraction's work after decoding, its network a ``ZeroCostNetwork``."""
    real = Extractor.build(ExtractionConfig(device="cpu", precision="fp32"))
    stand_in = replace(real, model=ZeroCostNetwork(real.model, real.max_frames_per_pass + 2 * real.model.halo_frames))
    videos = [VideoInput(f"s{i}", str(write_clip(folder / f"s{i}.mp4", seconds=20 if quick else 60))) for i in range(4)]
    decoded = [(video, decode_video(video.source, PAPER)) for video in videos]
    writer = StoreWriter(str(folder / "stand-in.zarr"), stand_in.identity())
    started = time.perf_counter()
    with WriteBehind() as queue:
        for video, frames in decoded:
            store_decoded(stand_in, writer, queue, video, frames, time.perf_counter())
        done = queue.drain()
    seconds = time.perf_counter() - started
    if len(done) != len(videos) or any(outcome.status != "done" for outcome in done):
        raise AssertionError(f"the stand-in extraction did not store every video: {done}")
    return sum(len(frames.frames) for _, frames in decoded) / seconds


def stage_table(rates: dict[str, float], demands: dict[str, float], stages: tuple[str, ...], title: str) -> None:
    """Per-core rate of each of ``stages`` and the cores it needs at each demand (sampled frames/s)."""
    print(f"\n{title}\n{'stage':<11} {'frames/s/core':>14}" + "".join(f" {'cores @ ' + name:>30}" for name in demands))
    for stage in stages:
        print(f"{stage:<11} {rates[stage]:>14.0f}" + "".join(f" {demand / rates[stage]:>30.2f}" for demand in demands.values()))


def paper_step_seconds_on_gpu() -> tuple[float, float]:
    """TFLOP of one paper-size training step (batch 32 × 64 frames) and its seconds on an H100 at GPU_EFFICIENCY."""
    config = ModelConfig(vocab_size=VOCAB)
    with torch.device("meta"):
        model = ASTAR(config).train()
    generator = torch.Generator().manual_seed(0)
    batch = random_batch([PAPER_FRAMES // 16] * PAPER_BATCH, config.layer_channels, config.fc7_dim, generator).to("meta")
    tokens = torch.randint(2, VOCAB, (PAPER_BATCH, CAPTION_WORDS), generator=generator).to("meta")
    with FlopCounterMode(display=False) as counter:
        model.loss(batch, tokens, None).backward()
    tflop = counter.get_total_flops() / 1e12
    return tflop, tflop / (GPU_EFFICIENCY * GPU_PEAK_TFLOPS["H100"]["bf16"])


def loader_budget(store: str, workers: int, batches: int) -> float:
    """Print paper-width loader batches/s and MB/s here against what a GPU's paper-size step rate consumes;
    return that consumption in sampled frames/s."""
    from astar.extract import open_store

    dataset = pairs(open_store(store), ModelConfig(VOCAB, pad_id=0, eos_id=2), captions=1)
    sample = dataset[list(range(min(PAPER_BATCH, len(dataset))))].videos
    batch_mb = sum(tensor.nbytes for tensor in sample.features.values()) / 1e6
    measured = loader_rate(dataset, PAPER_BATCH, workers, batches)
    per_frame = batch_mb * 1e6 / (int(sample.top_steps.sum()) * 16)
    needed_mb = PAPER_BATCH * PAPER_FRAMES * per_frame / 1e6
    tflop, step_s = paper_step_seconds_on_gpu()
    print(f"\nloader, paper widths, {workers} workers, streaming: {measured:.2f} batches/s of this store's videos "
          f"({batch_mb:.0f} MB a batch, {measured * batch_mb:.0f} MB/s)")
    print(f"a paper step (batch {PAPER_BATCH} × {PAPER_FRAMES} frames, {needed_mb:.0f} MB of maps) is {tflop:.1f} TFLOP: "
          f"{step_s * 1e3:.0f} ms on an H100 at {GPU_EFFICIENCY:.0%} of its bf16 peak, {1 / step_s:.1f} steps/s, "
          f"{needed_mb / step_s:.0f} MB/s; streaming here delivers {measured * batch_mb / (needed_mb / step_s):.2f}× that")
    return PAPER_BATCH * PAPER_FRAMES / step_s


def open_budget(sizes: list[int]) -> None:
    print(f"\n{'videos':>8} {'open + lengths s':>17} {'objects read':>13}")
    for videos in sizes:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "feats.zarr"
            synthetic_store(path, videos)
            _, seconds, objects = lengths(f"counting://{path}", use_index=True)
            print(f"{videos:>8} {seconds:>17.3f} {objects:>13}")


@click.command()
@click.argument("store", required=False)
@click.option("--quick", is_flag=True, help="Smoke run: shorter clips, fewer batches, stores of 1k videos only.")
@click.option("--loader-workers", default=2, show_default=True)
def main(store: str | None, quick: bool, loader_workers: int) -> None:
    """The stage budget of extraction and training (module docstring)."""
    numcodecs.blosc.use_threads = False
    print(f"torch {torch.__version__}, {machine_cores()} cores")
    with tempfile.TemporaryDirectory(prefix="astar-datapath-") as folder:
        store = store or next((path for path in ("demo_output/feats.zarr",) if Path(path).is_dir()), None) or small_store(Path(folder))
        rates = per_core_rates(Path(folder), store, quick)
        after_decoding = non_network_rate(Path(folder), quick)
        print(f"everything after decoding, C3D a zero-cost stand-in: {after_decoding:.0f} sampled frames/s = "
              f"{after_decoding / (2 * rates['decode']):.1f}× twice the per-core decode rate (target ≥ 1)")
        here, h100 = network_rates()
        print(f"C3D fp32 here: {here:.1f} frames/s; an H100 at {GPU_EFFICIENCY:.0%} of its bf16 peak: {h100:.0f} frames/s")
        stage_table(rates, {f"C3D {here:.0f} fps here": here, f"H100 C3D {h100:.0f} fps": h100}, EXTRACTION,
                    "extraction: the cores each stage needs to keep up with C3D")
        step_frames = loader_budget(store, loader_workers, 5 if quick else 30)
        stage_table(rates, {f"H100 paper steps {step_frames:.0f} fps": step_frames}, TRAINING,
                    "training, streaming from the store: the cores each stage needs per GPU")
    open_budget([1000] if quick else [1000, 10_000, 100_000])


if __name__ == "__main__":
    main()
