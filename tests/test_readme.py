"""Every Python block of the README runs as written, saved as a script, on small data.

A block is run with ``python block.py`` in a folder holding what the README's examples
name: ``videos/`` (with ``nested/clip.mp4``), ``captions.csv`` and the ``feats.zarr``
extracted from them. Blocks for clusters that need packages astar does not install
(``dask_jobqueue``, ``dask_kubernetes``) are deployment notes and are skipped for that reason only.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from astar.extract import ExtractionConfig, collect_inputs, extract_videos
from astar.pipelines.synthetic import write_video

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (REPO_ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)
CAPTIONS = {"nested/clip": ("train", "a red square moves left"), "a": ("val", "a red square moves right"),
            "b": ("test", "a blue square moves left")}


def imported_modules(code: str) -> list[str]:
    """Top-level packages a block imports."""
    return re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", code, flags=re.M)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """videos/, captions.csv (three captions per video) and feats.zarr, as the examples expect."""
    root = tmp_path_factory.mktemp("readme")
    rng = np.random.default_rng(0)
    rows = ["video_id,caption,split"]
    (root / "videos" / "nested").mkdir(parents=True)
    for video_id, (split, caption) in CAPTIONS.items():
        write_video(root / "videos" / f"{video_id}.mp4", rng.integers(0, 255, (20, 48, 64, 3), dtype=np.uint8), fps=10)
        rows += [f"{video_id},{caption},{split}"] * 3
    (root / "captions.csv").write_text("\n".join(rows) + "\n")
    summary = extract_videos(collect_inputs([str(root / "videos")]), str(root / "feats.zarr"),
                             ExtractionConfig(device="cpu"), progress=False)
    assert summary.count("done") == len(CAPTIONS), summary.table()
    return root


@pytest.mark.parametrize("number", range(len(BLOCKS)), ids=[f"block{n + 1}" for n in range(len(BLOCKS))])
def test_a_readme_python_block_runs_as_a_script(workspace, number, tmp_path):
    code = BLOCKS[number]
    missing = [name for name in imported_modules(code) if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"a deployment note: needs {', '.join(missing)}, which astar does not install")
    script = tmp_path / f"block{number + 1}.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], cwd=workspace, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"README block {number + 1} failed:\n{code}\n{result.stderr[-3000:]}"
