"""3D inputs: point clouds and meshes -> exactly N points, centred and scaled into the unit sphere.

Meshes (.ply/.obj/.off/.stl/.glb, via trimesh) are sampled uniformly on their surface (area-weighted);
vertex-only .ply files and faceless meshes give their vertices; .npy/.npz files and in-memory arrays or
tensors of shape (M, 3) or (M, >=3) give their first three columns as xyz. Sampling is seeded.
"""
from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .files import open_source

MESH_FORMATS = (".ply", ".obj", ".off", ".stl", ".glb")
ARRAY_FORMATS = (".npy", ".npz")
# magic bytes of the formats that can be told from raw bytes
_MAGIC = ((b"\x93NUMPY", ".npy"), (b"PK\x03\x04", ".npz"), (b"ply", ".ply"), (b"OFF", ".off"),
          (b"solid", ".stl"), (b"glTF", ".glb"))


def load_points(item: Any, count: int = 2048, seed: int = 0) -> np.ndarray:
    """Exactly ``count`` points ``[count, 3]`` float32, centred on their mean, max radius 1.

    Raises InputError for unreadable, empty or unknown files, wrong shapes or dtypes, NaN/inf,
    fewer than 3 points, or points that all coincide.
    """
    xyz = read_points(item, count, seed)
    return resample_points(normalize_points(xyz, item), count, seed).astype(np.float32)


def read_points(item: Any, surface_samples: int = 2048, seed: int = 0) -> np.ndarray:
    """The raw ``(M, 3)`` float64 points of an item (meshes: ``surface_samples`` points on the surface)."""
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return validate_points(item, item)
    source, suffix = open_source(item)
    if not suffix:
        head = source.getvalue()[:8]
        suffix = next((ext for magic, ext in _MAGIC if head.startswith(magic)), "")
        if not suffix:
            raise InputError(item, "unknown 3D byte format (readable from bytes: .npy, .npz, .ply, .off, "
                                   "ASCII .stl, .glb); save it to a file with its extension")
    if suffix in ARRAY_FORMATS:
        return validate_points(_load_array(item, source, suffix), item)
    if suffix in MESH_FORMATS:
        return validate_points(_load_mesh(item, source, suffix, surface_samples, seed), item)
    raise InputError(item, f"unknown 3D format {suffix!r}; expected one of {', '.join(MESH_FORMATS + ARRAY_FORMATS)}")


def _load_array(item: Any, source: str | io.BytesIO, suffix: str) -> np.ndarray:
    try:
        loaded = np.load(source, allow_pickle=False)
        if suffix == ".npy":
            return loaded
        with loaded:
            names = loaded.files
            if "points" in names or len(names) == 1:
                return loaded["points" if "points" in names else names[0]]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(item, f"corrupt or unreadable {suffix} file: {exc}") from None
    raise InputError(item, f"an .npz file must hold one array or one named 'points', found {names}")


def _load_mesh(item: Any, source: str | io.BytesIO, suffix: str, count: int, seed: int) -> np.ndarray:
    import trimesh

    try:
        geometry = trimesh.load(source, file_type=suffix[1:], process=False)
        if isinstance(geometry, trimesh.Scene):
            geometry = geometry.to_geometry() if geometry.geometry else None
    except Exception as exc:  # trimesh's parsers raise many types (ValueError, KeyError, struct.error, ...)
        raise InputError(item, f"corrupt or unreadable {suffix} file: {type(exc).__name__}: {exc}") from None
    vertices = getattr(geometry, "vertices", None)
    if vertices is None or len(vertices) == 0:
        raise InputError(item, f"the {suffix} file holds no points")
    if isinstance(geometry, trimesh.Trimesh) and len(geometry.faces) and geometry.area > 0:
        points, _ = trimesh.sample.sample_surface(geometry, count, seed=seed)
        return np.asarray(points)
    return np.asarray(vertices)


def validate_points(array: Any, item: Any) -> np.ndarray:
    """``(M, >=3)`` finite int/float array or tensor -> its xyz columns as float64; InputError otherwise."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        array = (array.double() if array.is_floating_point() else array).numpy()
    array = np.asarray(array)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InputError(item, f"points must be float or int, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[1] < 3:
        raise InputError(item, f"points must have shape (M, 3) or (M, >=3) with xyz first, got {array.shape}")
    if len(array) < 3:
        raise InputError(item, f"a point cloud needs at least 3 points, got {len(array)}")
    xyz = array[:, :3].astype(np.float64)
    if not np.isfinite(xyz).all():
        raise InputError(item, "points contain NaN or inf")
    return xyz


def normalize_points(xyz: np.ndarray, item: Any = None) -> np.ndarray:
    """Centre on the mean and scale so the farthest point lies on the unit sphere."""
    centred = xyz - xyz.mean(axis=0)
    radius = np.linalg.norm(centred, axis=1).max()
    if not radius > 0:
        raise InputError(item if item is not None else xyz, "all points coincide")
    return centred / radius


def resample_points(xyz: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Exactly ``count`` points: a seeded subset without replacement, or all points plus repeats if fewer."""
    if len(xyz) == count:
        return xyz
    rng = np.random.default_rng(seed)
    if len(xyz) > count:
        return xyz[np.sort(rng.choice(len(xyz), count, replace=False))]
    return np.concatenate([xyz, xyz[rng.choice(len(xyz), count - len(xyz), replace=True)]])


class PointsPreprocessor:
    """Item -> ``[count, 3]`` float32 tensor of normalised points (for native point-cloud networks)."""

    def __init__(self, count: int = 2048, seed: int = 0) -> None:
        self.count, self.seed = count, seed

    def __call__(self, item: Any) -> torch.Tensor:
        return torch.from_numpy(load_points(item, self.count, self.seed))
