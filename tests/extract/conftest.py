"""Fixtures shared by the extraction tests: small generated videos, a session-wide extractor, a local S3 server."""
import shutil
import socket
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from astar.extract import ExtractionConfig, Extractor, collect_inputs, extract_videos
from tests.videos import write_video


@pytest.fixture(scope="session")
def extractor() -> Extractor:
    return Extractor.build(ExtractionConfig(device="cpu"))


def template_store(tmp_path_factory, extractor: Extractor, frames: dict[str, int], seed: int) -> tuple[Path, Path]:
    """Clips of ``frames`` frames each (name → count, 32×48 at 10 fps) and the store extracted from them,
    each in a folder of its own (pytest's base temp folder is shared by every module)."""
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(seed)
    for name, count in frames.items():
        write_video(folder / name, rng.integers(0, 255, (count, 32, 48, 3), dtype=np.uint8), fps=10)
    store = tmp_path_factory.mktemp("template") / "template.zarr"
    extract_videos(collect_inputs([str(folder)]), str(store), extractor=extractor, progress=False)
    return folder, store


@pytest.fixture
def store(written, tmp_path) -> Path:
    """A copy of the module's ``written`` template store, for a test to damage or edit."""
    return shutil.copytree(written[1], tmp_path / "feats.zarr")


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (until someone binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A local S3-compatible server; dummy credentials, and no AWS endpoint outside 127.0.0.1 can be reached."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": endpoint,  # inputs are opened with fsspec's defaults
        }.items():
            env.setenv(name, value)
        env.delenv("AWS_PROFILE", raising=False)
        yield endpoint
    server.stop()


@pytest.fixture
def bucket(s3_endpoint) -> tuple[str, dict]:
    """A fresh bucket (moto's state is process-wide) and the store's storage options."""
    import s3fs

    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    name = f"astar-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**options).mkdir(name)
    return name, options


@pytest.fixture
def closed_port() -> int:
    return free_port()


class StalledServer:
    """An HTTP server on 127.0.0.1 that reads each request and never answers: decoding its URLs blocks.

    ``url(name)`` is a video URL on it; ``requested(name)`` says whether a decoder has asked for it.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.paths: set[str] = set()
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.connections.append(connection)
            request = connection.recv(4096).decode("latin-1").split(" ")
            if len(request) > 1:
                self.paths.add(request[1])

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/{name}.mp4"

    def requested(self, name: str) -> bool:
        return f"/{name}.mp4" in self.paths

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def stalled_server():
    server = StalledServer()
    yield server
    server.close()
