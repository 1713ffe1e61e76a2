"""The one engine that turns items into expert features: ``bind.embed``, spaces and caches all run it.

For one call (items of one modality and the expert cards wanted of them) the runner

- groups the cards by shared network instance (:mod:`bind.experts.pool`): each network runs once per
  item, however many of its heads (cards) are wanted;
- decodes each item once: preprocessors that split decoding from their transform (``decode_key``,
  ``decode``, ``transform``; e.g. every image expert) share one decoded item;
- decodes in DataLoader workers (overlapping decoding with compute), batches text by length, and returns
  rows in input order with every bad item reported as an :class:`~bind.errors.InputError`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
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


@dataclasses.dataclass(frozen=True)
class Wanted:
    """One expert output wanted of every item: its card, the network instance that runs it, its head."""

    card: EncoderCard
    encoder: Encoder
    head: str


def default_workers(modality: Modality, count: int, batch_size: int) -> int:
    """One decoding worker for media calls larger than a batch; none for text or small calls."""
    return 0 if modality == Modality.TEXT or count <= batch_size else 1


def preprocess(preprocessor: Callable[[Any], Any], item: Any, decoded: dict[Any, Any]) -> Any:
    """``preprocessor(item)``, reusing a decoding another preprocessor of the same kind already did."""
    key = getattr(preprocessor, "decode_key", None)
    if key is None:
        return preprocessor(item)
    if key not in decoded:
        try:
            decoded[key] = preprocessor.decode(item)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - re-raised for every preprocessor sharing it
            decoded[key] = exc
    if isinstance(decoded[key], Exception):
        raise decoded[key]
    return preprocessor.transform(decoded[key])  # type: ignore[attr-defined]


class _Items(Dataset):
    """Item -> one sample per network (or its failure), the item decoded once."""

    def __init__(self, items: Sequence[Any], preprocessors: Sequence[Callable[[Any], Any]], order: Sequence[int]) -> None:
        self.items, self.preprocessors, self.order = items, preprocessors, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, position: int) -> tuple[int, list[Any], list[InputError | None]]:
        index = self.order[position]
        item = self.items[index]
        if isinstance(item, InputError):
            return index, [None] * len(self.preprocessors), [item] * len(self.preprocessors)
        decoded: dict[Any, Any] = {}
        samples: list[Any] = []
        errors: list[InputError | None] = []
        for preprocessor in self.preprocessors:
            try:
                samples.append(preprocess(preprocessor, item, decoded))
                errors.append(None)
            except InputError as exc:
                samples.append(None)
                errors.append(exc.at(index))
            except Exception as exc:  # noqa: BLE001 - decoders raise their own types for corrupt data
                samples.append(None)
                errors.append(InputError(item, f"{type(exc).__name__}: {exc}", index))
        return index, samples, errors


class _Collate:
    """Rows -> per network: the good items' positions, their batch, the failures."""

    def __init__(self, collates: Sequence[Callable[[list[Any]], Any]]) -> None:
        self.collates = collates

    def __call__(self, rows: list[tuple[int, list[Any], list[InputError | None]]]) -> list[tuple[list[int], Any, list[InputError]]]:
        out = []
        for network, collate in enumerate(self.collates):
            good = [(index, samples[network]) for index, samples, errors in rows if errors[network] is None]
            failures = [errors[network] for _, _, errors in rows if errors[network] is not None]
            out.append(([i for i, _ in good], collate([s for _, s in good]) if good else None, failures))
        return out


def _one_thread_worker(_: int) -> None:
    torch.set_num_threads(1)


def run(items: list[Any], wanted: Sequence[Wanted], *, modality: Modality, batch_size: int = 32,
        progress: bool = False, num_workers: int | None = None, on_error: str = "skip") -> list[EmbedResult]:
    """Raw outputs of every ``wanted`` expert for ``items`` (one EmbedResult each, in order).

    ``items`` may hold InputErrors (items already known to be bad). With ``on_error="raise"`` the first
    failure is raised.
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
        num_workers = default_workers(modality, len(items), batch_size)
    loader = DataLoader(_Items(items, [n.preprocessor() for n in networks], order), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=_Collate([n.collate for n in networks]),
                        worker_init_fn=_one_thread_worker if num_workers else None,
                        prefetch_factor=4 if num_workers else None, persistent_workers=False)
    rows: list[dict[int, torch.Tensor]] = [{} for _ in wanted]
    failures: list[list[InputError]] = [[] for _ in wanted]
    batches: Iterable = loader
    if progress:
        from tqdm.auto import tqdm

        names = ", ".join(sorted({w.card.name for w in wanted}))
        batches = tqdm(loader, desc=f"embed {names}", unit="batch")
    with torch.inference_mode():
        for parts in batches:
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
