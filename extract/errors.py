"""The one root of every error a user can cause (STYLE habit 10).

Every ``…Error`` of astar derives from ``AstarError`` and carries a one-line message
that names the file and the reason; each command catches ``AstarError`` alone, so a
new error class can never reach the user as a traceback. Programming errors are not
``AstarError`` and stay loud.
"""
from __future__ import annotations


class AstarError(Exception):
    """An error the user can cause and fix; ``str(error)`` is the one line to show."""
