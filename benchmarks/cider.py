"""Time of one SCST reward: ``astar.train.objectives.cider.CiderD`` against pycocoevalcap's ``Cider``.

One SCST step scores B videos × K sampled captions against each video's references.
pycocoevalcap recounts document frequencies over the scored videos on every call and
scores one caption per video per call, so K calls; ``CiderD`` counts them once and
keeps each video's reference vectors. References are the real MSVD captions of the
shared fixtures (15 videos, 18–81 captions each), candidates other references of the
same video. The ratio is measured in this run; on a shared CPU it is noisy.

    .venv/bin/python benchmarks/cider.py [--samples 5] [--repeats 5]
"""
from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from pathlib import Path

from pycocoevalcap.cider.cider import Cider

from astar.train.objectives.cider import CiderD, DocumentFrequencies

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "annotations" / "msvd" / "captions_vid_tab.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5, help="captions sampled per video (K)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps")
    args = parser.parse_args()
    references: dict[str, list[str]] = defaultdict(list)
    for line in FIXTURE.read_text().splitlines():
        video_id, caption = line.split("\t")
        references[video_id].append(caption)
    rng = random.Random(0)
    samples = {video: [rng.choice(captions) for _ in range(args.samples)] for video, captions in references.items()}

    cider = CiderD(DocumentFrequencies.from_references(references), references)
    for video, captions in samples.items():  # reference vectors are built once per run, as in training
        cider.score(video, captions)
    started = time.perf_counter()
    for _ in range(args.repeats):
        for video, captions in samples.items():
            cider.score(video, captions)
    ours = (time.perf_counter() - started) / args.repeats

    started = time.perf_counter()
    for _ in range(args.repeats):
        for k in range(args.samples):
            Cider().compute_score(references, {video: [captions[k]] for video, captions in samples.items()})
    theirs = (time.perf_counter() - started) / args.repeats

    print(f"{len(references)} videos x {args.samples} captions per step: astar CiderD {ours * 1e3:.1f} ms, "
          f"pycocoevalcap Cider {theirs * 1e3:.1f} ms, speed-up x{theirs / ours:.1f} (shared CPU: noisy)")


if __name__ == "__main__":
    main()
