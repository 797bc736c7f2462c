"""One training process per run directory: an exclusive lock held for the life of the run.

Two ``astar-train --out R`` started at once would otherwise both write ``R``, and the
second's restart rule could delete what the first had written. The lock is an advisory
``flock`` on ``R/.astar-run.lock``, taken before anything in ``R`` is read, decided or
deleted, and held until the run ends; the kernel releases it however the process ends
(SIGKILL included), so a stale lock never blocks a later run. The file stays, holding the
pid of its last holder for the refusal message.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import TrainingError

LOCK_FILE = ".astar-run.lock"


class RunLock:
    """A hold on at most one run directory; ``take`` it, ``release`` it (or leave the ``with``)."""

    def __init__(self) -> None:
        self._descriptor: int | None = None
        self.root: Path | None = None

    def take(self, root: Path) -> None:
        """Hold ``root`` (an existing folder) for this process; again for the same root is a no-op.

        Raises:
            TrainingError: another process holds it, named by its pid.
        """
        root = Path(root)
        if self.root is not None:
            if root.resolve() != self.root.resolve():
                raise ValueError(f"this lock holds {self.root}, not {root}")
            return
        path = root / LOCK_FILE
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(descriptor)
            raise TrainingError(f"{root}: another astar-train is using this run (pid {holder}); "
                                "wait for it to finish or choose another --out") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
        self._descriptor, self.root = descriptor, root

    def release(self) -> None:
        """Let another run take the folder (closing the file drops the flock)."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = self.root = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
