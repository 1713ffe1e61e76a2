"""The one bounded pool of frozen expert instances, shared by ``bind.embed``, spaces, indexes and caches.

Instances are keyed by their network's trunk (:meth:`Encoder.trunk`: backend, model, weights,
preprocessing and options, not the head), the device, the dtype and the registry's generation (a card or
backend registered anew is never served by an instance built before). So the features card and the logits
card of one EfficientNet share one instance, and a video or 3D expert wrapping that network gets the same
instance for its frames or views. The pool keeps the :data:`CAPACITY` most recently used instances.
"""
from __future__ import annotations

import collections
import json
import threading

import torch

from .cards import EncoderCard
from .encoder import Encoder
from .registry import generation, get_backend, get_card, parse_device

CAPACITY = 8


class EncoderPool:
    """Shared encoder instances, least recently used dropped beyond ``capacity``."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._entries: collections.OrderedDict[str, Encoder] = collections.OrderedDict()
        self._lock = threading.RLock()
        self.built = 0  # instances built so far (each is a model load)

    def get(self, card: EncoderCard | str, device: str | torch.device = "cpu",
            dtype: torch.dtype | None = None) -> tuple[Encoder, str]:
        """The shared instance running ``card``'s network on ``device``/``dtype``, and the head ``card`` reads."""
        card = get_card(card) if isinstance(card, str) else card
        device = str(parse_device(device))
        backend = get_backend(card.backend)
        trunk, head = backend.trunk(card)
        key = json.dumps([trunk, device, str(dtype), generation()], sort_keys=True, default=str)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key], head
            inner = {option: self.get(name, device, dtype)[0] for option, name in card.options.items()
                     if option in backend.inner_keys and name is not None}
            encoder = backend(card, pretrained=True, **({"experts": inner} if inner else {}))
            encoder = encoder.to(device=device, dtype=dtype) if dtype is not None else encoder.to(device=device)
            encoder.freeze()
            self.built += 1
            self._entries[key] = encoder
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
            return encoder, head

    def clear(self) -> None:
        """Drop every instance (the next use loads its weights again)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


POOL = EncoderPool()
