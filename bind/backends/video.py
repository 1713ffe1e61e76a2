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

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..cards import EncoderCard
from ..encoder import Encoder, collate_segments, pool_segments
from ..errors import ConfigError
from ..io.video import VideoPreprocessor
from ..modality import Modality


def positive_int_option(card: EncoderCard, key: str, default: int) -> int:
    value = card.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{card.name!r}: options.{key} must be a positive integer, got {value!r}")
    return value


def inner_expert(card: EncoderCard, key: str, modality: Modality, pretrained: bool,
                 given: Mapping[str, Encoder] | None) -> Encoder | None:
    """The expert named by ``card.options[key]``: ``given[key]`` if passed, else built from its own card.

    Used by the experts that wrap other experts (video frames, point-cloud views).
    """
    from ..registry import get_backend, get_card

    name = card.options.get(key)
    if name is None:
        return None
    expert = given.get(key) if given else None
    inner = expert.card if expert is not None else get_card(name)
    if inner.modality != modality:
        raise ConfigError(f"{card.name!r}: options.{key} {name!r} embeds {inner.modality.value}, not {modality.value}")
    if expert is None:
        expert = get_backend(inner.backend)(inner, pretrained=pretrained)
    return expert.freeze()


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


def encode_images(expert: Encoder, images: torch.Tensor, chunk: int) -> torch.Tensor:
    """``expert`` over a stack of its image samples, batched by its own collate, ``chunk`` at a time."""
    return torch.cat([expert(expert.collate(list(images[start:start + chunk])))
                      for start in range(0, len(images), chunk)])


class VideoFramesEncoder(Encoder):
    """The temporal mean of an image expert's embeddings of N evenly spaced frames (+ optional audio)."""

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
        dim = self.image.dim
        if self.audio is not None and self.fusion == "mean" and self.audio.dim != self.image.dim:
            raise ConfigError(f"{card.name!r}: fusion 'mean' needs experts of equal dim, but {self.image.name!r} gives "
                              f"{self.image.dim} and {self.audio.name!r} {self.audio.dim}; use fusion 'concat'")
        if self.audio is not None and self.fusion == "concat":
            dim += self.audio.dim
        if dim != card.dim:
            raise ConfigError(f"{card.name!r}: these experts give {dim}-d video embeddings, the card says {card.dim}")

    @classmethod
    def weights_available(cls, card: EncoderCard) -> bool:
        return inner_available(card, ("image_encoder", "audio_encoder"))

    @classmethod
    def tiny(cls, card: EncoderCard) -> "VideoFramesEncoder":
        return cls(card, pretrained=False, experts=tiny_inner_experts(card, ("image_encoder", "audio_encoder")))

    def preprocessor(self) -> VideoPreprocessor:
        if self.audio is None:
            return VideoPreprocessor(self.frames, self.image.preprocessor())
        return VideoPreprocessor(self.frames, self.image.preprocessor(), self.audio.preprocessor(),
                                 self.audio.card.preprocess.get("sample_rate"))

    def collate(self, samples: Sequence[tuple[torch.Tensor, Any]]) -> dict[str, Any]:
        frames, counts = collate_segments([images for images, _ in samples])
        sounds = [sound for _, sound in samples if sound is not None]
        return {"frames": frames, "counts": counts,
                "has_audio": torch.tensor([sound is not None for _, sound in samples]),
                "audio": self.audio.collate(sounds) if sounds and self.audio is not None else None}

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        visual = pool_segments(encode_images(self.image, batch["frames"], self.chunk), batch["counts"])
        if self.audio is None:
            return visual
        visual = F.normalize(visual, dim=-1)
        has_audio = batch["has_audio"].to(visual.device)
        audio = visual.new_zeros(len(visual), self.audio.dim)
        if batch["audio"] is not None:
            audio[has_audio] = F.normalize(self.audio(batch["audio"]).to(visual.dtype), dim=-1)
        w = self.audio_weight
        if self.fusion == "mean":
            fused = F.normalize((1 - w) * visual + w * audio, dim=-1)
            return torch.where(has_audio[:, None], fused, visual)
        scale = torch.where(has_audio, 1 - w, 1.0).to(visual.dtype)[:, None]
        return torch.cat([scale * visual, w * audio], dim=1)
