"""Text inputs: strings (or .txt files), validated before tokenisation."""
from __future__ import annotations

import os
from typing import Any

from ..errors import InputError


def load_text(item: Any) -> str:
    """The text of a string or a .txt file; empty or whitespace-only text is an error (naming the file, for
    a file)."""
    text = item
    if isinstance(item, os.PathLike):
        try:
            with open(item, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(item, f"cannot read text file: {exc}") from None
    if not isinstance(text, str):
        raise InputError(item, f"text input must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError(item, "empty text" if text == item else "the text file is empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates, e.g. undecodable bytes of a command line
        raise InputError(item, f"text is not valid Unicode (a lone surrogate at position {exc.start}; "
                               "decode bytes as UTF-8 first)") from None
    return text


class TextPreprocessor:
    """Validate text items; tokenisation happens in the encoder's collate (batched, padded)."""

    def __call__(self, item: Any) -> str:
        return load_text(item)
