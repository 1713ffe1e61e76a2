"""Zero-training bridges from a classifier expert into a text anchor space (ConSE).

A classifier's class probabilities weight the anchor-space embeddings of its class names:
``z = l2( sum_{k in top-k} p_k / (sum p) * E[label_k] )``. The baseline every trained projector must beat.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..experts.cards import EncoderCard
from ..experts.encoder import Encoder
from ..experts.registry import get_backend


class LabelBridge(nn.Module):
    """Map classifier logits ``[B, C]`` to the anchor space ``[B, d]`` through class-name embeddings."""

    def __init__(self, label_embeddings: torch.Tensor, top_k: int = 10) -> None:
        super().__init__()
        if label_embeddings.ndim != 2:
            raise ConfigError(f"label embeddings must be [classes, dim], got {tuple(label_embeddings.shape)}")
        if not 1 <= top_k <= label_embeddings.shape[0]:
            raise ConfigError(f"top_k must be in [1, {label_embeddings.shape[0]}], got {top_k}")
        self.register_buffer("label_embeddings", F.normalize(label_embeddings.float(), dim=-1))
        self.top_k = top_k

    @property
    def num_classes(self) -> int:
        return self.label_embeddings.shape[0]

    @classmethod
    def from_labels(cls, labels: Sequence[str], text_encoder: Encoder | str,
                    template: str | Sequence[str] = "a photo of a {}.", top_k: int = 10,
                    batch_size: int = 128) -> "LabelBridge":
        """Embed ``template.format(label)`` for every class name with the anchor's text expert; with several
        templates, a class is the normalised mean of its templates' embeddings (CLIP's prompt ensembling)."""
        from ..experts.api import embed

        templates = [template] if isinstance(template, str) else list(template)
        if not templates or any("{}" not in t for t in templates):
            raise ConfigError(f"label templates need a '{{}}' for the class name, got {templates!r}")
        prompts = [t.format(label) for label in labels for t in templates]
        vectors = embed(prompts, encoder=text_encoder, batch_size=batch_size)
        vectors = F.normalize(vectors.reshape(len(labels), len(templates), -1), dim=-1).mean(dim=1)
        return cls(vectors, top_k=top_k)

    @classmethod
    def for_classifier(cls, classifier: Encoder | EncoderCard, text_encoder: Encoder | str,
                       **kwargs: object) -> "LabelBridge":
        """A bridge for a classifier expert (an Encoder or its card) whose outputs are named classes, e.g.
        ImageNet logits; ``text_encoder`` (an Encoder or a card name) embeds the class names."""
        card = classifier.card if isinstance(classifier, Encoder) else classifier
        labels = get_backend(card.backend).labels_for(card)
        if not labels:
            raise ConfigError(f"encoder {card.name!r} has no class labels to bridge through")
        if len(labels) != card.dim:
            raise ConfigError(f"{card.name!r}: {len(labels)} labels but {card.dim} outputs")
        return cls.from_labels(labels, text_encoder, **kwargs)  # type: ignore[arg-type]

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != self.num_classes:
            raise ConfigError(f"expected logits over {self.num_classes} classes, got shape {tuple(logits.shape)}")
        probs = logits.float().softmax(dim=-1)
        top, index = probs.topk(self.top_k, dim=-1)
        weights = top / top.sum(dim=-1, keepdim=True)
        mixed = torch.einsum("bk,bkd->bd", weights, self.label_embeddings[index])
        return F.normalize(mixed, dim=-1)
