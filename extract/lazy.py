"""Lazy package exports (PEP 562): a package names its exports and their submodules, and imports one on first use.

``from astar.extract import open_store`` then loads the store module and what it
needs, not torch, Dask and PyAV with every other export; ``--help`` and a store
reader start in milliseconds. ``astar.extract`` and ``astar.train`` export this way.
"""
from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping
from typing import Any


class LazyPackage(types.ModuleType):
    """A package module whose exports are imported from their submodules on first access.

    The import system binds every loaded submodule as an attribute of its package; where
    an export has its submodule's name (``astar.train.evaluate``)
    the export is bound instead, as the eager ``from .evaluate import evaluate`` did, so
    the name means the same whichever was imported first.
    """

    _exports: dict[str, str]

    def __getattr__(self, name: str) -> Any:
        try:
            submodule = self._exports[name]
        except KeyError:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f"{self.__name__}.{submodule}"), name)
        super().__setattr__(name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and self._exports.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._exports})


def export_lazily(package: str, exports: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Make ``package`` (a package's ``__name__``) export each submodule's names lazily; returns its ``__all__``.

    Args:
        package: the package, already in ``sys.modules`` (its ``__init__`` is running).
        exports: submodule name (relative, ``store``) → the names it exports.
    """
    module = sys.modules[package]
    module._exports = {name: submodule for submodule, names in exports.items() for name in names}
    module.__class__ = LazyPackage
    return list(module._exports)
