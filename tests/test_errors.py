"""One root for the errors users can cause (STYLE habit 10): every exception class astar defines is an ``AstarError``.

Each command catches ``AstarError`` alone, so a class deriving from anything else
(``CiderError`` once derived from ``ValueError``) reaches the user as a traceback.
Every module of the three stages is imported and searched, so a class added later is
checked too; a private class (``_Name``) is a signal caught inside its module.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import astar.extract
import astar.pipelines
import astar.train
from astar.extract import AstarError

MODULES = sorted(
    info.name for package in (astar.extract, astar.train, astar.pipelines)
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}.")
)


def exception_classes(module_name: str) -> list[type[BaseException]]:
    """The public exception classes ``module_name`` defines (not those it imports)."""
    module = importlib.import_module(module_name)
    return [value for name, value in vars(module).items()
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module_name
            and not name.startswith("_")]


def test_the_search_finds_the_error_classes_of_every_stage():
    found = {error.__name__ for module in MODULES for error in exception_classes(module)}
    assert {"AstarError", "StoreError", "TrainingError", "CiderError", "CheckpointError", "ScoresError"} <= found


@pytest.mark.parametrize("module", MODULES)
def test_every_error_class_a_module_defines_derives_from_astar_error(module):
    strays = [error.__qualname__ for error in exception_classes(module) if not issubclass(error, AstarError)]
    assert strays == []
