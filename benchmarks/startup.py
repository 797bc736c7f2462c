"""Start-up cost: every command's ``--help`` and opening a store, against ``python -c "import click"``.

Each figure is the fastest of ``--repeat`` fresh interpreters (the least disturbed by
other work on shared cores), printed as a ratio to the ``import click`` baseline measured
in the same run; the target is ≤ 3× for every ``--help``. Beside each: how many modules
the interpreter ended with and whether torch, Dask, matplotlib or tensorboard were among
them. The store is one short clip extracted here with random-init C3D.

    python benchmarks/startup.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "dask", "distributed", "matplotlib", "tensorboard")
REPORT = "import sys; print(len(sys.modules), *sorted(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)"


def command_code(entry_point: str, script: str) -> str:
    """What the console script ``script`` runs, with ``--help``, then the module report."""
    module, function = entry_point.split(":")
    return (
        f"import sys; sys.argv = [{script!r}, '--help']\n"
        f"from {module} import {function}\n"
        f"try:\n    {function}()\nexcept SystemExit:\n    pass\n"
    )


def store_code(store: Path) -> str:
    """Open a store and read what a notebook or a DataLoader worker reads first."""
    return (
        "from astar.extract.store.reader import open_store\n"
        f"store = open_store({str(store)!r})\n"
        "ids = store.video_ids\n"
        "store.read(ids[0], store.layer_names[0])\n"
        "store.failures\n"
    )


def fastest(code: str, repeat: int) -> tuple[float, str]:
    """Seconds of the fastest of ``repeat`` runs of ``python -c code``, and the module report of one more."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    report = subprocess.run([sys.executable, "-c", code + "\n" + REPORT.format(heavy=HEAVY)],
                            check=True, capture_output=True, text=True).stderr.strip().splitlines()[-1]
    return min(times), report


def make_store(folder: Path) -> Path:
    """A one-clip store (random-init C3D), extracted in this process."""
    import numpy as np

    from astar.extract import ExtractionConfig, collect_inputs, extract_videos
    from astar.pipelines.synthetic import write_video

    clip = write_video(folder / "clip.mp4", np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8), fps=8)
    store = folder / "feats.zarr"
    extract_videos(collect_inputs([str(clip)]), str(store), ExtractionConfig(device="cpu"), progress=False)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh interpreters per figure (the fastest counts)")
    args = parser.parse_args()
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    baseline, baseline_report = fastest("import click", args.repeat)
    print(f"{'what':<28} {'seconds':>8} {'× click':>8}  modules loaded, heavy ones")
    print(f"{'python -c (import click)':<28} {baseline:8.3f} {1:8.1f}  {baseline_report}")
    rows = [(f"{script} --help", command_code(entry, script)) for script, entry in scripts.items()]
    with tempfile.TemporaryDirectory() as folder:
        rows.append(("open + read a store", store_code(make_store(Path(folder)))))
        for label, code in rows:
            seconds, report = fastest(code, args.repeat)
            print(f"{label:<28} {seconds:8.3f} {seconds / baseline:8.1f}  {report}")
    print("target: every --help ≤ 3.0× click; the store opens without torch or dask")


if __name__ == "__main__":
    main()
