"""Decoding in a child process: a corrupt file can hang or crash FFmpeg, never the batch.

``IsolatedDecoder.map`` keeps one request ahead of the caller, so the next video
decodes while C3D runs on the current one. A decode that outlives its timeout,
or a child that dies (segfault, OOM kill), becomes a ``DecodeError`` for that
video; the child is replaced and the batch goes on.
"""
from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection

from .decode import DecodedVideo, DecodeError, decode_video
from .ids import VideoInput
from .preprocessing import Preprocessing
from .schema import FPS

DEFAULT_TIMEOUT_S = 600.0


def _serve(conn: Connection, preprocessing: Preprocessing, fps: int) -> None:
    """Child loop: receive a source, send back a DecodedVideo or an error string; None ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while (source := conn.recv()) is not None:
        try:
            conn.send(decode_video(source, preprocessing, fps))
        except DecodeError as error:
            conn.send(str(error))
        except Exception as error:  # an unexpected failure is still only this video's
            conn.send(f"{type(error).__name__}: {' '.join(str(error).split())}")


class IsolatedDecoder:
    """A decoder child process with a per-video timeout, restarted after a hang or crash."""

    def __init__(self, preprocessing: Preprocessing, timeout_s: float = DEFAULT_TIMEOUT_S, fps: int = FPS) -> None:
        self.preprocessing = preprocessing
        self.timeout_s = timeout_s
        self.fps = fps
        self._context = mp.get_context("spawn")
        self._process: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None

    @property
    def worker_pid(self) -> int | None:
        """Process id of the current decoder child (None before the first request)."""
        return self._process.pid if self._process is not None else None

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(
            target=_serve, args=(child, self.preprocessing, self.fps), daemon=True, name="astar-decoder"
        )
        self._process.start()
        child.close()
        self._conn = parent

    def _request(self, source: str) -> None:
        if self._process is None or not self._process.is_alive():
            self._start()
        self._conn.send(source)

    def _receive(self) -> DecodedVideo | DecodeError:
        try:
            if self._conn.poll(self.timeout_s):
                reply = self._conn.recv()
                return reply if isinstance(reply, DecodedVideo) else DecodeError(reply)
            reason = f"decoding timed out after {self.timeout_s:g} s"
        except (EOFError, ConnectionResetError, OSError):
            self._process.join(timeout=5)
            code = self._process.exitcode
            reason = f"decoder crashed (killed by signal {-code})" if code and code < 0 else f"decoder exited with code {code}"
        self._stop()
        return DecodeError(reason)

    def map(self, videos: Iterable[VideoInput]) -> Iterator[tuple[VideoInput, DecodedVideo | DecodeError]]:
        """Decode ``videos`` in order, yielding (video, frames or error); the next is requested before yielding."""
        pending = iter(videos)
        current = next(pending, None)
        if current is not None:
            self._request(current.source)
        while current is not None:
            result = self._receive()
            following = next(pending, None)
            if following is not None:
                self._request(following.source)
            yield current, result
            current = following

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn = None, None

    def close(self) -> None:
        """End the child process (politely when idle)."""
        if self._process is not None and self._process.is_alive():
            try:
                self._conn.send(None)
                self._process.join(timeout=2)
            except (BrokenPipeError, OSError):
                pass
        self._stop()

    def __enter__(self) -> "IsolatedDecoder":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
