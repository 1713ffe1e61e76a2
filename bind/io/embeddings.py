"""Saving embeddings to .npy or .safetensors (atomically), with the inputs they came from."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError
from .atomic import atomic_path


def inputs_file(path: str | os.PathLike) -> Path:
    """Where a ``.npy`` file's row -> input mapping is written: ``x.npy`` -> ``x.inputs.json``."""
    return Path(path).with_suffix(".inputs.json")


def save_embeddings(path: str | os.PathLike, vectors: torch.Tensor, inputs: Sequence[str], encoder: str) -> None:
    """``.npy``: the ``[N, d]`` array, and next to it ``x.inputs.json`` (``{"encoder", "inputs"}``: row i
    came from ``inputs[i]``, so rows map back to their inputs when bad ones were skipped); ``.safetensors``:
    tensor "embeddings" + inputs/encoder metadata."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".npy", ".safetensors"):
        raise ConfigError(f"cannot write {path}: use a .npy or .safetensors file name")
    if suffix == ".npy":
        with atomic_path(inputs_file(path)) as tmp:
            Path(tmp).write_text(json.dumps({"encoder": encoder, "inputs": [str(i) for i in inputs]}, indent=1))
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, vectors.numpy())
        else:
            from safetensors.torch import save_file

            save_file({"embeddings": vectors.contiguous()}, str(tmp),
                      metadata={"inputs": json.dumps([str(i) for i in inputs]), "encoder": encoder})
