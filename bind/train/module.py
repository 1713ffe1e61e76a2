"""``AlignModule``: a projector from an expert space into an anchor space, trained on cached features."""
from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from ..eval.metrics import paired_retrieval
from ..spaces.projectors import build_projector
from .losses import AlignmentLoss, fusemix


class AlignModule(L.LightningModule):
    """Train ``projector`` (a config dict with an explicit ``type``) so that ``projector(source) ~ anchor``.

    ``d_in``/``d_out`` come from the data module's experts (linked by ``bind train``); ``loss`` holds the
    keyword arguments of :class:`bind.train.losses.AlignmentLoss` (InfoNCE, STRUCTURE, intra-space);
    ``fusemix`` turns on latent mixup of the cached features. Validation logs R@1/5/10 both ways and
    ``val/R@1`` (their mean), the metric recipes monitor for early stopping and the best checkpoint. Pairs
    with identical anchors (one caption for several items) are one class: retrieving any of them is a hit
    (:func:`bind.metrics.paired_retrieval` with ``group_b``, as ``bind eval`` scores repeated targets).
    """

    def __init__(self, d_in: int, d_out: int, projector: dict[str, Any] | None = None,
                 loss: dict[str, Any] | None = None, lr: float = 1e-3, weight_decay: float = 1e-4,
                 fusemix: bool = False, fusemix_alpha: float = 1.0, warmup_steps: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.projector = build_projector({"type": "mlp", **(projector or {}), "d_in": d_in, "d_out": d_out})
        self.loss = AlignmentLoss(**(loss or {}))
        self._outputs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"val": [], "test": []}

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        return self.projector(source)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        source, anchor = batch
        if self.hparams.fusemix:
            source, anchor = fusemix(source, anchor, alpha=self.hparams.fusemix_alpha)
        total, parts = self.loss(self.projector(source), F.normalize(anchor, dim=-1), frozen=source,
                                 step=self.global_step)
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, prog_bar=False, batch_size=len(source))
        self.log("train/loss", total, prog_bar=True, batch_size=len(source))
        return total

    def _collect(self, stage: str, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        source, anchor = batch
        self._outputs[stage].append((self.projector(source).detach(), F.normalize(anchor, dim=-1).detach()))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._collect("val", batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._collect("test", batch)

    def _retrieval(self, stage: str) -> None:
        outputs, self._outputs[stage] = self._outputs[stage], []
        if not outputs:
            return
        projected = torch.cat([p for p, _ in outputs])
        anchor = torch.cat([a for _, a in outputs])
        if self.trainer.world_size > 1:  # every rank scores the whole split
            projected = self.all_gather(projected).flatten(0, 1)
            anchor = self.all_gather(anchor).flatten(0, 1)
        metrics = {f"{stage}/{k}": v for k, v in paired_retrieval(projected, anchor, group_b=True).items()}
        self.log_dict(metrics)
        self.log(f"{stage}/R@1", (metrics[f"{stage}/a2b/R@1"] + metrics[f"{stage}/b2a/R@1"]) / 2, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self._retrieval("val")

    def on_test_epoch_end(self) -> None:
        self._retrieval("test")

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if not self.hparams.warmup_steps:
            return optimizer
        warmup = self.hparams.warmup_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
