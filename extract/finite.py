"""The rule every float setting of astar follows: it is a finite number (not inf, not NaN).

``inf`` and ``nan`` parse as floats and pass every range check (a comparison with NaN
is never true), then show up far away: NaN weights saved as the best checkpoint, every
caption empty. The command-line type (``clitools.FiniteFloat``) and the library configs
(``require_finite``) both refuse them with ``finite_problem``'s words.
"""
from __future__ import annotations

import math


def finite_problem(value: float) -> str | None:
    """Why ``value`` is no usable setting ("must be a finite number, got nan"), or None when it is finite."""
    return None if math.isfinite(value) else f"must be a finite number, got {value}"


def require_finite(**settings: float | None) -> None:
    """Raise ``ValueError`` ("lr must be a finite number, got inf") for the first of ``settings``
    that is infinite or NaN; None (a setting left unset) passes."""
    for name, value in settings.items():
        problem = None if value is None else finite_problem(value)
        if problem:
            raise ValueError(f"{name} {problem}")
