"""ASTAR over each backbone's stored levels against its top feature alone, on the demo's synthetic clips.

For every backbone: extract the same generated clips, train the small preset twice with
the same budget and seed (``astar`` over every stored layer, and ``fc7``: the top feature
only), and score both on the test split with greedy decoding. Random-init weights unless
the backbones' weights are wired in, so the figures compare the pipelines, not pretrained
features. Run: ``.venv/bin/python benchmarks/backbone_levels.py [--videos 24] [--epochs 5] [BACKBONE …]``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from astar.extract import ExtractionConfig, collect_inputs, extract_videos
from astar.extract.backbones import BACKBONES
from astar.pipelines.synthetic import CAPTIONS_FILE, generate_dataset
from astar.train import EvalConfig, TrainConfig, evaluate, train

SHOWN = ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backbones", nargs="*", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--out", type=Path, default=Path("backbone_levels"))
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    videos = args.out / "videos"
    if not (videos / CAPTIONS_FILE).exists():
        generate_dataset(videos, n_videos=args.videos, seed=args.seed, duration_range_s=(2.0, 8.0))
    print(f"{'backbone':<12} {'model':<6} " + " ".join(f"{metric:>8}" for metric in SHOWN))
    for name in args.backbones:
        store = args.out / f"{name}.zarr"
        extract_videos(collect_inputs([str(videos)]), str(store), ExtractionConfig(backbone=name, device="cpu", seed=args.seed),
                       progress=False)
        for variant in ("astar", "fc7"):
            run = args.out / f"run-{name}-{variant}"
            if not (run / "checkpoints" / "best.pt").exists():
                train(TrainConfig(store=str(store), dataset="csv", annotations=str(videos / CAPTIONS_FILE), out=str(run),
                                  preset="small", variant=variant, epochs=args.epochs, patience=args.epochs, lr=1e-2,
                                  batch_size=16, seed=args.seed, device="cpu", loader_workers=0, progress=False))
            scores = evaluate(run, EvalConfig(loader_workers=0, progress=False, beam_size=1)).scores.corpus
            print(f"{name:<12} {variant:<6} " + " ".join(f"{100 * scores.get(metric, float('nan')):8.1f}" for metric in SHOWN),
                  flush=True)


if __name__ == "__main__":
    main()
