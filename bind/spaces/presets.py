"""Builders of the packaged spaces: the zero-training label-bridge space that ``lite`` starts from.

``recipes/build_lite_space.py`` bonds :func:`bridge_space` with the trained adapters into ``spaces/lite``.
"""
from __future__ import annotations

from ..experts.backends.packaged import class_labels
from ..experts.modality import Modality
from ..experts.registry import get_card
from .anchor import AnchorSpace, ExpertPath

CLASSIFIER = "efficientnet-lite0.imagenet-logits"
TEXT = "minilm-l6.text"
# modality -> card whose image expert is swapped for the classifier so its output can cross the bridge
WRAPPERS = {Modality.VIDEO: "video-efficientnet-lite0.video", Modality.POINTS: "pointviews-efficientnet-lite0.points"}


def bridge_space(classifier: str = CLASSIFIER, all_lemmas: bool = False) -> AnchorSpace:
    """The zero-training space: MiniLM text; image, video and 3D through the ImageNet label bridge (ConSE) of
    ``classifier`` (an ImageNet logits card: EfficientNet-Lite0 by default, or Lite2). Class names: the first
    lemma of each ImageNet class ("a photo of a tabby."), or with ``all_lemmas`` all of them ("a photo of a
    tabby, tabby cat.", what lite uses: ``bench/photo_bridge.py``)."""
    labels = class_labels("imagenet-1k", all_lemmas=True) if all_lemmas else None
    image = ExpertPath.label_bridge(classifier, TEXT, labels=labels)
    classifier_dim = get_card(classifier).dim
    paths: dict[Modality, ExpertPath | str] = {Modality.TEXT: TEXT, Modality.IMAGE: image}
    for modality, name in WRAPPERS.items():
        card = get_card(name)
        card = card.replace(dim=classifier_dim, options={**card.options, "image_encoder": classifier})
        paths[modality] = ExpertPath(card, image.adapter, "none")
    return AnchorSpace(paths)
