"""Anchor spaces: one space (e.g. MiniLM's text space) reached from each modality by an expert path.

Each modality has an :class:`ExpertPath`: a frozen expert (an encoder card name) and an optional adapter
into the anchor — a trained :class:`~bind.spaces.projectors.Projector` (fed l2-normalised expert features,
as in training) or a :class:`~bind.spaces.bridges.LabelBridge` for classifier experts (fed raw logits). The
anchor's own modality uses its expert directly.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..experts.cards import EncoderCard
from ..experts.modality import Modality
from ..experts.registry import get_card
from .base import Space
from .bridges import LabelBridge
from .call import Call
from .persist import tensor
from .projectors import Projector, ProjectorConfig, build_projector, load_projector
from .rows import Rows

Adapter = Projector | LabelBridge
InputNorm = Literal["l2", "none"]



def adapter_dims(adapter: Adapter) -> tuple[int, int]:
    """(input, output) width of an adapter."""
    if isinstance(adapter, Projector):
        return adapter.d_in, adapter.d_out
    if isinstance(adapter, LabelBridge):
        return adapter.num_classes, adapter.label_embeddings.shape[1]
    raise ConfigError(f"an adapter is a Projector or a LabelBridge, got {type(adapter).__name__}")


def adapter_state(adapter: Adapter, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    tensors = {f"{prefix}{k}": v for k, v in adapter.state_dict().items()}
    if isinstance(adapter, Projector):
        return {"kind": "projector", "config": adapter.config.to_dict(), "meta": adapter.meta}, tensors
    return {"kind": "label_bridge", "top_k": adapter.top_k}, tensors


def adapter_from_state(config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> Adapter:
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if config.get("kind") == "projector":
        projector = build_projector(ProjectorConfig.from_dict(config["config"]), meta=config.get("meta"))
        try:
            projector.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ConfigError(f"the space's weights do not match its projector {config['config']}: {exc}") from exc
        return projector.eval()
    if config.get("kind") == "label_bridge":
        bridge = LabelBridge(tensor(tensors, f"{prefix}label_embeddings"), top_k=config["top_k"])
        bridge.load_state_dict(state, strict=True)  # the saved rows exactly, not normalised a second time
        return bridge.eval()
    raise ConfigError(f"unknown adapter kind {config.get('kind')!r} (expected 'projector' or 'label_bridge')")


def describe_adapter(adapter: Adapter) -> str:
    d_in, d_out = adapter_dims(adapter)
    if isinstance(adapter, Projector):
        return f"{adapter.config.type} projector {d_in}->{d_out}"
    return f"label bridge {d_in} classes->{d_out} (top_k={adapter.top_k})"


@dataclasses.dataclass(frozen=True, eq=False)
class ExpertPath:
    """How one modality reaches the anchor space: ``l2( adapter( norm( expert(x) ) ) )``.

    ``expert``: a registered card name (saved by name) or an :class:`~bind.EncoderCard` (saved inline, e.g. a
    video expert whose frame expert was swapped). ``adapter``: a Projector, a LabelBridge, or None (the
    anchor's own expert). ``input_norm``: what the adapter is fed — "l2" (l2-normalised features, the way
    projectors are trained) or "none" (raw outputs, e.g. logits for a LabelBridge); the default follows the
    adapter (LabelBridge: "none", otherwise "l2").
    """

    expert: str | EncoderCard
    adapter: Adapter | None = None
    input_norm: InputNorm | None = None

    def __post_init__(self) -> None:
        if self.input_norm is None:
            object.__setattr__(self, "input_norm", "none" if isinstance(self.adapter, LabelBridge) else "l2")
        if self.input_norm not in ("l2", "none"):
            raise ConfigError(f"input_norm must be 'l2' or 'none', got {self.input_norm!r}")
        card = self.card  # an unknown name fails here, at build time
        if self.adapter is not None:
            d_in, _ = adapter_dims(self.adapter)
            if d_in != card.dim:
                raise ConfigError(f"dimension mismatch: expert {card.name!r} gives {card.dim}-d features but its "
                                  f"adapter ({describe_adapter(self.adapter)}) takes {d_in}")
            self.adapter.eval()

    @classmethod
    def label_bridge(cls, classifier: str, text_expert: str, template: str | Sequence[str] = "a photo of a {}.",
                     top_k: int = 10, labels: Sequence[str] | None = None) -> ExpertPath:
        """A zero-training path: the classifier's top-k class probabilities weight the ``text_expert``
        embeddings of its class names (ConSE); e.g. ``("efficientnet-lite0.imagenet-logits", "minilm-l6.text")``.
        ``labels``: class names to embed instead of the card's own (one per output, in order)."""
        card = get_card(classifier)
        if labels is None:
            bridge = LabelBridge.for_classifier(card, text_expert, template=template, top_k=top_k)
        elif len(labels) != card.dim:
            raise ConfigError(f"{card.name!r}: {len(labels)} labels given for {card.dim} outputs")
        else:
            bridge = LabelBridge.from_labels(labels, text_expert, template=template, top_k=top_k)
        return cls(classifier, bridge, "none")

    @property
    def card(self) -> EncoderCard:
        """The expert's card (looked up by name, or the inline card)."""
        return self.expert if isinstance(self.expert, EncoderCard) else get_card(self.expert)

    @property
    def modality(self) -> Modality:
        """The modality of the path's expert."""
        return self.card.modality

    @property
    def dim(self) -> int:
        """The path's output dimension: the adapter's output, else the expert's."""
        return adapter_dims(self.adapter)[1] if self.adapter is not None else self.card.dim

    def __call__(self, call: Call) -> Rows:
        features = call.features(self.card)
        x = features.embeddings
        if self.input_norm == "l2":
            x = F.normalize(x.float(), dim=-1)
        if not len(x):  # every item failed: an empty block of the path's output width
            return features.replace(x.new_zeros(0, self.dim))
        if self.adapter is not None:
            x = self.adapter(x.float())
        return features.replace(F.normalize(x.float(), dim=-1))

    def state(self, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The path's config and its adapter's tensors (names under ``prefix``), for saving."""
        expert = self.expert.to_dict() if isinstance(self.expert, EncoderCard) else self.expert
        config: dict[str, Any] = {"expert" if isinstance(expert, str) else "expert_card": expert,
                                  "input_norm": self.input_norm}
        tensors: dict[str, torch.Tensor] = {}
        if self.adapter is not None:
            config["adapter"], tensors = adapter_state(self.adapter, f"{prefix}adapter.")
        return config, tensors

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> ExpertPath:
        """The path ``state`` saved."""
        expert = config["expert"] if "expert" in config else EncoderCard.from_dict(config["expert_card"])
        adapter = adapter_from_state(config["adapter"], tensors, f"{prefix}adapter.") if "adapter" in config else None
        return cls(expert, adapter, config["input_norm"])

    def describe(self) -> str:
        """One line naming the expert and its adapter."""
        card = self.card
        name = card.name if isinstance(self.expert, str) else f"{card.name} (inline card)"
        via = f" -> {describe_adapter(self.adapter)}" if self.adapter is not None else ""
        norm = f" [input {self.input_norm}]" if self.adapter is not None else ""
        return f"{name}{via}{norm}"


class AnchorSpace(Space):
    """One anchor space: a path per modality (``{"text": "minilm-l6.text", "image": ExpertPath(...)}``).

    A plain card name stands for the anchor's own expert (no adapter). Every path must end in the same
    dimension and its expert must embed the modality it is listed under (checked at build time).
    """

    kind = "anchor"

    def __init__(self, paths: Mapping[str | Modality, ExpertPath | str | EncoderCard]) -> None:
        super().__init__()
        if not paths:
            raise ConfigError("an AnchorSpace needs at least one modality path")
        self.paths: dict[Modality, ExpertPath] = {}
        for key, path in paths.items():
            modality = Modality.parse(key)
            path = path if isinstance(path, ExpertPath) else ExpertPath(path)
            if path.modality != modality:
                raise ConfigError(f"the {modality.value} path's expert {path.card.name!r} embeds "
                                  f"{path.modality.value}, not {modality.value}")
            self.paths[modality] = path
        dims = {m.value: p.dim for m, p in self.paths.items()}
        if len(set(dims.values())) != 1:
            raise ConfigError(f"dimension mismatch: every path must end in the anchor's dimension, got {dims}")
        self._dim = next(iter(dims.values()))

    @classmethod
    def from_expert(cls, expert: str | EncoderCard) -> AnchorSpace:
        """The space of one expert on its own (e.g. the expert side of a bond)."""
        path = ExpertPath(expert)
        return cls({path.modality: path})

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def modalities(self) -> frozenset[Modality]:
        return frozenset(self.paths)

    def expert_cards(self, modality: Modality) -> list[EncoderCard]:
        return [self.paths[modality].card] if modality in self.paths else []

    def _encode(self, call: Call) -> Rows:
        return self.paths[call.modality](call)

    def _node_state(self, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        paths, tensors = {}, {}
        for modality, path in sorted(self.paths.items()):
            paths[modality.value], part = path.state(f"{prefix}paths.{modality.value}.")
            tensors.update(part)
        return {"paths": paths}, tensors

    @classmethod
    def _from_node_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> Space:
        return cls({m: ExpertPath.from_state(p, tensors, f"{prefix}paths.{m}.") for m, p in config["paths"].items()})

    def _lines(self) -> list[str]:
        lines = [f"AnchorSpace(dim={self.dim})"]
        lines += [f"  {m.value}: {p.describe()}" for m, p in sorted(self.paths.items())]
        return lines + self._calibration_line()


def as_space(value: Space | str | EncoderCard) -> Space:
    """A space, or the one-expert space of a card name."""
    return value if isinstance(value, Space) else AnchorSpace.from_expert(value)


def as_projector(value: Projector | str | os.PathLike) -> Projector:
    """A projector, or the adapter folder / packaged adapter name to load one from."""
    return value.eval() if isinstance(value, Projector) else load_projector(value)
