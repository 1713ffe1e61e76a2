"""open_clip: one tower (image or text) of any OpenCLIP / SigLIP model as an expert.

Cards name the architecture in ``model_id`` (an open_clip model name such as ``"ViT-B-32"``, or
``"hf-hub:org/repo"``) and the weights in ``pretrained`` (an open_clip tag such as ``"laion2b_s34b_b79k"``,
or a local checkpoint file). Image transforms and the tokenizer come from the model's own config
(open_clip's preprocess cfg and text cfg); ``card.preprocess`` documents them and sizes the tiny test model.
Dynamic names: ``"open_clip:MODEL[@TAG][#TOWER]"``, e.g. ``"open_clip:ViT-B-32@laion2b_s34b_b79k#text"``
or ``"open_clip:hf-hub:timm/ViT-B-16-SigLIP"`` (tower ``image`` when omitted).
"""
from __future__ import annotations

import difflib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ...errors import ConfigError, UnknownEncoderError, WeightsUnavailableError
from ...io.image import ImagePreprocessor
from ...io.text import TextPreprocessor
from ..cards import EncoderCard
from ..encoder import Encoder
from ..modality import Modality
from .locate import hub_cache_exists, hub_offline

_HF_HUB = "hf-hub:"
_LOCAL_DIR = "local-dir:"
_TOWERS = (Modality.IMAGE, Modality.TEXT)
# open_clip's default checkpoint name in a hub repo, and the safetensors file it prefers
_HUB_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_FIND_HINT = "see open_clip.list_models() and open_clip.list_pretrained() for valid model names and tags"


def _builtin(model_id: str) -> bool:
    return not model_id.startswith((_HF_HUB, _LOCAL_DIR))


def _is_file(tag: str | None) -> bool:
    return tag is not None and os.path.isfile(tag)


def _check_names(model_id: str, tag: str | None) -> None:
    """Raise UnknownEncoderError for a built-in model or tag open_clip does not know, ConfigError for a missing tag."""
    import open_clip

    if not _builtin(model_id):
        if tag is not None:
            raise ConfigError(f"open_clip model {model_id!r} carries its own weights; drop the pretrained tag {tag!r}")
        return
    models = open_clip.list_models()
    if model_id not in models:
        close = difflib.get_close_matches(model_id, models, n=5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownEncoderError(f"unknown open_clip model {model_id!r}; {hint}{_FIND_HINT}")
    tags = open_clip.list_pretrained_tags_by_model(model_id)
    if tag is None:
        raise ConfigError(f"open_clip model {model_id!r} needs a pretrained tag, one of: {', '.join(tags) or 'none'}")
    if tag not in tags and not _is_file(tag):
        raise UnknownEncoderError(f"open_clip model {model_id!r} has no pretrained tag {tag!r} "
                                  f"(and it is not a checkpoint file); its tags: {', '.join(tags) or 'none'}")


def _tag_cfg(model_id: str, tag: str | None) -> dict[str, Any]:
    """open_clip's pretrained cfg of a built-in model's tag (hub location, image statistics, quick_gelu)."""
    import open_clip

    if not _builtin(model_id) or tag is None or _is_file(tag):
        return {}
    return open_clip.get_pretrained_cfg(model_id, tag)


def _model_config(model_id: str) -> dict[str, Any]:
    """The architecture config; for hub ids it comes from the hub (cache), hence WeightsUnavailableError."""
    import open_clip

    try:
        config = open_clip.get_model_config(model_id)
    except (OSError, RuntimeError, ValueError) as exc:
        raise WeightsUnavailableError(f"cannot read the open_clip config of {model_id!r} "
                                      f"(offline, or not in the Hugging Face cache): {exc}") from None
    if config is None:
        raise UnknownEncoderError(f"unknown open_clip model {model_id!r}; {_FIND_HINT}")
    return config


def _cache_path(repo_id: str, filename: str) -> str | None:
    """Where a hub file sits in the local Hugging Face cache, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, filename)
    return path if isinstance(path, str) else None


def _cached(repo_id: str, filenames: Sequence[str]) -> bool:
    return any(_cache_path(repo_id, name) for name in filenames)


def _hub_weights_cached(hf_hub: str) -> bool:
    """Whether an open_clip ``hf_hub`` location (``"org/repo/"`` or ``"org/repo/file"``) is in the cache."""
    repo_id, filename = os.path.split(hf_hub)
    if not repo_id:
        return False
    if not filename:
        filenames: tuple[str, ...] = _HUB_WEIGHT_FILES
    elif filename.endswith((".bin", ".pth")):  # open_clip prefers a safetensors sibling
        filenames = (filename[:-4] + ".safetensors", filename)
    else:
        filenames = (filename,)
    return _cached(repo_id, filenames)


def _preprocess_overrides(preprocess: dict[str, Any]) -> dict[str, Any]:
    """Image statistics of a card or tag cfg, in open_clip's create_model_and_transforms keywords."""
    keys = {"mean": "image_mean", "std": "image_std", "interpolation": "image_interpolation",
            "resize_mode": "image_resize_mode"}
    return {keys[k]: tuple(v) if isinstance(v, list) else v for k, v in preprocess.items() if k in keys}


def _inference_transform(model: Any) -> Callable[[Any], torch.Tensor]:
    """open_clip's inference transform from the preprocess cfg attached to the model."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    return image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)


class OpenClipEncoder(Encoder):
    """The image or text tower of an open_clip model (``card.modality`` picks it).

    Text longer than the model's context length (77 tokens for CLIP, 64 for SigLIP) is truncated by
    the model's tokenizer, keeping the end-of-text token. The whole model is loaded for either tower.
    """

    def __init__(self, card: EncoderCard, pretrained: bool = True, model: Any = None, tokenizer: Any = None) -> None:
        super().__init__(card)
        if card.modality not in _TOWERS:
            raise ConfigError(f"{card.name!r}: open_clip encodes image or text, not {card.modality.value}")
        if model is None:
            _check_names(card.model_id, card.pretrained)
            model = self._load(pretrained)
            embed_dim = _model_config(card.model_id)["embed_dim"]
            if embed_dim != card.dim:
                raise ConfigError(
                    f"{card.name!r}: open_clip {card.model_id!r} embeds in {embed_dim} dims, card says {card.dim}")
        self.model = model
        self.transform = _inference_transform(model) if card.modality == Modality.IMAGE else None
        if card.modality == Modality.TEXT and tokenizer is None:
            tokenizer = self._tokenizer(card.model_id, model.context_length)
        self.tokenizer = tokenizer

    def _load(self, pretrained: bool) -> Any:
        import open_clip

        card = self.card
        tag_cfg = _tag_cfg(card.model_id, card.pretrained)
        quick_gelu = bool(tag_cfg.get("quick_gelu", False))  # e.g. OpenAI weights were trained with QuickGELU
        if not pretrained:
            try:
                model, _, _ = open_clip.create_model_and_transforms(
                    card.model_id, None, load_weights=False, pretrained_text=False, force_quick_gelu=quick_gelu,
                    **_preprocess_overrides(tag_cfg))
            except (OSError, RuntimeError, ValueError) as exc:
                raise WeightsUnavailableError(
                    f"cannot build open_clip {card.model_id!r} for {card.name!r}: {exc}") from None
            return model
        source = f"{card.model_id}@{card.pretrained}" if card.pretrained else card.model_id
        if hub_offline() and not self.weights_available(card):
            raise WeightsUnavailableError(
                f"{card.name!r}: the open_clip weights {source!r} are not in the local Hugging Face cache and the "
                f"hub is offline (HF_HUB_OFFLINE); download them once with network access")
        try:
            return open_clip.create_model_from_pretrained(card.model_id, card.pretrained, force_quick_gelu=quick_gelu,
                                                          return_transform=False)
        except (OSError, RuntimeError, ValueError) as exc:
            raise WeightsUnavailableError(
                f"cannot load the open_clip weights {source!r} for {card.name!r}: {exc}") from None

    @staticmethod
    def _tokenizer(model_id: str, context_length: int) -> Any:
        import open_clip

        try:
            return open_clip.get_tokenizer(model_id, context_length=context_length)
        except (OSError, RuntimeError, ValueError) as exc:
            raise WeightsUnavailableError(f"cannot load the tokenizer of open_clip {model_id!r} "
                                          f"(offline, or not in the Hugging Face cache): {exc}") from None

    @classmethod
    def weights_available(cls, card: EncoderCard) -> bool:
        """Whether the weights (and a hub tokenizer, for text towers) are on this machine; no network.

        open_clip itself (seconds to import) is imported only for a built-in model whose weights may be here.
        """
        if importlib.util.find_spec("open_clip") is None:
            return False
        model_id, tag = card.model_id, card.pretrained
        if model_id.startswith(_LOCAL_DIR):
            return (Path(model_id[len(_LOCAL_DIR):]) / "open_clip_config.json").is_file()
        if model_id.startswith(_HF_HUB):
            repo_id = model_id[len(_HF_HUB):]
            config_file = _cache_path(repo_id, "open_clip_config.json")
            if config_file is None or not _cached(repo_id, _HUB_WEIGHT_FILES):
                return False
            config = json.loads(Path(config_file).read_text())
            text_cfg = config.get("model_cfg", config)["text_cfg"]
        else:
            if not _is_file(tag) and not hub_cache_exists():  # the tag's weights could only be in the hub cache
                return False
            import open_clip

            try:
                _check_names(model_id, tag)
            except (ConfigError, UnknownEncoderError):
                return False
            if not (_is_file(tag) or _hub_weights_cached(_tag_cfg(model_id, tag).get("hf_hub", ""))):
                return False
            text_cfg = open_clip.get_model_config(model_id)["text_cfg"]
        tokenizer_repo = text_cfg.get("hf_tokenizer_name") if card.modality == Modality.TEXT else None
        return not tokenizer_repo or _cached(tokenizer_repo, ("tokenizer_config.json",))

    @classmethod
    def card_from_spec(cls, spec: str) -> EncoderCard:
        """A card for ``MODEL[@TAG][#TOWER]`` (tower ``image`` or ``text``, default ``image``)."""
        rest, _, tower = spec.partition("#")
        model_id, _, tag = rest.partition("@")
        if tower not in ("", "image", "text"):
            raise ConfigError(f"open_clip spec {spec!r}: the tower after '#' must be 'image' or 'text'")
        modality = Modality.parse(tower or "image")
        _check_names(model_id, tag or None)
        config = _model_config(model_id)
        tag_cfg = _tag_cfg(model_id, tag or None)
        weights = f"Hugging Face Hub {tag_cfg['hf_hub'].rstrip('/')}" if tag_cfg.get("hf_hub") else (tag or model_id)
        if modality == Modality.TEXT:
            preprocess = {"context_length": config["text_cfg"].get("context_length", 77)}
        else:
            preprocess = {"image_size": config["vision_cfg"].get("image_size", 224),
                          **{k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}}
        return EncoderCard(name=f"open_clip.{spec}", modality=modality, dim=int(config["embed_dim"]),
                           backend="open_clip", model_id=model_id, pretrained=tag or None,
                           licence="not recorded by open_clip; see the model card of the weights", weights=weights,
                           preprocess=preprocess)

    @classmethod
    def tiny(cls, card: EncoderCard) -> "OpenClipEncoder":
        """A random 1-layer CLIP (32x32 images, width 32) embedding in ``card.dim``, built offline.

        It keeps the card's preprocessing contract: image statistics and resize mode from
        ``card.preprocess`` (image size 32, from the tiny model's config) and the text context length.
        The tokenizer is open_clip's SimpleTokenizer, whose BPE vocabulary ships in the package; SigLIP
        cards use it too, since SigLIP's own (sentencepiece) tokenizer lives on the hub.
        """
        import open_clip
        from open_clip.transform import PreprocessCfg, merge_preprocess_dict

        context_length = int(card.preprocess.get("context_length", 77))
        torch.manual_seed(0)
        model = open_clip.CLIP(
            embed_dim=card.dim,
            vision_cfg=open_clip.CLIPVisionCfg(image_size=32, patch_size=8, layers=1, width=32, head_width=16),
            text_cfg=open_clip.CLIPTextCfg(context_length=context_length, width=32, heads=2, layers=1))
        statistics = {k.removeprefix("image_"): v for k, v in _preprocess_overrides(card.preprocess).items()}
        open_clip.set_model_preprocess_cfg(
            model, merge_preprocess_dict(PreprocessCfg(size=model.visual.image_size), statistics))
        text = card.modality == Modality.TEXT
        tokenizer = open_clip.SimpleTokenizer(context_length=context_length) if text else None
        return cls(card, model=model, tokenizer=tokenizer).freeze()

    def preprocessor(self) -> ImagePreprocessor | TextPreprocessor:
        if self.modality == Modality.IMAGE:
            return ImagePreprocessor(self.transform)
        return TextPreprocessor()

    def collate(self, samples: Sequence[Any]) -> torch.Tensor:
        if self.modality == Modality.IMAGE:
            return torch.stack(list(samples))
        return self.tokenizer(list(samples))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        if self.modality == Modality.IMAGE:
            return self.model.encode_image(self.to_input(batch))
        return self.model.encode_text(self.to_input(batch))
