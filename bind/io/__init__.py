"""Decoding of raw inputs (files, bytes, arrays) into what experts consume, with clear errors.

``DECODING_VERSIONS``: per modality, the version of the rules that turn an input into what an expert sees.
A change to those rules that changes vectors bumps its modality's number; the feature cache keys on it and
an index re-embeds files decoded under another version, so vectors of old and new rules never mix.
"""
from __future__ import annotations

from .image import DECODE_VERSION as _IMAGE

DECODING_VERSIONS: dict[str, int] = {"text": 1, "image": _IMAGE, "audio": 1, "video": 1, "points": 1}


def decoding_version(modality: object) -> int:
    """The decoding version of a modality (a :class:`bind.experts.modality.Modality` or its name)."""
    return DECODING_VERSIONS[getattr(modality, "value", modality)]
