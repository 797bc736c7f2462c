"""A pool of decoder processes that keeps C3D fed: parallel decoding, each video isolated.

``DecoderPool(preprocessing, decoders=N).map(videos)`` decodes up to N videos at once,
each in its own child process, and yields them in order of completion, so C3D never
waits on a long video while shorter ones are ready. Every guarantee of one isolated
decoder holds per video:

- Timeout: a video still decoding ``timeout_s`` seconds after it was handed to its child
  becomes a ``DecodeError`` ("decoding timed out"); the child is killed and replaced.
- Crash isolation: a child that dies (segfault, OOM kill) costs its video only, which
  becomes a ``DecodeError`` naming the signal; the next request starts a fresh child.
- Failures recorded: every input is yielded exactly once, with its frames or its error.
- Bounded memory: a child holds its decoded video until the caller takes it, and takes
  no new video before, so at most N decoded videos wait, plus the one the caller holds.
  The frames come back through a file, not the pipe (``handoff``).
  A decoded video is ``frames × FRAME_BYTES`` (37.6 kB per sampled frame: 271 MB per
  hour at 2 fps); the full-resolution frames never leave the child, which keeps at
  most one of them (``decode.py``).

How many decoders: each child decodes on one thread, so N decoders use N cores (FFmpeg's
own frame threads would take ~1.3 cores per child and 10 % more CPU per frame, and N of
them would fight over the cores). One PyAV decoder delivers a few hundred sampled frames/s per core
from 640×360 H.264, C3D on a GPU tens of thousands, so a GPU machine gives every core
but the one that feeds the GPU and writes the store to decoding (``default_decoders``).
On a CPU C3D is ~20× slower than one decoder and wants every core: one decoder runs
ahead of it. ``benchmarks/extract.py`` prints the decoders a given C3D rate needs.

Children are forked from a ``forkserver`` that imported this module once: not from the
caller, whose CUDA or oneDNN threads make a fork unsafe, and not spawned, which made
each child import astar (and torch) afresh: 200 MB private memory and seconds per
child, against 5 MB and milliseconds from the server. They start when first needed;
``close`` (or leaving the ``with`` block) ends them.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection, wait

from .cores import machine_cores
from .decode import DecodedVideo, DecodeError, decode_video
from .handoff import discard, frames_path, pack, remove_orphans, unpack
from .preprocessing import Preprocessing
from .store.ids import VideoInput
from .store.schema import FPS

DEFAULT_TIMEOUT_S = 600.0
FRAME_BYTES = 112 * 112 * 3
"""Bytes of one decoded, cropped uint8 RGB frame (``DecodedVideo.frames`` is (N, 112, 112, 3))."""


def default_decoders(device: str, cores: int | None = None) -> int:
    """Decoder processes for C3D on ``device`` (``cpu`` or ``cuda``): ``cores`` (default: this machine's) minus C3D's.

    On CUDA every core but the one that feeds the GPU and writes the store decodes; on
    the CPU C3D wants every core and one decoder keeps ahead of it.
    """
    if device != "cuda":
        return 1
    return max(1, (machine_cores() if cores is None else cores) - 1)


def decoders_needed(c3d_frames_per_s: float, decode_frames_per_s_per_core: float) -> int:
    """Decoder processes (one core each) that deliver ``c3d_frames_per_s`` sampled frames/s."""
    return max(1, math.ceil(c3d_frames_per_s / decode_frames_per_s_per_core))


def _serve(conn: Connection, preprocessing: Preprocessing, fps: int, environment: dict[str, str]) -> None:
    """Child loop: receive (source, frames path), send back the decoded video (``handoff.pack``) or an error
    string; None ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # A forkserver child inherits the server's environment, fixed when the server started;
    # the caller's, as it is now, holds what fsspec needs (e.g. credentials set since).
    os.environ.clear()
    os.environ.update(environment)
    while (request := _next_request(conn)) is not None:
        source, path = request
        try:
            conn.send(pack(decode_video(source, preprocessing, fps, threads=1), path))
        except DecodeError as error:
            conn.send(str(error))
        except Exception as error:  # an unexpected failure is still only this video's
            conn.send(f"{type(error).__name__}: {' '.join(str(error).split())}")


def _next_request(conn: Connection) -> tuple[str, str] | None:
    """The next (source, frames path) to decode; None when the parent says so or has closed its end.

    The parent closes without a word a child it has lost track of: when the forkserver
    dies, every child it forked looks dead to the parent (their exit is learnt through
    it), so the parent starts fresh ones and drops the old, which then just exit.
    """
    try:
        return conn.recv()
    except EOFError:
        return None


class _Decoder:
    """One child process with at most one video in flight."""

    def __init__(self, context: mp.context.BaseContext, preprocessing: Preprocessing, fps: int) -> None:
        self._context, self._preprocessing, self._fps = context, preprocessing, fps
        self.process: mp.process.BaseProcess | None = None
        self.conn: Connection | None = None
        self.pending_frames: str | None = None  # where the request in flight's frames go (``handoff``)

    def request(self, source: str) -> None:
        if self.process is None or not self.process.is_alive():
            self._start()
        self.pending_frames = frames_path()
        self.conn.send((source, self.pending_frames))

    def _start(self) -> None:
        """Start a child; one that cannot start is a one-line ``DecodeError``, and nothing half-made is kept."""
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(child, self._preprocessing, self._fps, dict(os.environ)), daemon=True,
            name="astar-decoder",
        )
        try:
            process.start()
        except OSError as error:
            parent.close()
            raise DecodeError(f"cannot start a decoder process ({error.strerror or error})") from None
        finally:
            child.close()
        self.process, self.conn = process, parent

    def receive(self) -> DecodedVideo | DecodeError:
        """The reply to the request in flight, once ``conn`` is readable; a dead child's exit as the error."""
        try:
            reply = self.conn.recv()
        except (EOFError, ConnectionResetError, OSError):
            self.process.join(timeout=5)
            code = self.process.exitcode
            self.stop()
            if code and code < 0:
                return DecodeError(f"decoder crashed (killed by signal {-code})")
            return DecodeError(f"decoder exited with code {code}")
        if isinstance(reply, str):
            return DecodeError(reply)
        try:
            return unpack(reply)
        except OSError as error:
            return DecodeError(f"cannot read the decoded frames back ({error.strerror or error})")

    def stop(self) -> None:
        """Kill the child (a hung decode does not listen) and forget it."""
        if self.process is not None:
            self.process.kill()
            self.process.join(timeout=5)
        if self.conn is not None:
            self.conn.close()
        if self.pending_frames is not None:  # a video abandoned in flight may have left its frames
            discard(self.pending_frames)
        self.process, self.conn, self.pending_frames = None, None, None

    def close(self) -> None:
        """End an idle child politely, so it exits without an EOF traceback."""
        if self.process is not None and self.process.is_alive():
            try:
                self.conn.send(None)
                self.process.join(timeout=2)
            except (BrokenPipeError, OSError):
                pass
        self.stop()


class DecoderPool:
    """``decoders`` isolated decoder processes; ``map`` yields videos in order of completion (module note).

    Args:
        preprocessing: the resize and crop of the C3D weights in use.
        decoders: child processes, each decoding one video at a time (≥ 1).
        timeout_s: seconds one video may take, from being handed to its child.
        fps: sampling rate (the store's ``FPS``).
    """

    def __init__(
        self, preprocessing: Preprocessing, decoders: int = 1, timeout_s: float = DEFAULT_TIMEOUT_S, fps: int = FPS
    ) -> None:
        if decoders < 1:
            raise ValueError(f"decoders must be at least 1, got {decoders}")
        self.timeout_s = timeout_s
        remove_orphans()
        context = mp.get_context("forkserver")
        context.set_forkserver_preload([__name__])  # the server imports astar once, never the caller's __main__
        self._decoders = [_Decoder(context, preprocessing, fps) for _ in range(decoders)]
        self._idle: queue.SimpleQueue[_Decoder] = queue.SimpleQueue()  # shared by map and decode, across threads
        for decoder in self._decoders:
            self._idle.put(decoder)

    @property
    def decoders(self) -> int:
        return len(self._decoders)

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the children running now (none before the first request)."""
        return [d.process.pid for d in self._decoders if d.process is not None and d.process.is_alive()]

    def map(self, videos: Iterable[VideoInput]) -> Iterator[tuple[VideoInput, DecodedVideo | DecodeError]]:
        """Decode ``videos``, up to ``decoders`` at once; yield each (video, frames or error) as it completes.

        While the caller works on a yielded video the children go on decoding; a child
        whose video is done waits, holding it, until the next iteration takes it.
        """
        pending = iter(videos)
        in_flight: dict[_Decoder, tuple[VideoInput, float]] = {}  # insertion order = request order
        try:
            while True:
                while (decoder := self._take_idle(wait=not in_flight)) is not None:
                    if (video := next(pending, None)) is None:
                        self._idle.put(decoder)
                        break
                    decoder.request(video.source)
                    in_flight[decoder] = (video, time.monotonic() + self.timeout_s)
                if not in_flight:
                    return
                soonest = min(deadline for _, deadline in in_flight.values())
                ready = set(wait([d.conn for d in in_flight], timeout=max(0.0, soonest - time.monotonic())))
                finished = next((d for d in in_flight if d.conn in ready), None)
                if finished is not None:
                    video, _ = in_flight.pop(finished)
                    result = finished.receive()
                    self._idle.put(finished)
                    yield video, result
                    continue
                now = time.monotonic()
                for decoder, (video, deadline) in list(in_flight.items()):
                    if deadline <= now and not decoder.conn.poll():
                        del in_flight[decoder]
                        decoder.stop()
                        self._idle.put(decoder)
                        yield video, self._timed_out()
        finally:
            for decoder in in_flight:  # the caller stopped early: abandon the videos in flight
                decoder.stop()
                self._idle.put(decoder)

    def decode(self, video: VideoInput) -> DecodedVideo | DecodeError:
        """Decode one video in the next free child, waiting for one; threads may share a pool this way.

        A Dask worker's threads each run one video's task and share their process's pool.
        """
        decoder = self._idle.get()
        try:
            decoder.request(video.source)
            if decoder.conn.poll(self.timeout_s):
                return decoder.receive()
            decoder.stop()
            return self._timed_out()
        finally:
            self._idle.put(decoder)

    def _take_idle(self, wait: bool) -> _Decoder | None:
        """A free child; with ``wait``, block until one is (another thread holds them all), else None."""
        try:
            return self._idle.get(block=wait)
        except queue.Empty:
            return None

    def _timed_out(self) -> DecodeError:
        return DecodeError(f"decoding timed out after {self.timeout_s:g} s")

    def close(self) -> None:
        """End every child process."""
        for decoder in self._decoders:
            decoder.close()

    def __enter__(self) -> DecoderPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
