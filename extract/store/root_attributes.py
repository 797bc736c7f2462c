"""A store's root attributes (storage_schema.md §3): the version-1 upgrade and the one check of them.

Every reader (``open_store``) and the writer reopening a store ask ``root_problem`` before
they trust a root attribute, so a hand-edited or foreign ``zarr.json`` is refused in one
line naming the first problem, never met later as a ``KeyError`` in training or captioning.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..backbones import BACKBONES, DEFAULT_BACKBONE, get_backbone
from ..options import PRECISION_NAMES
from ..preprocessing import PREPROCESSINGS
from .schema import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, TOP_FEATURE, LayerGeometry


def upgraded_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Root attributes as schema version 2 states them; a version-1 store's are completed.

    Version 1 stores are C3D stores: they gain ``backbone`` (``c3d``), C3D's ``layers``
    geometry, the v2 ``fc7`` record, ``preprocessing.std`` (null) and version 2, so a
    run trained on a v1 store and features extracted now compare equal when they are.
    """
    if attrs.get("astar_schema_version") != 1:
        return dict(attrs)
    upgraded = {**attrs, **get_backbone(DEFAULT_BACKBONE).describe(), "astar_schema_version": SCHEMA_VERSION}
    if isinstance(attrs.get("preprocessing"), dict):
        upgraded["preprocessing"] = {**attrs["preprocessing"], "std": attrs["preprocessing"].get("std")}
    return upgraded


def layer_geometry(attrs: Mapping[str, Any]) -> tuple[LayerGeometry, ...]:
    """The stored layers' geometry from (upgraded) root attributes, lowest layer first."""
    return tuple(LayerGeometry.from_record(record) for record in upgraded_attributes(attrs)["layers"])


def _kind(value: Any) -> str:
    """A JSON value's type as messages name it."""
    return {type(None): "null", dict: "object"}.get(type(value), type(value).__name__)


def _int_pair(value: list, least: int) -> bool:
    return len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= least for v in value)


@dataclass(frozen=True)
class Rule:
    """What one attribute must be: one of ``types`` (a bool is no int) that ``accepts`` takes, if given.

    ``expectation`` ends "… must be …" in the message; a value of the wrong type is shown by
    its type, one of the right type that ``accepts`` refuses by itself.
    """

    key: str
    types: tuple[type, ...]
    expectation: str
    accepts: Callable[[Any], bool] | None = None

    def problem(self, record: Mapping[str, Any]) -> str | None:
        """Why ``record[key]`` breaks the rule (``'key' is missing``, ``'key' must be …, got …``), or None."""
        if self.key not in record:
            return f"{self.key!r} is missing"
        value = record[self.key]
        if not isinstance(value, self.types) or (isinstance(value, bool) and bool not in self.types):
            return f"{self.key!r} must be {self.expectation}, got {_kind(value)}"
        if self.accepts is not None and not self.accepts(value):
            return f"{self.key!r} must be {self.expectation}, got {_shown(value)}"
        return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}…"


def _positive(value: int) -> bool:
    return value >= 1


VERSION_RULE = Rule("astar_schema_version", (int,), "an int")

ROOT_RULES = (
    Rule("astar_version", (str,), "a str"),
    Rule("created", (str,), "a str"),
    Rule("fps", (int,), "a positive int", _positive),
    Rule("frame_size", (list,), "[height, width], positive ints", lambda v: _int_pair(v, 1)),
    Rule("preprocessing", (dict,), "an object"),
    Rule("backbone", (str,), f"a registered backbone ({', '.join(BACKBONES)})", lambda v: v in BACKBONES),
    Rule("layers", (list,), "a list of layer objects", lambda v: bool(v) and all(isinstance(e, dict) for e in v)),
    Rule("model", (dict,), "an object"),
    Rule("precision", (str,), f"one of {', '.join(PRECISION_NAMES)}", lambda v: v in PRECISION_NAMES),
    Rule(TOP_FEATURE, (dict,), "an object"),
    Rule("frame_padding", (str,), "a str"),
)
"""storage_schema.md §3's table, in its order."""

OBJECT_RULES = {
    "preprocessing": (Rule("name", (str,), f"one of {', '.join(PREPROCESSINGS)}", lambda v: v in PREPROCESSINGS),),
    TOP_FEATURE: (Rule("channels", (int,), "a positive int", _positive),),
}
"""What readers take from inside the object attributes (§3, §3.2)."""

_POSITIVE_INT = ((int,), "a positive int", _positive)
_FIELD = ((int, type(None)), "a positive int or null", lambda v: v is None or v >= 1)
_CENTRE = ((int, float, type(None)), "a number or null")

LAYER_RULES = (
    Rule("name", (str,), "a non-empty str", bool),
    Rule("channels", *_POSITIVE_INT),
    Rule("time_stride", *_POSITIVE_INT),
    Rule("space_stride", *_POSITIVE_INT),
    Rule("height", *_POSITIVE_INT),
    Rule("width", *_POSITIVE_INT),
    Rule("time_centre", *_CENTRE),
    Rule("space_centre", *_CENTRE),
    Rule("time_field", *_FIELD),
    Rule("space_field", *_FIELD),
    Rule("pool_padding", (list,), "[time, space], non-negative ints", lambda v: _int_pair(v, 0)),
)
"""storage_schema.md §3.1's table: one rule per ``LayerGeometry`` field."""


def root_problem(attrs: Mapping[str, Any], versions: tuple[int, ...] = READABLE_SCHEMA_VERSIONS) -> str | None:
    """The first way a store's root attributes break storage_schema.md §3 for code that handles ``versions``, or None.

    The schema version is checked as stored; the rest as version 2 states it
    (``upgraded_attributes``), so a version-1 store is checked against C3D's geometry.
    A writer passes only ``SCHEMA_VERSION``: it adds videos to no other version.
    """
    if "astar_schema_version" not in attrs:
        return "not an astar feature store (no astar_schema_version attribute)"
    problem = VERSION_RULE.problem(attrs)
    if problem is not None:
        return f"root attribute {problem}"
    found = attrs["astar_schema_version"]
    if found not in versions:
        readable = " or ".join(map(str, versions))
        if len(versions) > 1:
            return f"schema version {found}, but this astar reads version {readable}"
        return f"schema version {found}, but this astar adds videos to version {readable}"
    upgraded = upgraded_attributes(attrs)
    for rule in ROOT_RULES:
        problem = rule.problem(upgraded)
        if problem is not None:
            return f"root attribute {problem}"
    for key, rules in OBJECT_RULES.items():
        for rule in rules:
            problem = rule.problem(upgraded[key])
            if problem is not None:
                return f"root attribute {key!r}: {problem}"
    return _layers_problem(upgraded["layers"])


def _layers_problem(layers: list[dict[str, Any]]) -> str | None:
    """The first layer record that breaks §3.1, or two layers of one name, as a message; or None."""
    names: set[str] = set()
    for index, layer in enumerate(layers):
        for rule in LAYER_RULES:
            problem = rule.problem(layer)
            if problem is not None:
                return f"root attribute 'layers', entry {index}: {problem}"
        if layer["name"] in names:
            return f"root attribute 'layers', entry {index}: name {layer['name']!r} is taken by an earlier layer"
        names.add(layer["name"])
    return None
