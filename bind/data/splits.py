"""Deterministic train/val/test splits for data that ships without one, grouped by source item."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Mapping

from ..errors import ConfigError
from .manifest import Item, Pair, PairManifest

DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def item_key(item: Item, base: str | None) -> str:
    """A machine-independent name for an item: a path relative to ``base`` (posix), or the text itself."""
    if isinstance(item, Path):
        path = os.path.abspath(item)
        return "file:" + (Path(os.path.relpath(path, base)).as_posix() if base else Path(path).as_posix())
    return "text:" + item


def assign_splits(manifest: PairManifest, fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
                  seed: int = 0) -> PairManifest:
    """A copy of ``manifest`` with ``meta["split"]`` set for every pair (existing splits are replaced).

    All pairs of one source item land in the same split. Items are ordered by a seeded hash of their
    key (file paths relative to the files' common folder, so the result does not depend on where the
    data lives) and cut at the cumulative ``fractions``; the same data and seed always give the same split.
    """
    if not fractions or any(f < 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise ConfigError(f"split fractions must be non-negative and sum to 1, got {dict(fractions)}")
    paths = [os.path.abspath(p.source) for p in manifest.pairs if isinstance(p.source, Path)]
    base = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else None
    keys = [item_key(p.source, base) for p in manifest.pairs]
    unique = sorted(set(keys), key=lambda k: hashlib.sha256(f"{seed}\0{k}".encode()).hexdigest())
    split_of: dict[str, str] = {}
    start, total = 0, 0.0
    for name, fraction in fractions.items():
        total += fraction
        end = len(unique) if abs(total - 1) <= 1e-6 else round(total * len(unique))
        split_of.update((key, name) for key in unique[start:end])
        start = end
    pairs = [Pair(p.source, p.target, {**p.meta, "split": split_of[key]}) for p, key in zip(manifest.pairs, keys)]
    return dataclasses.replace(manifest, pairs=pairs)
