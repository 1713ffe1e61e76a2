"""One format version for everything bind saves (spaces, indexes), and the migrations between versions.

Each saved folder records ``format_version``. Loading passes its JSON through :func:`upgrade`, which applies
the registered migrations one version at a time up to :data:`FORMAT_VERSION`. A change to what a space or
an index stores bumps :data:`FORMAT_VERSION` and registers, next to the code that reads it, one migration
per kind from the previous version (``@migration("index", 2)`` upgrades an index manifest from 2 to 3).

History: 1 - the layout before the engine rebuild; 2 - spaces and indexes share one version (space.json
gains ``"format": "bind-space"``); 3 - an index manifest records every file's size and sha256 (``files``);
4 - an index manifest records its score settings (``scoring``, ``banks``, ``calibration``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ConfigError

FORMAT_VERSION = 4

Migration = Callable[[dict[str, Any]], dict[str, Any]]
_MIGRATIONS: dict[tuple[str, int], Migration] = {}


def migration(kind: str, from_version: int) -> Callable[[Migration], Migration]:
    """Register ``fn(data) -> data`` upgrading a saved ``kind`` from ``from_version`` to the next version."""
    def register(fn: Migration) -> Migration:
        _MIGRATIONS[(kind, from_version)] = fn
        return fn
    return register


def upgrade(kind: str, data: dict[str, Any], source: object) -> dict[str, Any]:
    """``data`` (a saved ``kind``'s JSON) brought up to :data:`FORMAT_VERSION`; ConfigError names ``source``."""
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError(f"{source}: not a bind {kind} (no format_version)")
    if version > FORMAT_VERSION:
        raise ConfigError(f"{source}: written by a newer bind (format version {version}; this bind reads up to "
                          f"{FORMAT_VERSION}); upgrade bind")
    while version < FORMAT_VERSION:
        step = _MIGRATIONS.get((kind, version))
        if step is None:
            raise ConfigError(f"{source}: a bind {kind} of format version {version} cannot be upgraded "
                              f"(no migration to {version + 1})")
        data = {**step(data), "format_version": version + 1}
        version += 1
    return data
