"""Check that the C3D path computes exactly what an earlier revision computed.

Decodes a few generated videos with the paper preprocessing and runs random-init C3D
(seed 0) over them in fp32 and bf16, through the public pieces every revision has
(``decode_video``, ``Preprocessing.to_tensor``, ``pad_frames``, ``extract_features``).
``--save FILE`` writes every array to an ``.npz``; ``--compare FILE`` recomputes and
exits 1 unless every array is bit-identical. Run the first on the old revision, the
second on the new one::

    git archive OLD | tar -x -C /tmp/old && PYTHONPATH=/tmp/old-pkg python benchmarks/c3d_identity.py --save ref.npz
    .venv/bin/python benchmarks/c3d_identity.py --compare ref.npz
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from astar.extract import decode_video
from astar.extract.c3d import random_init
from astar.extract.features import extract_features, pad_frames, prepare_model
from astar.extract.preprocessing import PAPER
from astar.pipelines.synthetic import write_video


def features(folder: Path) -> dict[str, np.ndarray]:
    """Every stored array of three generated videos (8, 20 and 40 frames at 2 fps), fp32 and bf16."""
    rng = np.random.default_rng(0)
    arrays = {}
    for precision in ("fp32", "bf16"):
        model = prepare_model(random_init(seed=0)[0], torch.device("cpu"), precision)
        for seconds in (4, 10, 20):
            path = folder / f"v{seconds}.mp4"
            if not path.exists():
                write_video(path, rng.integers(0, 255, (seconds * 10, 72, 96, 3), dtype=np.uint8), fps=10)
            video = PAPER.to_tensor(pad_frames(decode_video(path, PAPER).frames))
            result = extract_features(model, video, max_frames_per_pass=112 if seconds == 20 else 256)
            for name, values in {**result.layers, "fc7": result.fc7, "fc7_windows": result.fc7_windows}.items():
                arrays[f"{precision}/{seconds}s/{name}"] = values
    return arrays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--save", type=Path)
    action.add_argument("--compare", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the same summation order in both runs
    with tempfile.TemporaryDirectory() as tmp:
        arrays = features(Path(tmp))
    if args.save:
        np.savez(args.save, **arrays)
        print(f"saved {len(arrays)} arrays to {args.save}")
        return 0
    reference = np.load(args.compare)
    differing = sorted(set(reference.files) ^ set(arrays))
    differing += [name for name in arrays if name in reference.files and not np.array_equal(reference[name], arrays[name])]
    for name in differing:
        print(f"DIFFERENT: {name}")
    print(f"{len(arrays) - len(differing)} of {len(arrays)} arrays bit-identical to {args.compare}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
