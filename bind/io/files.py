"""Shared checks for inputs given as paths or bytes."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import InputError


def open_source(item: Any) -> tuple[str | BinaryIO, str]:
    """A path or byte stream for ``item`` plus its lower-case extension ('' for bytes).

    Raises InputError for a missing path, a directory or an empty file/bytes.
    """
    if isinstance(item, (bytes, bytearray, memoryview)):
        if len(item) == 0:
            raise InputError(item, "empty input (0 bytes)")
        return io.BytesIO(bytes(item)), ""
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if path.is_dir():
            raise InputError(item, "is a directory, not a file")
        if not path.exists():
            raise InputError(item, "file not found")
        if path.stat().st_size == 0:
            raise InputError(item, "empty file (0 bytes)")
        return str(path), path.suffix.lower()
    raise InputError(item, f"expected a path or bytes, got {type(item).__name__}")
