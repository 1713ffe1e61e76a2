"""Paired data for training and evaluation: generic manifests, sidecar-caption folders, public formats.

Example::

    from bind.data import load_manifest, assign_splits
    pairs = assign_splits(load_manifest("pairs.csv"), seed=0)
    train = pairs.split("train")
"""
from .formats import audiocaps, clotho, esc50, karpathy, modelnet40, msrvtt
from .manifest import (
                       LoadReport,
                       ManifestError,
                       Pair,
                       PairManifest,
                       RowProblem,
                       folder_with_captions,
                       load_manifest,
                       save_manifest,
)
from .splits import assign_splits

__all__ = [
    "LoadReport", "ManifestError", "Pair", "PairManifest", "RowProblem", "assign_splits", "audiocaps", "clotho",
    "esc50", "folder_with_captions", "karpathy", "load_manifest", "modelnet40", "msrvtt", "save_manifest",
]
