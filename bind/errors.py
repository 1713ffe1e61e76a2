"""Exception types users can catch: every error names the item and the reason."""
from __future__ import annotations

from typing import Any


class BindError(Exception):
    """Base class of every error raised by bind."""


class UnknownEncoderError(BindError, KeyError):
    """No registered encoder or backend has this name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class WeightsUnavailableError(BindError):
    """An expert's real weights (or tokenizer) cannot be loaded here, e.g. offline without a local copy."""


class ConfigError(BindError, ValueError):
    """A card, spec or argument is invalid (wrong shape, dimension mismatch, missing field)."""


class IndexCorruptError(ConfigError):
    """A saved index's file is damaged (wrong size or checksum, truncated, unreadable); the message names it.
    ``bind index build`` into the folder rebuilds it."""


class IndexLockedError(BindError):
    """Another process is writing this index folder (the message names it); wait for it, or retry."""


def describe_item(item: Any, limit: int = 80) -> str:
    """A short, readable name for an input item, used in error messages."""
    import numpy as np

    if isinstance(item, (str,)):
        text = item if len(item) <= limit else item[: limit - 3] + "..."
        return repr(text)
    if isinstance(item, bytes):
        return f"<{len(item)} bytes>"
    if isinstance(item, np.ndarray):
        return f"<ndarray shape={tuple(item.shape)} dtype={item.dtype}>"
    try:
        import torch

        if isinstance(item, torch.Tensor):
            return f"<tensor shape={tuple(item.shape)} dtype={item.dtype}>"
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    name = type(item).__name__
    return f"<{name}>" if not hasattr(item, "__fspath__") else repr(str(item))


class InputError(BindError, ValueError):
    """One input item could not be used; names the item and the reason."""

    def __init__(self, item: Any, reason: str, index: int | None = None) -> None:
        self.item = item
        self.reason = reason
        self.index = index
        where = f"item {index} " if index is not None else ""
        super().__init__(f"{where}{describe_item(item)}: {reason}")

    def __reduce__(self) -> tuple:  # picklable across DataLoader worker processes
        return type(self), (self.item, self.reason, self.index)

    def at(self, index: int) -> "InputError":
        """The same error, tagged with the item's position in a batch."""
        return type(self)(self.item, self.reason, index)


class AmbiguousModalityError(InputError):
    """The modality of an input cannot be told from its type or extension; pass modality=..."""
