"""Stopping a long command cleanly: the first Ctrl-C or SIGTERM asks, the step boundary obeys."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C or SIGTERM (a second Ctrl-C raises as usual).

    Handlers can only be installed from the main thread; elsewhere the event is never set.
    """
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum: int, frame: Any) -> None:
        if requested.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested.set()

    previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
