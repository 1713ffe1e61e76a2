"""Spaces: one embedding space for many modalities, each reached by a path expert -> adapter.

A :class:`Space` embeds items of any modality it has a path for into one ``dim``-dimensional space.
Every output is unit-norm and the one similarity rule is the cosine, ``a @ b.T`` (:meth:`Space.similarity`).

- :class:`AnchorSpace` — one anchor space (e.g. MiniLM's text space). Each modality has an
  :class:`ExpertPath`: a frozen expert (an encoder card name) and an optional adapter into the anchor — a
  trained :class:`~bind.projectors.Projector` (fed l2-normalised expert features, as in training) or a
  :class:`~bind.bridges.LabelBridge` for classifier experts (fed raw logits). The anchor's own modality uses
  its expert directly.
- Bonds (:mod:`bind.bonds`) compose spaces (FreeBind); routed spaces (:mod:`bind.routers`) weight several
  candidate spaces per input (OmniBind).

Every space also carries an optional modality-gap correction (GR-CLIP): per-modality mean embeddings
computed on a calibration sample (:meth:`Space.calibrate`) are subtracted from the outputs, which are then
re-normalised; :meth:`Space.with_gap_correction` turns it on or off.

Spaces are immutable: ``with_weights``, ``calibrate`` and ``with_gap_correction`` return new spaces.
``space.save(dir)`` writes ``space.json`` (the whole tree: expert cards by name, adapter configs, bond
weights, calibration flags) and ``weights.safetensors`` (adapters, bridges, routers, calibration means);
:func:`load_space` reads it back exactly. ``space.identity`` is a content hash of both (plus the expert
cards), stable across save and load.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F

from .bridges import LabelBridge
from .cache import FeatureCache
from .cards import EncoderCard
from .embed import EmbedResult, _as_items, embed
from .encoder import Encoder
from .errors import ConfigError, InputError, WeightsUnavailableError
from .io.atomic import atomic_dir
from .io.saved import read_saved_folder
from .modality import Modality, infer_modality
from .projectors import (
    Projector,
    ProjectorConfig,
    build_projector,
    load_projector,
)
from .registry import cached_encoder, create_encoder, get_card, parse_device
from .resources import resource_dir

SPACE_FILE = "space.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT_VERSION = 1

# FreeBind's inference presets: lam per modality for the bonds of a space
PRESETS: dict[str, dict[str, float]] = {
    "versatile": {"text": 0.1, "audio": 0.5},
    "expert": {"text": 0.5, "audio": 0.8},
}

Adapter = Projector | LabelBridge
InputNorm = Literal["l2", "none"]


# --- rows: the embeddings of the items of one modality that succeeded, and the failures -----------------

@dataclasses.dataclass
class Rows:
    """Embeddings ``[len(indices), d]`` of the items at ``indices`` (positions in one call's list)."""

    embeddings: torch.Tensor
    indices: list[int]
    failures: list[InputError]

    def take(self, indices: Sequence[int]) -> torch.Tensor:
        """The rows of ``indices`` (each must be present)."""
        where = {index: row for row, index in enumerate(self.indices)}
        return self.embeddings[[where[i] for i in indices]] if indices else self.embeddings[:0]

    def replace(self, embeddings: torch.Tensor) -> Rows:
        return Rows(embeddings, self.indices, self.failures)


def align(*parts: Rows) -> tuple[list[torch.Tensor], list[int], list[InputError]]:
    """The rows of the items every part embedded, in the same order, and the union of the failures."""
    common = sorted(set.intersection(*(set(p.indices) for p in parts)))
    failures: dict[int, InputError] = {}
    for part in parts:
        for failure in part.failures:
            failures.setdefault(failure.index if failure.index is not None else -1, failure)
    return [p.take(common) for p in parts], common, [failures[i] for i in sorted(failures)]


class Call:
    """One embedding call over the items of one modality: options, and expert features computed once."""

    def __init__(self, items: list[Any], modality: Modality, batch_size: int, progress: bool,
                 sample_rate: int | None, device: str = "cpu", cache: FeatureCache | None = None) -> None:
        self.items, self.modality = items, modality
        self.batch_size, self.progress, self.sample_rate, self.device = batch_size, progress, sample_rate, device
        self.cache = cache
        self._features: dict[str, Rows] = {}

    def derived(self, items: list[Any], modality: Modality) -> Call:
        """A call over other items (e.g. the sound tracks of this call's videos) with this call's options."""
        return Call(items, modality, self.batch_size, self.progress, None, self.device, self.cache)

    def features(self, card: EncoderCard) -> Rows:
        """The raw (unnormalised) features of every item from the expert of ``card``."""
        key = _card_key(card)
        if key not in self._features:
            try:
                encoder = expert_encoder(card, self.device)
            except WeightsUnavailableError as exc:  # e.g. an optional extra that is not installed
                reason = f"{self.modality.value} is unavailable here: its expert {card.name!r} cannot load: {exc}"
                failures = [InputError(item, reason, index) for index, item in enumerate(self.items)]
                return Rows(torch.zeros(0, card.dim), [], failures)
            if self.cache is not None:
                result = self.cache.embed(self.items, encoder, batch_size=self.batch_size, progress=self.progress,
                                          on_error="skip", sample_rate=self.sample_rate, device=self.device)
            else:
                result = embed(self.items, encoder=encoder, modality=self.modality,
                               batch_size=self.batch_size, normalize=False, progress=self.progress,
                               on_error="skip", sample_rate=self.sample_rate)
            assert isinstance(result, EmbedResult)
            self._features[key] = Rows(result.embeddings, result.indices, result.failures)
        return self._features[key]


def _card_key(card: EncoderCard) -> str:
    return json.dumps(card.to_dict(), sort_keys=True)


_INLINE_ENCODERS: dict[tuple[str, str], Encoder] = {}


def expert_encoder(card: EncoderCard, device: str = "cpu") -> Encoder:
    """The shared instance on ``device`` of a registered expert, or of an unregistered (inline) card."""
    try:
        if get_card(card.name) == card:
            return cached_encoder(card.name, device)
    except KeyError:
        pass
    key = (_card_key(card), device)
    if key not in _INLINE_ENCODERS:
        _INLINE_ENCODERS[key] = create_encoder(card, device=device)
    return _INLINE_ENCODERS[key]


def _parse_modality(value: str | Modality) -> Modality:
    try:
        return Modality.parse(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _check_lam(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{where}: lam must be a number in [0, 1], got {value!r}")
    return float(value)


def _fmt(value: float) -> str:
    return f"{value:g}"


# --- the Space interface ----------------------------------------------------------------------------------

class Space:
    """A map from items of several modalities to unit vectors of one ``dim``-dimensional space.

    Subclasses implement :meth:`_encode` (one modality's items -> unit rows), :meth:`_node_state` /
    :meth:`_from_node_state` (save/load) and :meth:`_lines` (printing).
    """

    kind: ClassVar[str] = ""
    _types: ClassVar[dict[str, type[Space]]] = {}
    _means: dict[Modality, torch.Tensor]
    _gap_correction: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Space._types[cls.kind] = cls

    def __init__(self) -> None:
        self._means = {}
        self._gap_correction = False
        self._device = "cpu"
        self._feature_cache: FeatureCache | None = None

    # properties -------------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def modalities(self) -> frozenset[Modality]:
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
              sample_rate: int | None = None) -> torch.Tensor | EmbedResult:
        """Embed one item or a list of items, of one or several modalities, like :func:`bind.embed`.

        Each item's modality is inferred on its own (unless ``modality`` is given); items are grouped by
        modality, embedded through that modality's path and returned in input order. Returns a float32 CPU
        tensor (``[dim]`` for one item, ``[N, dim]`` for a list), unit-norm, or with ``on_error="skip"`` an
        :class:`~bind.EmbedResult`. Outputs are always unit-norm except with ``normalize=False`` on a
        gap-corrected space, which returns the mean-subtracted vectors before their re-normalisation.
        """
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        items, single = _as_items(inputs)
        wanted = _parse_modality(modality) if modality is not None else None
        groups: dict[Modality, list[int]] = {}
        failures: list[InputError] = []
        for index, item in enumerate(items):
            try:
                found = wanted or infer_modality(item, sample_rate)
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
                call = Call([items[i] for i in positions], found, batch_size, progress, sample_rate, self._device,
                            self._feature_cache)
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
            modality = _parse_modality(key)
            if modality not in self.modalities:
                raise ConfigError(f"calibrate: {self._missing_path(modality)}")
            vectors = plain.embed(list(value), modality, batch_size=batch_size, sample_rate=sample_rate) \
                if samples is not None else value
            if not isinstance(vectors, torch.Tensor) or vectors.ndim != 2 or vectors.shape[1] != self.dim \
                    or len(vectors) == 0:
                raise ConfigError(f"calibrate: {modality.value} embeddings must be a non-empty [N, {self.dim}] "
                                  f"tensor, got {getattr(vectors, 'shape', type(vectors).__name__)}")
            means[modality] = vectors.detach().float().cpu().mean(dim=0)
        out = copy.copy(self)
        out._means, out._gap_correction = means, True
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
        preset (:data:`PRESETS`: "versatile", "expert"); keywords override the preset. No re-training:
        every bond in the space mixes with the new weights at inference."""
        chosen: dict[str, float] = {}
        if preset is not None:
            if preset not in PRESETS:
                raise ConfigError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
            chosen.update(PRESETS[preset])
        chosen.update(lams)
        if not chosen:
            raise ConfigError("with_weights needs a preset or lam per modality, e.g. with_weights(text=0.1)")
        parsed = {_parse_modality(k): _check_lam(v, f"with_weights({k}=...)") for k, v in chosen.items()}
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
        kind = config.get("type")
        if kind not in Space._types:
            raise ConfigError(f"unknown space type {kind!r}; known: {', '.join(sorted(Space._types))}")
        space = Space._types[kind]._from_node_state(config, tensors, prefix)
        space._means = {_parse_modality(m): _tensor(tensors, f"{prefix}calibration.{m}")
                        for m in config.get("calibrated", [])}
        space._gap_correction = bool(config.get("gap_correction", False))
        return space

    @classmethod
    def _from_node_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> Space:
        raise NotImplementedError

    @property
    def identity(self) -> str:
        """A content hash (sha256 hex) of the space's config, its expert cards and every weight."""
        config, tensors = self.state()
        digest = hashlib.sha256()
        digest.update(json.dumps(_strip_meta(config), sort_keys=True).encode())
        for name in sorted(_expert_names(config)):
            card = get_card(name).to_dict()
            card.pop("description", None)
            digest.update(json.dumps(card, sort_keys=True).encode())
        for key in sorted(tensors):
            value = tensors[key].detach().cpu().contiguous()
            digest.update(f"{key}|{value.dtype}|{tuple(value.shape)}|".encode())
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the space folder (space.json + weights.safetensors) atomically; returns its path.

        Each distinct tensor is stored once: a key whose tensor equals an earlier key's (same dtype, shape and
        bytes; e.g. one LabelBridge shared by several paths) is listed in space.json's ``aliases``
        (``{alias key: stored key}``) instead of being written again.
        """
        target = Path(directory)
        config, tensors = self.state()
        stored, aliases = _dedupe_tensors(tensors)
        text = json.dumps({"format_version": FORMAT_VERSION, "aliases": aliases, "space": config}, indent=2)
        if target.exists() and not target.is_dir():
            raise ConfigError(f"cannot save a space to {target}: it exists and is not a folder")
        with atomic_dir(target) as staging:
            (staging / SPACE_FILE).write_text(text + "\n")
            safetensors.torch.save_file(stored, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        return target

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


def _dedupe_tensors(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors to write (each distinct content once, under its first key) and ``{alias key: stored key}``."""
    stored: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first: dict[tuple[str, tuple[int, ...], str], str] = {}
    for key, tensor in tensors.items():
        value = tensor.detach().cpu().contiguous()
        digest = hashlib.sha256(value.reshape(-1).view(torch.uint8).numpy()).hexdigest()
        content = (str(value.dtype), tuple(value.shape), digest)
        if content in first:
            aliases[key] = first[content]
        else:
            first[content] = key
            stored[key] = value.clone()  # an own copy: safetensors refuses tensors that share memory
    return stored, aliases


def _restore_aliases(tensors: dict[str, torch.Tensor], aliases: Any, source: Path) -> dict[str, torch.Tensor]:
    """``tensors`` plus every alias key of space.json's ``aliases``, bound to its stored tensor."""
    if not isinstance(aliases, dict):
        raise ConfigError(f"{source}: 'aliases' must map alias keys to stored keys, got {type(aliases).__name__}")
    restored = dict(tensors)
    for alias, key in aliases.items():
        if alias in tensors or key not in tensors:
            raise ConfigError(f"{source}: bad alias {alias!r} -> {key!r} (an alias must name a tensor of the "
                              f"weights file and must not be one itself)")
        restored[alias] = tensors[key]
    return restored


def _tensor(tensors: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in tensors:
        raise ConfigError(f"the space's weights lack {key!r}")
    return tensors[key]


def _strip_meta(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_meta(v) for k, v in value.items() if k != "meta"}
    if isinstance(value, list):
        return [_strip_meta(v) for v in value]
    return value


def _expert_names(value: Any) -> set[str]:
    """The registered expert cards a space config names (``"expert"`` strings)."""
    names: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "expert" and isinstance(item, str):
                names.add(item)
            else:
                names |= _expert_names(item)
    elif isinstance(value, list):
        for item in value:
            names |= _expert_names(item)
    return names


def indent(lines: list[str], prefix: str = "  ") -> list[str]:
    return [prefix + line for line in lines]


# --- AnchorSpace ------------------------------------------------------------------------------------------

def adapter_dims(adapter: Adapter) -> tuple[int, int]:
    """(input, output) width of an adapter."""
    if isinstance(adapter, Projector):
        return adapter.d_in, adapter.d_out
    if isinstance(adapter, LabelBridge):
        return adapter.num_classes, adapter.label_embeddings.shape[1]
    raise ConfigError(f"an adapter is a Projector or a LabelBridge, got {type(adapter).__name__}")


def adapter_state(adapter: Adapter, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    tensors = {f"{prefix}{k}": v for k, v in adapter.state_dict().items()}
    if isinstance(adapter, Projector):
        return {"kind": "projector", "config": adapter.config.to_dict(), "meta": adapter.meta}, tensors
    return {"kind": "label_bridge", "top_k": adapter.top_k}, tensors


def adapter_from_state(config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> Adapter:
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if config.get("kind") == "projector":
        projector = build_projector(ProjectorConfig.from_dict(config["config"]), meta=config.get("meta"))
        try:
            projector.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ConfigError(f"the space's weights do not match its projector {config['config']}: {exc}") from exc
        return projector.eval()
    if config.get("kind") == "label_bridge":
        bridge = LabelBridge(_tensor(tensors, f"{prefix}label_embeddings"), top_k=config["top_k"])
        bridge.load_state_dict(state, strict=True)  # the saved rows exactly, not normalised a second time
        return bridge.eval()
    raise ConfigError(f"unknown adapter kind {config.get('kind')!r} (expected 'projector' or 'label_bridge')")


def describe_adapter(adapter: Adapter) -> str:
    d_in, d_out = adapter_dims(adapter)
    if isinstance(adapter, Projector):
        return f"{adapter.config.type} projector {d_in}->{d_out}"
    return f"label bridge {d_in} classes->{d_out} (top_k={adapter.top_k})"


@dataclasses.dataclass(frozen=True, eq=False)
class ExpertPath:
    """How one modality reaches the anchor space: ``l2( adapter( norm( expert(x) ) ) )``.

    ``expert``: a registered card name (saved by name) or an :class:`~bind.EncoderCard` (saved inline, e.g. a
    video expert whose frame expert was swapped). ``adapter``: a Projector, a LabelBridge, or None (the
    anchor's own expert). ``input_norm``: what the adapter is fed — "l2" (l2-normalised features, the way
    projectors are trained) or "none" (raw outputs, e.g. logits for a LabelBridge); the default follows the
    adapter (LabelBridge: "none", otherwise "l2").
    """

    expert: str | EncoderCard
    adapter: Adapter | None = None
    input_norm: InputNorm | None = None

    def __post_init__(self) -> None:
        if self.input_norm is None:
            object.__setattr__(self, "input_norm", "none" if isinstance(self.adapter, LabelBridge) else "l2")
        if self.input_norm not in ("l2", "none"):
            raise ConfigError(f"input_norm must be 'l2' or 'none', got {self.input_norm!r}")
        card = self.card  # an unknown name fails here, at build time
        if self.adapter is not None:
            d_in, _ = adapter_dims(self.adapter)
            if d_in != card.dim:
                raise ConfigError(f"dimension mismatch: expert {card.name!r} gives {card.dim}-d features but its "
                                  f"adapter ({describe_adapter(self.adapter)}) takes {d_in}")
            self.adapter.eval()

    @classmethod
    def label_bridge(cls, classifier: str, text_expert: str, template: str = "a photo of a {}.",
                     top_k: int = 10) -> ExpertPath:
        """A zero-training path: the classifier's top-k class probabilities weight the ``text_expert``
        embeddings of its class names (ConSE); e.g. ``("efficientnet-lite0.imagenet-logits", "minilm-l6.text")``."""
        bridge = LabelBridge.for_classifier(cached_encoder(classifier), cached_encoder(text_expert),
                                            template=template, top_k=top_k)
        return cls(classifier, bridge, "none")

    @property
    def card(self) -> EncoderCard:
        return self.expert if isinstance(self.expert, EncoderCard) else get_card(self.expert)

    @property
    def modality(self) -> Modality:
        return self.card.modality

    @property
    def dim(self) -> int:
        return adapter_dims(self.adapter)[1] if self.adapter is not None else self.card.dim

    def __call__(self, call: Call) -> Rows:
        features = call.features(self.card)
        x = features.embeddings
        if self.input_norm == "l2":
            x = F.normalize(x.float(), dim=-1)
        if not len(x):  # every item failed: an empty block of the path's output width
            return features.replace(x.new_zeros(0, self.dim))
        if self.adapter is not None:
            x = self.adapter(x.float())
        return features.replace(F.normalize(x.float(), dim=-1))

    def state(self, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        expert = self.expert.to_dict() if isinstance(self.expert, EncoderCard) else self.expert
        config: dict[str, Any] = {"expert" if isinstance(expert, str) else "expert_card": expert,
                                  "input_norm": self.input_norm}
        tensors: dict[str, torch.Tensor] = {}
        if self.adapter is not None:
            config["adapter"], tensors = adapter_state(self.adapter, f"{prefix}adapter.")
        return config, tensors

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> ExpertPath:
        expert = config["expert"] if "expert" in config else EncoderCard.from_dict(config["expert_card"])
        adapter = adapter_from_state(config["adapter"], tensors, f"{prefix}adapter.") if "adapter" in config else None
        return cls(expert, adapter, config["input_norm"])

    def describe(self) -> str:
        card = self.card
        name = card.name if isinstance(self.expert, str) else f"{card.name} (inline card)"
        via = f" -> {describe_adapter(self.adapter)}" if self.adapter is not None else ""
        norm = f" [input {self.input_norm}]" if self.adapter is not None else ""
        return f"{name}{via}{norm}"


class AnchorSpace(Space):
    """One anchor space: a path per modality (``{"text": "minilm-l6.text", "image": ExpertPath(...)}``).

    A plain card name stands for the anchor's own expert (no adapter). Every path must end in the same
    dimension and its expert must embed the modality it is listed under (checked at build time).
    """

    kind = "anchor"

    def __init__(self, paths: Mapping[str | Modality, ExpertPath | str | EncoderCard]) -> None:
        super().__init__()
        if not paths:
            raise ConfigError("an AnchorSpace needs at least one modality path")
        self.paths: dict[Modality, ExpertPath] = {}
        for key, path in paths.items():
            modality = _parse_modality(key)
            path = path if isinstance(path, ExpertPath) else ExpertPath(path)
            if path.modality != modality:
                raise ConfigError(f"the {modality.value} path's expert {path.card.name!r} embeds "
                                  f"{path.modality.value}, not {modality.value}")
            self.paths[modality] = path
        dims = {m.value: p.dim for m, p in self.paths.items()}
        if len(set(dims.values())) != 1:
            raise ConfigError(f"dimension mismatch: every path must end in the anchor's dimension, got {dims}")
        self._dim = next(iter(dims.values()))

    @classmethod
    def from_expert(cls, expert: str | EncoderCard) -> AnchorSpace:
        """The space of one expert on its own (e.g. the expert side of a bond)."""
        path = ExpertPath(expert)
        return cls({path.modality: path})

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def modalities(self) -> frozenset[Modality]:
        return frozenset(self.paths)

    def _encode(self, call: Call) -> Rows:
        return self.paths[call.modality](call)

    def _node_state(self, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        paths, tensors = {}, {}
        for modality, path in sorted(self.paths.items()):
            paths[modality.value], part = path.state(f"{prefix}paths.{modality.value}.")
            tensors.update(part)
        return {"paths": paths}, tensors

    @classmethod
    def _from_node_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> Space:
        return cls({m: ExpertPath.from_state(p, tensors, f"{prefix}paths.{m}.") for m, p in config["paths"].items()})

    def _lines(self) -> list[str]:
        lines = [f"AnchorSpace(dim={self.dim})"]
        lines += [f"  {m.value}: {p.describe()}" for m, p in sorted(self.paths.items())]
        return lines + self._calibration_line()


def as_space(value: Space | str | EncoderCard) -> Space:
    """A space, or the one-expert space of a card name."""
    return value if isinstance(value, Space) else AnchorSpace.from_expert(value)


def as_projector(value: Projector | str | os.PathLike) -> Projector:
    """A projector, or the adapter folder / packaged adapter name to load one from."""
    return value.eval() if isinstance(value, Projector) else load_projector(value)


# --- loading ----------------------------------------------------------------------------------------------

def _packaged_spaces() -> dict[str, Path]:
    try:
        root = resource_dir("spaces")
    except FileNotFoundError:
        return {}
    return {path.name: path for path in sorted(root.iterdir()) if (path / SPACE_FILE).is_file()}


def load_space(path_or_name: str | os.PathLike) -> Space:
    """Load a space folder written by :meth:`Space.save`, or a space shipped in bind's ``spaces/``."""
    from . import bonds, routers, soundtrack  # noqa: F401 - registers the bond, router and fusion space types

    directory = Path(path_or_name).expanduser()
    if not directory.is_dir():
        packaged = _packaged_spaces()
        if not (isinstance(path_or_name, str) and path_or_name in packaged):
            raise ConfigError(f"no space folder at {directory} and no packaged space named {str(path_or_name)!r}; "
                              f"packaged: {', '.join(packaged) or 'none'}")
        directory = packaged[path_or_name]
    data, tensors, config_path, _ = read_saved_folder(directory, SPACE_FILE, WEIGHTS_FILE, "space")
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION or "space" not in data:
        raise ConfigError(f"{config_path}: not a bind space (format_version {FORMAT_VERSION} expected)")
    return Space.from_state(data["space"], _restore_aliases(tensors, data.get("aliases", {}), config_path))
