"""Router training (OmniBind): learn per-input weights over candidate spaces from paired items.

A batch holds, for both sides ``a`` and ``b`` of each pair, the candidates' unit embeddings ``[B, S, d]`` and
the router input (the item's own expert features, ``[B, d_r]``, l2-normalised before the router). Each side is routed,
``z = l2(sum_s w_s c_s)`` with ``w = softmax(sigmoid(r(f)))`` (:class:`bind.routers.Router`), and trained with

``loss = InfoNCE(z_a, z_b) + text_weight * U(z_text)``

the cross-modal alignment objective (symmetric InfoNCE over the pairs, learnable temperature) plus a term
keeping text representations apart: the uniformity loss ``U(z) = log mean_{i != j} exp(-t ||z_i - z_j||^2)``
(Wang & Isola) over the routed text rows of the batch, so the routing cannot collapse texts together.

``bind train recipes/router_toy.yaml`` runs it on :class:`ToyRouting`, a synthetic task with a known answer.
After training, :meth:`RouterModule.routed_space` puts the routers into a :class:`bind.routers.RoutedSpace`.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LightningCLI
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..errors import ConfigError
from ..eval.metrics import paired_retrieval
from ..experts.modality import Modality
from ..spaces.base import Space
from ..spaces.routed import RoutedSpace, Router
from .losses import InfoNCE

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """``log mean_{i != j} exp(-t ||z_i - z_j||^2)``: lower when the rows are spread apart."""
    if len(z) < 2:
        return z.new_zeros(())
    return torch.pdist(F.normalize(z, dim=-1)).pow(2).mul(-t).exp().mean().log()


class RouterModule(L.LightningModule):
    """Routers for the modalities of the two sides of the pairs (``modalities``: [side a, side b]).

    ``router_dims``: modality -> width of its router input (sides whose modality has none get equal
    weights); ``num_spaces``: the number of candidate spaces; ``experts``: modality -> the expert card whose
    features feed that router at inference (needed by :meth:`routed_space`). Validation logs R@1 both ways
    and ``val/R@1`` (their mean).
    """

    def __init__(self, num_spaces: int, router_dims: dict[str, int], modalities: list[str],
                 experts: dict[str, str] | None = None, hidden: int = 512, bottleneck: int = 100,
                 text_weight: float = 0.1, uniformity_t: float = 2.0, temperature: float = 0.07,
                 lr: float = 1e-3, weight_decay: float = 1e-4) -> None:
        super().__init__()
        self.save_hyperparameters()
        if len(modalities) != 2:
            raise ConfigError(f"RouterModule: modalities must name the two sides of the pairs, got {modalities}")
        self.sides = [Modality.parse(m) for m in modalities]
        experts = experts or {}
        self.routers = nn.ModuleDict({
            Modality.parse(m).value: Router(d, num_spaces, expert=experts.get(m), hidden=hidden, bottleneck=bottleneck)
            for m, d in router_dims.items()})
        self.infonce = InfoNCE(init_temperature=temperature)
        self._outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def weights(self, modality: Modality, features: torch.Tensor, count: int) -> torch.Tensor:
        """``[B, S]`` weights of a side: its router's on the l2-normalised features (as in a RoutedSpace),
        or equal weights."""
        if modality.value in self.routers:
            return self.routers[modality.value](F.normalize(features.float(), dim=-1))
        return torch.full((count, self.hparams.num_spaces), 1.0 / self.hparams.num_spaces, device=features.device)

    def route(self, modality: Modality, candidates: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``l2(sum_s w_s c_s)`` for candidates ``[B, S, d]``."""
        w = self.weights(modality, features, len(candidates))
        return F.normalize(torch.einsum("bs,bsd->bd", w, candidates.float()), dim=-1)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        cand_a, feat_a, cand_b, feat_b = batch
        return self.route(self.sides[0], cand_a, feat_a), self.route(self.sides[1], cand_b, feat_b)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        z_a, z_b = self(batch)
        align = self.infonce(z_a, z_b)
        texts = [z for z, m in zip((z_a, z_b), self.sides) if m == Modality.TEXT]
        spread = sum((uniformity(z, self.hparams.uniformity_t) for z in texts), z_a.new_zeros(()))
        loss = align + self.hparams.text_weight * spread
        self.log_dict({"train/infonce": align, "train/text_uniformity": spread, "train/loss": loss},
                      prog_bar=False, batch_size=len(z_a))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        z_a, z_b = self(batch)
        self._outputs.append((z_a.detach(), z_b.detach()))

    def on_validation_epoch_end(self) -> None:
        outputs, self._outputs = self._outputs, []
        if not outputs:
            return
        metrics = paired_retrieval(torch.cat([a for a, _ in outputs]), torch.cat([b for _, b in outputs]))
        self.log_dict({f"val/{k}": v for k, v in metrics.items()})
        self.log("val/R@1", (metrics["a2b/R@1"] + metrics["b2a/R@1"]) / 2, prog_bar=True)

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def routed_space(self, candidates: Sequence[Space]) -> RoutedSpace:
        """The trained routers over ``candidates`` (in the order the training data stacked them)."""
        return RoutedSpace(list(candidates), {m: router for m, router in self.routers.items()})


class ToyRouting(L.LightningDataModule):
    """A routing task with a known answer: pairs (image, text) of ``num_spaces`` candidate spaces.

    Each pair has a hidden concept ``t`` (``dim``-d). For an image, one random candidate space ``k`` is
    informative (``c_k = l2(t + noise)``), the others give unrelated unit vectors, and the image's own
    expert features reveal ``k`` (one-hot of ``k`` plus noise, ``feature_dim``-d). For a text, space 0 is
    informative and the others are noisier. A router that learns to follow its features aligns the pairs.
    """

    def __init__(self, train_size: int = 1024, val_size: int = 256, num_spaces: int = 2, dim: int = 16,
                 feature_dim: int = 8, noise: float = 0.3, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        if feature_dim < num_spaces:
            raise ConfigError(f"ToyRouting: feature_dim ({feature_dim}) must be >= num_spaces ({num_spaces})")
        self.save_hyperparameters()
        self.splits: dict[str, tuple[torch.Tensor, ...]] = {}

    num_spaces = property(lambda self: self.hparams.num_spaces)
    router_dims = property(lambda self: {"image": self.hparams.feature_dim, "text": self.hparams.feature_dim})
    modalities = property(lambda self: ["image", "text"])

    def make(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """(image candidates, image features, text candidates, text features, informative space of each image)."""
        hp = self.hparams
        concept = torch.randn(count, hp.dim, generator=generator)
        informative = torch.randint(hp.num_spaces, (count,), generator=generator)

        def noisy(scale: float) -> torch.Tensor:
            return F.normalize(concept + scale * torch.randn(count, hp.dim, generator=generator), dim=-1)

        image = F.normalize(torch.randn(count, hp.num_spaces, hp.dim, generator=generator), dim=-1)
        image[torch.arange(count), informative] = noisy(hp.noise)
        image_features = F.one_hot(informative, hp.feature_dim).float() \
            + 0.1 * torch.randn(count, hp.feature_dim, generator=generator)
        text = torch.stack([noisy(hp.noise)] + [noisy(4 * hp.noise) for _ in range(hp.num_spaces - 1)], dim=1)
        text_features = torch.randn(count, hp.feature_dim, generator=generator)
        return image, image_features, text, text_features, informative

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            generator = torch.Generator().manual_seed(self.hparams.seed)
            self.splits = {"train": self.make(self.hparams.train_size, generator),
                           "val": self.make(self.hparams.val_size, generator)}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(TensorDataset(*self.splits[split][:4]), batch_size=self.hparams.batch_size,
                          shuffle=shuffle, drop_last=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)


class RouterCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: Any) -> None:
        for name in ("num_spaces", "router_dims", "modalities"):
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """``bind train recipes/router_*.yaml``: fit the routers; returns the last validation metrics."""
    cli = RouterCLI(RouterModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                    args=list(argv) if argv is not None else None, save_config_kwargs={"overwrite": True},
                    seed_everything_default=0)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("val/")}
    if cli.trainer.is_global_zero:
        print(json.dumps({"val": metrics}, indent=2))
    return metrics


if __name__ == "__main__":  # the recipe names bind.train.router classes, not __main__ ones
    from bind.train.router import main as _main

    _main()
