"""timm: any pretrained timm model as an image expert (pooled pre-logits features).

Cards name the architecture in ``model_id`` (e.g. ``"convnext_tiny"``) and timm's pretrained tag in
``pretrained`` (e.g. ``"fb_in22k_ft_in1k"``; null means timm's default tag for the architecture).
The image transform comes from the model's pretrained cfg (timm's ``resolve_model_data_config`` +
``create_transform``); ``card.preprocess`` documents it. Dynamic names: ``"timm:ARCH[.TAG]"``, e.g.
``"timm:resnet50.a1_in1k"`` (any name of ``timm.list_pretrained()``).

Your own weights: ``options.checkpoint`` names a local file in timm's formats (``.safetensors``, ``.pth``,
``.bin``; a state dict of the architecture, classifier included or not), loaded by timm's own loader
(``pretrained_cfg_overlay=dict(file=...)``), e.g.
``bind.create_encoder("timm:convnext_tiny.fb_in22k", checkpoint="~/weights/convnext_tiny.safetensors")``.
"""
from __future__ import annotations

import difflib
import importlib.util
import os
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError, UnknownEncoderError, WeightsUnavailableError
from ...io.image import ImagePreprocessor
from ..cards import EncoderCard
from ..encoder import Encoder
from ..modality import Modality
from .locate import hub_cache_exists, hub_offline

_TINY_MODEL = "test_efficientnet"  # one of timm's own tiny test architectures (~0.1M parameters)
_FIND_HINT = "see timm.list_pretrained() (e.g. timm.list_pretrained('convnext*')) for valid names"


def _timm_name(card: EncoderCard) -> str:
    return f"{card.model_id}.{card.pretrained}" if card.pretrained else card.model_id


def _pretrained_cfg(name: str) -> Any:
    """timm's pretrained cfg of ``ARCH[.TAG]`` (no tag: timm's default); UnknownEncoderError otherwise."""
    import timm
    from timm.models import get_pretrained_cfg

    arch, _, tag = name.partition(".")
    known = timm.list_pretrained(arch + "*") if timm.is_model(arch) else []
    full = name if tag else (f"{arch}.{get_pretrained_cfg(arch).tag}" if known else name)
    if full not in known:
        close = difflib.get_close_matches(name, known or timm.list_pretrained(), n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownEncoderError(f"timm has no pretrained model {name!r}; {hint}{_FIND_HINT}")
    return get_pretrained_cfg(full)


def _output_dim(model: nn.Module) -> int:
    """Width of the pooled features a ``num_classes=0`` model returns (pre-logits, after any head MLP)."""
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


def _weights_cached(cfg: Any) -> bool:
    """Whether the weights a pretrained cfg points to are in the Hugging Face or torch hub cache."""
    from huggingface_hub import try_to_load_from_cache

    if cfg.file:
        return os.path.isfile(cfg.file)
    if cfg.hf_hub_id:
        repo_id, _, revision = cfg.hf_hub_id.partition("@")
        filename = cfg.hf_hub_filename or "pytorch_model.bin"
        if filename == "pytorch_model.bin":  # timm prefers a safetensors file when the repo has one
            names: tuple[str, ...] = ("model.safetensors", filename)
        elif filename.endswith(".bin"):
            names = (filename[:-4] + ".safetensors", filename)
        else:
            names = (filename,)
        return any(isinstance(try_to_load_from_cache(repo_id, n, revision=revision or None), str) for n in names)
    if cfg.url:
        return os.path.isfile(os.path.join(_torch_checkpoints(), os.path.basename(cfg.url)))
    return False


def _checkpoint(card: EncoderCard) -> str | None:
    """The card's own weights file (``options.checkpoint``, ``~`` expanded), or None for timm's registry."""
    value = card.options.get("checkpoint")
    return os.path.expanduser(str(value)) if value else None


def _torch_checkpoints() -> str:
    """The folder where timm (via torch.hub) keeps weights downloaded from a URL."""
    return os.path.join(torch.hub.get_dir(), "checkpoints")


class TimmEncoder(Encoder):
    """Globally pooled features of a timm image model (``timm.create_model(..., num_classes=0)``)."""

    def __init__(self, card: EncoderCard, pretrained: bool = True, model: nn.Module | None = None) -> None:
        super().__init__(card)
        if card.modality != Modality.IMAGE:
            raise ConfigError(f"{card.name!r}: timm models embed images, not {card.modality.value}")
        self.resize: nn.Module | None = None
        if model is None:
            model = self._create(pretrained)
            if _output_dim(model) != card.dim:
                raise ConfigError(f"{card.name!r}: timm {_timm_name(card)!r} gives {_output_dim(model)}-d features, "
                                  f"card says {card.dim}")
        elif _output_dim(model) != card.dim:  # tiny test instances: map to the card's width
            self.resize = nn.Linear(_output_dim(model), card.dim)
        self.model = model

    def _create(self, pretrained: bool) -> nn.Module:
        import timm

        name = _timm_name(self.card)
        _pretrained_cfg(name)
        checkpoint = _checkpoint(self.card)
        if pretrained and checkpoint is not None:
            if not os.path.isfile(checkpoint):
                raise WeightsUnavailableError(f"{self.card.name!r}: options.checkpoint {checkpoint} is not a file")
            try:
                return timm.create_model(name, pretrained=True, num_classes=0,
                                         pretrained_cfg_overlay={"file": checkpoint})
            except (OSError, RuntimeError, ValueError, KeyError) as exc:
                raise WeightsUnavailableError(f"{self.card.name!r}: timm cannot load {checkpoint} as "
                                              f"{name!r}: {exc}") from None
        if pretrained and hub_offline() and not self.weights_available(self.card):
            raise WeightsUnavailableError(
                f"{self.card.name!r}: the weights of timm {name!r} are not in the local cache and the hub is offline "
                f"(HF_HUB_OFFLINE); download them once with network access")
        try:
            return timm.create_model(name, pretrained=pretrained, num_classes=0)
        except (OSError, RuntimeError) as exc:
            raise WeightsUnavailableError(f"cannot load timm {name!r} weights for {self.card.name!r}: {exc}") from None

    @classmethod
    def weights_available(cls, card: EncoderCard) -> bool:
        """Whether timm's pretrained weights for the card are cached here. timm (seconds to import) is imported
        only when a cache they could be in exists (timm's registered cfgs name hub files or URLs, no local files)."""
        if importlib.util.find_spec("timm") is None:
            return False
        checkpoint = _checkpoint(card)
        if checkpoint is not None:
            return os.path.isfile(checkpoint)
        if not (hub_cache_exists() or os.path.isdir(_torch_checkpoints())):
            return False
        try:
            cfg = _pretrained_cfg(_timm_name(card))
        except UnknownEncoderError:
            return False
        return _weights_cached(cfg)

    @classmethod
    def card_from_spec(cls, spec: str) -> EncoderCard:
        """A card for ``ARCH[.TAG]``; the width comes from the architecture built on the meta device."""
        import timm

        cfg = _pretrained_cfg(spec)
        with torch.device("meta"):  # shapes only: no memory, no weights
            dim = _output_dim(timm.create_model(spec, pretrained=False, num_classes=0))
        arch, _, tag = spec.partition(".")
        source = f"Hugging Face Hub {cfg.hf_hub_id}" if cfg.hf_hub_id else (cfg.url or cfg.file or "timm")
        licence = f"{cfg.license} (timm pretrained cfg)" if cfg.license else "not recorded by timm; see the model card"
        return EncoderCard(name=f"timm.{spec}", modality="image", dim=dim, backend="timm", model_id=arch,
                           pretrained=tag or cfg.tag, licence=licence, weights=source,
                           preprocess=_card_preprocess(cfg))

    @classmethod
    def tiny(cls, card: EncoderCard) -> "TimmEncoder":
        """timm's ``test_efficientnet`` with random weights (and its own data config), mapped to ``card.dim``."""
        import timm

        torch.manual_seed(0)
        return cls(card, model=timm.create_model(_TINY_MODEL, pretrained=False, num_classes=0)).freeze()

    def preprocessor(self) -> ImagePreprocessor:
        from timm.data import create_transform, resolve_model_data_config

        return ImagePreprocessor(create_transform(**resolve_model_data_config(self.model), is_training=False))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        features = self.model(self.to_input(batch))
        return features if self.resize is None else self.resize(features)


def _card_preprocess(cfg: Any) -> dict[str, Any]:
    """The data config of a pretrained cfg, in card form (documentation; the model's cfg is what runs)."""
    return {"image_size": cfg.input_size[-1], "crop_pct": cfg.crop_pct, "interpolation": cfg.interpolation,
            "mean": list(cfg.mean), "std": list(cfg.std)}
