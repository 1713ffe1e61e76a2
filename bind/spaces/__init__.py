"""Spaces: one embedding space for many modalities, and the bonds, routers and fusions that compose them.

Modules: :mod:`~bind.spaces.base` (the Space interface), :mod:`~bind.spaces.anchor` (expert paths into an
anchor), :mod:`~bind.spaces.bonds` (FreeBind bonds), :mod:`~bind.spaces.routed` (OmniBind routers),
:mod:`~bind.spaces.fusion` (video sound tracks), :mod:`~bind.spaces.persist` (save, load, identity),
:mod:`~bind.spaces.presets` (builders of the packaged spaces); :mod:`~bind.spaces.call` and
:mod:`~bind.spaces.rows` carry one call's features and results between them.
"""
from .anchor import AnchorSpace, ExpertPath
from .base import Space
from .bonds import CombinationBond, DisplacementBond, ParallelBond, SequentialBond
from .fusion import SoundTrackFusion
from .persist import load_space
from .routed import RoutedSpace, Router

__all__ = ["AnchorSpace", "CombinationBond", "DisplacementBond", "ExpertPath", "ParallelBond", "RoutedSpace",
           "Router", "SequentialBond", "SoundTrackFusion", "Space", "load_space"]
