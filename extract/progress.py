"""Progress for every command: a tqdm bar on a terminal, plain lines at a modest interval in a log.

tqdm redraws its bar with carriage returns many times a second; written to a file or a
pipe every redraw stays (a demo's log was 85 KB of them). ``progress`` gives a tqdm bar
when stderr is a terminal and otherwise a ``LineProgress``, which prints one plain line
every ``LINE_INTERVAL_S`` seconds and one when it closes. Both go to stderr; diagnostics
(failure lines, warnings) go there too through ``console.say``, so stdout keeps only results.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

LINE_INTERVAL_S = 30.0
"""Seconds between progress lines when stderr is not a terminal."""


class LineProgress:
    """tqdm's interface as the commands use it (iterate, ``update``, ``set_postfix``, ``write``, ``close``), as plain lines.

    Args:
        iterable: items to pass through while counting them (or None and call ``update``).
        total: expected count (from ``iterable`` when it has a length), None if unknown.
        desc, unit: as tqdm's. initial: count already done (a resumed epoch).
        interval: seconds between lines; the first comes after one interval, the last at ``close``.
    """

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
                 initial: int = 0, interval: float = LINE_INTERVAL_S) -> None:
        self.iterable = iterable
        self.total = len(iterable) if total is None and hasattr(iterable, "__len__") else total  # type: ignore[arg-type]
        self.desc, self.unit, self.n, self.interval = desc, unit, initial, interval
        self.initial = initial
        self.postfix = ""
        self.started = self.last_line = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last_line >= self.interval:
            self._line()

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    @staticmethod
    def write(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line()

    def _line(self) -> None:
        self.last_line = time.monotonic()
        elapsed = self.last_line - self.started
        done = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        postfix = f"; {self.postfix}" if self.postfix else ""
        self.write(f"{self.desc}: {done} {self.unit}{share}, {rate:.2f} {self.unit}/s, {elapsed:.0f} s{postfix}")


class _Silent(LineProgress):
    """Progress switched off (``--quiet``): counts, prints nothing but ``write``'s diagnostics."""

    def _line(self) -> None:
        pass


ProgressDisplay = tqdm | LineProgress
"""What ``progress`` returns; callers use ``update``, ``set_postfix``, iteration and ``close``."""


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, enabled: bool = True) -> ProgressDisplay:
    """A progress display on stderr: tqdm on a terminal, ``LineProgress`` otherwise, nothing but diagnostics when not ``enabled``."""
    if not enabled:
        return _Silent(iterable, total=total, desc=desc, unit=unit, initial=initial)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, file=sys.stderr, dynamic_ncols=True)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial)

