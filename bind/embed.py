"""``bind.embed``: one call for any modality, one item or many, batched, ordered and fault tolerant."""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from .encoder import Encoder
from .errors import AmbiguousModalityError, ConfigError, InputError
from .modality import Modality, infer_modality
from .registry import cached_encoder, default_encoder_name


@dataclasses.dataclass
class EmbedResult:
    """What ``embed(..., on_error="skip")`` returns: the good rows, where they came from, what failed."""

    embeddings: torch.Tensor  # [len(indices), dim], in input order
    indices: list[int]  # input position of each row
    failures: list[InputError]  # each names its item, input position (.index) and reason

    def __len__(self) -> int:
        return len(self.indices)


class _Items(Dataset):
    """Preprocesses items one at a time, turning a bad item into a reported failure."""

    def __init__(self, items: Sequence[Any], preprocess: Callable[[Any], Any], order: Sequence[int]) -> None:
        self.items, self.preprocess, self.order = items, preprocess, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, position: int) -> tuple[int, Any, InputError | None]:
        index = self.order[position]
        item = self.items[index]
        if isinstance(item, InputError):
            return index, None, item
        try:
            return index, self.preprocess(item), None
        except InputError as exc:
            return index, None, exc.at(index)
        except Exception as exc:  # decoders raise their own types for corrupt data
            return index, None, InputError(item, f"{type(exc).__name__}: {exc}", index)


class _Collate:
    def __init__(self, collate: Callable[[list[Any]], Any]) -> None:
        self.collate = collate

    def __call__(self, rows: list[tuple[int, Any, InputError | None]]) -> tuple[list[int], Any, list[InputError]]:
        good = [(i, s) for i, s, err in rows if err is None]
        failures = [err for _, _, err in rows if err is not None]
        batch = self.collate([s for _, s in good]) if good else None
        return [i for i, _ in good], batch, failures


def _one_thread_worker(_: int) -> None:
    torch.set_num_threads(1)


def _as_items(inputs: Any) -> tuple[list[Any], bool]:
    """A list of items, and whether the caller passed a single item (lists and tuples are batches)."""
    if isinstance(inputs, (list, tuple)):
        return list(inputs), False
    if isinstance(inputs, Iterable) and not isinstance(inputs, (str, bytes, np.ndarray, torch.Tensor)) \
            and not hasattr(inputs, "getdata") and not isinstance(inputs, os.PathLike):
        return list(inputs), False
    return [inputs], True


def resolve_encoder(encoder: str | Encoder | None, modality: Modality | None, device: str) -> Encoder:
    if isinstance(encoder, Encoder):
        return encoder
    if encoder is None:
        if modality is None:
            raise ConfigError("pass encoder=... or modality=... (items of mixed modality need a Space)")
        encoder = default_encoder_name(modality)
    return cached_encoder(encoder, str(device))


def _check_modalities(items: list[Any], expected: Modality | None, sample_rate: int | None) -> tuple[list[Any], Modality | None]:
    """Tag items whose modality differs from the expected one (or from the first item's) as failures."""
    from .io.audio import Waveform

    checked: list[Any] = []
    for index, item in enumerate(items):
        try:
            if expected == Modality.TEXT and isinstance(item, str):
                modality = Modality.TEXT
            else:
                try:
                    modality = infer_modality(item, sample_rate)
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


def embed(inputs: Any, encoder: str | Encoder | None = None, modality: str | Modality | None = None, *,
          batch_size: int = 32, normalize: bool = True, progress: bool = False,
          on_error: Literal["raise", "skip"] = "raise", num_workers: int | None = None,
          sample_rate: int | None = None, device: str = "cpu") -> torch.Tensor | EmbedResult:
    """Embed one item or a list of items with one expert.

    ``inputs``: a list/tuple is a batch, anything else one item (path, bytes, PIL image, array, string).
    ``encoder``: a registered name, an Encoder, or None for the default expert of the modality.
    ``modality``: inferred from type/extension when None; an ambiguous input raises.
    ``sample_rate``: required for raw audio arrays.
    Returns a float32 CPU tensor (``[dim]`` for one item, ``[N, dim]`` for a batch, unit-norm when
    ``normalize``), or with ``on_error="skip"`` an EmbedResult listing the failed items.
    """
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    items, single = _as_items(inputs)
    wanted = Modality.parse(modality) if modality is not None else None
    if isinstance(encoder, Encoder) or (encoder is not None and wanted is None):
        enc = resolve_encoder(encoder, wanted, device)
        wanted = enc.modality if wanted is None else wanted
        if wanted != enc.modality:
            raise ConfigError(f"encoder {enc.name!r} embeds {enc.modality.value}, not {wanted.value}")
        checked, _ = _check_modalities(items, wanted, sample_rate)
    else:
        checked, wanted = _check_modalities(items, wanted, sample_rate)
        enc = resolve_encoder(encoder, wanted, device)
    if on_error == "raise":
        first = next((x for x in checked if isinstance(x, InputError)), None)
        if first is not None:
            raise first
    embeddings, indices, failures = _run(enc, checked, batch_size, progress, num_workers, on_error)
    if normalize and len(embeddings):
        embeddings = F.normalize(embeddings, dim=-1)
    if on_error == "skip":
        return EmbedResult(embeddings, indices, sorted(failures, key=lambda e: e.index or 0))
    return embeddings[0] if single else embeddings


def _run(enc: Encoder, items: list[Any], batch_size: int, progress: bool, num_workers: int | None,
         on_error: str) -> tuple[torch.Tensor, list[int], list[InputError]]:
    if enc.modality == Modality.TEXT:  # length-sorted batches pad less (sentence-transformers does this)
        order = sorted(range(len(items)), key=lambda i: -len(items[i]) if isinstance(items[i], str) else 0)
    else:
        order = list(range(len(items)))
    if num_workers is None:
        num_workers = 0 if enc.modality == Modality.TEXT or len(items) <= batch_size else 1
    loader = DataLoader(_Items(items, enc.preprocessor(), order), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=_Collate(enc.collate),
                        worker_init_fn=_one_thread_worker if num_workers else None,
                        prefetch_factor=4 if num_workers else None, persistent_workers=False)
    rows: dict[int, torch.Tensor] = {}
    failures: list[InputError] = []
    batches: Iterable = loader
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(loader, desc=f"embed {enc.name}", unit="batch")
    with torch.inference_mode():
        for indices, batch, bad in batches:
            if bad and on_error == "raise":
                raise bad[0]
            failures.extend(bad)
            if not indices:
                continue
            out = enc(batch).float().cpu()
            if out.shape != (len(indices), enc.dim):
                raise ConfigError(f"encoder {enc.name!r} returned shape {tuple(out.shape)}, "
                                  f"expected ({len(indices)}, {enc.dim})")
            finite = torch.isfinite(out).all(dim=1)
            for position, index in enumerate(indices):
                if finite[position]:
                    rows[index] = out[position]
                else:
                    error = InputError(items[index], "the expert produced a non-finite embedding", index)
                    if on_error == "raise":
                        raise error
                    failures.append(error)
    kept = sorted(rows)
    embeddings = torch.stack([rows[i] for i in kept]) if kept else torch.empty(0, enc.dim)
    return embeddings, kept, failures
