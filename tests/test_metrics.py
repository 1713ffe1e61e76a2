"""Retrieval metrics against hand-computed values."""
from __future__ import annotations

import pytest
import torch

from bind.eval.metrics import paired_retrieval, ranks_of_targets, recall_at


def test_ranks_and_recall_by_hand():
    similarity = torch.tensor([[0.9, 0.1, 0.5],   # correct 0 -> rank 1
                               [0.8, 0.2, 0.3],   # correct 1 -> rank 3
                               [0.1, 0.7, 0.6]])  # correct 2 -> rank 2
    ranks = ranks_of_targets(similarity, torch.tensor([0, 1, 2]))
    assert ranks.tolist() == [1, 3, 2]
    metrics = recall_at(ranks, ks=(1, 2))
    assert metrics["R@1"] == pytest.approx(1 / 3) and metrics["R@2"] == pytest.approx(2 / 3)
    assert metrics["mean_rank"] == pytest.approx(2.0) and metrics["median_rank"] == 2.0


def test_several_correct_candidates_and_ties():
    similarity = torch.tensor([[0.1, 0.5, 0.5, 0.9]])
    assert ranks_of_targets(similarity, [[1, 2]]).tolist() == [2]   # only the wrong 0.9 ranks above them
    assert ranks_of_targets(similarity, [[0, 1]]).tolist() == [3]   # the wrong 0.5 ties with 1: pessimistic
    assert ranks_of_targets(similarity, [[0, 3]]).tolist() == [1]
    with pytest.raises(ValueError, match="no correct"):
        ranks_of_targets(similarity, [[]])


def test_paired_retrieval_both_directions():
    a = torch.eye(3)
    b = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])
    metrics = paired_retrieval(a, b, ks=(1,))
    assert metrics["a2b/R@1"] == pytest.approx(1 / 3) and metrics["b2a/R@1"] == pytest.approx(1 / 3)
    assert paired_retrieval(a, a, ks=(1,))["a2b/R@1"] == 1.0


def test_grouped_retrieval_equals_paired_when_targets_are_distinct():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(50, 8, generator=g), dim=-1)
    b = torch.nn.functional.normalize(a + 0.8 * torch.randn(50, 8, generator=g), dim=-1)
    plain = paired_retrieval(a, b)
    assert plain["a2b/R@1"] < 1.0 and plain == paired_retrieval(a, b, group_b=True)


def test_grouped_retrieval_counts_any_row_with_the_same_target():
    captions = torch.eye(3)
    b = captions[[0, 0, 1, 2, 2, 2]]   # six items, three captions
    a = b.clone()                      # a perfect projector: every item lands on its caption
    plain = paired_retrieval(a, b, ks=(1,))
    assert plain["a2b/R@1"] == pytest.approx(1 / 6) and plain["b2a/R@1"] == pytest.approx(1 / 6)  # ties miss
    grouped = paired_retrieval(a, b, ks=(1,), group_b=True)
    assert grouped["a2b/R@1"] == 1.0 and grouped["b2a/R@1"] == 1.0
    assert grouped["a2b/mean_rank"] == 1.0 and grouped["b2a/mean_rank"] == 1.0

    # item 0 misplaced onto caption 1: it ranks caption 0 third (tied with caption 2, pessimistic); caption 0
    # still finds item 1 first, caption 1 ties item 2 with item 0 (rank 2)
    a[0] = captions[1]
    grouped = paired_retrieval(a, b, ks=(1,), group_b=True)
    assert grouped["a2b/R@1"] == pytest.approx(5 / 6) and grouped["a2b/mean_rank"] == pytest.approx(8 / 6)
    assert grouped["b2a/R@1"] == pytest.approx(2 / 3) and grouped["b2a/mean_rank"] == pytest.approx(4 / 3)
