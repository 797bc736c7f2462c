"""What users install: the wheel built from this checkout, installed non-editable into a fresh
environment, runs every command from outside the checkout.

An editable install (``make``, CI) resolves ``astar.*`` through the checkout and so hides
a package the wheel leaves out. The fresh environment sees the test environment's
site-packages for the *dependencies* only (a ``.pth`` line adds a folder to ``sys.path``
without running the editable finder inside it), and astar comes from the wheel alone.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from astar.pipelines.synthetic import write_video

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
STAGES = ("extract", "train", "pipelines")
"""The design card's top-level folders; each installs as ``astar.<folder>``."""

pytestmark = pytest.mark.slow
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check")
"""pip offline: a machine without PyPI must not wait on its version check or an index."""


def _dependency_folders() -> list[str]:
    """The test interpreter's site-packages folders (its dependencies), never the checkout's sources.

    ``make test``'s ``.venv`` lies inside the checkout; its site-packages is dependencies only
    (a folder added by a ``.pth`` line has its own ``.pth`` files, the editable finder's
    included, left unread), so only the source folders are kept out."""
    folders = [Path(entry).resolve() for entry in sys.path if entry]
    return [str(path) for path in folders
            if path.is_dir() and "site-packages" in path.parts
            and (not path.is_relative_to(REPO_ROOT) or path.is_relative_to(REPO_ROOT / ".venv"))]


def _run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    environment = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed non-editable; returns its bin/ folder."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: a build/ folder left in the checkout would hide a missing package
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    for stage in STAGES:
        shutil.copytree(REPO_ROOT / stage, source / stage, ignore=shutil.ignore_patterns("__pycache__"))
    built = _run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(root / "dist"), str(source)], root)
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("astar-*.whl")
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root).stdout.strip()
    Path(site, "zz-test-dependencies.pth").write_text("\n".join(_dependency_folders()) + "\n")
    install = _run([*PIP, "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)], root)
    assert install.returncode == 0, install.stderr
    return venv / "bin"


def test_every_astar_module_comes_from_the_wheel_not_the_checkout(installed, tmp_path):
    listing = (
        "import pkgutil, astar.extract, astar.train, astar.pipelines\n"
        "for package in (astar.extract, astar.train, astar.pipelines):\n"
        "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        print(module.name)\n"
        "print(astar.extract.__file__)\n"
    )
    result = _run([str(installed / "python"), "-c", listing], tmp_path)
    assert result.returncode == 0, result.stderr
    *modules, extract_file = result.stdout.split()
    assert Path(extract_file).is_relative_to(installed.parent), extract_file
    assert "astar.extract.backbones" in modules
    checkout_packages = {
        "astar." + ".".join(folder.relative_to(REPO_ROOT).parts)
        for stage in STAGES for folder in (REPO_ROOT / stage).rglob("*")
        if (folder / "__init__.py").is_file()
    }
    assert checkout_packages <= set(modules)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_command_answers_help_when_installed(installed, tmp_path, script):
    result = _run([str(installed / script), "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: {script}"), result.stdout


def test_installed_extract_stores_one_clip(installed, tmp_path):
    rng = np.random.default_rng(0)
    clip = write_video(tmp_path / "clip.mp4", rng.integers(0, 255, (8, 64, 64, 3), dtype=np.uint8), fps=8)
    store = tmp_path / "feats.zarr"
    result = _run([str(installed / "astar-extract"), str(clip), "--out", str(store), "--device", "cpu", "-q"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 done, 0 skipped, 0 failed" in result.stdout
    read = _run([str(installed / "python"), "-c", f"from astar.extract import open_store; print(open_store({str(store)!r}).video_ids)"], tmp_path)
    assert read.stdout.strip() == "['clip']", read.stderr
