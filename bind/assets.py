"""bind's sample media (assets/): a few freely licensed items of every modality, with captions.

    from bind.assets import load_manifest
    for entry in load_manifest():
        print(entry.id, entry.modality, entry.path, entry.caption)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .experts.modality import Modality
from .resources import resource_dir

MANIFEST = "manifest.json"
_FIELDS = ("id", "modality", "path", "caption", "concept", "licence", "source")


@dataclass(frozen=True)
class AssetEntry:
    """One sample file: ``concept`` is shared by the items about the same thing in different modalities."""

    id: str
    modality: Modality
    path: Path
    caption: str
    concept: str
    licence: str
    source: str


def assets_dir() -> Path:
    """The folder holding the sample media and their manifest."""
    return resource_dir("assets")


def load_manifest(root: Path | None = None) -> list[AssetEntry]:
    """The entries of ``root/manifest.json`` (default: the packaged assets), with absolute paths.

    Raises ConfigError for a malformed entry and FileNotFoundError when a listed file is missing.
    """
    root = assets_dir() if root is None else Path(root)
    manifest = root / MANIFEST
    records = json.loads(manifest.read_text(encoding="utf-8"))
    entries = []
    for i, record in enumerate(records):
        missing = [name for name in _FIELDS if not record.get(name)]
        if missing:
            raise ConfigError(f"{manifest}: entry {i} ({record.get('id', '?')}) lacks {', '.join(missing)}")
        path = root / record["path"]
        if not path.is_file():
            raise FileNotFoundError(f"{manifest} lists {record['path']!r} (id {record['id']!r}) but {path} is "
                                    "missing; reinstall bind or rebuild with `python assets/build_assets.py`")
        try:
            modality = Modality.parse(record["modality"])
        except ValueError as error:
            raise ConfigError(f"{manifest}: entry {record['id']!r}: {error}") from None
        entries.append(AssetEntry(id=record["id"], modality=modality, path=path.resolve(), caption=record["caption"],
                                  concept=record["concept"], licence=record["licence"], source=record["source"]))
    return entries
