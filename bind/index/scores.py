"""Scores that mean the same across modalities: hubness correction and calibrated relevance, at search time.

Where each correction lives, so that no vector is corrected twice:

- **modality-gap centering** (GR-CLIP) belongs to the space: :meth:`bind.Space.calibrate` stores each
  modality's mean and subtracts it at embedding time. It is part of the space's identity; an index stores
  the vectors the space gives and never centres them again.
- **hubness correction** belongs to the index and is applied to scores at search time; stored vectors never
  change. Every stored item ``g`` has a reference per query modality, computed against a *query bank* ``B``
  of that modality: the bank the user set (:meth:`bind.Index.set_query_bank`, e.g. a log of real queries),
  else the bank the space ships (``query_banks.safetensors``; ``lite``: 2,000 training captions and images of
  its clip-art data), else the index's own items of that modality (at most ``bank_size``, evenly sampled;
  an item is never its own neighbour).
- **calibration** belongs to the index too: per (query modality, item modality) pair, a logistic (Platt)
  map from the corrected score to a relevance in [0, 1] (:class:`Calibration`).

Formulas, for a query ``q``, a stored item ``g``, their cosine ``c``, ``k`` and ``beta`` of :class:`Scoring`:

- ``none``: ``s = c``.
- ``csls`` (Conneau et al. 2018): ``s = 2c - r_B(g) - r_G(q)``, where ``r_B(g)`` is the mean cosine of ``g``
  to its ``k`` nearest bank queries and ``r_G(q)`` the mean cosine of ``q`` to its ``k`` nearest stored
  items among those the search may return.
- ``inverted_softmax`` (Smith et al. 2017): ``s = c - log(mean_b exp(beta * cos(b, g))) / beta``, the log of
  ``g``'s softmax over the bank queries, divided by ``beta`` to stay on the cosine's scale.
- ``qb_norm`` (Bogolin et al. 2022, dynamic inverted softmax): the inverted softmax when the query's nearest
  stored item is a *hub* (the nearest stored item of at least one bank query), else ``s = c``.

A query modality with fewer than ``k`` bank items gets no correction (``s = c``). Search fetches the best
``candidates(k)`` items by cosine (exact or ANN) and re-ranks them by ``s``: the corrected top ``k`` is exact
when the correction cannot lift an item past that many better cosines (``bench/scores.py`` measures it).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..experts.modality import Modality

METHODS = ("none", "csls", "inverted_softmax", "qb_norm")
DEFAULT_METHOD = "csls"
OVERFETCH = 4  # candidates fetched per wanted hit before re-ranking
MIN_CANDIDATES = 256
CHUNK_ROWS = 16384


@dataclasses.dataclass(frozen=True)
class Scoring:
    """How an index scores hits: the hubness ``method`` (:data:`METHODS`) and its settings."""

    method: str = DEFAULT_METHOD
    k: int = 10
    beta: float = 20.0
    bank_size: int = 4096

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown score correction {self.method!r}; expected one of {', '.join(METHODS)}")
        if self.k < 1 or self.bank_size < self.k or not self.beta > 0:
            raise ConfigError(f"scoring needs k >= 1, bank_size >= k and beta > 0, got {self}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Scoring:
        return cls(**value)


def parse_method(value: str | bool | None, default: str) -> str:
    """A search's ``correction=``: None -> the index's method, False -> "none", True -> the default method."""
    if value is None:
        return default
    if value is True:
        return DEFAULT_METHOD if default == "none" else default
    if value is False:
        return "none"
    if value not in METHODS:
        raise ConfigError(f"unknown score correction {value!r}; expected one of {', '.join(METHODS)}, True or False")
    return value


def candidates(k: int, allowed: int) -> int:
    """How many items by cosine a corrected search of ``k`` hits re-ranks (all of them in small indexes)."""
    return min(allowed, max(OVERFETCH * k, k + MIN_CANDIDATES))


@dataclasses.dataclass
class References:
    """Per stored slot, against one query modality's bank: CSLS mean of the top-k bank cosines, inverted
    softmax log-mean-exp (divided by beta), and whether the slot is a hub (some bank query's nearest).
    ``best`` / ``best_slot``: each bank query's highest cosine to a live slot and that slot."""

    csls: np.ndarray
    softmax: np.ndarray
    best: np.ndarray
    best_slot: np.ndarray

    @functools.cached_property
    def hub(self) -> np.ndarray:
        hub = np.zeros(len(self.csls), bool)
        hub[self.best_slot[np.isfinite(self.best)]] = True
        return hub

    def at(self, rows: np.ndarray) -> CandidateRefs:
        """The references of the slots ``rows`` (a query's candidates)."""
        return CandidateRefs(self.csls[rows], self.softmax[rows], self.hub[rows])

    def extended(self, new: References, offset: int) -> References:
        """These references followed by ``new``'s, computed for the slots from ``offset`` on."""
        better = new.best > self.best
        return References(np.concatenate([self.csls, new.csls]), np.concatenate([self.softmax, new.softmax]),
                          np.where(better, new.best, self.best), np.where(better, new.best_slot + offset, self.best_slot))


def references(vectors: np.ndarray, alive: np.ndarray, bank: np.ndarray, bank_slots: np.ndarray | None,
               scoring: Scoring) -> References:
    """The references of every slot of ``vectors`` against ``bank`` (``[b, dim]`` unit rows).

    ``bank_slots``: the slot of each bank row when the bank is the index's own items (its own cosine is
    left out of that slot's reference), else None.
    """
    n, b = len(vectors), len(bank)
    k = min(scoring.k, b - (bank_slots is not None))
    bank_t = torch.from_numpy(np.ascontiguousarray(bank, np.float32))
    csls, softmax = np.zeros(n, np.float32), np.zeros(n, np.float32)
    best = torch.full((b,), -math.inf)
    best_slot = torch.zeros(b, dtype=torch.long)
    for start in range(0, n, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n)
        sims = torch.from_numpy(np.asarray(vectors[start:stop], np.float32)) @ bank_t.T
        if bank_slots is not None:
            inside = (bank_slots >= start) & (bank_slots < stop)
            columns = np.flatnonzero(inside)
            sims[torch.from_numpy(bank_slots[columns] - start), torch.from_numpy(columns)] = -math.inf
        csls[start:stop] = sims.topk(k, dim=1).values.mean(dim=1).numpy()
        finite = sims.clamp_min(-1.0)  # an item's own column counts as the lowest cosine, not as -inf
        softmax[start:stop] = ((torch.logsumexp(scoring.beta * finite, dim=1) - math.log(b)) / scoring.beta).numpy()
        dead = torch.from_numpy(~alive[start:stop])
        values, rows = sims.masked_fill(dead[:, None], -math.inf).max(dim=0)
        better = values > best
        best[better], best_slot[better] = values[better], rows[better] + start
    return References(csls, softmax, best.numpy(), best_slot.numpy())


@dataclasses.dataclass(frozen=True)
class CandidateRefs:
    """The references of one query's candidates, in candidate order: CSLS, inverted softmax, hub flags."""

    csls: np.ndarray
    softmax: np.ndarray
    hub: np.ndarray


def corrected(method: str, cosines: np.ndarray, refs: CandidateRefs | None, k: int) -> np.ndarray:
    """Scores ``[c]`` of one query's candidates (best cosine first) under ``method``."""
    if method == "none" or refs is None or len(cosines) == 0:
        return cosines
    if method == "csls":
        return 2 * cosines - refs.csls - cosines[:k].mean()
    normalised = cosines - refs.softmax
    if method == "inverted_softmax":
        return normalised
    return normalised if refs.hub[0] else cosines  # qb_norm: only where the query's nearest item is a hub


@dataclasses.dataclass(frozen=True)
class Platt:
    """``relevance = sigmoid(a * score + b)``, fitted on ``n`` labelled pairs from ``data``."""

    a: float
    b: float
    n: int = 0
    data: str = ""

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * np.asarray(scores, np.float64) + self.b)))


def fit_platt(scores: np.ndarray, labels: np.ndarray, data: str = "") -> Platt:
    """A Platt map from scores to P(relevant), by logistic regression (scikit-learn), lightly regularised."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels).astype(int)
    if labels.min() == labels.max():
        raise ConfigError("calibration needs relevant and irrelevant pairs, got one kind only")
    model = LogisticRegression(C=100.0).fit(np.asarray(scores, np.float64).reshape(-1, 1), labels)
    return Platt(float(model.coef_[0, 0]), float(model.intercept_[0]), int(len(labels)), data)


def pair_key(query: Modality, item: Modality) -> str:
    return f"{query.value}->{item.value}"


@dataclasses.dataclass
class Calibration:
    """Platt maps per scoring method and (query modality, item modality) pair; a pair without one is
    uncalibrated (its hits' relevance is None)."""

    maps: dict[str, dict[str, Platt]] = dataclasses.field(default_factory=dict)

    def relevance(self, method: str, query: Modality | None, item: Modality, score: float) -> float | None:
        platt = self.maps.get(method, {}).get(pair_key(query, item)) if query is not None else None
        return None if platt is None else float(platt(np.array([score]))[0])

    def covers(self, method: str, query: Modality | None, items: set[Modality]) -> bool:
        """Whether every ``query`` -> item pair has a map under ``method``."""
        return query is not None and all(pair_key(query, m) in self.maps.get(method, {}) for m in items)

    def to_dict(self) -> dict[str, Any]:
        return {method: {pair: dataclasses.asdict(p) for pair, p in pairs.items()} for method, pairs in self.maps.items()}

    @classmethod
    def from_dict(cls, value: dict[str, Any] | None) -> Calibration:
        return cls({method: {pair: Platt(**p) for pair, p in pairs.items()} for method, pairs in (value or {}).items()})


def shipped_scores(space: Any, identity: str) -> tuple[Calibration, dict[Modality, np.ndarray]]:
    """The calibration and query banks a space ships (``calibration.json``, ``query_banks.safetensors`` in its
    folder) when they were fitted for ``identity``, the space's own; else none."""
    shipped = getattr(space, "score_calibration", None) or {}
    if shipped.get("space_identity") != identity:
        return Calibration(), {}
    return (Calibration.from_dict(shipped.get("methods")),
            {Modality.parse(name): bank for name, bank in shipped.get("banks", {}).items()})


def expected_calibration_error(relevance: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE: the mean |accuracy - confidence| over equal-width relevance bins, weighted by bin size."""
    relevance, labels = np.asarray(relevance, np.float64), np.asarray(labels, np.float64)
    edges = np.minimum((relevance * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = edges == b
        if inside.any():
            total += inside.sum() * abs(labels[inside].mean() - relevance[inside].mean())
    return total / max(len(labels), 1)
