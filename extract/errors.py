"""The one root of every error a user can cause (STYLE habit 10).

Every ``…Error`` of astar derives from ``AstarError`` and carries a one-line message
that names the file and the reason; each command catches ``AstarError`` alone, so a
new error class can never reach the user as a traceback. Programming errors are not
``AstarError`` and stay loud.
"""
from __future__ import annotations


class AstarError(Exception):
    """An error the user can cause and fix; ``str(error)`` is the one line to show."""

    def __init__(self, message: str) -> None:
        # A DataLoader worker's error comes back as type(error)(its traceback as text): keep the one line.
        if "Original Traceback" in message:
            message = message.strip().splitlines()[-1].split("Error: ", 1)[-1]
        super().__init__(message)
