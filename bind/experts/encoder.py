"""The frozen expert contract every backend implements (sentence-transformers' module contract, pared down).

An encoder turns one raw item into a sample (``preprocessor``, picklable, runs in DataLoader workers),
a list of samples into a batch (``collate``) and a batch into a ``[B, dim]`` tensor (``forward``).

One network can serve several cards: cards whose :meth:`Encoder.trunk` is equal share one instance and one
forward pass, each reading its own head of it (:meth:`Encoder.forward_heads`), e.g. EfficientNet's pooled
features and its ImageNet logits. A backend with several heads overrides both methods.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Sequence

import torch
from torch import nn

from .cards import EncoderCard
from .modality import Modality


class Encoder(nn.Module):
    """A frozen pretrained expert for one modality. Subclasses implement the three steps below."""

    # card options that name other experts this one wraps (e.g. a video expert's image expert)
    inner_keys: ClassVar[tuple[str, ...]] = ()
    # card fields that do not change what the network computes (the name stays: a backend may key on it)
    _NOT_TRUNK: ClassVar[tuple[str, ...]] = ("licence", "weights", "description")

    def __init__(self, card: EncoderCard) -> None:
        super().__init__()
        self.card = card

    @classmethod
    def trunk(cls, card: EncoderCard) -> tuple[dict[str, Any], str]:
        """What identifies the network ``card`` runs (equal for cards that share one forward) and the head of
        it ``card`` reads ("" for single-output networks)."""
        key = {k: v for k, v in card.to_dict().items() if k not in cls._NOT_TRUNK}
        key["options"] = {k: v for k, v in card.options.items() if k != "default"}
        key["class"] = f"{cls.__module__}.{cls.__qualname__}"
        return key, ""

    @classmethod
    def labels_for(cls, card: EncoderCard) -> tuple[str, ...] | None:
        """The class names of a classifier card's outputs (None when its outputs are not classes)."""
        return None

    @property
    def labels(self) -> tuple[str, ...] | None:
        """The class names of this encoder's outputs, if it is a classifier."""
        return type(self).labels_for(self.card)

    @property
    def modality(self) -> Modality:
        """The modality this expert embeds (from its card)."""
        return self.card.modality

    @property
    def dim(self) -> int:
        """The dimension of this expert's output (from its card)."""
        return self.card.dim

    @property
    def name(self) -> str:
        """The card's registered name."""
        return self.card.name

    @property
    def device(self) -> torch.device:
        """The device of the expert's parameters (CPU when it has none)."""
        param = next(iter(self.parameters()), None)
        return param.device if param is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the expert's parameters (float32 when it has none)."""
        param = next(iter(self.parameters()), None)
        return param.dtype if param is not None else torch.float32

    def preprocessor(self) -> Callable[[Any], Any]:
        """A picklable callable: raw item -> sample. Raises InputError for bad items."""
        raise NotImplementedError

    def collate(self, samples: Sequence[Any]) -> Any:
        """Samples -> one batch. Default: stack tensors."""
        return torch.stack(list(samples))

    def forward(self, batch: Any) -> torch.Tensor:  # noqa: D102 - documented in the class
        raise NotImplementedError

    def forward_heads(self, batch: Any, heads: Sequence[str]) -> dict[str, torch.Tensor]:
        """One forward pass, the outputs of each of ``heads`` (each ``[B, dim of its card]``)."""
        out = self(batch)
        return {head: out for head in heads}

    def freeze(self) -> "Encoder":
        """Eval mode and no gradients: experts are never trained."""
        self.eval()
        for param in self.parameters():
            param.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "Encoder":
        """Experts stay in eval mode (dropout/BN off) even inside a module set to train."""
        return super().train(False)

    def to_input(self, tensor: torch.Tensor) -> torch.Tensor:
        """Move a batch tensor to this encoder's device (and dtype, for floating tensors)."""
        if tensor.is_floating_point():
            return tensor.to(self.device, self.dtype)
        return tensor.to(self.device)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, modality={self.modality.value}, dim={self.dim}"


def collate_segments(samples: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate per-item stacks of views/frames/windows; return them and each item's count."""
    counts = torch.tensor([len(s) for s in samples], dtype=torch.long)
    return torch.cat(list(samples)), counts


def pool_segments(features: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean of each item's consecutive rows: ``[sum(counts), d] -> [len(counts), d]``."""
    counts = counts.to(features.device)
    owner = torch.repeat_interleave(torch.arange(len(counts), device=features.device), counts)
    pooled = torch.zeros(len(counts), features.shape[1], device=features.device, dtype=features.dtype)
    pooled.index_add_(0, owner, features)
    return pooled / counts.unsqueeze(1).to(features.dtype)
