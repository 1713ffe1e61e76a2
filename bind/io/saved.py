"""Reading the folders bind saves: a JSON config next to a safetensors weights file (projectors, spaces)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from ..errors import ConfigError


def read_saved_folder(directory: Path, config_name: str, weights_name: str,
                      what: str) -> tuple[Any, dict[str, torch.Tensor], Path, Path]:
    """The parsed config, the tensors and both paths of a saved ``what`` ("projector", "space") folder.

    Raises ConfigError naming the folder and the file: a missing file, unreadable JSON, corrupt weights.
    """
    config_path, weights_path = directory / config_name, directory / weights_name
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ConfigError(f"{what} folder {directory} has no {path.name} (expected {path})")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{what} config {config_path} is unreadable: {exc}") from exc
    try:
        tensors = safetensors.torch.load_file(str(weights_path))
    except (OSError, safetensors.SafetensorError) as exc:
        raise ConfigError(f"{what} weights {weights_path} are corrupt or unreadable: {exc}") from exc
    return config, tensors, config_path, weights_path
