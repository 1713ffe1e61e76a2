"""Retrieval metrics over a query-by-candidate similarity matrix (one rule: cosine of unit vectors)."""
from __future__ import annotations

from collections.abc import Sequence

import torch


def ranks_of_targets(similarity: torch.Tensor, targets: Sequence[Sequence[int]] | torch.Tensor) -> torch.Tensor:
    """The 1-based rank of the best-ranked correct candidate for every query.

    ``similarity``: ``[Q, C]``; ``targets``: the correct candidate indices of each query (one or several),
    or a ``[Q]`` tensor with one index per query. Ties with wrong candidates count against the query (pessimistic).
    """
    if isinstance(targets, torch.Tensor):  # one correct candidate per query: vectorised
        best = similarity.gather(1, targets.long().view(-1, 1))
        return (similarity >= best).sum(dim=1)
    if len(targets) != similarity.shape[0]:
        raise ValueError(f"{len(targets)} target lists for {similarity.shape[0]} queries")
    ranks = torch.empty(similarity.shape[0], dtype=torch.long)
    for q, correct in enumerate(targets):
        if not correct:
            raise ValueError(f"query {q} has no correct candidate")
        wrong = torch.ones(similarity.shape[1], dtype=torch.bool)
        wrong[list(correct)] = False
        best = similarity[q, list(correct)].max()
        ranks[q] = 1 + int((similarity[q, wrong] >= best).sum())
    return ranks


def recall_at(ranks: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@k: the fraction of queries whose first correct candidate is within the top k; plus mean/median rank."""
    out = {f"R@{k}": float((ranks <= k).float().mean()) for k in ks}
    out["mean_rank"] = float(ranks.float().mean())
    out["median_rank"] = float(ranks.float().median())
    return out


def paired_retrieval(a: torch.Tensor, b: torch.Tensor, ks: Sequence[int] = (1, 5, 10), *,
                     group_b: bool = False) -> dict[str, float]:
    """Both directions for row-aligned pairs ``a[i] <-> b[i]`` (unit vectors): keys ``a2b/R@1`` ... ``b2a/...``.

    By default row i of each side is the only match of row i. With ``group_b`` the rows whose ``b`` vectors
    are identical (exact equality, e.g. several items paired with one caption) are one class, as ``bind eval``
    scores a manifest with repeated targets: a2b ranks the distinct ``b`` vectors and a hit is the query's own;
    b2a has one query per distinct ``b`` vector, ranking all of ``a``, and a hit is any row of its class. Only
    ``b`` is grouped, so use it when ``b`` is a fixed target (identical learned outputs must not merge).
    When all ``b`` rows are distinct both ways give the same numbers.
    """
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"paired retrieval needs aligned rows, got {a.shape[0]} and {b.shape[0]}")
    similarity = (a.float() @ b.float().T).cpu()
    rows = torch.arange(a.shape[0])
    if group_b:  # one column per distinct b (its first row); query i's target is its class
        distinct, group = torch.unique(b, dim=0, return_inverse=True)
        group = group.cpu()
        first = torch.full((len(distinct),), len(group)).scatter_reduce(0, group, rows, "amin")
        members: list[list[int]] = [[] for _ in first]
        for i, g in enumerate(group.tolist()):
            members[g].append(i)
        a2b, b2a = ranks_of_targets(similarity[:, first], group), ranks_of_targets(similarity.T[first], members)
    else:
        a2b, b2a = ranks_of_targets(similarity, rows), ranks_of_targets(similarity.T, rows)
    out = {f"a2b/{k}": v for k, v in recall_at(a2b, ks).items()}
    out.update({f"b2a/{k}": v for k, v in recall_at(b2a, ks).items()})
    return out
