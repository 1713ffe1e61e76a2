"""One embedding call of a space over items of one modality: its options, and its experts' features.

A space plans a call by listing the expert cards its paths use for the modality
(:meth:`Space.expert_cards`). The first time a path asks for a card's features, the call computes every
planned card at once through the runner (:mod:`bind.experts.runner`): each item decoded once, each network
run once, however many paths and heads read it. Features are raw (unnormalised) expert outputs.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..errors import InputError, WeightsUnavailableError
from ..experts.api import check_items
from ..experts.cache import FeatureCache
from ..experts.cards import EncoderCard
from ..experts.modality import Modality
from ..experts.pool import POOL
from ..experts.runner import Decoded, Wanted, run
from .rows import Rows


def card_key(card: EncoderCard) -> str:
    """A card's full content as a key (registered and inline cards alike)."""
    return json.dumps(card.to_dict(), sort_keys=True)


class Call:
    """One embedding call over ``items``, all of ``modality``; ``experts``: the cards the space will ask for."""

    def __init__(self, items: list[Any], modality: Modality, *, batch_size: int = 32, progress: bool = False,
                 num_workers: int | None = None, sample_rate: int | None = None, device: str = "cpu",
                 cache: FeatureCache | None = None, experts: Sequence[EncoderCard] = ()) -> None:
        self.items, self.modality = items, modality
        self.batch_size, self.progress, self.num_workers = batch_size, progress, num_workers
        self.sample_rate, self.device, self.cache = sample_rate, device, cache
        self.planned = list(experts)
        self.decoders: dict[str, Callable[..., Decoded | None]] = {}  # replacement decoders by kind (runner)
        self.extras: dict[int, dict[str, Any]] = {}  # their by-products per item (e.g. sound tracks)
        self._features: dict[str, Rows] = {}

    def derived(self, items: list[Any], modality: Modality, experts: Sequence[EncoderCard] = ()) -> Call:
        """A call over other items (e.g. the sound tracks of this call's videos) with this call's options."""
        return Call(items, modality, batch_size=self.batch_size, progress=self.progress,
                    num_workers=self.num_workers, device=self.device, cache=self.cache, experts=experts)

    def features(self, card: EncoderCard) -> Rows:
        """The raw features of every item from the expert of ``card`` (computed with the planned ones)."""
        key = card_key(card)
        if key not in self._features:
            pending = {key: card}
            pending.update((card_key(c), c) for c in self.planned if card_key(c) not in self._features)
            self._compute(list(pending.values()))
        return self._features[key]

    def _compute(self, cards: list[EncoderCard]) -> None:
        wanted: list[Wanted] = []
        for card in cards:
            try:
                encoder, head = POOL.get(card, self.device)
            except WeightsUnavailableError as exc:  # e.g. an optional extra that is not installed
                reason = f"{self.modality.value} is unavailable here: its expert {card.name!r} cannot load: {exc}"
                failures = [InputError(item, reason, index) for index, item in enumerate(self.items)]
                self._features[card_key(card)] = Rows(torch.zeros(0, card.dim), [], failures)
                continue
            wanted.append(Wanted(card, encoder, head))
        if not wanted:
            return
        if self.cache is not None:
            results = [self.cache.embed(self.items, want, batch_size=self.batch_size, progress=self.progress,
                                        on_error="skip", sample_rate=self.sample_rate, device=self.device,
                                        num_workers=self.num_workers) for want in wanted]
        else:
            items, _ = check_items(self.items, self.modality, self.sample_rate)
            results = run(items, wanted, modality=self.modality, batch_size=self.batch_size, progress=self.progress,
                          num_workers=self.num_workers, decoders=self.decoders, extras=self.extras)
        for want, result in zip(wanted, results):
            self._features[card_key(want.card)] = Rows(result.embeddings, result.indices, result.failures)
