"""Write-behind: store writes run on a writer thread, so the thread that feeds the network never waits on compression or I/O.

The network thread ``submit``s each write (a tile's chunks, a video's attributes and
marker) and moves on; the writer thread runs them one after another, in the order
submitted, so a video's arrays are written before its attributes and its marker
(storage_schema.md §6). Compression within one write is parallel: zarr encodes the
chunks of one array write concurrently on its thread pool (``zarr.config``
``threading.max_workers``, default every core).

Memory: the writes waiting, and the one running, hold at most ``WRITE_BEHIND_BYTES``
of feature maps (one larger write waits until the queue is empty); ``submit`` blocks
until there is room.

Faults: the first exception a write raises is raised again in the submitting thread at
its next ``submit``, ``results`` or ``drain``, and the writes queued after it are
dropped. Leaving the ``with`` block by an exception (Ctrl-C) drops the queued writes and
waits for the running one, so a video whose marker write had not started has none.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

WRITE_BEHIND_BYTES = 128 << 20
"""Most bytes of feature maps queued for (or being written by) the writer thread: six tiles of a long video at C3D's
default 256 frames per pass (160-frame cores, 21 MB of float16 maps each)."""


class WriteBehind:
    """A writer thread and its queue, bounded in bytes; a context manager that ends the thread on exit.

    A write is a callable; what it returns, when not None, is collected for ``results``
    (in order of completion), so a run reports a video once its marker is written.
    """

    def __init__(self, limit_bytes: int = WRITE_BEHIND_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self._jobs: deque[tuple[Callable[[], Any], int]] = deque()
        self._held_bytes = 0
        self._busy = False
        self._stopping = False
        self._failure: BaseException | None = None
        self._results: list[Any] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._write, name="astar-writer", daemon=True)
        self._thread.start()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        with self._changed:
            if kind is not None:
                self._jobs.clear()
            self._stopping = True
            self._changed.notify_all()
        self._thread.join()

    def submit(self, job: Callable[[], Any], nbytes: int = 0) -> None:
        """Queue ``job``, holding ``nbytes`` of the queue's room until it has run; blocks while there is none.

        Raises:
            whatever an earlier write raised.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._failure is not None or self._held_bytes == 0
                                   or self._held_bytes + nbytes <= self.limit_bytes)
            self._raise_failure()
            self._jobs.append((job, nbytes))
            self._held_bytes += nbytes
            self._changed.notify_all()

    def results(self) -> list[Any]:
        """What the writes finished since the last call returned (their non-None results).

        Raises:
            whatever a write raised.
        """
        with self._changed:
            self._raise_failure()
            finished, self._results = self._results, []
            return finished

    def drain(self) -> list[Any]:
        """Wait until every queued write has run; then ``results``."""
        with self._changed:
            self._changed.wait_for(lambda: self._failure is not None or not (self._jobs or self._busy))
        return self.results()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _write(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._jobs or self._stopping)
                if not self._jobs:
                    return
                job, nbytes = self._jobs.popleft()
                self._busy = True
            try:
                result = job()
            except BaseException as failure:  # raised again in the submitting thread
                with self._changed:
                    self._failure = failure
                    self._jobs.clear()
                    self._held_bytes, self._busy = 0, False
                    self._changed.notify_all()
                continue
            del job  # its maps are freed now, not when the next write replaces it
            with self._changed:
                if result is not None:
                    self._results.append(result)
                self._held_bytes -= nbytes
                self._busy = False
                self._changed.notify_all()
