"""Alignment losses for training projectors on cached expert features (torch only).

- :class:`InfoNCE` — symmetric contrastive loss with a learnable temperature (init 0.07, clamped to
  [0.001, 0.5]).
- :func:`fusemix` — FuseMix latent mixup: one ``lam ~ Beta(alpha, alpha)`` and one permutation shared by
  both modalities of a batch of pairs.
- :class:`StructureLoss` — the STRUCTURE regulariser: Jensen-Shannon divergence between the neighbourhood
  distributions of the frozen features and of their projection, with a linearly warmed-up weight.
- :class:`IntraLoss` — pointwise alignment (C-MCR style): mean squared distance between each projected
  item and its own counterpart, e.g. its anchor-space embedding.
- :class:`AlignmentLoss` — InfoNCE plus the optional terms, switched by flags; returns the total and parts.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


def _check_pairs(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ConfigError(f"{what}: expected two [batch, dim] tensors with the same batch size, "
                          f"got {tuple(a.shape)} and {tuple(b.shape)}")


class InfoNCE(nn.Module):
    """Symmetric InfoNCE over a batch of pairs ``(a_i, b_i)``: the other items of the batch are negatives.

    ``loss = (CE(a b^T / T, i) + CE(b a^T / T, i)) / 2`` on l2-normalised rows. The temperature ``T`` is
    parametrised as ``log T`` (learnable unless ``learnable=False``) and kept in ``[min, max]``: the
    parameter is clamped in place before each use, like CLIP's logit scale after each optimiser step.
    """

    def __init__(self, init_temperature: float = 0.07, min: float = 0.001, max: float = 0.5,
                 learnable: bool = True) -> None:
        super().__init__()
        if not 0 < min <= init_temperature <= max:
            raise ConfigError(f"InfoNCE: need 0 < min <= init_temperature <= max, got {min}, {init_temperature}, "
                              f"{max}")
        self.min, self.max = float(min), float(max)
        log_t = torch.tensor(math.log(init_temperature))
        if learnable:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)

    @property
    def temperature(self) -> torch.Tensor:
        """The current (learned) temperature, detached."""
        return self.log_temperature.detach().exp()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        _check_pairs(a, b, "InfoNCE")
        with torch.no_grad():
            self.log_temperature.clamp_(math.log(self.min), math.log(self.max))
        a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
        logits = a @ b.T / self.log_temperature.exp()
        target = torch.arange(a.shape[0], device=a.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def fusemix(a: torch.Tensor, b: torch.Tensor, alpha: float = 1.0,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """FuseMix latent mixup of a batch of paired features ``a[i] <-> b[i]``.

    ``a' = lam a + (1 - lam) a[perm]`` and ``b' = lam b + (1 - lam) b[perm]`` with the same
    ``lam ~ Beta(alpha, alpha)`` and the same permutation, so mixed pairs stay pairs. ``generator``
    (a CPU ``torch.Generator``) makes the draw reproducible.
    """
    _check_pairs(a, b, "fusemix")
    if alpha <= 0:
        raise ConfigError(f"fusemix: alpha must be > 0, got {alpha}")
    if generator is None:
        lam = torch.distributions.Beta(alpha, alpha).sample()
        perm = torch.randperm(a.shape[0])
    else:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            lam = torch.distributions.Beta(alpha, alpha).sample()
        perm = torch.randperm(a.shape[0], generator=generator)
    lam_f = float(lam)
    perm_a, perm_b = perm.to(a.device), perm.to(b.device)
    return lam_f * a + (1 - lam_f) * a[perm_a], lam_f * b + (1 - lam_f) * b[perm_b]


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (natural log) between the rows of two row-stochastic matrices, averaged."""
    m = (p + q) / 2
    kl_pm = (torch.special.xlogy(p, p) - torch.special.xlogy(p, m)).sum(dim=-1)
    kl_qm = (torch.special.xlogy(q, q) - torch.special.xlogy(q, m)).sum(dim=-1)
    return ((kl_pm + kl_qm) / 2).mean()


class StructureLoss(nn.Module):
    """STRUCTURE: keep the neighbourhood geometry of a frozen space in its projection.

    For a batch ``Z`` (frozen) and ``Z'`` (projected): l2-normalise each row, centre the batch,
    ``S = row-softmax(Z Z^T / tau)``, likewise ``S'``, and ``R = mean_i JS(S_i, S'_i)``. ``forward`` returns
    ``R``; ``weight_at(step)`` is the weight to multiply it by, ramping linearly from 0 to ``weight`` over
    ``warmup_steps`` optimiser steps.
    """

    def __init__(self, tau: float = 0.07, weight: float = 10.0, warmup_steps: int = 1000) -> None:
        super().__init__()
        if tau <= 0:
            raise ConfigError(f"StructureLoss: tau must be > 0, got {tau}")
        if weight < 0 or warmup_steps < 0:
            raise ConfigError(f"StructureLoss: weight and warmup_steps must be >= 0, got {weight}, {warmup_steps}")
        self.tau, self.weight, self.warmup_steps = float(tau), float(weight), int(warmup_steps)

    def weight_at(self, step: int) -> float:
        """The regulariser's weight at a training step (linear warm-up to ``weight``)."""
        if self.warmup_steps == 0:
            return self.weight
        return self.weight * min(1.0, max(step, 0) / self.warmup_steps)

    def neighbourhoods(self, z: torch.Tensor) -> torch.Tensor:
        """``row-softmax(Z Z^T / tau)`` of the normalised, centred batch."""
        z = F.normalize(z.float(), dim=-1)
        z = z - z.mean(dim=0, keepdim=True)
        return (z @ z.T / self.tau).softmax(dim=-1)

    def forward(self, frozen: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        _check_pairs(frozen, projected, "StructureLoss")
        return js_divergence(self.neighbourhoods(frozen.detach()), self.neighbourhoods(projected))


class IntraLoss(nn.Module):
    """Pointwise alignment: mean over the batch of ``||l2(x_i) - l2(y_i)||^2`` (= 2 - 2 cos).

    Used on (projected source, its anchor counterpart) it pulls every item onto its own partner, which
    InfoNCE (a ranking loss) does not; C-MCR applies the same distance to two modalities of one space.
    """

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pairs(x, y, "IntraLoss")
        x, y = F.normalize(x.float(), dim=-1), F.normalize(y.float(), dim=-1)
        return (x - y).pow(2).sum(dim=-1).mean()


class AlignmentLoss(nn.Module):
    """InfoNCE (always) + optional STRUCTURE and intra terms, configured by plain arguments (recipe-friendly).

    ``forward(projected, anchor, frozen=None, step=0)``: ``projected`` are the projector's outputs for the
    source items, ``anchor`` their partners' anchor-space embeddings, ``frozen`` the source expert's own
    features (needed by STRUCTURE), ``step`` the optimiser step (for the STRUCTURE warm-up). Returns
    ``(total, parts)``; ``parts`` holds detached values for logging.
    """

    def __init__(self, init_temperature: float = 0.07, min_temperature: float = 0.001,
                 max_temperature: float = 0.5, learnable_temperature: bool = True,
                 structure: bool = False, structure_weight: float = 10.0, structure_tau: float = 0.07,
                 structure_warmup_steps: int = 1000, intra: bool = False, intra_weight: float = 1.0) -> None:
        super().__init__()
        self.infonce = InfoNCE(init_temperature, min_temperature, max_temperature, learnable_temperature)
        self.structure = StructureLoss(structure_tau, structure_weight, structure_warmup_steps) if structure else None
        if intra and intra_weight < 0:
            raise ConfigError(f"AlignmentLoss: intra_weight must be >= 0, got {intra_weight}")
        self.intra = IntraLoss() if intra else None
        self.intra_weight = float(intra_weight)

    def forward(self, projected: torch.Tensor, anchor: torch.Tensor, frozen: torch.Tensor | None = None,
                step: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        contrastive = self.infonce(projected, anchor)
        total = contrastive
        parts = {"infonce": contrastive.detach(), "temperature": self.infonce.temperature}
        if self.structure is not None:
            if frozen is None:
                raise ConfigError("AlignmentLoss: the STRUCTURE term needs the frozen source features (frozen=...)")
            regulariser = self.structure(frozen, projected)
            weight = self.structure.weight_at(step)
            total = total + weight * regulariser
            parts["structure"] = regulariser.detach()
            parts["structure_weight"] = torch.tensor(weight, device=total.device)
        if self.intra is not None:
            pointwise = self.intra(projected, anchor)
            total = total + self.intra_weight * pointwise
            parts["intra"] = pointwise.detach()
        parts["total"] = total.detach()
        return total, parts
