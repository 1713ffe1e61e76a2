"""The Space interface: a map from items of several modalities to unit vectors of one space.

A :class:`Space` embeds items of any modality it has a path for into one ``dim``-dimensional space.
Every output is unit-norm and the one similarity rule is the cosine, ``a @ b.T`` (:meth:`Space.similarity`).
The kinds of space live in their own modules: anchor spaces (:mod:`bind.spaces.anchor`), bonds
(:mod:`bind.spaces.bonds`), routed spaces (:mod:`bind.spaces.routed`) and sound-track fusion
(:mod:`bind.spaces.fusion`); saving and loading in :mod:`bind.spaces.persist`.

Every space also carries an optional modality-gap correction (GR-CLIP): per-modality mean embeddings
computed on a calibration sample (:meth:`Space.calibrate`) are subtracted from the outputs, which are then
re-normalised; :meth:`Space.with_gap_correction` turns it on or off. The correction is applied once, by the
space that holds the means, to its own outputs (:meth:`Space._rows`).

Spaces are immutable: ``with_weights``, ``calibrate`` and ``with_gap_correction`` return new spaces.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputError
from ..experts.api import as_items, check_on_error
from ..experts.cache import FeatureCache
from ..experts.cards import EncoderCard
from ..experts.modality import Modality, file_input, infer_modality
from ..experts.registry import parse_device
from ..experts.runner import EmbedResult
from . import persist
from .call import Call
from .lams import preset_lams
from .rows import Rows


def indent(lines: list[str], prefix: str = "  ") -> list[str]:
    return [prefix + line for line in lines]


class Space:
    """A map from items of several modalities to unit vectors of one ``dim``-dimensional space.

    Subclasses implement :meth:`_encode` (one modality's items -> unit rows), :meth:`expert_cards` (the
    experts a modality's items go through), :meth:`_node_state` / :meth:`_from_node_state` (save/load; the
    ``kind`` is listed in :data:`bind.spaces.persist.KINDS`) and :meth:`_lines` (printing).
    """

    kind: ClassVar[str] = ""
    _means: dict[Modality, torch.Tensor]
    _gap_correction: bool
    # relevance maps and query banks shipped with a space folder for its identity (read by load_space;
    # used by bind.Index, never part of the identity: they rescale scores, not vectors)
    score_calibration: dict[str, Any] | None = None

    def __init__(self) -> None:
        self._means = {}
        self._gap_correction = False
        self._device = "cpu"
        self._feature_cache: FeatureCache | None = None

    # properties -------------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """The dimension of every vector this space returns."""
        raise NotImplementedError

    @property
    def modalities(self) -> frozenset[Modality]:
        """The modalities this space can embed."""
        raise NotImplementedError

    @property
    def device(self) -> str:
        """Where the experts run (adapters and bonds run on the CPU, on the experts' outputs)."""
        return self._device

    def to(self, device: str | torch.device) -> Space:
        """A copy whose experts run on ``device`` (e.g. "cuda", "cuda:1"); outputs stay float32 CPU tensors."""
        out = copy.copy(self)
        out._device = str(parse_device(device))
        return out

    def with_feature_cache(self, cache: FeatureCache | str | os.PathLike | None) -> Space:
        """A copy that reads and writes its experts' raw features in ``cache`` (a FeatureCache or its root
        folder; None: no cache). Outputs are identical; re-embedding the same content (another bond weight,
        a rebuilt index, a new adapter on the same experts) then costs only the adapters."""
        out = copy.copy(self)
        out._feature_cache = cache if cache is None or isinstance(cache, FeatureCache) else FeatureCache(cache)
        return out

    @property
    def gap_correction(self) -> bool:
        """Whether the calibrated per-modality means are subtracted from the outputs."""
        return self._gap_correction

    @property
    def calibration(self) -> dict[Modality, torch.Tensor]:
        """The per-modality mean embeddings used by the gap correction (copies)."""
        return {m: v.clone() for m, v in self._means.items()}

    # embedding --------------------------------------------------------------------------------------------
    def expert_cards(self, modality: Modality) -> list[EncoderCard]:
        """The expert cards this space reads to embed items of ``modality`` (computed together, each network
        once per item)."""
        raise NotImplementedError

    def _encode(self, call: Call) -> Rows:
        """Unit-norm rows for ``call.items`` (all of ``call.modality``, which is in ``self.modalities``)."""
        raise NotImplementedError

    def _rows(self, call: Call) -> Rows:
        """:meth:`_encode` followed by this space's gap correction."""
        return self._correct(self._encode(call), call.modality)

    def _correct(self, rows: Rows, modality: Modality) -> Rows:
        if not self._gap_correction or modality not in self._means:
            return rows
        return rows.replace(F.normalize(rows.embeddings - self._means[modality], dim=-1))

    def embed(self, inputs: Any, modality: str | Modality | None = None, *, batch_size: int = 32,
              normalize: bool = True, on_error: Literal["raise", "skip"] = "raise", progress: bool = False,
              num_workers: int | None = None, sample_rate: int | None = None) -> torch.Tensor | EmbedResult:
        """Embed one item or a list of items, of one or several modalities, like :func:`bind.embed`.

        Each item's modality is inferred on its own (unless ``modality``, the inputs' modality, is given);
        items are grouped by modality, embedded through that modality's path and returned in input order.
        Returns a float32 CPU tensor (``[dim]`` for one item, ``[N, dim]`` for a list), unit-norm, or with
        ``on_error="skip"`` an :class:`~bind.EmbedResult`. Outputs are always unit-norm except with
        ``normalize=False`` on a gap-corrected space, which returns the mean-subtracted vectors before their
        re-normalisation.
        """
        check_on_error(on_error)
        items, single = as_items(inputs)
        wanted = Modality.parse(modality) if modality is not None else None
        groups: dict[Modality, list[int]] = {}
        failures: list[InputError] = []
        for index, item in enumerate(items):
            try:
                found = wanted or infer_modality(item, sample_rate)
                if wanted is None:
                    items[index] = file_input(item, found)
                if found not in self.modalities:
                    raise InputError(item, self._missing_path(found))
            except InputError as exc:
                if on_error == "raise":
                    raise exc.at(index) from None
                failures.append(exc.at(index))
                continue
            groups.setdefault(found, []).append(index)
        rows: dict[int, torch.Tensor] = {}
        with torch.inference_mode():
            for found, positions in groups.items():
                call = Call([items[i] for i in positions], found, batch_size=batch_size, progress=progress,
                            num_workers=num_workers, sample_rate=sample_rate, device=self._device,
                            cache=self._feature_cache, experts=self.expert_cards(found))
                part = self._encode(call)
                vectors = part.embeddings
                if self._gap_correction and found in self._means:
                    vectors = vectors - self._means[found]
                    vectors = F.normalize(vectors, dim=-1) if normalize else vectors
                for row, local in enumerate(part.indices):
                    rows[positions[local]] = vectors[row]
                failures.extend(f.at(positions[f.index]) for f in part.failures if f.index is not None)
        failures.sort(key=lambda f: f.index or 0)
        if on_error == "raise" and failures:
            raise failures[0]
        kept = sorted(rows)
        out = torch.stack([rows[i] for i in kept]).float().cpu() if kept else torch.empty(0, self.dim)
        if on_error == "skip":
            return EmbedResult(out, kept, failures)
        return out[0] if single else out

    def _missing_path(self, modality: Modality) -> str:
        have = ", ".join(sorted(m.value for m in self.modalities))
        hint = (" (offline, the optional BirdNET extra: pip install 'bind[birdnet]'; online, CLAP weights)"
                if modality == Modality.AUDIO else "")
        return (f"this space has no {modality.value} path; it embeds {have}. Add one with "
                f"AnchorSpace(paths={{..., '{modality.value}': ExpertPath(expert, adapter)}}) or bond an "
                f"expert of that modality (bind.bonds.CombinationBond){hint}")

    @staticmethod
    def similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The one similarity rule: cosine of unit vectors, ``a @ b.T`` (``[N, d] x [M, d] -> [N, M]``)."""
        return a.float() @ b.float().T

    def compose(self, terms: Sequence[tuple[Any, float] | tuple[Any, float, str | Modality]], *,
                batch_size: int = 32, sample_rate: int | None = None) -> torch.Tensor:
        """One query vector from weighted items: ``l2( sum_i w_i * embed(item_i) )`` (``[dim]``, unit-norm).

        ``terms``: ``(item, weight)`` or ``(item, weight, modality)``; items may be of any modality of the
        space and weights may be negative (subtraction), e.g. ``[(photo, 1.0), ("at night", 0.5)]``.
        Each item's embedding is the space's unit output (gap-corrected when the correction is on).
        """
        if not terms:
            raise ConfigError("compose needs at least one (item, weight) term")
        total = torch.zeros(self.dim)
        for term in terms:
            if not isinstance(term, tuple) or len(term) not in (2, 3):
                raise ConfigError(f"compose terms are (item, weight) or (item, weight, modality), got {term!r}")
            item, weight = term[0], term[1]
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ConfigError(f"compose: the weight of {item!r} must be a number, got {weight!r}")
            vector = self.embed([item], term[2] if len(term) == 3 else None, batch_size=batch_size,
                                sample_rate=sample_rate)
            total += float(weight) * vector[0]
        norm = total.norm()
        if norm < 1e-8:
            raise ConfigError("compose: the weighted sum of the embeddings is zero; change the weights")
        return total / norm

    # gap correction ---------------------------------------------------------------------------------------
    def calibrate(self, samples: Mapping[str | Modality, Sequence[Any]] | None = None, *,
                  embeddings: Mapping[str | Modality, torch.Tensor] | None = None, batch_size: int = 32,
                  sample_rate: int | None = None) -> Space:
        """A copy with gap correction (GR-CLIP) on, calibrated per modality.

        ``samples``: items per modality, embedded by this space without correction; or ``embeddings``:
        their uncorrected ``[N, dim]`` embeddings. Each modality's mean embedding is stored and later
        subtracted from that modality's outputs before re-normalising. Modalities left out keep their
        previous mean (if any); modalities with no mean pass through unchanged.
        """
        if (samples is None) == (embeddings is None):
            raise ConfigError("calibrate needs samples={modality: items} or embeddings={modality: tensor}")
        plain = self.with_gap_correction(False)
        means = dict(self._means)
        for key, value in (samples or embeddings or {}).items():
            modality = Modality.parse(key)
            if modality not in self.modalities:
                raise ConfigError(f"calibrate: {self._missing_path(modality)}")
            vectors = plain.embed(list(value), modality, batch_size=batch_size, sample_rate=sample_rate) \
                if samples is not None else value
            if not isinstance(vectors, torch.Tensor) or vectors.ndim != 2 or vectors.shape[1] != self.dim \
                    or len(vectors) == 0:
                raise ConfigError(f"calibrate: {modality.value} embeddings must be a non-empty [N, {self.dim}] "
                                  f"tensor, got {getattr(vectors, 'shape', type(vectors).__name__)}")
            means[modality] = vectors.detach().float().cpu().mean(dim=0)
        return self._with_calibration(means, True)

    def _with_calibration(self, means: dict[Modality, torch.Tensor], enabled: bool) -> Space:
        out = copy.copy(self)
        out._means, out._gap_correction = means, enabled
        return out

    def with_gap_correction(self, enabled: bool = True) -> Space:
        """A copy with the modality-gap correction on or off (the calibration is kept)."""
        if enabled and not self._means:
            raise ConfigError("this space has no calibration; call space.calibrate({modality: items}) first")
        out = copy.copy(self)
        out._gap_correction = bool(enabled)
        return out

    # bond weights -----------------------------------------------------------------------------------------
    def with_weights(self, preset: str | None = None, **lams: float) -> Space:
        """A copy whose bonds use ``lam`` per modality, e.g. ``with_weights(text=0.1, audio=0.5)`` or a
        preset (:data:`bind.spaces.lams.PRESETS`: "versatile", "expert"); keywords override the preset. No
        re-training: every bond in the space mixes with the new weights at inference."""
        parsed = preset_lams(preset, lams)
        if not self._has_bonds():
            raise ConfigError("this space has no bonds, so there is no lam to set")
        return self._with_lams(parsed)

    def _has_bonds(self) -> bool:
        return False

    def _with_lams(self, lams: dict[Modality, float]) -> Space:
        return self

    # identity and persistence -----------------------------------------------------------------------------
    def state(self, prefix: str = "") -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """This space as JSON-able config and named tensors (keys start with ``prefix``)."""
        config, tensors = self._node_state(prefix)
        config = {"type": self.kind, **config, "gap_correction": self._gap_correction,
                  "calibrated": sorted(m.value for m in self._means)}
        for modality, mean in self._means.items():
            tensors[f"{prefix}calibration.{modality.value}"] = mean
        return config, tensors

    def _node_state(self, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str = "") -> Space:
        """Rebuild a space from :meth:`state`'s output."""
        return persist.space_from_state(config, tensors, prefix)

    @classmethod
    def _from_node_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> Space:
        raise NotImplementedError

    @property
    def identity(self) -> str:
        """A content hash (sha256 hex) of the space's config, its expert cards and every weight."""
        return persist.identity(*self.state())

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the space folder (space.json + weights.safetensors) atomically; returns its path.

        Each distinct tensor is stored once: a key whose tensor equals an earlier key's (same dtype, shape and
        bytes; e.g. one LabelBridge shared by several paths) is listed in space.json's ``aliases``
        (``{alias key: stored key}``) instead of being written again.
        """
        config, tensors = self.state()
        shipped = self.score_calibration  # kept only while the space is the one it was fitted for
        keep = shipped if shipped and shipped.get("space_identity") == persist.identity(config, tensors) else None
        return persist.save_space(config, tensors, directory, keep)

    # printing ---------------------------------------------------------------------------------------------
    def _lines(self) -> list[str]:
        raise NotImplementedError

    def _calibration_line(self) -> list[str]:
        if not self._means:
            return []
        state = "on" if self._gap_correction else "off"
        return [f"  gap correction: {state} (calibrated: {', '.join(sorted(m.value for m in self._means))})"]

    def __repr__(self) -> str:
        return "\n".join(self._lines())
