"""The frozen expert contract every backend implements (sentence-transformers' module contract, pared down).

An encoder turns one raw item into a sample (``preprocessor``, picklable, runs in DataLoader workers),
a list of samples into a batch (``collate``) and a batch into a ``[B, dim]`` tensor (``forward``).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from .cards import EncoderCard
from .modality import Modality


class Encoder(nn.Module):
    """A frozen pretrained expert for one modality. Subclasses implement the three steps below."""

    def __init__(self, card: EncoderCard) -> None:
        super().__init__()
        self.card = card

    @property
    def modality(self) -> Modality:
        return self.card.modality

    @property
    def dim(self) -> int:
        return self.card.dim

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def device(self) -> torch.device:
        param = next(iter(self.parameters()), None)
        return param.device if param is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
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
