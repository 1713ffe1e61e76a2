"""Saving and loading spaces: the table of space kinds, identity, and the space folder format.

A space folder holds ``space.json`` (``{"format": "bind-space", "format_version", "aliases", "space"}``:
the whole tree as config, experts by card name) and ``weights.safetensors`` (adapters, bridges, routers,
calibration means). Each distinct tensor is stored once; a key whose tensor equals an earlier one is listed
in ``aliases``. Older folders are upgraded on load (:mod:`bind.io.versions`).

Space types are found through :data:`KINDS` (``type`` in the config -> "module:Class"), imported on first
use, so this module and the base class import none of their subclasses.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import safetensors.torch
import torch

from ..errors import ConfigError
from ..experts.modality import Modality
from ..experts.registry import get_card
from ..io.atomic import atomic_dir, atomic_path
from ..io.saved import read_saved_folder
from ..io.versions import FORMAT_VERSION, migration, upgrade
from ..resources import resource_dir

if TYPE_CHECKING:
    from .base import Space

SPACE_FILE = "space.json"
CALIBRATION_FILE = "calibration.json"  # optional: {"space_identity", "methods": {method: {pair: Platt}}}
BANKS_FILE = "query_banks.safetensors"  # optional, with it: a query bank [n, dim] per query modality
WEIGHTS_FILE = "weights.safetensors"
FORMAT = "bind-space"

# space config "type" -> the class that reads it; add a row to register a new kind of space
KINDS: dict[str, str] = {
    "anchor": "bind.spaces.anchor:AnchorSpace",
    "combination": "bind.spaces.bonds:CombinationBond",
    "displacement": "bind.spaces.bonds:DisplacementBond",
    "sequential": "bind.spaces.bonds:SequentialBond",
    "parallel": "bind.spaces.bonds:ParallelBond",
    "routed": "bind.spaces.routed:RoutedSpace",
    "soundtrack": "bind.spaces.fusion:SoundTrackFusion",
}


@migration("space", 1)
def _name_the_format(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "format": FORMAT}


@migration("space", 2)
@migration("space", 3)
def _space_unchanged(data: dict[str, Any]) -> dict[str, Any]:
    """Versions 3 and 4 changed only index manifests: a space folder is unchanged."""
    return data


def space_class(kind: Any) -> type[Space]:
    """The class of a space config's ``type``."""
    if kind not in KINDS:
        raise ConfigError(f"unknown space type {kind!r}; known: {', '.join(sorted(KINDS))}")
    module, _, name = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def space_from_state(config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str = "") -> Space:
    """Rebuild a space (and its calibration) from ``Space.state``'s output."""
    space = space_class(config.get("type"))._from_node_state(config, tensors, prefix)
    means = {Modality.parse(m): tensor(tensors, f"{prefix}calibration.{m}") for m in config.get("calibrated", [])}
    return space._with_calibration(means, bool(config.get("gap_correction", False)))


def tensor(tensors: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    """``tensors[key]``, or a ConfigError saying the space's weights lack it."""
    if key not in tensors:
        raise ConfigError(f"the space's weights lack {key!r}")
    return tensors[key]


def identity(config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> str:
    """A content hash (sha256 hex) of a space's config, its expert cards and every weight."""
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


def save_space(config: dict[str, Any], tensors: dict[str, torch.Tensor], directory: str | os.PathLike,
               score_data: dict[str, Any] | None = None) -> Path:
    """Write a space folder (space.json + weights.safetensors, and ``score_data`` when given) atomically;
    returns its path."""
    target = Path(directory)
    stored, aliases = _dedupe_tensors(tensors)
    text = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "aliases": aliases, "space": config},
                      indent=2)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"cannot save a space to {target}: it exists and is not a folder")
    with atomic_dir(target) as staging:
        (staging / SPACE_FILE).write_text(text + "\n")
        safetensors.torch.save_file(stored, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        if score_data is not None:
            write_score_data(score_data, staging)
    return target


def packaged_spaces() -> dict[str, Path]:
    """The spaces shipped in bind's ``spaces/`` folder, by name."""
    try:
        root = resource_dir("spaces")
    except FileNotFoundError:
        return {}
    return {path.name: path for path in sorted(root.iterdir()) if (path / SPACE_FILE).is_file()}


def load_space(path_or_name: str | os.PathLike) -> Space:
    """Load a space folder written by :meth:`Space.save`, or a space shipped in bind's ``spaces/``."""
    directory = Path(path_or_name).expanduser()
    if not directory.is_dir():
        packaged = packaged_spaces()
        if not (isinstance(path_or_name, str) and path_or_name in packaged):
            raise ConfigError(f"no space folder at {directory} and no packaged space named {str(path_or_name)!r}; "
                              f"packaged: {', '.join(packaged) or 'none'}")
        directory = packaged[path_or_name]
    data, tensors, config_path, _ = read_saved_folder(directory, SPACE_FILE, WEIGHTS_FILE, "space")
    if not isinstance(data, dict) or "space" not in data:
        raise ConfigError(f"{config_path}: not a bind space")
    data = upgrade("space", data, config_path)
    space = space_from_state(data["space"], _restore_aliases(tensors, data.get("aliases", {}), config_path))
    space.score_calibration = read_score_data(directory)
    return space


def read_score_data(directory: Path) -> dict[str, Any] | None:
    """A space folder's score data for :mod:`bind.index.scores` (relevance maps and query banks fitted for
    its identity), or None. Kept apart from the identity: they rescale scores, not vectors."""
    path = directory / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        banks = directory / BANKS_FILE
        data["banks"] = {k: v.float().numpy() for k, v in safetensors.torch.load_file(str(banks)).items()} \
            if banks.is_file() else {}
    except (ValueError, OSError, safetensors.SafetensorError) as exc:
        raise ConfigError(f"{directory}: unreadable score data ({exc})") from None
    return data


def write_score_data(data: dict[str, Any], directory: Path) -> None:
    """Write :func:`read_score_data`'s files into ``directory``, each atomically: the banks first, then
    ``calibration.json``, which names the identity they belong to."""
    if data.get("banks"):
        with atomic_path(directory / BANKS_FILE) as tmp:
            safetensors.torch.save_file({k: torch.from_numpy(np.ascontiguousarray(v)).half()
                                         for k, v in data["banks"].items()}, str(tmp))
    with atomic_path(directory / CALIBRATION_FILE) as tmp:
        tmp.write_text(json.dumps({k: v for k, v in data.items() if k != "banks"}, indent=1))


def _dedupe_tensors(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors to write (each distinct content once, under its first key) and ``{alias key: stored key}``."""
    stored: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first: dict[tuple[str, tuple[int, ...], str], str] = {}
    for key, value in tensors.items():
        value = value.detach().cpu().contiguous()
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
