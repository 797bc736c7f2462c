"""Start-up is part of the interface: ``--help`` and a store reader load none of the heavy libraries.

Each check runs in a fresh interpreter (this test process has long imported torch) and
asks it which modules it ended with; how long that takes is benchmarks/startup.py's job.
"""
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from astar.extract import ExtractionConfig, collect_inputs, extract_videos
from tests.videos import write_video

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
HELP_FORBIDDEN = ("torch", "dask", "distributed", "pandas", "zarr", "av", "matplotlib", "tensorboard")
"""Nothing of these is needed to print a command's options."""
STORE_FORBIDDEN = ("torch", "dask", "distributed", "av", "matplotlib", "tensorboard")
"""A notebook or a DataLoader worker reading features needs Zarr (and pandas for the failures table), not these."""


def loaded_after(code: str) -> set[str]:
    """The top-level modules a fresh interpreter has imported after running ``code``."""
    report = "\nimport sys\nprint(' '.join(sorted({name.partition('.')[0] for name in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", code + report], capture_output=True, text=True, check=True)
    return set(done.stdout.split("\n")[-2].split())


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_of_every_command_loads_no_heavy_library(script):
    module, function = SCRIPTS[script].split(":")
    code = (
        f"from {module} import {function}\n"
        f"try:\n    {function}(['--help'], prog_name={script!r})\nexcept SystemExit as stop:\n    assert stop.code == 0, stop.code\n"
    )
    assert loaded_after(code) & set(HELP_FORBIDDEN) == set()


@pytest.fixture(scope="module")
def one_clip_store(tmp_path_factory) -> Path:
    """A store of one short clip, extracted with random-init C3D."""
    folder = tmp_path_factory.mktemp("startup")
    frames = np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
    clip = write_video(folder / "clip.mp4", frames, fps=8)
    store = folder / "feats.zarr"
    summary = extract_videos(collect_inputs([str(clip)]), str(store), ExtractionConfig(device="cpu"), progress=False)
    assert summary.count("failed") == 0
    return store


def test_reading_a_store_loads_neither_torch_nor_dask(one_clip_store):
    code = (
        "from astar.extract.store.reader import open_store\n"
        f"store = open_store({str(one_clip_store)!r})\n"
        "[video] = store.video_ids\n"
        "features = store.read(video, store.layer_names[0])\n"
        "assert features.ndim == 4 and features.size > 0\n"
        "assert store.failures.empty\n"
    )
    assert loaded_after(code) & set(STORE_FORBIDDEN) == set()


def test_importing_the_packages_loads_no_heavy_library():
    assert loaded_after("import astar.extract, astar.train, astar.pipelines") & set(HELP_FORBIDDEN) == set()


@pytest.mark.parametrize("package", ["astar.extract", "astar.train"])
def test_every_exported_name_resolves(package):
    module = __import__(package, fromlist=["__all__"])
    unresolved = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert unresolved == []


def test_an_export_named_like_its_module_stays_the_export():
    import astar.train
    import astar.train.evaluate  # noqa: F401  (binds the submodule onto the package, as any import of it does)
    from astar.train.evaluate import evaluate

    assert astar.train.evaluate is evaluate
