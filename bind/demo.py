"""The offline demo: embed assets/ with the packaged experts and rank every caption for each item.

Images, video frames and rendered 3D views go through EfficientNet-Lite0's ImageNet-1k logits and the
zero-training label bridge into the MiniLM text space, where the captions live. Audio needs an audio expert
with weights on this machine; none ships offline, so audio items are listed as unavailable.
"""
from __future__ import annotations

import torch

from .assets import load_manifest
from .bridges import LabelBridge
from .embed import EmbedResult, embed
from .encoder import Encoder
from .modality import Modality
from .registry import create_encoder, get_card

CLASSIFIER = "efficientnet-lite0.imagenet-logits"
TEXT = "minilm-l6.text"
# modality -> card whose image expert is swapped for the classifier so its output can cross the bridge
WRAPPERS = {Modality.VIDEO: "video-efficientnet-lite0.video", Modality.POINTS: "pointviews-efficientnet-lite0.points"}


def classifier_experts() -> dict[Modality, Encoder]:
    """Image, video and 3D experts that all output ImageNet-1k logits."""
    classifier = create_encoder(CLASSIFIER)
    experts: dict[Modality, Encoder] = {Modality.IMAGE: classifier}
    for modality, name in WRAPPERS.items():
        card = get_card(name)
        card = card.replace(dim=classifier.dim, options={**card.options, "image_encoder": CLASSIFIER})
        experts[modality] = create_encoder(card)
    return experts


def caption_demo(top_k: int = 3) -> dict[Modality, tuple[int, int]]:
    """Print the ``top_k`` closest captions of every non-text asset; return (hits@1, items) per modality.

    A hit is a top-1 caption that belongs to an asset of the same concept (e.g. any cat caption for a cat).
    """
    entries = load_manifest()
    text = create_encoder(TEXT)
    captions = sorted({entry.caption for entry in entries})
    concepts = {entry.caption: entry.concept for entry in entries}
    caption_vectors = embed(captions, encoder=text)
    experts = classifier_experts()
    bridge = LabelBridge.for_classifier(experts[Modality.IMAGE], text)
    scores: dict[Modality, tuple[int, int]] = {}
    for modality in (Modality.IMAGE, Modality.VIDEO, Modality.POINTS, Modality.AUDIO):
        items = [e for e in entries if e.modality == modality]
        if not items:
            continue
        print(f"\n== {modality.value} ({len(items)} items) ==")
        if modality not in experts:
            print("  unavailable: no offline audio expert is installed (CLAP needs its weights from the hub)")
            continue
        result = embed([str(e.path) for e in items], encoder=experts[modality], normalize=False, on_error="skip")
        assert isinstance(result, EmbedResult)
        for failure in result.failures:
            print(f"  skipped {failure}")
        similarity = bridge(result.embeddings) @ caption_vectors.T
        hits = 0
        for row, index in enumerate(result.indices):
            entry = items[index]
            best = torch.topk(similarity[row], min(top_k, len(captions)))
            ranked = [captions[i] for i in best.indices.tolist()]
            hit = concepts[ranked[0]] == entry.concept  # a caption of any item about the same thing
            hits += hit
            mark = "ok " if hit else "   "
            shown = ", ".join(f"{c!r} {s:.2f}" for c, s in zip(ranked, best.values.tolist()))
            print(f"  {mark}{entry.path.name:<28} true: {entry.caption!r}\n       closest: {shown}")
        scores[modality] = (hits, len(items))
        print(f"  top-1 caption about the same concept: {hits}/{len(items)}")
    return scores
