"""Space bonds (FreeBind): compose a base space ``u`` with an expert space ``e`` through a projector ``P``.

Every bond is itself a :class:`~bind.space.Space` (embed, save, print, bond again). With ``l2`` the unit
normalisation and ``lam`` the bond weight of the item's modality:

- :class:`CombinationBond` (expert into base; output in the base space, ``P: e -> u``):
  ``z = l2( lam * l2(P(e)) + (1 - lam) * u )``; modalities only the base has: ``z = u``; modalities only
  the expert has: ``z = l2(P(e))``. ``lam = 0`` gives the base exactly, ``lam = 1`` the projected expert.
- :class:`DisplacementBond` (base into expert; output in the expert space, ``P: u -> e``):
  ``z = l2( lam * l2(P(u)) + (1 - lam) * e )``; modalities the expert lacks: ``z = l2(P(u))``; modalities
  only the expert has: ``z = e``. ``lam = 0`` gives the expert exactly, ``lam = 1`` the projected base.
- :class:`SequentialBond` ``(b1, b2, ...)``: ``b1``, then ``b2`` applied with the running result in place of
  its own base, and so on (the projectors were trained against the shared base; only the dimension of the
  running result must match).
- :class:`ParallelBond` ``([b1, b2, ...], weights)``: combination bonds over one base, their projected
  experts averaged with ``weights`` before mixing: ``z = l2( lam * l2(sum_k w_k l2(P_k(e_k))) + (1 - lam) * u )``
  (``w`` renormalised over the members whose expert has the modality; ``lam`` the ``w``-weighted mean of
  the members' ``lam`` unless the parallel bond sets its own).

A bond's ``lam`` is one number or one per modality; ``space.with_weights(text=0.1, audio=0.5)`` or a preset
(``"versatile"``, ``"expert"``) sets it at inference for every bond in a space, without re-training.
The projector of a bond is fed the unit-norm outputs of the space it maps from.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..experts.cards import EncoderCard
from ..experts.modality import Modality
from .anchor import as_projector, as_space
from .base import Space, indent
from .call import Call
from .lams import DEFAULT_LAM, Lams, fmt
from .persist import space_from_state
from .projectors import Projector, ProjectorConfig, build_projector
from .rows import Rows, align


def _project(projector: Projector, rows: Rows) -> Rows:
    """``l2(P(x))`` row by row."""
    if not len(rows.indices):
        return rows.replace(rows.embeddings.new_zeros(0, projector.d_out))
    return rows.replace(F.normalize(projector(rows.embeddings.float()).float(), dim=-1))


def _mix(lam: float, a: Rows, b: Rows) -> Rows:
    """``l2(lam * a + (1 - lam) * b)`` over the items both embedded."""
    (x, y), indices, failures = align(a, b)
    return Rows(F.normalize(lam * x + (1 - lam) * y, dim=-1), indices, failures)


def _keep(kept: Rows, other: Rows) -> Rows:
    """``kept``'s rows, restricted to the items ``other`` embedded too (failures of both)."""
    (x, _), indices, failures = align(kept, other)
    return Rows(x, indices, failures)


def _projector_state(projector: Projector, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    config = {"config": projector.config.to_dict(), "meta": projector.meta}
    return config, {f"{prefix}{k}": v for k, v in projector.state_dict().items()}


def _projector_from_state(config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> Projector:
    projector = build_projector(ProjectorConfig.from_dict(config["config"]), meta=config.get("meta"))
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        projector.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"the space's weights do not match its projector {config['config']}: {exc}") from exc
    return projector.eval()


def _names(modalities: frozenset[Modality]) -> str:
    return "{" + ", ".join(sorted(m.value for m in modalities)) + "}"


class Bond(Space):
    """A space made from a ``base`` space and more; subclasses implement :meth:`mix`."""

    base: Space
    lam: Lams
    _dim: int  # set by subclasses from output(); ParallelBond derives both from its members
    _modalities: frozenset[Modality]

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def modalities(self) -> frozenset[Modality]:
        return self._modalities

    def mix(self, base_rows: Rows | None, call: Call) -> Rows | None:
        """The bond's output for ``call``'s items given the rows of its base (None when the base lacks the
        modality); None when neither the base nor the bond's expert(s) embed it."""
        raise NotImplementedError

    def output(self, dim: int, modalities: frozenset[Modality], where: str) -> tuple[int, frozenset[Modality]]:
        """Check this bond can follow a space of ``dim``/``modalities``; the resulting dim and modalities."""
        raise NotImplementedError

    def mix_cards(self, modality: Modality, has_base: bool) -> list[EncoderCard]:
        """The expert cards :meth:`mix` reads for ``modality`` (``has_base``: whether it gets base rows)."""
        raise NotImplementedError

    def expert_cards(self, modality: Modality) -> list[EncoderCard]:
        has_base = modality in self.base.modalities
        return (self.base.expert_cards(modality) if has_base else []) + self.mix_cards(modality, has_base)

    def _encode(self, call: Call) -> Rows:
        base_rows = self.base._rows(call) if call.modality in self.base.modalities else None
        rows = self.mix(base_rows, call)
        assert rows is not None, "bond asked for a modality it does not embed"
        return rows

    def _has_bonds(self) -> bool:
        return True

    def _lines_without_base(self) -> list[str]:
        raise NotImplementedError


class _ExpertBond(Bond):
    """What CombinationBond and DisplacementBond share: base, expert, projector, lam."""

    def __init__(self, base: Space | str, expert: Space | str, projector: Projector | str | os.PathLike,
                 lam: float | Mapping[str | Modality, float] | Lams = DEFAULT_LAM) -> None:
        super().__init__()
        self.base, self.expert, self.projector = as_space(base), as_space(expert), as_projector(projector)
        self.lam = Lams(lam, type(self).__name__)
        self._dim, self._modalities = self.output(self.base.dim, self.base.modalities, type(self).__name__)

    def _shared(self, modalities: frozenset[Modality], where: str) -> None:
        if not modalities & self.expert.modalities:
            raise ConfigError(f"{where}: the spaces share no modality (base embeds {_names(modalities)}, expert "
                              f"embeds {_names(self.expert.modalities)}); a bond needs a modality both embed, "
                              "the one its projector was trained on (e.g. text)")

    def _with_lams(self, lams: dict[Modality, float]) -> Space:
        out = copy.copy(self)
        out.base, out.expert = self.base._with_lams(lams), self.expert._with_lams(lams)
        out.lam = self.lam.updated(lams)
        return out

    def _node_state(self, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        base, tensors = self.base.state(f"{prefix}base.")
        expert, part = self.expert.state(f"{prefix}expert.")
        projector, weights = _projector_state(self.projector, f"{prefix}projector.")
        return ({"lam": self.lam.to_dict(), "base": base, "expert": expert, "projector": projector},
                {**tensors, **part, **weights})

    @classmethod
    def _from_node_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> Space:
        return cls(space_from_state(config["base"], tensors, f"{prefix}base."),
                   space_from_state(config["expert"], tensors, f"{prefix}expert."),
                   _projector_from_state(config["projector"], tensors, f"{prefix}projector."), config["lam"])

    def _lines_without_base(self) -> list[str]:
        config = self.projector.config
        lines = [f"{type(self).__name__}(dim={self.dim}, lam={self.lam!r})",
                 f"  projector: {config.type} {config.d_in}->{config.d_out}", "  expert:"]
        return lines + indent(self.expert._lines(), "    ")

    def _lines(self) -> list[str]:
        head, *rest = self._lines_without_base()
        return [head, "  base:", *indent(self.base._lines(), "    "), *rest, *self._calibration_line()]


class CombinationBond(_ExpertBond):
    """The expert projected into the base space and mixed in: ``z = l2(lam * l2(P(e)) + (1 - lam) * u)``.

    ``projector`` maps the expert space (``expert.dim``) to the base space (``base.dim``); it is a
    Projector, an adapter folder, or a packaged adapter name. ``expert`` may be a card name.
    """

    kind = "combination"

    def output(self, dim: int, modalities: frozenset[Modality], where: str) -> tuple[int, frozenset[Modality]]:
        if self.projector.d_in != self.expert.dim or self.projector.d_out != dim:
            raise ConfigError(f"{where}: dimension mismatch: the projector maps {self.projector.d_in}->"
                              f"{self.projector.d_out} but the expert space is {self.expert.dim}-d and the "
                              f"base space {dim}-d (a combination bond's projector maps expert -> base)")
        self._shared(modalities, where)
        return dim, modalities | self.expert.modalities

    def mix_cards(self, modality: Modality, has_base: bool) -> list[EncoderCard]:
        if modality not in self.expert.modalities or (has_base and self.lam(modality) == 0):
            return []
        return self.expert.expert_cards(modality)

    def projected(self, call: Call) -> Rows | None:
        """``l2(P(e))`` for the items, or None when the expert lacks the modality."""
        if call.modality not in self.expert.modalities:
            return None
        return _project(self.projector, self.expert._rows(call))

    def mix(self, base_rows: Rows | None, call: Call) -> Rows | None:
        lam = self.lam(call.modality)
        if base_rows is not None and (lam == 0 or call.modality not in self.expert.modalities):
            return base_rows
        projected = self.projected(call)
        if base_rows is None or projected is None:
            return projected
        return _keep(projected, base_rows) if lam == 1 else _mix(lam, projected, base_rows)


class DisplacementBond(_ExpertBond):
    """The base projected into the expert's space and mixed in: ``z = l2(lam * l2(P(u)) + (1 - lam) * e)``;
    modalities the expert lacks get the projection alone, ``l2(P(u))``.

    ``projector`` maps the base space (``base.dim``) to the expert space (``expert.dim``).
    """

    kind = "displacement"

    def output(self, dim: int, modalities: frozenset[Modality], where: str) -> tuple[int, frozenset[Modality]]:
        if self.projector.d_in != dim or self.projector.d_out != self.expert.dim:
            raise ConfigError(f"{where}: dimension mismatch: the projector maps {self.projector.d_in}->"
                              f"{self.projector.d_out} but the base space is {dim}-d and the expert space "
                              f"{self.expert.dim}-d (a displacement bond's projector maps base -> expert)")
        self._shared(modalities, where)
        return self.expert.dim, modalities | self.expert.modalities

    def mix_cards(self, modality: Modality, has_base: bool) -> list[EncoderCard]:
        if modality not in self.expert.modalities or (has_base and self.lam(modality) == 1):
            return []
        return self.expert.expert_cards(modality)

    def mix(self, base_rows: Rows | None, call: Call) -> Rows | None:
        has_expert = call.modality in self.expert.modalities
        if base_rows is None:
            return self.expert._rows(call) if has_expert else None
        if not has_expert:
            return _project(self.projector, base_rows)
        lam = self.lam(call.modality)
        if lam == 1:
            return _project(self.projector, base_rows)
        own = self.expert._rows(call)
        return _keep(own, base_rows) if lam == 0 else _mix(lam, _project(self.projector, base_rows), own)


class SequentialBond(Bond):
    """Bonds applied one after another: ``steps[0]``, then each later bond with the running result as its
    base. ``steps[0]`` may be any space (usually a bond); later steps are bonds whose base has the running
    result's dimension (their own base object only documents what their projector was trained against)."""

    kind = "sequential"

    def __init__(self, *steps: Space) -> None:
        super().__init__()
        if len(steps) == 1 and isinstance(steps[0], (list, tuple)):
            steps = tuple(steps[0])
        if len(steps) < 2:
            raise ConfigError("a SequentialBond needs at least two steps")
        for position, step in enumerate(steps[1:], start=2):
            if not isinstance(step, Bond):
                raise ConfigError(f"SequentialBond step {position} must be a bond, got {type(step).__name__}")
        if not isinstance(steps[0], Space):
            raise ConfigError(f"SequentialBond step 1 must be a space or bond, got {type(steps[0]).__name__}")
        self.steps: list[Space] = list(steps)
        dim, modalities = steps[0].dim, steps[0].modalities
        for position, step in enumerate(self.steps[1:], start=2):
            dim, modalities = step.output(dim, modalities, f"SequentialBond step {position}")  # type: ignore[attr-defined]
        self._dim, self._modalities = dim, modalities

    @property
    def base(self) -> Space:  # type: ignore[override]
        """The space the outputs live in: the first step's."""
        return self.steps[0]

    def output(self, dim: int, modalities: frozenset[Modality], where: str) -> tuple[int, frozenset[Modality]]:
        for position, step in enumerate(self.steps, start=1):
            if not isinstance(step, Bond):
                raise ConfigError(f"{where}: a SequentialBond that follows another space must be all bonds")
            dim, modalities = step.output(dim, modalities, f"{where}, step {position}")
        return dim, modalities

    def expert_cards(self, modality: Modality) -> list[EncoderCard]:
        first = self.steps[0]
        has_base = modality in first.modalities
        return (first.expert_cards(modality) if has_base else []) + self._steps_cards(self.steps[1:], modality, has_base)

    def mix_cards(self, modality: Modality, has_base: bool) -> list[EncoderCard]:
        return self._steps_cards(self.steps, modality, has_base)

    @staticmethod
    def _steps_cards(steps: Sequence[Space], modality: Modality, has_base: bool) -> list[EncoderCard]:
        cards: list[EncoderCard] = []
        for step in steps:
            assert isinstance(step, Bond)
            cards += step.mix_cards(modality, has_base)
            has_base = has_base or modality in step.modalities
        return cards

    def mix(self, base_rows: Rows | None, call: Call) -> Rows | None:
        rows = base_rows
        for step in self.steps:
            assert isinstance(step, Bond)
            rows = step.mix(rows, call)
            rows = step._correct(rows, call.modality) if rows is not None else None
        return rows

    def _encode(self, call: Call) -> Rows:
        first = self.steps[0]
        rows = first._rows(call) if call.modality in first.modalities else None
        for step in self.steps[1:]:
            assert isinstance(step, Bond)
            rows = step.mix(rows, call)
            rows = step._correct(rows, call.modality) if rows is not None else None
        assert rows is not None, "bond asked for a modality it does not embed"
        return rows

    def _has_bonds(self) -> bool:
        return True

    def _with_lams(self, lams: dict[Modality, float]) -> Space:
        out = copy.copy(self)
        out.steps = [step._with_lams(lams) for step in self.steps]
        return out

    def _node_state(self, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        steps, tensors = [], {}
        for i, step in enumerate(self.steps):
            config, part = step.state(f"{prefix}steps.{i}.")
            steps.append(config)
            tensors.update(part)
        return {"steps": steps}, tensors

    @classmethod
    def _from_node_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> Space:
        return cls(*(space_from_state(c, tensors, f"{prefix}steps.{i}.") for i, c in enumerate(config["steps"])))

    def _lines_without_base(self) -> list[str]:
        lines = [f"SequentialBond(dim={self.dim}, {len(self.steps)} steps)"]
        for position, step in enumerate(self.steps, start=1):
            assert isinstance(step, Bond)
            lines += [f"  {position}. then:", *indent(step._lines_without_base(), "     ")]
        return lines

    def _lines(self) -> list[str]:
        lines = [f"SequentialBond(dim={self.dim}, {len(self.steps)} steps)",
                 "  1.", *indent(self.steps[0]._lines(), "     ")]
        for position, step in enumerate(self.steps[1:], start=2):
            assert isinstance(step, Bond)
            lines += [f"  {position}. then, on the result so far:", *indent(step._lines_without_base(), "     ")]
        return lines + self._calibration_line()


class ParallelBond(Bond):
    """Several combination bonds over one base, their projected experts averaged before mixing.

    ``weights``: one positive number per bond (default: equal). ``lam``: None takes, per modality, the
    ``weights``-weighted mean of the members' ``lam``; a number or per-modality mapping overrides it.
    """

    kind = "parallel"

    def __init__(self, bonds: Sequence[CombinationBond], weights: Sequence[float] | None = None,
                 lam: float | Mapping[str | Modality, float] | Lams | None = None) -> None:
        super().__init__()
        bonds = list(bonds)
        if not bonds:
            raise ConfigError("a ParallelBond needs at least one bond")
        for position, bond in enumerate(bonds, start=1):
            if not isinstance(bond, CombinationBond):
                raise ConfigError(f"ParallelBond member {position} must be a CombinationBond (parallel experts are "
                                  f"projected into one shared base), got {type(bond).__name__}")
        identity = bonds[0].base.identity
        for position, bond in enumerate(bonds[1:], start=2):
            if bond.base is not bonds[0].base and bond.base.identity != identity:
                raise ConfigError(f"ParallelBond member {position} has a different base space than member 1; "
                                  "parallel bonds must share one base")
        weights = [1.0] * len(bonds) if weights is None else list(weights)
        if len(weights) != len(bonds):
            raise ConfigError(f"ParallelBond: {len(weights)} weights for {len(bonds)} bonds")
        for weight in weights:
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
                raise ConfigError(f"ParallelBond weights must be positive numbers, got {weights}")
        self.bonds, self.weights = bonds, [float(w) for w in weights]
        self.lam = Lams(lam, "ParallelBond") if lam is not None else None  # type: ignore[assignment]

    @property
    def base(self) -> Space:  # type: ignore[override]
        """The space the outputs live in: the bonds' common base."""
        return self.bonds[0].base

    @property
    def dim(self) -> int:
        return self.base.dim

    @property
    def modalities(self) -> frozenset[Modality]:
        return self.base.modalities.union(*(b.expert.modalities for b in self.bonds))

    def output(self, dim: int, modalities: frozenset[Modality], where: str) -> tuple[int, frozenset[Modality]]:
        for position, bond in enumerate(self.bonds, start=1):
            bond.output(dim, modalities, f"{where}, parallel member {position}")
        return dim, modalities.union(*(b.expert.modalities for b in self.bonds))

    def lam_for(self, modality: Modality) -> float:
        """The lam this bond mixes ``modality`` with."""
        if self.lam is not None:
            return self.lam(modality)
        covering = [(w, b) for w, b in zip(self.weights, self.bonds) if modality in b.expert.modalities]
        if not covering:
            return 0.0
        return sum(w * b.lam(modality) for w, b in covering) / sum(w for w, _ in covering)

    def mix_cards(self, modality: Modality, has_base: bool) -> list[EncoderCard]:
        covering = [b for b in self.bonds if modality in b.expert.modalities]
        if has_base and (not covering or self.lam_for(modality) == 0):
            return []
        return [card for bond in covering for card in bond.expert.expert_cards(modality)]

    def mix(self, base_rows: Rows | None, call: Call) -> Rows | None:
        covering = [(w, b) for w, b in zip(self.weights, self.bonds) if call.modality in b.expert.modalities]
        lam = self.lam_for(call.modality)
        if base_rows is not None and (not covering or lam == 0):
            return base_rows
        if not covering:
            return None
        parts = [b.projected(call) for _, b in covering]
        vectors, indices, failures = align(*parts)  # type: ignore[arg-type]
        total = sum(w for w, _ in covering)
        mixed = Rows(F.normalize(sum(w / total * v for (w, _), v in zip(covering, vectors)), dim=-1),
                     indices, failures)
        if base_rows is None:
            return mixed
        return _keep(mixed, base_rows) if lam == 1 else _mix(lam, mixed, base_rows)

    def _with_lams(self, lams: dict[Modality, float]) -> Space:
        out = copy.copy(self)
        base = self.base._with_lams(lams)
        out.bonds = []
        for bond in self.bonds:
            member = copy.copy(bond)
            member.base, member.expert = base, bond.expert._with_lams(lams)
            member.lam = bond.lam.updated(lams)
            out.bonds.append(member)
        out.lam = self.lam.updated(lams) if self.lam is not None else None  # type: ignore[assignment]
        return out

    def _node_state(self, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        base, tensors = self.base.state(f"{prefix}base.")
        members = []
        for i, bond in enumerate(self.bonds):
            expert, part = bond.expert.state(f"{prefix}bonds.{i}.expert.")
            projector, weights = _projector_state(bond.projector, f"{prefix}bonds.{i}.projector.")
            members.append({"lam": bond.lam.to_dict(), "expert": expert, "projector": projector})
            tensors.update({**part, **weights})
        return {"base": base, "bonds": members, "weights": self.weights,
                "lam": self.lam.to_dict() if self.lam is not None else None}, tensors

    @classmethod
    def _from_node_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> Space:
        base = space_from_state(config["base"], tensors, f"{prefix}base.")
        bonds = [CombinationBond(base, space_from_state(m["expert"], tensors, f"{prefix}bonds.{i}.expert."),
                                 _projector_from_state(m["projector"], tensors, f"{prefix}bonds.{i}.projector."),
                                 m["lam"]) for i, m in enumerate(config["bonds"])]
        return cls(bonds, config["weights"], config["lam"])

    def _lines_without_base(self) -> list[str]:
        lam = "members' weighted mean" if self.lam is None else repr(self.lam)
        lines = [f"ParallelBond(dim={self.dim}, {len(self.bonds)} experts, lam={lam})"]
        for weight, bond in zip(self.weights, self.bonds):
            head, *rest = bond._lines_without_base()
            lines += [f"  weight {fmt(weight)}: {head}", *rest]
        return lines

    def _lines(self) -> list[str]:
        head, *rest = self._lines_without_base()
        return [head, "  base:", *indent(self.base._lines(), "    "), *rest, *self._calibration_line()]


__all__ = ["Bond", "CombinationBond", "DisplacementBond", "Lams", "ParallelBond", "SequentialBond"]
