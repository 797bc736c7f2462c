"""What every astar command shares: exit codes, the finite float type, the ``--storage-option`` flag, help layout, error lines.

Kept apart from the commands so importing it runs none of them. Library code never
imports it: status lines go through ``console``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from .console import printable
from .finite import finite_problem

EXIT_SOME_FAILED = 3
"""Exit code when the run went through but some videos failed (each recorded, one line each)."""

EXIT_INTERRUPTED = 130
"""Exit code when Ctrl-C or SIGTERM stopped a command (what was finished is kept; re-running resumes)."""

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
"""Click context of every command: ``-h`` as well as ``--help``, 100-column help."""

Command = TypeVar("Command", bound=Callable[..., Any])


class KeyValue(click.ParamType):
    """``KEY=VALUE`` → (key, value): the ``--storage-option`` type (``dict()`` of them is fsspec's options)."""

    name = "KEY=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, option = str(value).partition("=")
        if not sep or not key:
            self.fail(f"expected KEY=VALUE, got {value!r}", param, ctx)
        return key, option


class FiniteFloat(click.FloatRange):
    """A float option that must be finite (``finite.finite_problem``), within ``click.FloatRange``'s bounds.

    Every float option of every command has this type: ``--lr inf`` or ``--length-penalty nan``
    is a usage error naming the option, not NaN weights or empty captions later.
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        problem = finite_problem(number)
        if problem:
            self.fail(problem, param, ctx)
        return number


def storage_option(note: str = "") -> Callable[[Command], Command]:
    """The ``--storage-option KEY=VALUE`` flag (repeatable) into the ``storage_options`` parameter."""
    return click.option(
        "--storage-option", "storage_options", type=KeyValue(), multiple=True,
        help="fsspec option for a remote store (repeatable), e.g. endpoint_url=http://127.0.0.1:9000." + note,
    )


decode_timeout_option = click.option(
    "--decode-timeout", type=FiniteFloat(min=1), default=600, show_default=True,
    help="Seconds one video may take to decode before it is recorded as failed.",
)
"""``--decode-timeout`` of every command that decodes videos (astar-extract, astar-caption)."""


def command_error(message: object, usage: bool = False) -> click.ClickException:
    """The one ``Error: …`` line a command ends with, ``printable``: a file name it quotes may hold a line break.

    ``usage``: a mistake in the command line, shown under the usage line with exit code 2.
    """
    return (click.UsageError if usage else click.ClickException)(printable(str(message)))


def run_exit_code(failed: int) -> int:
    """A finished command's exit code: ``EXIT_SOME_FAILED`` when ``failed`` videos (≥ 1) failed or were found damaged, else 0."""
    return EXIT_SOME_FAILED if failed else 0
