"""Console output of library code: one status line on stderr, printable whatever file name it quotes.

The bottom of the layering: the store writer, the executors, the trainer and the
commands all say things this way, and none of them needs the command-line helpers.
"""
from __future__ import annotations

import sys
import unicodedata

UNPRINTABLE = frozenset({"Cc", "Cs", "Zl", "Zp"})
"""Unicode categories escaped in printed lines: controls, surrogates, line and paragraph separators."""


def printable(text: str) -> str:
    """``text`` as one printable line: control characters and line breaks escaped as Python writes
    them (``\\n``, ``\\x1b``), and a file name's bytes that were not UTF-8 (lone surrogates, as
    Python decodes Linux names) as the byte (``\\xff``). A file name can hold any of them."""
    return "".join(_escaped(char) for char in text)


def _escaped(char: str) -> str:
    if unicodedata.category(char) not in UNPRINTABLE:
        return char
    if 0xDC80 <= ord(char) <= 0xDCFF:  # surrogateescape's stand-in for byte 0x80-0xff
        return f"\\x{ord(char) - 0xDC00:02x}"
    return repr(char)[1:-1]


def say(message: str) -> None:
    """A status or diagnostic line on stderr that does not break progress bars; stdout keeps results.

    Every line that names a file (``failed:``, ``note:``, ``changed:``, ``damaged:``, what a
    scan skipped) goes out here, so it is made ``printable`` here: a name with a newline
    or a terminal escape in it cannot split the line or forge another.
    """
    from tqdm.auto import tqdm  # here, not at the top: every command's --help imports this module

    tqdm.write(printable(message), file=sys.stderr)
