"""Audio inputs: decoded waveforms with their sample rate."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import InputError


@dataclasses.dataclass
class Waveform:
    """Samples ``[channels, time]`` (float32 in [-1, 1]) and their sample rate in Hz."""

    samples: np.ndarray
    sample_rate: int

    @classmethod
    def from_array(cls, array: Any, sample_rate: int | None) -> "Waveform":
        """Validate a 1-D ``[time]`` or 2-D ``[channels, time]`` float array given with its sample rate."""
        if sample_rate is None or int(sample_rate) <= 0:
            raise InputError(array, "raw audio needs a positive sample_rate=...")
        samples = array.detach().cpu().numpy() if hasattr(array, "detach") else np.asarray(array)
        if samples.ndim == 1:
            samples = samples[None]
        if samples.ndim != 2 or samples.shape[0] > 8:
            raise InputError(array, f"audio must be [time] or [channels, time], got shape {samples.shape}")
        if not np.issubdtype(samples.dtype, np.floating):
            raise InputError(array, f"audio arrays must be float, got {samples.dtype}")
        if not np.isfinite(samples).all():
            raise InputError(array, "audio contains NaN or inf")
        return cls(samples.astype(np.float32, copy=False), int(sample_rate))
