"""Routers (OmniBind): per-input weights over several candidate spaces that share one output space.

Every candidate space ``s`` gives a unit vector ``c_s`` for an input. A :class:`Router` reads the input's own
expert features ``f`` (l2-normalised) and gives weights ``w = softmax(sigmoid(r(f)))`` over the candidates,
with ``r`` = Linear(d->512)-BN-ReLU-Linear(->100)-BN-tanh-Linear(->S). The routed embedding is
``z = l2( sum_s w_s c_s )``. Because ``sigmoid`` lies in (0, 1), one candidate's weight is at most ``e`` times
another's: routers re-weight the spaces softly, they never drop one. Candidates that do not embed the input's
modality get weight 0 (the softmax runs over the others); a modality without a router averages its
candidates equally. ``RoutedSpace.route_weights(items)`` shows the weights of each query.

Routers are trained with ``bind train recipes/router_*.yaml`` (:mod:`bind.train.router`).
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputError
from ..experts.api import as_items
from ..experts.cards import EncoderCard
from ..experts.modality import Modality, infer_modality
from ..experts.registry import get_card
from .anchor import as_space
from .base import Space, indent
from .call import Call
from .persist import space_from_state
from .rows import Rows, align


class Router(nn.Module):
    """Weights ``[B, S]`` (rows sum to 1) over ``num_spaces`` candidates from features ``[B, d_in]``.

    ``expert``: the encoder card whose (l2-normalised) features the router reads inside a RoutedSpace.
    """

    def __init__(self, d_in: int, num_spaces: int, *, expert: str | None = None, hidden: int = 512,
                 bottleneck: int = 100) -> None:
        super().__init__()
        for name, value in (("d_in", d_in), ("num_spaces", num_spaces), ("hidden", hidden), ("bottleneck", bottleneck)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"Router: {name} must be a positive integer, got {value!r}")
        self.d_in, self.num_spaces, self.expert = d_in, num_spaces, expert
        self.hidden, self.bottleneck = hidden, bottleneck
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 nn.Linear(hidden, bottleneck), nn.BatchNorm1d(bottleneck), nn.Tanh(),
                                 nn.Linear(bottleneck, num_spaces), nn.Sigmoid())

    def forward(self, features: torch.Tensor, available: torch.Tensor | None = None) -> torch.Tensor:
        """``softmax(sigmoid(r(features)))``; ``available`` (``[S]`` bool) masks out candidates."""
        if features.ndim != 2 or features.shape[1] != self.d_in:
            raise ConfigError(f"Router expects features [batch, {self.d_in}], got {tuple(features.shape)}")
        scores = self.net(features.float())
        if available is not None:
            scores = scores.masked_fill(~available.to(scores.device), float("-inf"))
        return scores.softmax(dim=-1)

    def config(self) -> dict[str, Any]:
        """The constructor arguments, for saving (``from_config`` reads them back)."""
        return {"d_in": self.d_in, "num_spaces": self.num_spaces, "expert": self.expert, "hidden": self.hidden,
                "bottleneck": self.bottleneck}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Router:
        """A router built from ``config`` (weights not included)."""
        return cls(config["d_in"], config["num_spaces"], expert=config.get("expert"), hidden=config["hidden"],
                   bottleneck=config["bottleneck"])

    def extra_repr(self) -> str:
        return f"expert={self.expert!r}, d_in={self.d_in}, num_spaces={self.num_spaces}"


class RoutedSpace(Space):
    """``z = l2( sum_s w_s(x) c_s(x) )`` over ``candidates`` (spaces of one dimension), with ``w`` from the
    router of the input's modality (``routers``: modality -> Router with an ``expert``), else uniform."""

    kind = "routed"

    def __init__(self, candidates: Sequence[Space | str], routers: Mapping[str | Modality, Router] | None = None) -> None:
        super().__init__()
        self.candidates = [as_space(c) for c in candidates]
        if not self.candidates:
            raise ConfigError("a RoutedSpace needs at least one candidate space")
        dims = [c.dim for c in self.candidates]
        if len(set(dims)) != 1:
            raise ConfigError(f"dimension mismatch: routed candidate spaces must share one dimension, got {dims}")
        self.routers: dict[Modality, Router] = {}
        for key, router in (routers or {}).items():
            modality = Modality.parse(key)
            if modality not in self.modalities:
                raise ConfigError(f"a {modality.value} router, but no candidate space embeds {modality.value}")
            if router.num_spaces != len(self.candidates):
                raise ConfigError(f"the {modality.value} router weighs {router.num_spaces} spaces, "
                                  f"but there are {len(self.candidates)} candidates")
            if router.expert is None:
                raise ConfigError(f"the {modality.value} router names no expert (Router(..., expert=NAME)): "
                                  "a routed space must know whose features to feed it")
            card = get_card(router.expert)
            if card.modality != modality or card.dim != router.d_in:
                raise ConfigError(f"the {modality.value} router reads {router.d_in}-d features, but its expert "
                                  f"{card.name!r} gives {card.dim}-d {card.modality.value} features")
            self.routers[modality] = router.eval()

    @property
    def dim(self) -> int:
        return self.candidates[0].dim

    @property
    def modalities(self) -> frozenset[Modality]:
        return frozenset().union(*(c.modalities for c in self.candidates))

    def expert_cards(self, modality: Modality) -> list[EncoderCard]:
        router = self.routers.get(modality)
        cards = [_router_card(router)] if router is not None else []
        return cards + [card for c in self.candidates if modality in c.modalities for card in c.expert_cards(modality)]

    def _available(self, modality: Modality) -> torch.Tensor:
        return torch.tensor([modality in c.modalities for c in self.candidates])

    def _weights(self, call: Call) -> Rows:
        available = self._available(call.modality)
        router = self.routers.get(call.modality)
        if router is None:
            uniform = available.float() / available.sum()
            return Rows(uniform.expand(len(call.items), -1).clone(), list(range(len(call.items))), [])
        features = call.features(_router_card(router))
        if not len(features.indices):
            return features.replace(torch.empty(0, len(self.candidates)))
        return features.replace(router(F.normalize(features.embeddings.float(), dim=-1), available))

    def _encode(self, call: Call) -> Rows:
        covering = [s for s, c in enumerate(self.candidates) if call.modality in c.modalities]
        parts = [self.candidates[s]._rows(call) for s in covering]
        (weights, *vectors), indices, failures = align(self._weights(call), *parts)
        mixed = sum(weights[:, s:s + 1] * v for s, v in zip(covering, vectors))
        return Rows(F.normalize(mixed, dim=-1), indices, failures)  # type: ignore[arg-type]

    def route_weights(self, inputs: Any, modality: str | Modality | None = None, *, batch_size: int = 32,
                      sample_rate: int | None = None) -> torch.Tensor:
        """The candidates' weights for each input: ``[N, S]`` (``[S]`` for one item), rows summing to 1."""
        items, single = as_items(inputs)
        wanted = Modality.parse(modality) if modality is not None else None
        groups: dict[Modality, list[int]] = {}
        for index, item in enumerate(items):
            found = wanted or infer_modality(item, sample_rate)
            if found not in self.modalities:
                raise InputError(item, self._missing_path(found), index)
            groups.setdefault(found, []).append(index)
        out = torch.empty(len(items), len(self.candidates))
        with torch.inference_mode():
            for found, positions in groups.items():
                call = Call([items[i] for i in positions], found, batch_size=batch_size, sample_rate=sample_rate,
                            device=self.device, cache=self._feature_cache, experts=self.expert_cards(found))
                rows = self._weights(call)
                if rows.failures:
                    failure = rows.failures[0]
                    raise failure.at(positions[failure.index or 0])
                out[[positions[i] for i in rows.indices]] = rows.embeddings
        return out[0] if single else out

    def _has_bonds(self) -> bool:
        return any(c._has_bonds() for c in self.candidates)

    def _with_lams(self, lams: dict[Modality, float]) -> Space:
        out = copy.copy(self)
        out.candidates = [c._with_lams(lams) for c in self.candidates]
        return out

    def _node_state(self, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        candidates, tensors = [], {}
        for i, candidate in enumerate(self.candidates):
            config, part = candidate.state(f"{prefix}candidates.{i}.")
            candidates.append(config)
            tensors.update(part)
        routers = {}
        for modality, router in sorted(self.routers.items()):
            routers[modality.value] = router.config()
            tensors.update({f"{prefix}routers.{modality.value}.{k}": v for k, v in router.state_dict().items()})
        return {"candidates": candidates, "routers": routers}, tensors

    @classmethod
    def _from_node_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> Space:
        candidates = [space_from_state(c, tensors, f"{prefix}candidates.{i}.") for i, c in enumerate(config["candidates"])]
        routers = {}
        for modality, router_config in config["routers"].items():
            router = Router.from_config(router_config)
            start = f"{prefix}routers.{modality}."
            try:
                router.load_state_dict({k[len(start):]: v for k, v in tensors.items() if k.startswith(start)})
            except RuntimeError as exc:
                raise ConfigError(f"the space's weights do not match its {modality} router: {exc}") from exc
            routers[modality] = router
        return cls(candidates, routers)

    def _lines(self) -> list[str]:
        lines = [f"RoutedSpace(dim={self.dim}, {len(self.candidates)} candidates)"]
        for modality in sorted(self.modalities):
            router = self.routers.get(modality)
            how = f"router on {router.expert} features ({router.d_in}-d)" if router else "equal weights"
            lines.append(f"  {modality.value}: {how}")
        for i, candidate in enumerate(self.candidates):
            lines += [f"  candidate {i}:", *indent(candidate._lines(), "    ")]
        return lines + self._calibration_line()


def _router_card(router: Router) -> EncoderCard:
    assert router.expert is not None
    return get_card(router.expert)
