"""Reading a Zarr hierarchy as stored, damaged nodes included: the helpers the store and its index share."""
from __future__ import annotations

from typing import Any

import zarr
from zarr.core.sync import sync


def child_names(group: zarr.Group) -> list[str]:
    """Names of the nodes under ``group`` as stored, readable or not, sorted: one listing
    (``group_keys`` stops at the first broken node)."""

    async def names() -> list[str]:
        return [name async for name in group.store.list_dir(group.path)]

    return sorted(name for name in sync(names()) if name != "zarr.json")


def readable_attrs(parent: zarr.Group, key: str) -> dict[str, Any] | None:
    """Attributes of the group ``parent[key]``, or None when it is absent, not a group or unreadable."""
    try:
        node = parent[key]
    except (KeyError, ValueError, OSError, zarr.errors.NodeTypeValidationError):
        return None
    return dict(node.attrs) if isinstance(node, zarr.Group) else None
