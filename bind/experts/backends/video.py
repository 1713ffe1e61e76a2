"""Video experts made from registered experts: an image expert over N frames, optionally fused with audio.

Card options (each can be overridden with ``bind.create_encoder(name, frames=16, ...)``):

- ``image_encoder`` (required): the image expert that embeds each frame.
- ``frames`` (default 8): evenly spaced frames per video; the video embedding is their mean embedding.
  Only these frames are decoded into memory, however long the video.
- ``audio_encoder`` (optional): an audio expert for the video's sound track, fused by ``fusion``:
  ``"mean"``: l2(w * l2(audio) + (1 - w) * l2(frames)); both experts must have the same dim.
  ``"concat"``: [(1 - w) * l2(frames), w * l2(audio)]; dim = the sum. ``w`` is ``audio_weight`` (0.5).
  A video without an audio track gets the frame part alone, l2(frames) ("concat": [l2(frames), zeros]).
- ``chunk`` (default 64): at most this many frames go through the image expert at once.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...io.video import VideoPreprocessor
from ..cards import EncoderCard
from ..encoder import Encoder, collate_segments, pool_segments
from ..modality import Modality

WRAPPED = ("image_encoder", "audio_encoder")  # card options that name the experts a wrapper runs


def positive_int_option(card: EncoderCard, key: str, default: int) -> int:
    value = card.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{card.name!r}: options.{key} must be a positive integer, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Inner:
    """An expert a wrapper runs (e.g. the image expert of a video expert): the shared network instance, the
    card the wrapper names and the head of the network that card reads."""

    encoder: Encoder
    card: EncoderCard
    head: str

    def heads(self, batch: Any, heads: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.encoder.forward_heads(batch, heads)

    def __call__(self, batch: Any) -> torch.Tensor:
        return self.heads(batch, [self.head])[self.head]


def inner_expert(card: EncoderCard, key: str, modality: Modality, pretrained: bool,
                 given: Mapping[str, Encoder] | None) -> Inner | None:
    """The expert named by ``card.options[key]``: ``given[key]`` (a shared instance of its network) if
    passed, else built from its own card. Used by the experts that wrap other experts (video, 3D views)."""
    from ..registry import get_backend, get_card

    name = card.options.get(key)
    if name is None:
        return None
    inner = get_card(name)
    if inner.modality != modality:
        raise ConfigError(f"{card.name!r}: options.{key} {name!r} embeds {inner.modality.value}, not {modality.value}")
    backend = get_backend(inner.backend)
    expert = given.get(key) if given else None
    if expert is None:
        expert = backend(inner, pretrained=pretrained)
    return Inner(expert.freeze(), inner, backend.trunk(inner)[1])


def wrapper_trunk(card: EncoderCard, key: dict[str, Any], head_key: str) -> tuple[dict[str, Any], str]:
    """A wrapper's trunk: its own ``key`` with each inner expert's name replaced by that expert's trunk (so
    wrappers of two heads of one network share a forward), and the head of its ``head_key`` expert."""
    from ..registry import get_backend, get_card

    head = ""
    options = dict(key["options"])
    for option, name in card.options.items():
        if option in WRAPPED and name is not None:
            inner = get_card(name)
            options[option], inner_head = get_backend(inner.backend).trunk(inner)
            head = inner_head if option == head_key else head
    key = {k: v for k, v in key.items() if k != "dim"}
    return {**key, "options": options}, head


def tiny_inner_experts(card: EncoderCard, keys: Sequence[str]) -> dict[str, Encoder]:
    """The backends' tiny random-weight instances of the experts named by ``card.options[key]``."""
    from ..registry import get_backend, get_card

    experts = {}
    for key in keys:
        if card.options.get(key) is not None:
            inner = get_card(card.options[key])
            experts[key] = get_backend(inner.backend).tiny(inner)
    return experts


def inner_available(card: EncoderCard, keys: Sequence[str]) -> bool:
    from ..registry import get_card, weights_available

    return all(weights_available(get_card(card.options[key])) for key in keys if card.options.get(key) is not None)


def encode_images(expert: Inner, images: torch.Tensor, chunk: int, heads: Sequence[str]) -> dict[str, torch.Tensor]:
    """``heads`` of ``expert``'s network over a stack of its image samples, ``chunk`` at a time."""
    collate = expert.encoder.collate
    parts = [expert.heads(collate(list(images[start:start + chunk])), heads) for start in range(0, len(images), chunk)]
    return {head: torch.cat([part[head] for part in parts]) for head in heads}


class VideoFramesEncoder(Encoder):
    """The temporal mean of an image expert's embeddings of N evenly spaced frames (+ optional audio)."""

    inner_keys = WRAPPED

    def __init__(self, card: EncoderCard, pretrained: bool = True,
                 experts: Mapping[str, Encoder] | None = None) -> None:
        super().__init__(card)
        if not card.options.get("image_encoder"):
            raise ConfigError(f"{card.name!r}: options.image_encoder must name an image expert")
        self.frames = positive_int_option(card, "frames", 8)
        self.chunk = positive_int_option(card, "chunk", 64)
        self.fusion = card.options.get("fusion", "mean")
        self.audio_weight = float(card.options.get("audio_weight", 0.5))
        if self.fusion not in ("mean", "concat"):
            raise ConfigError(f"{card.name!r}: options.fusion must be 'mean' or 'concat', got {self.fusion!r}")
        if not 0.0 <= self.audio_weight <= 1.0:
            raise ConfigError(f"{card.name!r}: options.audio_weight must lie in [0, 1], got {self.audio_weight}")
        self.image = inner_expert(card, "image_encoder", Modality.IMAGE, pretrained, experts)
        self.audio = inner_expert(card, "audio_encoder", Modality.AUDIO, pretrained, experts)
        self.inner = torch.nn.ModuleList([e.encoder for e in (self.image, self.audio) if e is not None])
        image, audio = self.image.card, self.audio.card if self.audio is not None else None
        dim = image.dim
        if audio is not None and self.fusion == "mean" and audio.dim != image.dim:
            raise ConfigError(f"{card.name!r}: fusion 'mean' needs experts of equal dim, but {image.name!r} gives "
                              f"{image.dim} and {audio.name!r} {audio.dim}; use fusion 'concat'")
        if audio is not None and self.fusion == "concat":
            dim += audio.dim
        if dim != card.dim:
            raise ConfigError(f"{card.name!r}: these experts give {dim}-d video embeddings, the card says {card.dim}")

    @classmethod
    def trunk(cls, card: EncoderCard) -> tuple[dict[str, Any], str]:
        return wrapper_trunk(card, super().trunk(card)[0], "image_encoder")

    @classmethod
    def weights_available(cls, card: EncoderCard) -> bool:
        return inner_available(card, WRAPPED)

    @classmethod
    def tiny(cls, card: EncoderCard) -> "VideoFramesEncoder":
        return cls(card, pretrained=False, experts=tiny_inner_experts(card, WRAPPED))

    def preprocessor(self) -> VideoPreprocessor:
        frames = self.image.encoder.preprocessor()
        if self.audio is None:
            return VideoPreprocessor(self.frames, frames)
        return VideoPreprocessor(self.frames, frames, self.audio.encoder.preprocessor(),
                                 self.audio.card.preprocess.get("sample_rate"))

    def collate(self, samples: Sequence[tuple[torch.Tensor, Any]]) -> dict[str, Any]:
        frames, counts = collate_segments([images for images, _ in samples])
        sounds = [sound for _, sound in samples if sound is not None]
        return {"frames": frames, "counts": counts,
                "has_audio": torch.tensor([sound is not None for _, sound in samples]),
                "audio": self.audio.encoder.collate(sounds) if sounds and self.audio is not None else None}

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.forward_heads(batch, [self.image.head])[self.image.head]

    def forward_heads(self, batch: dict[str, Any], heads: Sequence[str]) -> dict[str, torch.Tensor]:
        """Each head of the image network, pooled over each video's frames (then fused with its sound)."""
        frames = encode_images(self.image, batch["frames"], self.chunk, heads)
        visual = {head: pool_segments(out, batch["counts"]) for head, out in frames.items()}
        if self.audio is None:
            return visual
        sound = self.audio(batch["audio"]) if batch["audio"] is not None else None
        return {head: self._fuse(out, batch["has_audio"], sound) for head, out in visual.items()}

    def _fuse(self, visual: torch.Tensor, has_audio: torch.Tensor, sound: torch.Tensor | None) -> torch.Tensor:
        assert self.audio is not None
        visual = F.normalize(visual, dim=-1)
        has_audio = has_audio.to(visual.device)
        audio = visual.new_zeros(len(visual), self.audio.card.dim)
        if sound is not None:
            audio[has_audio] = F.normalize(sound.to(visual.dtype), dim=-1)
        w = self.audio_weight
        if self.fusion == "mean":
            if audio.shape[1] != visual.shape[1]:
                raise ConfigError(f"{self.card.name!r}: fusion 'mean' of {visual.shape[1]}-d frames with "
                                  f"{audio.shape[1]}-d sound; use fusion 'concat'")
            fused = F.normalize((1 - w) * visual + w * audio, dim=-1)
            return torch.where(has_audio[:, None], fused, visual)
        scale = torch.where(has_audio, 1 - w, 1.0).to(visual.dtype)[:, None]
        return torch.cat([scale * visual, w * audio], dim=1)
