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


def save_embeddings(path: str | os.PathLike, vectors: torch.Tensor, inputs: Sequence[str], encoder: str) -> None:
    """``.npy``: the ``[N, d]`` array; ``.safetensors``: tensor "embeddings" + inputs/encoder metadata."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".npy", ".safetensors"):
        raise ConfigError(f"cannot write {path}: use a .npy or .safetensors file name")
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, vectors.numpy())
        else:
            from safetensors.torch import save_file

            save_file({"embeddings": vectors.contiguous()}, str(tmp),
                      metadata={"inputs": json.dumps([str(i) for i in inputs]), "encoder": encoder})
