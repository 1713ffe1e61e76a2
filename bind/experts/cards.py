"""Encoder cards: the data that describes one registered expert (configs-as-data, like open_clip)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .modality import Modality


@dataclasses.dataclass(frozen=True)
class EncoderCard:
    """Describes a frozen expert: what it embeds, how, with which weights and under which licence.

    ``name`` is ``family.tag``; ``backend`` names the code that runs it; ``model_id`` and ``pretrained``
    are handed to that backend; ``preprocess`` holds input sizes, statistics, rates, frames or views;
    ``options`` holds the backend's other settings (e.g. the image expert a video expert wraps).
    """

    name: str
    modality: Modality
    dim: int
    backend: str
    model_id: str
    licence: str
    weights: str
    pretrained: str | None = None
    preprocess: dict[str, Any] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if "." not in self.name:
            raise ConfigError(f"encoder card name {self.name!r} must look like 'family.tag'")
        object.__setattr__(self, "modality", Modality.parse(self.modality))
        if not isinstance(self.dim, int) or self.dim <= 0:
            raise ConfigError(f"encoder card {self.name!r}: dim must be a positive integer, got {self.dim!r}")

    @property
    def family(self) -> str:
        """The card name before the first dot (``clip-vit-b32-laion2b`` of ``clip-vit-b32-laion2b.image``)."""
        return self.name.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-ready data (``from_dict`` reads it back)."""
        data = dataclasses.asdict(self)
        data["modality"] = self.modality.value
        return data

    def replace(self, **changes: Any) -> "EncoderCard":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> "EncoderCard":
        """A card from its JSON data; unknown or missing fields raise ConfigError naming ``source``."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING} - set(data)  # type: ignore[misc]
        if unknown or missing:
            raise ConfigError(f"encoder card {source}: unknown fields {sorted(unknown)}, missing {sorted(missing)}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> "EncoderCard":
        """A card from a JSON file (an ``encoders/*.json`` card)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"encoder card {path}: {exc}") from exc
        return cls.from_dict(data, source=str(path))
