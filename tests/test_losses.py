"""Training losses: InfoNCE against hand values, temperature clamping, FuseMix pairing, STRUCTURE (JS) and the
combined loss."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import bind
from bind.train import AlignmentLoss, InfoNCE, IntraLoss, StructureLoss, fusemix, js_divergence


def test_infonce_matches_a_hand_computation():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    t = 0.5
    # similarities a b^T = [[1, 0.6], [0, 0.8]]; logits = sims / t
    rows = [-math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(1.2))),
            -math.log(math.exp(1.6) / (math.exp(0.0) + math.exp(1.6)))]
    cols = [-math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.0))),
            -math.log(math.exp(1.6) / (math.exp(1.2) + math.exp(1.6)))]
    expected = (sum(rows) / 2 + sum(cols) / 2) / 2
    loss = InfoNCE(init_temperature=t)(a, b)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # inputs are l2-normalised first
    assert InfoNCE(init_temperature=t)(3 * a, 2 * b).item() == pytest.approx(expected, rel=1e-6)


def test_infonce_is_symmetric_and_lower_for_aligned_pairs():
    torch.manual_seed(0)
    a = F.normalize(torch.randn(16, 8), dim=-1)
    b = F.normalize(torch.randn(16, 8), dim=-1)
    loss = InfoNCE()
    assert loss(a, b).item() == pytest.approx(loss(b, a).item(), rel=1e-6)
    assert loss(a, a).item() < 0.1 < loss(a, b).item()


def test_temperature_is_learnable_and_clamped():
    loss = InfoNCE(init_temperature=0.07, min=0.01, max=0.2)
    assert loss.temperature.item() == pytest.approx(0.07)
    assert loss.log_temperature.requires_grad
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    loss(a, b).backward()
    assert loss.log_temperature.grad is not None and loss.log_temperature.grad != 0
    with torch.no_grad():
        loss.log_temperature.fill_(math.log(5.0))
    loss(a, b)
    assert loss.temperature.item() == pytest.approx(0.2)
    with torch.no_grad():
        loss.log_temperature.fill_(math.log(1e-6))
    loss(a, b)
    assert loss.temperature.item() == pytest.approx(0.01)
    fixed = InfoNCE(learnable=False)
    assert not list(fixed.parameters()) and fixed.temperature.item() == pytest.approx(0.07)
    with pytest.raises(bind.ConfigError, match="min <= init_temperature <= max"):
        InfoNCE(init_temperature=0.9)


def test_fusemix_mixes_both_sides_with_the_same_lambda_and_permutation():
    a = torch.randn(10, 4)
    b = 2 * a[:, :3] + 1  # an affine function of a: it commutes with a convex mix only if lam and perm match
    mixed_a, mixed_b = fusemix(a, b, alpha=0.4, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(mixed_b, 2 * mixed_a[:, :3] + 1)
    assert not torch.allclose(mixed_a, a), "something was mixed"
    # lam a + (1 - lam) a[perm] keeps the column sums when perm is a permutation
    torch.testing.assert_close(mixed_a.sum(dim=0), a.sum(dim=0))


def test_fusemix_is_reproducible_with_a_generator():
    a, b = torch.randn(6, 3), torch.randn(6, 5)
    first = fusemix(a, b, generator=torch.Generator().manual_seed(7))
    second = fusemix(a, b, generator=torch.Generator().manual_seed(7))
    other = fusemix(a, b, generator=torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(first, second))
    assert not torch.equal(first[0], other[0])
    with pytest.raises(bind.ConfigError, match="same batch size"):
        fusemix(a, b[:5])
    with pytest.raises(bind.ConfigError, match="alpha must be > 0"):
        fusemix(a, b, alpha=0)


def test_js_divergence_hand_value_symmetry_and_zero():
    p = torch.tensor([[1.0, 0.0]])
    q = torch.tensor([[0.0, 1.0]])
    assert js_divergence(p, q).item() == pytest.approx(math.log(2))  # disjoint supports: the maximum, ln 2
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    q = torch.tensor([[0.9, 0.1], [0.9, 0.1]])
    m = [0.7, 0.3]
    row0 = 0.5 * (0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1])) \
        + 0.5 * (0.9 * math.log(0.9 / m[0]) + 0.1 * math.log(0.1 / m[1]))
    assert js_divergence(p, q).item() == pytest.approx(row0 / 2, rel=1e-5)  # second row: identical, 0
    assert js_divergence(q, p).item() == pytest.approx(js_divergence(p, q).item(), rel=1e-6)
    r = torch.softmax(torch.randn(5, 5), dim=-1)
    assert js_divergence(r, r).item() == pytest.approx(0.0, abs=1e-7)


def test_structure_loss_is_zero_for_a_similarity_preserving_projection():
    torch.manual_seed(0)
    frozen = torch.randn(12, 6)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6))
    structure = StructureLoss(tau=0.1)
    assert structure(frozen, 3 * frozen @ rotation).item() == pytest.approx(0.0, abs=1e-6)
    assert structure(frozen, torch.randn(12, 4)).item() > 0.01


def test_structure_loss_matches_its_formula_and_trains_only_the_projection():
    frozen = torch.randn(5, 4, requires_grad=True)
    projected = torch.randn(5, 3, requires_grad=True)
    structure = StructureLoss(tau=0.2)

    def neighbourhoods(z):
        z = F.normalize(z, dim=-1)
        z = z - z.mean(0)
        return torch.softmax(z @ z.T / 0.2, dim=-1)

    expected = js_divergence(neighbourhoods(frozen), neighbourhoods(projected))
    value = structure(frozen, projected)
    torch.testing.assert_close(value, expected)
    value.backward()
    assert frozen.grad is None and projected.grad.abs().sum() > 0


def test_structure_weight_warms_up_linearly():
    structure = StructureLoss(weight=10, warmup_steps=1000)
    assert [structure.weight_at(s) for s in (0, 250, 500, 1000, 5000)] == [0.0, 2.5, 5.0, 10.0, 10.0]
    assert StructureLoss(weight=4, warmup_steps=0).weight_at(0) == 4.0
    with pytest.raises(bind.ConfigError, match="tau must be > 0"):
        StructureLoss(tau=0)


def test_intra_loss_is_two_minus_two_cosine():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    expected = ((2 - 2 * math.cos(math.pi / 4)) + 0.0) / 2
    assert IntraLoss()(x, y).item() == pytest.approx(expected, rel=1e-6)


def test_alignment_loss_combines_the_switched_on_terms():
    torch.manual_seed(0)
    frozen, projected, anchor = torch.randn(8, 6), F.normalize(torch.randn(8, 4), dim=-1), torch.randn(8, 4)
    plain = AlignmentLoss()
    total, parts = plain(projected, anchor)
    assert set(parts) == {"infonce", "temperature", "total"}
    torch.testing.assert_close(total, InfoNCE()(projected, anchor))

    full = AlignmentLoss(structure=True, structure_weight=10, structure_warmup_steps=100, intra=True,
                         intra_weight=0.5)
    total, parts = full(projected, anchor, frozen=frozen, step=50)
    assert set(parts) == {"infonce", "temperature", "structure", "structure_weight", "intra", "total"}
    assert parts["structure_weight"].item() == 5.0
    expected = parts["infonce"] + 5.0 * parts["structure"] + 0.5 * parts["intra"]
    torch.testing.assert_close(total.detach(), expected)
    assert total.requires_grad and not parts["total"].requires_grad
    with pytest.raises(bind.ConfigError, match="needs the frozen source features"):
        full(projected, anchor)


def test_training_with_the_combined_loss_aligns_pairs():
    from bind.spaces.projectors import build_projector

    torch.manual_seed(0)
    source = torch.randn(32, 6)
    anchor = F.normalize(source @ torch.randn(6, 5), dim=-1)
    projector = build_projector({"type": "linear", "d_in": 6, "d_out": 5})
    loss = AlignmentLoss(structure=True, structure_warmup_steps=10, intra=True)
    optimiser = torch.optim.Adam([*projector.parameters(), *loss.parameters()], lr=0.05)
    first = None
    for step in range(60):
        total, parts = loss(projector(source), anchor, frozen=source, step=step)
        first = parts["infonce"].item() if first is None else first
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
    assert parts["infonce"].item() < first / 2
    ranks = (projector(source) @ anchor.T).argmax(dim=-1)
    assert (ranks == torch.arange(32)).float().mean() > 0.9
