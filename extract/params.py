"""Click parameter types shared by every astar command (kept apart from ``cli`` so importing them runs no command module)."""
from __future__ import annotations

from typing import Any

import click


class KeyValue(click.ParamType):
    """``KEY=VALUE`` → (key, value): the ``--storage-option`` type of every astar command (``dict()`` of them is fsspec's options)."""

    name = "KEY=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, option = str(value).partition("=")
        if not sep or not key:
            self.fail(f"expected KEY=VALUE, got {value!r}", param, ctx)
        return key, option
