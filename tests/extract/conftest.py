"""Fixtures shared by the extraction tests: small generated videos and a session-wide extractor."""
import numpy as np
import pytest

from astar.extract import ExtractionSettings, Extractor
from tests.videos import write_video


@pytest.fixture(scope="session")
def extractor() -> Extractor:
    return Extractor.build(ExtractionSettings(device="cpu"))


@pytest.fixture
def video_folder(tmp_path):
    """Three short clips (2.5 s, 1 s, 4 s at 10 fps), one in a subfolder."""
    folder = tmp_path / "videos"
    (folder / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, frames in (("a.mp4", 25), ("nested/b.mkv", 10), ("c d.webm", 40)):
        codec = "libvpx-vp9" if name.endswith("webm") else "libx264"
        write_video(folder / name, rng.integers(0, 255, (frames, 48, 64, 3), dtype=np.uint8), fps=10, codec=codec)
    return folder
