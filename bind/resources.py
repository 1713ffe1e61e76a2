"""Where the project's data folders (encoders/, projectors/, recipes/, assets/) live.

A wheel carries them under ``bind/_data/``; a source checkout (editable install) has them next to ``bind/``.
Never resolved relative to the current directory.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The folder of packaged data called ``name`` (e.g. "encoders")."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bind's data folder {name!r} is missing from this installation ({_PACKAGE})")
