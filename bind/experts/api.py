"""``bind.embed``: one call for any modality, one item or many, batched, ordered and fault tolerant."""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import AmbiguousModalityError, ConfigError, InputError
from .cards import EncoderCard
from .encoder import Encoder
from .modality import Modality, file_input, infer_modality
from .pool import POOL
from .registry import default_encoder_name, get_card
from .runner import EmbedResult, Wanted, run


def as_items(inputs: Any) -> tuple[list[Any], bool]:
    """A list of items, and whether the caller passed a single item (lists, tuples and other iterables such
    as generators are batches)."""
    if isinstance(inputs, (list, tuple)):
        return list(inputs), False
    if isinstance(inputs, Iterable) and not isinstance(inputs, (str, bytes, np.ndarray, torch.Tensor, Mapping, AbstractSet)) \
            and not hasattr(inputs, "getdata") and not isinstance(inputs, os.PathLike):
        return list(inputs), False
    return [inputs], True  # a dict or a set is one item (of no supported type), not a batch of its keys


Expert = str | EncoderCard | Encoder | Wanted


def resolve(encoder: Expert | None, modality: Modality | None, device: str) -> Wanted:
    """The expert output ``encoder`` names (default: the modality's default expert), on the shared pool's
    instance of its network; an Encoder object is used as it is."""
    if isinstance(encoder, Wanted):
        return encoder
    if isinstance(encoder, Encoder):
        return Wanted(encoder.card, encoder, type(encoder).trunk(encoder.card)[1])
    if encoder is None:
        if modality is None:
            raise ConfigError("pass encoder=... or modality=... (items of mixed modality need a Space)")
        encoder = default_encoder_name(modality)
    card = encoder if isinstance(encoder, EncoderCard) else get_card(encoder)
    instance, head = POOL.get(card, device)
    return Wanted(card, instance, head)


def check_items(items: list[Any], expected: Modality | None, sample_rate: int | None) -> tuple[list[Any], Modality | None]:
    """Items ready for an expert of ``expected`` (raw audio arrays become Waveforms); items of another
    modality than the expected one (or the first item's) are replaced by their InputError."""
    from ..io.audio import Waveform

    checked: list[Any] = []
    for index, item in enumerate(items):
        try:
            if expected == Modality.TEXT and isinstance(item, str):
                modality = Modality.TEXT
            else:
                try:
                    modality = infer_modality(item, sample_rate)
                    item = file_input(item, modality)
                except AmbiguousModalityError:
                    if expected is None:
                        raise
                    modality = expected  # the caller's encoder/modality resolves the ambiguity
            expected = expected or modality
            if modality != expected:
                raise InputError(item, f"is {modality.value} but this call embeds {expected.value}")
            if modality == Modality.AUDIO and (isinstance(item, np.ndarray) or isinstance(item, torch.Tensor)):
                item = Waveform.from_array(item, sample_rate)
            checked.append(item)
        except InputError as exc:
            checked.append(exc.at(index))
    return checked, expected


def embed(inputs: Any, encoder: Expert | None = None, modality: str | Modality | None = None,
          *, batch_size: int = 32, normalize: bool = True, progress: bool = False,
          on_error: Literal["raise", "skip"] = "raise", num_workers: int | None = None,
          sample_rate: int | None = None, device: str = "cpu") -> torch.Tensor | EmbedResult:
    """Embed one item or a list of items with one expert.

    ``inputs``: a list/tuple is a batch, anything else one item (path, bytes, PIL image, array, string).
    ``encoder``: a registered name, a card, an Encoder, or None for the default expert of the modality.
    ``modality``: the modality of the inputs; inferred from type/extension when None (an ambiguous input
    raises). ``sample_rate``: required for raw audio arrays.
    Returns a float32 CPU tensor (``[dim]`` for one item, ``[N, dim]`` for a batch, unit-norm when
    ``normalize``), or with ``on_error="skip"`` an EmbedResult listing the failed items.
    """
    check_on_error(on_error)
    items, single = as_items(inputs)
    wanted = Modality.parse(modality) if modality is not None else None
    if encoder is not None and (not isinstance(encoder, str) or wanted is None):
        expert = resolve(encoder, wanted, device)
        wanted = expert.card.modality if wanted is None else wanted
        if wanted != expert.card.modality:
            raise ConfigError(f"encoder {expert.card.name!r} embeds {expert.card.modality.value}, not {wanted.value}")
        checked, _ = check_items(items, wanted, sample_rate)
        _raise_first(checked, on_error)
    else:
        checked, wanted = check_items(items, wanted, sample_rate)
        _raise_first(checked, on_error)
        if wanted is None:  # no item told its modality: the first ambiguous one says why, even when skipping
            first = next((x for x in checked if isinstance(x, AmbiguousModalityError)), None)
            if first is not None:
                raise first
        expert = resolve(encoder, wanted, device)
    assert wanted is not None
    result = run(checked, [expert], modality=wanted, batch_size=batch_size, progress=progress,
                 num_workers=num_workers, on_error=on_error)[0]
    if normalize and len(result.embeddings):
        result.embeddings = F.normalize(result.embeddings, dim=-1)
    return result if on_error == "skip" else (result.embeddings[0] if single else result.embeddings)


def _raise_first(checked: list[Any], on_error: str) -> None:
    """With ``on_error="raise"``, the first item already known to be bad raises (before any model loads)."""
    first = next((x for x in checked if isinstance(x, InputError)), None)
    if first is not None and on_error == "raise":
        raise first


def check_on_error(on_error: str) -> None:
    """``on_error`` must be "raise" (the first bad item raises) or "skip" (bad items are reported)."""
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
