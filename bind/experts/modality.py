"""Modalities and how an input's modality is told from its type, extension or leading bytes."""
from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AmbiguousModalityError, ConfigError, InputError


class Modality(str, enum.Enum):
    """The kinds of input bind embeds. `points` is 3D (point clouds and meshes)."""

    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    POINTS = "points"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: "str | Modality") -> "Modality":
        """The modality called ``value``; a ConfigError (a ValueError) naming the known ones otherwise."""
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise ConfigError(f"unknown modality {value!r}; expected one of {names}") from None


EXTENSIONS: dict[str, Modality] = {
    **{e: Modality.IMAGE for e in (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")},
    **{e: Modality.AUDIO for e in (".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aiff", ".aif", ".opus")},
    **{e: Modality.VIDEO for e in (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg")},
    **{e: Modality.POINTS for e in (".ply", ".obj", ".off", ".stl", ".npy", ".npz", ".glb")},
    **{e: Modality.TEXT for e in (".txt",)},
}
TEXT_FILES = {e for e, m in EXTENSIONS.items() if m == Modality.TEXT}

# (offset, magic bytes, modality) for raw byte inputs
_MAGIC: list[tuple[int, bytes, Modality]] = [
    (0, b"\x89PNG\r\n\x1a\n", Modality.IMAGE),
    (0, b"\xff\xd8\xff", Modality.IMAGE),
    (0, b"GIF8", Modality.IMAGE),
    (0, b"BM", Modality.IMAGE),
    (8, b"WEBP", Modality.IMAGE),
    (8, b"WAVE", Modality.AUDIO),
    (0, b"fLaC", Modality.AUDIO),
    (0, b"OggS", Modality.AUDIO),
    (0, b"ID3", Modality.AUDIO),
    (0, b"\xff\xfb", Modality.AUDIO),
    (0, b"\xff\xf3", Modality.AUDIO),
    (4, b"ftyp", Modality.VIDEO),
    (0, b"\x1a\x45\xdf\xa3", Modality.VIDEO),
    (8, b"AVI ", Modality.VIDEO),
    (0, b"ply\n", Modality.POINTS),
    (0, b"ply\r\n", Modality.POINTS),
    (0, b"OFF", Modality.POINTS),
    (0, b"solid", Modality.POINTS),
    (0, b"\x93NUMPY", Modality.POINTS),
]


def file_input(item: Any, modality: Modality) -> Any:
    """The item to embed for an item whose ``modality`` was inferred: a string naming an existing text file
    becomes its Path, so the file's contents are embedded (as ``bind index build`` does); anything else is
    itself. With the modality given as text, a string is always the text itself."""
    if modality == Modality.TEXT and isinstance(item, str) and Path(item).suffix.lower() in TEXT_FILES \
            and os.path.isfile(item):
        return Path(item)
    return item


def sniff_bytes(data: bytes) -> Modality | None:
    """The modality raw bytes belong to, from their magic number, or None."""
    for offset, magic, modality in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return modality
    return None


def extension_modality(path: str | os.PathLike) -> Modality | None:
    return EXTENSIONS.get(Path(path).suffix.lower())


def infer_modality(item: Any, sample_rate: int | None = None) -> Modality:
    """Tell an item's modality from its type, file extension or magic bytes.

    Raises AmbiguousModalityError instead of guessing.
    """
    from PIL import Image

    if isinstance(item, os.PathLike):
        modality = extension_modality(item)
        if modality is None:
            raise InputError(item, f"unknown file extension {Path(item).suffix!r}")
        return modality
    if isinstance(item, str):
        suffix = Path(item).suffix.lower() if len(item) < 4096 and "\n" not in item else ""
        if suffix in EXTENSIONS and (os.path.exists(item) or os.sep in item or " " not in item):
            if suffix in TEXT_FILES and not os.path.isfile(item):
                raise InputError(item, "no such text file (pass modality='text' to embed this string itself)")
            return EXTENSIONS[suffix]
        if os.path.isfile(item):
            raise InputError(item, f"unknown file extension {suffix!r}")
        if os.path.isdir(item):
            raise InputError(item, "is a folder, not a file (index a folder with `bind index build`, or pass "
                                   "modality='text' to embed this string itself)")
        return Modality.TEXT
    if isinstance(item, (bytes, bytearray, memoryview)):
        modality = sniff_bytes(bytes(item[:16]))
        if modality is None:
            raise AmbiguousModalityError(item, "unknown byte format; pass modality=...")
        return modality
    if isinstance(item, Image.Image):
        return Modality.IMAGE
    from ..io.audio import Waveform

    if isinstance(item, Waveform):
        return Modality.AUDIO
    shape = _array_shape(item)
    if shape is not None:
        return _array_modality(item, shape, sample_rate)
    raise InputError(item, f"unsupported input type {type(item).__name__}")


def _array_shape(item: Any) -> tuple[int, ...] | None:
    if isinstance(item, np.ndarray):
        return tuple(item.shape)
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    return tuple(item.shape) if isinstance(item, torch.Tensor) else None


def _array_modality(item: Any, shape: tuple[int, ...], sample_rate: int | None) -> Modality:
    if len(shape) == 1 or (len(shape) == 2 and shape[0] <= 2 and sample_rate is not None):
        if sample_rate is None:
            raise AmbiguousModalityError(item, "a 1-D array is read as audio only with sample_rate=...")
        return Modality.AUDIO
    if len(shape) == 2 and shape[1] == 3:
        return Modality.POINTS
    if len(shape) == 3 and (shape[-1] in (1, 3, 4) or shape[0] in (1, 3, 4)):
        return Modality.IMAGE
    if len(shape) == 4 and (shape[-1] == 3 or shape[1] == 3):
        return Modality.VIDEO
    raise AmbiguousModalityError(item, f"cannot tell the modality of an array of shape {shape}; pass modality=...")
