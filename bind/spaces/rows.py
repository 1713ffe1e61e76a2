"""Rows: the embeddings of the items of one call that succeeded, where they sit, and the failures."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from ..errors import InputError


@dataclasses.dataclass
class Rows:
    """Embeddings ``[len(indices), d]`` of the items at ``indices`` (positions in one call's list)."""

    embeddings: torch.Tensor
    indices: list[int]
    failures: list[InputError]

    def take(self, indices: Sequence[int]) -> torch.Tensor:
        """The rows of ``indices`` (each must be present)."""
        where = {index: row for row, index in enumerate(self.indices)}
        return self.embeddings[[where[i] for i in indices]] if indices else self.embeddings[:0]

    def replace(self, embeddings: torch.Tensor) -> Rows:
        return Rows(embeddings, self.indices, self.failures)


def align(*parts: Rows) -> tuple[list[torch.Tensor], list[int], list[InputError]]:
    """The rows of the items every part embedded, in the same order, and the union of the failures."""
    common = sorted(set.intersection(*(set(p.indices) for p in parts)))
    failures: dict[int, InputError] = {}
    for part in parts:
        for failure in part.failures:
            failures.setdefault(failure.index if failure.index is not None else -1, failure)
    return [p.take(common) for p in parts], common, [failures[i] for i in sorted(failures)]
