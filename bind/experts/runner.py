"""The one engine that turns items into expert features: ``bind.embed``, spaces and caches all run it.

For one call (items of one modality and the expert cards wanted of them) the runner

- groups the cards by shared network instance (:mod:`bind.experts.pool`): each network runs once per
  item, however many of its heads (cards) are wanted;
- decodes each item once: preprocessors that split decoding from their transform (``decode_key``,
  ``decode``, ``transform``; e.g. every image expert) share one decoded item;
- decodes in DataLoader workers (overlapping decoding with compute), batches text by length, and returns
  rows in input order with every bad item reported as an :class:`~bind.errors.InputError`.

A caller may replace the decoder of one kind of decoding (``decoders``, keyed by the first element of a
``decode_key``) with one that returns :class:`Decoded`: the value the experts need plus by-products of the
same pass (e.g. a video's sound track, read from the container the frames come from), handed back per item.
"""
from __future__ import annotations

import dataclasses
import gc
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError, InputError
from .cards import EncoderCard
from .encoder import Encoder
from .modality import Modality


@dataclasses.dataclass
class EmbedResult:
    """Rows that succeeded, where they came from, and what failed (``on_error="skip"``)."""

    embeddings: torch.Tensor  # [len(indices), dim], in input order
    indices: list[int]  # input position of each row
    failures: list[InputError]  # each names its item, input position (.index) and reason

    def __len__(self) -> int:
        return len(self.indices)


@dataclasses.dataclass
class Decoded:
    """What a replacement decoder returns: the decoded ``value`` and by-products of the same pass."""

    value: Any
    extras: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Wanted:
    """One expert output wanted of every item: its card, the network instance that runs it, its head."""

    card: EncoderCard
    encoder: Encoder
    head: str


def default_workers(modality: Modality, count: int, batch_size: int, devices: Iterable[torch.device]) -> int:
    """One decoding worker for media calls larger than a batch, overlapping decoding with the forward pass;
    none for text, small calls, or CPU experts on a machine of 2 cores or fewer, where a worker only competes
    with the forward pass for the same cores (measured: bench/space_throughput.py runs faster inline there)."""
    if modality == Modality.TEXT or count <= batch_size:
        return 0
    return 1 if (os.cpu_count() or 1) > 2 or any(d.type != "cpu" for d in devices) else 0


def preprocess(preprocessor: Callable[[Any], Any], item: Any, decoded: dict[Any, Any],
               decoders: Mapping[str, Callable[..., Decoded | None]]) -> Any:
    """``preprocessor(item)``, reusing a decoding another preprocessor of the same kind already did.

    A decoder of ``decoders`` replaces the preprocessor's own for its kind (``decode_key[0]``; it is called
    with the item and the rest of the key, and may return None to leave the item to the own decoder).
    """
    key = getattr(preprocessor, "decode_key", None)
    if key is None:
        return preprocessor(item)
    if key not in decoded:
        kind, *args = key if isinstance(key, tuple) else (key,)
        try:
            replaced = decoders[kind](item, *args) if kind in decoders else None
            decoded[key] = replaced if replaced is not None else preprocessor.decode(item)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - re-raised for every preprocessor sharing it
            decoded[key] = exc
    value = decoded[key]
    if isinstance(value, Exception):
        raise value
    return preprocessor.transform(value.value if isinstance(value, Decoded) else value)  # type: ignore[attr-defined]


Row = tuple[int, list[Any], list[InputError | None], dict[str, Any]]


class _Items(Dataset):
    """Item -> one sample per network (or its failure), the item decoded once, and decoding by-products."""

    def __init__(self, items: Sequence[Any], preprocessors: Sequence[Callable[[Any], Any]], order: Sequence[int],
                 decoders: Mapping[str, Callable[..., Decoded | None]]) -> None:
        self.items, self.preprocessors, self.order, self.decoders = items, preprocessors, order, decoders

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, position: int) -> Row:
        index = self.order[position]
        item = self.items[index]
        if isinstance(item, InputError):
            return index, [None] * len(self.preprocessors), [item] * len(self.preprocessors), {}
        decoded: dict[Any, Any] = {}
        samples: list[Any] = []
        errors: list[InputError | None] = []
        for preprocessor in self.preprocessors:
            try:
                samples.append(preprocess(preprocessor, item, decoded, self.decoders))
                errors.append(None)
            except InputError as exc:
                samples.append(None)
                errors.append(exc.at(index))
            except Exception as exc:  # noqa: BLE001 - decoders raise their own types for corrupt data
                samples.append(None)
                errors.append(InputError(item, f"{type(exc).__name__}: {exc}", index))
        extras = {k: v for d in decoded.values() if isinstance(d, Decoded) for k, v in d.extras.items()}
        return index, samples, errors, extras


class _Collate:
    """Rows -> per network: the good items' positions, their batch, the failures; and each item's by-products."""

    def __init__(self, collates: Sequence[Callable[[list[Any]], Any]]) -> None:
        self.collates = collates

    def __call__(self, rows: list[Row]) -> tuple[list[tuple[list[int], Any, list[InputError]]], dict[int, dict[str, Any]]]:
        out = []
        for network, collate in enumerate(self.collates):
            good = [(index, samples[network]) for index, samples, errors, _ in rows if errors[network] is None]
            failures = [errors[network] for _, _, errors, _ in rows if errors[network] is not None]
            out.append(([i for i, _ in good], collate([s for _, s in good]) if good else None, failures))
        return out, {index: extras for index, _, _, extras in rows if extras}


def _one_thread_worker(_: int) -> None:
    torch.set_num_threads(1)


def start_workers(loader: DataLoader) -> Iterator[Any]:
    """``iter(loader)``, its worker processes forked from a collected, frozen heap.

    Garbage is collected here first and the rest frozen while the workers fork, so a worker's garbage
    collector never frees an object it inherited: a PyAV filter graph (audio resampling) freed in a forked
    child waits forever on its parent's threads.
    """
    if not loader.num_workers:
        return iter(loader)
    gc.collect()
    gc.freeze()
    try:
        return iter(loader)
    finally:
        gc.unfreeze()


def run(items: list[Any], wanted: Sequence[Wanted], *, modality: Modality, batch_size: int = 32,
        progress: bool = False, num_workers: int | None = None, on_error: str = "skip",
        decoders: Mapping[str, Callable[..., Decoded | None]] | None = None,
        extras: dict[int, dict[str, Any]] | None = None) -> list[EmbedResult]:
    """Raw outputs of every ``wanted`` expert for ``items`` (one EmbedResult each, in order).

    ``items`` may hold InputErrors (items already known to be bad). With ``on_error="raise"`` the first
    failure is raised. ``decoders`` replace decoders by kind; their by-products go into ``extras`` (input
    position -> {name: value}).
    """
    networks: list[Encoder] = []
    for want in wanted:
        if not any(want.encoder is n for n in networks):
            networks.append(want.encoder)
    which = [next(i for i, n in enumerate(networks) if n is want.encoder) for want in wanted]
    heads = [sorted({w.head for w, n in zip(wanted, which) if n == i}) for i in range(len(networks))]
    if modality == Modality.TEXT:  # length-sorted batches pad less (sentence-transformers does this)
        order = sorted(range(len(items)), key=lambda i: -len(items[i]) if isinstance(items[i], str) else 0)
    else:
        order = list(range(len(items)))
    if num_workers is None:
        num_workers = default_workers(modality, len(items), batch_size, [n.device for n in networks])
    loader = DataLoader(_Items(items, [n.preprocessor() for n in networks], order, decoders or {}), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=_Collate([n.collate for n in networks]),
                        worker_init_fn=_one_thread_worker if num_workers else None,
                        prefetch_factor=4 if num_workers else None, persistent_workers=False)
    rows: list[dict[int, torch.Tensor]] = [{} for _ in wanted]
    failures: list[list[InputError]] = [[] for _ in wanted]
    batches: Iterable = start_workers(loader)
    if progress:
        from tqdm.auto import tqdm

        names = ", ".join(sorted({w.card.name for w in wanted}))
        batches = tqdm(batches, desc=f"embed {names}", unit="batch", total=len(loader))
    with torch.inference_mode():
        for parts, found in batches:
            if extras is not None:
                extras.update(found)
            for network, (indices, batch, bad) in enumerate(parts):
                if bad and on_error == "raise":
                    raise bad[0]
                outputs = networks[network].forward_heads(batch, heads[network]) if indices else {}
                for position, want in enumerate(wanted):
                    if which[position] != network:
                        continue
                    failures[position].extend(bad)
                    if indices:
                        _keep(want, outputs[want.head], indices, items, rows[position], failures[position], on_error)
    out = []
    for position, want in enumerate(wanted):
        kept = sorted(rows[position])
        embeddings = torch.stack([rows[position][i] for i in kept]) if kept else torch.empty(0, want.card.dim)
        out.append(EmbedResult(embeddings, kept, sorted(failures[position], key=lambda e: e.index or 0)))
    return out


def _keep(want: Wanted, output: torch.Tensor, indices: list[int], items: list[Any], rows: dict[int, torch.Tensor],
          failures: list[InputError], on_error: str) -> None:
    """Store a batch's rows of one expert output, checking its shape and that every row is finite."""
    output = output.float().cpu()
    if output.shape != (len(indices), want.card.dim):
        raise ConfigError(f"encoder {want.card.name!r} returned shape {tuple(output.shape)}, "
                          f"expected ({len(indices)}, {want.card.dim})")
    finite = torch.isfinite(output).all(dim=1)
    for position, index in enumerate(indices):
        if finite[position]:
            rows[index] = output[position]
        else:
            error = InputError(items[index], "the expert produced a non-finite embedding", index)
            if on_error == "raise":
                raise error
            failures.append(error)
