"""Bond weights (FreeBind's lam): checked numbers in [0, 1], one per modality, and the inference presets."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..experts.modality import Modality

DEFAULT_LAM = 0.5
# FreeBind's inference presets: lam per modality for the bonds of a space
PRESETS: dict[str, dict[str, float]] = {
    "versatile": {"text": 0.1, "audio": 0.5},
    "expert": {"text": 0.5, "audio": 0.8},
}


def check_lam(value: Any, where: str) -> float:
    """``value`` as a float in [0, 1], or a ConfigError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{where}: lam must be a number in [0, 1], got {value!r}")
    return float(value)


def fmt(value: float) -> str:
    """A weight as printed in a space's description."""
    return f"{value:g}"


def preset_lams(preset: str | None, lams: Mapping[str, float]) -> dict[Modality, float]:
    """The lam per modality of ``preset`` (:data:`PRESETS`) overridden by ``lams``, checked."""
    chosen: dict[str, float] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
        chosen.update(PRESETS[preset])
    chosen.update(lams)
    if not chosen:
        raise ConfigError("with_weights needs a preset or lam per modality, e.g. with_weights(text=0.1)")
    return {Modality.parse(k): check_lam(v, f"with_weights({k}=...)") for k, v in chosen.items()}


class Lams:
    """A bond weight: one ``default`` plus optional per-modality values, each in [0, 1]."""

    def __init__(self, lam: float | Mapping[str | Modality, float] | Lams, where: str) -> None:
        if isinstance(lam, Lams):
            self.default, self.by_modality = lam.default, dict(lam.by_modality)
            return
        if isinstance(lam, Mapping):
            values = dict(lam)
            self.default = check_lam(values.pop("default", DEFAULT_LAM), where)
            self.by_modality = {Modality.parse(k): check_lam(v, f"{where} ({k})") for k, v in values.items()}
        else:
            self.default, self.by_modality = check_lam(lam, where), {}

    def __call__(self, modality: Modality) -> float:
        return self.by_modality.get(modality, self.default)

    def updated(self, lams: Mapping[Modality, float]) -> Lams:
        out = Lams(self, "")
        out.by_modality.update(lams)
        return out

    def to_dict(self) -> dict[str, float]:
        return {"default": self.default, **{m.value: v for m, v in sorted(self.by_modality.items())}}

    def __repr__(self) -> str:
        if not self.by_modality:
            return fmt(self.default)
        parts = ", ".join(f"{m.value} {fmt(v)}" for m, v in sorted(self.by_modality.items()))
        return f"{parts}, other {fmt(self.default)}"
