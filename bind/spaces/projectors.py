"""Projectors: small trainable maps from an expert's space (``d_in``) into an anchor space (``d_out``).

The architecture is data: a :class:`ProjectorConfig` names its ``type`` explicitly (never guessed from which
keys exist) and the registry builds it. Every projector returns unit-norm vectors, so similarity is always
cosine. An adapter folder holds ``config.json`` (the config, plus a free ``"meta"`` dict: source and anchor
experts, data, metrics) and ``model.safetensors``; :func:`load_projector` reads it back exactly.

Types (section 5 of the design notes):

- ``linear``  — one Linear layer (baseline).
- ``mlp``     — FreeBind / OmniBind head: Linear(d_in->hidden=2048)-BN-ReLU-Linear(->d_out)-BN.
- ``cmcr``    — C-MCR: ``depth`` MLP blocks Linear(->hidden=2*d_out)-BN-ReLU-Linear(->d_out)-BN
  (512->1024->512 for CLIP-sized spaces).
- ``exmcr``   — Ex-MCR: a Linear initialised to the identity, then two residual MLP blocks
  (Linear(d_out->hidden=2*d_out)-BN-ReLU-Linear(->d_out)-BN) whose last BN scale starts at zero, so at
  initialisation the projector is exactly ``l2(I x)``. When ``d_in != d_out`` the Linear starts as the
  rectangular identity: the first ``min(d_in, d_out)`` dimensions are copied, the rest are zero.
- ``fusemix`` — FuseMix: ``depth`` pre-norm residual blocks [LN-Linear(d_in->hidden=4*d_in)-GELU-Dropout-
  Linear(->d_in)] at the input width, then LN-Linear(d_in->d_out).
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputError
from ..io.atomic import atomic_dir
from ..io.saved import read_saved_folder
from ..resources import resource_dir

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
README_FILE = "README.md"

# an optional field's default: a constant, or a function of (d_in, d_out)
Default = int | float | Callable[[int, int], int]


@dataclasses.dataclass(frozen=True)
class ProjectorConfig:
    """The architecture of a projector. ``hidden``, ``depth`` and ``dropout`` are only valid for the types
    that use them; left as ``None`` they take that type's default (and are stored resolved)."""

    type: str
    d_in: int
    d_out: int
    hidden: int | None = None
    depth: int | None = None
    dropout: float | None = None

    def __post_init__(self) -> None:
        cls = projector_class(self.type)
        for name in ("d_in", "d_out"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ConfigError(f"{self.type} projector: {name} must be a positive integer, got {value!r}")
        for name in ("hidden", "depth", "dropout"):
            value = getattr(self, name)
            if name not in cls.options:
                if value is not None:
                    raise ConfigError(f"{self.type} projector takes no {name!r} "
                                      f"(it uses: {', '.join(cls.options) or 'no options'})")
                continue
            if value is None:
                default = cls.options[name]
                value = default(self.d_in, self.d_out) if callable(default) else default
                object.__setattr__(self, name, value)
        if self.hidden is not None and (not _is_int(self.hidden) or self.hidden <= 0):
            raise ConfigError(f"{self.type} projector: hidden must be a positive integer, got {self.hidden!r}")
        if self.depth is not None and (not _is_int(self.depth) or self.depth < 1):
            raise ConfigError(f"{self.type} projector: depth must be an integer >= 1, got {self.depth!r}")
        if self.dropout is not None and (isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float))
                                         or not 0.0 <= self.dropout < 1.0):
            raise ConfigError(f"{self.type} projector: dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready data, unset fields left out."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> ProjectorConfig:
        """A config from its JSON data; a bad field raises ConfigError naming ``source``."""
        if not isinstance(data, dict):
            raise ConfigError(f"projector config {source}: expected a JSON object, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        missing = sorted({"type", "d_in", "d_out"} - set(data))
        if unknown or missing:
            raise ConfigError(f"projector config {source}: unknown fields {unknown}, missing {missing}")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"projector config {source}: {exc}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Projector(nn.Module):
    """Maps ``[B, d_in]`` (or one ``[d_in]``) expert features to unit-norm ``[B, d_out]`` embeddings.

    Subclasses build ``self.net`` from the config and declare ``options``: the optional config fields they
    use, with their defaults. ``meta`` is free JSON-able information saved with the weights.
    """

    options: ClassVar[dict[str, Default]] = {}
    net: nn.Module

    def __init__(self, config: ProjectorConfig, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = config
        self.meta: dict[str, Any] = dict(meta or {})

    @property
    def d_in(self) -> int:
        """The input dimension (the expert's)."""
        return self.config.d_in

    @property
    def d_out(self) -> int:
        """The output dimension (the anchor space's)."""
        return self.config.d_out

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not isinstance(features, torch.Tensor):
            raise InputError(features, f"expected a tensor of expert features [batch, {self.d_in}]")
        if features.ndim not in (1, 2) or features.shape[-1] != self.d_in:
            raise InputError(features, f"expected expert features of shape [batch, {self.d_in}] or [{self.d_in}]")
        if not features.is_floating_point():
            raise InputError(features, "expected floating-point features")
        param = next(self.parameters())
        batch = features.to(param.device, param.dtype)
        single = batch.ndim == 1
        out = F.normalize(self.net(batch.unsqueeze(0) if single else batch), dim=-1)
        return out.squeeze(0) if single else out

    def save(self, directory: str | os.PathLike, meta: dict[str, Any] | None = None,
             readme: str | None = None) -> Path:
        """Write the adapter folder ``directory`` atomically: config.json (+ ``meta`` merged into
        ``self.meta``), model.safetensors and, if given, the README model card. The folder is replaced as a
        whole: it is built next to the target and renamed into place, so a failure leaves the old one intact."""
        target = Path(directory)
        merged = {**self.meta, **(meta or {})}
        try:
            config_text = json.dumps({**self.config.to_dict(), "meta": merged}, indent=2, sort_keys=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"projector meta must be JSON-serialisable: {exc}") from exc
        if target.exists() and not target.is_dir():
            raise ConfigError(f"cannot save a projector to {target}: it exists and is not a folder")
        with atomic_dir(target) as staging:
            (staging / CONFIG_FILE).write_text(config_text + "\n")
            tensors = {key: value.detach().cpu().contiguous() for key, value in self.state_dict().items()}
            safetensors.torch.save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
            if readme is not None:
                (staging / README_FILE).write_text(readme)
        self.meta = merged
        return target

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | torch.device | None = None) -> Projector:
        """Read an adapter folder written by :meth:`save`; the projector comes back in eval mode."""
        data, state, config_path, weights_path = read_saved_folder(Path(directory), CONFIG_FILE, WEIGHTS_FILE,
                                                                   "projector")
        meta = data.pop("meta", {}) if isinstance(data, dict) else {}
        if not isinstance(meta, dict):
            raise ConfigError(f"projector config {config_path}: 'meta' must be a JSON object")
        projector = build_projector(ProjectorConfig.from_dict(data, source=str(config_path)), meta=meta)
        try:
            projector.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ConfigError(f"projector weights {weights_path} do not match {config_path}: {exc}") from exc
        if device is not None:
            projector.to(device)
        return projector.eval()


class _Residual(nn.Module):
    """``x + body(x)``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _bn_mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    """Linear-BN-ReLU[-Dropout]-Linear-BN: the MLP block of FreeBind, C-MCR and Ex-MCR."""
    layers: list[nn.Module] = [nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(hidden, d_out), nn.BatchNorm1d(d_out)]
    return nn.Sequential(*layers)


class LinearProjector(Projector):
    """One Linear layer: the baseline."""

    def __init__(self, config: ProjectorConfig, meta: dict[str, Any] | None = None) -> None:
        super().__init__(config, meta)
        self.net = nn.Linear(config.d_in, config.d_out)


class MLPProjector(Projector):
    """FreeBind / OmniBind head: Linear(d_in->hidden)-BN-ReLU-Linear(->d_out)-BN."""

    options: ClassVar[dict[str, Default]] = {"hidden": 2048, "dropout": 0.0}

    def __init__(self, config: ProjectorConfig, meta: dict[str, Any] | None = None) -> None:
        super().__init__(config, meta)
        self.net = _bn_mlp(config.d_in, config.hidden, config.d_out, config.dropout)  # type: ignore[arg-type]


class CMCRProjector(Projector):
    """C-MCR head: ``depth`` MLP blocks, the first d_in->hidden->d_out, the others d_out->hidden->d_out."""

    options: ClassVar[dict[str, Default]] = {"hidden": lambda d_in, d_out: 2 * d_out, "depth": 1, "dropout": 0.0}

    def __init__(self, config: ProjectorConfig, meta: dict[str, Any] | None = None) -> None:
        super().__init__(config, meta)
        widths = [config.d_in] + [config.d_out] * (config.depth - 1)  # type: ignore[operator]
        self.net = nn.Sequential(*(_bn_mlp(width, config.hidden, config.d_out, config.dropout)  # type: ignore[arg-type]
                                   for width in widths))


class ExMCRProjector(Projector):
    """Ex-MCR head: identity-initialised Linear, then two residual MLP blocks that start as the identity."""

    options: ClassVar[dict[str, Default]] = {"hidden": lambda d_in, d_out: 2 * d_out, "dropout": 0.0}

    def __init__(self, config: ProjectorConfig, meta: dict[str, Any] | None = None) -> None:
        super().__init__(config, meta)
        entry = nn.Linear(config.d_in, config.d_out)
        with torch.no_grad():
            nn.init.eye_(entry.weight)  # rectangular identity: the first min(d_in, d_out) dims are copied
            entry.bias.zero_()
        blocks = []
        for _ in range(2):
            body = _bn_mlp(config.d_out, config.hidden, config.d_out, config.dropout)  # type: ignore[arg-type]
            nn.init.zeros_(body[-1].weight)  # the last BN's scale: each block adds nothing at first
            blocks.append(_Residual(body))
        self.net = nn.Sequential(entry, *blocks)


class FuseMixProjector(Projector):
    """FuseMix head: ``depth`` residual blocks [LN-Linear(d->hidden)-GELU-Dropout-Linear(->d)], then LN-Linear."""

    options: ClassVar[dict[str, Default]] = {"hidden": lambda d_in, d_out: 4 * d_in, "depth": 2, "dropout": 0.0}

    def __init__(self, config: ProjectorConfig, meta: dict[str, Any] | None = None) -> None:
        super().__init__(config, meta)
        d, hidden = config.d_in, config.hidden
        blocks = [_Residual(nn.Sequential(nn.LayerNorm(d), nn.Linear(d, hidden), nn.GELU(),  # type: ignore[arg-type]
                                          nn.Dropout(config.dropout), nn.Linear(hidden, d)))  # type: ignore[arg-type]
                  for _ in range(config.depth)]  # type: ignore[arg-type]
        self.net = nn.Sequential(*blocks, nn.LayerNorm(d), nn.Linear(d, config.d_out))


PROJECTOR_TYPES: dict[str, type[Projector]] = {
    "linear": LinearProjector,
    "mlp": MLPProjector,
    "cmcr": CMCRProjector,
    "exmcr": ExMCRProjector,
    "fusemix": FuseMixProjector,
}


def register_projector(type_name: str, cls: type[Projector]) -> None:
    """Make a projector class available to configs as ``{"type": type_name, ...}``."""
    if not (isinstance(cls, type) and issubclass(cls, Projector)):
        raise ConfigError(f"projector type {type_name!r} must be a Projector subclass, got {cls!r}")
    PROJECTOR_TYPES[type_name] = cls


def projector_class(type_name: str) -> type[Projector]:
    try:
        return PROJECTOR_TYPES[type_name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown projector type {type_name!r}; known: {', '.join(sorted(PROJECTOR_TYPES))}"
                          ) from None


def build_projector(config: ProjectorConfig | dict[str, Any], meta: dict[str, Any] | None = None) -> Projector:
    """A freshly initialised projector of ``config`` (a ProjectorConfig or its dict)."""
    if isinstance(config, dict):
        config = ProjectorConfig.from_dict(config)
    return projector_class(config.type)(config, meta)


def _packaged_projectors() -> dict[str, Path]:
    try:
        root = resource_dir("projectors")
    except FileNotFoundError:
        return {}
    return {path.name: path for path in sorted(root.iterdir()) if (path / CONFIG_FILE).is_file()}


def load_projector(path_or_name: str | os.PathLike, device: str | torch.device | None = None) -> Projector:
    """Load an adapter: a folder path, or the name of a folder shipped in bind's ``projectors/``."""
    path = Path(path_or_name).expanduser()
    if path.is_dir():
        return Projector.load(path, device=device)
    packaged = _packaged_projectors()
    if isinstance(path_or_name, str) and path_or_name in packaged:
        return Projector.load(packaged[path_or_name], device=device)
    raise ConfigError(f"no projector folder at {path} and no packaged projector named {str(path_or_name)!r}; "
                      f"packaged: {', '.join(packaged) or 'none'}")
