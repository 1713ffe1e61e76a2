# ruff: noqa: F811  (the fixtures imported from test_space are requested by name)
"""Bond arithmetic against hand-computed values (FreeBind formulas), lam extremes, nesting, per-modality
weights and presets, save/load of nested bonds, and build-time errors.

Base space U: table experts for text and image (4-d). Expert space E: text and points (3-d).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_space import base, cloud, image, register_table, tables  # noqa: F401 - fixtures

import bind
from bind.spaces import AnchorSpace, load_space
from bind.spaces.bonds import CombinationBond, DisplacementBond, ParallelBond, SequentialBond
from bind.spaces.projectors import build_projector

TEXT = ["item 0", "item 3", "item 5"]


def l2(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def linear(d_in: int, d_out: int, seed: int):
    projector = build_projector({"type": "linear", "d_in": d_in, "d_out": d_out})
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        projector.net.weight.copy_(torch.randn(d_out, d_in, generator=g))
        projector.net.bias.copy_(torch.randn(d_out, generator=g) * 0.1)
    return projector.eval()


def apply(projector, x: torch.Tensor) -> torch.Tensor:
    """``l2(P(x))`` by hand: ``l2(x W^T + b)``."""
    return l2(x @ projector.net.weight.detach().T + projector.net.bias.detach())


@pytest.fixture(scope="module")
def expert(tables) -> AnchorSpace:
    return AnchorSpace({"text": tables["e-text"][0], "points": tables["e-points"][0]})


@pytest.fixture(scope="module")
def vec(tables):
    """Unit table rows by key, for hand computation."""
    return {key: l2(table) for key, (_, table) in tables.items()}


def test_combination_bond_matches_the_formula(base, expert, vec):
    p = linear(3, 4, seed=1)
    bond = CombinationBond(base, expert, p, lam=0.3)
    assert bond.dim == 4 and bond.modalities == {bind.Modality.TEXT, bind.Modality.IMAGE, bind.Modality.POINTS}
    rows = [0, 3, 5]
    want_text = l2(0.3 * apply(p, vec["e-text"][rows]) + 0.7 * vec["u-text"][rows])
    torch.testing.assert_close(bond.embed(TEXT), want_text)
    torch.testing.assert_close(bond.embed(image(2)), vec["u-image"][2])  # only the base has images
    torch.testing.assert_close(bond.embed(cloud(4)), apply(p, vec["e-points"][4]))  # only the expert has points
    mixed = bond.embed([cloud(1), "item 3", image(0)])  # one mixed call, input order kept
    torch.testing.assert_close(mixed, torch.stack([apply(p, vec["e-points"][1]), want_text[1], vec["u-image"][0]]))


def test_combination_lam_extremes(base, expert, vec):
    p = linear(3, 4, seed=1)
    assert torch.equal(CombinationBond(base, expert, p, lam=0.0).embed(TEXT), base.embed(TEXT))
    torch.testing.assert_close(CombinationBond(base, expert, p, lam=1.0).embed(TEXT),
                               apply(p, vec["e-text"][[0, 3, 5]]))


def test_displacement_bond_matches_the_formula(base, expert, vec):
    p = linear(4, 3, seed=2)
    bond = DisplacementBond(base, expert, p, lam=0.4)
    assert bond.dim == 3
    rows = [0, 3, 5]
    want = l2(0.4 * apply(p, vec["u-text"][rows]) + 0.6 * vec["e-text"][rows])
    torch.testing.assert_close(bond.embed(TEXT), want)
    torch.testing.assert_close(bond.embed(image(2)), apply(p, vec["u-image"][2]))  # projection alone
    torch.testing.assert_close(bond.embed(cloud(4)), vec["e-points"][4])
    assert torch.equal(DisplacementBond(base, expert, p, lam=0.0).embed(TEXT), expert.embed(TEXT))
    torch.testing.assert_close(DisplacementBond(base, expert, p, lam=1.0).embed(TEXT), apply(p, vec["u-text"][rows]))


def test_sequential_bond_applies_bonds_in_order(base, expert, vec):
    p1, p2 = linear(3, 4, seed=1), linear(3, 4, seed=3)
    chain = SequentialBond(CombinationBond(base, expert, p1, lam=0.3), CombinationBond(base, expert, p2, lam=0.6))
    rows = [0, 3, 5]
    first = l2(0.3 * apply(p1, vec["e-text"][rows]) + 0.7 * vec["u-text"][rows])
    torch.testing.assert_close(chain.embed(TEXT), l2(0.6 * apply(p2, vec["e-text"][rows]) + 0.4 * first))
    # points: only the experts have them, so step 1 gives l2(P1 e); step 2 mixes P2 e into that result
    points = l2(0.6 * apply(p2, vec["e-points"][2]) + 0.4 * apply(p1, vec["e-points"][2]))
    torch.testing.assert_close(chain.embed(cloud(2)), points)


def test_parallel_bond_weights_the_projected_experts(base, expert, vec):
    p1, p2 = linear(3, 4, seed=1), linear(3, 4, seed=3)
    b1, b2 = CombinationBond(base, expert, p1, lam=0.2), CombinationBond(base, expert, p2, lam=0.6)
    parallel = ParallelBond([b1, b2], weights=[1, 3])
    rows = [0, 3, 5]
    mixed = l2(0.25 * apply(p1, vec["e-text"][rows]) + 0.75 * apply(p2, vec["e-text"][rows]))
    lam = 0.25 * 0.2 + 0.75 * 0.6
    assert parallel.lam_for(bind.Modality.TEXT) == pytest.approx(lam)
    torch.testing.assert_close(parallel.embed(TEXT), l2(lam * mixed + (1 - lam) * vec["u-text"][rows]))
    fixed = ParallelBond([b1, b2], weights=[1, 3], lam=0.5)
    torch.testing.assert_close(fixed.embed(TEXT), l2(0.5 * mixed + 0.5 * vec["u-text"][rows]))
    torch.testing.assert_close(ParallelBond([b1]).embed(TEXT), b1.embed(TEXT))  # one member: the bond itself


def test_nesting_sequential_over_parallel_then_displacement(base, expert, vec, tmp_path):
    p1, p2, p3 = linear(3, 4, seed=1), linear(3, 4, seed=3), linear(4, 3, seed=4)
    parallel = ParallelBond([CombinationBond(base, expert, p1, 0.5), CombinationBond(base, expert, p2, 0.5)])
    chain = SequentialBond(parallel, DisplacementBond(base, expert, p3, lam=0.25))
    assert chain.dim == 3
    rows = [0, 3, 5]
    mixed = l2(0.5 * apply(p1, vec["e-text"][rows]) + 0.5 * apply(p2, vec["e-text"][rows]))
    first = l2(0.5 * mixed + 0.5 * vec["u-text"][rows])
    want = l2(0.25 * apply(p3, first) + 0.75 * vec["e-text"][rows])
    torch.testing.assert_close(chain.embed(TEXT), want)
    torch.testing.assert_close(chain.embed(image(1)), apply(p3, vec["u-image"][1]))
    text = repr(chain)
    assert "SequentialBond(dim=3, 2 steps)" in text and "ParallelBond(dim=4, 2 experts" in text
    assert "then, on the result so far:" in text and "DisplacementBond(dim=3, lam=0.25)" in text
    loaded = load_space(chain.save(tmp_path / "chain"))
    items = TEXT + [image(1), cloud(3)]
    assert torch.equal(loaded.embed(items), chain.embed(items))
    assert loaded.identity == chain.identity
    assert repr(loaded) == text


def test_with_weights_sets_lam_per_modality_without_retraining(base, expert, vec):
    p = linear(3, 4, seed=1)
    bond = CombinationBond(base, expert, p, lam=0.5)
    light = bond.with_weights(text=0.1)
    torch.testing.assert_close(light.embed(TEXT), CombinationBond(base, expert, p, lam=0.1).embed(TEXT))
    torch.testing.assert_close(light.embed(cloud(1)), bond.embed(cloud(1)))
    assert bond.lam(bind.Modality.TEXT) == 0.5  # the original is unchanged
    versatile = bond.with_weights("versatile")
    assert versatile.lam(bind.Modality.TEXT) == 0.1 and versatile.lam(bind.Modality.AUDIO) == 0.5
    expert_preset = bond.with_weights("expert", text=0.7)  # keywords override the preset
    assert expert_preset.lam(bind.Modality.AUDIO) == 0.8 and expert_preset.lam(bind.Modality.TEXT) == 0.7
    assert "lam=audio 0.5, text 0.1, other 0.5" in repr(versatile)
    assert versatile.identity != bond.identity
    chain = SequentialBond(bond, CombinationBond(base, expert, linear(3, 4, seed=3), 0.9)).with_weights(text=0.0)
    assert torch.equal(chain.embed(TEXT), base.embed(TEXT))  # lam 0 in every step: the base exactly
    with pytest.raises(bind.ConfigError, match="unknown preset"):
        bond.with_weights("loud")
    with pytest.raises(bind.ConfigError, match=r"lam must be a number in \[0, 1\]"):
        bond.with_weights(text=1.2)
    with pytest.raises(bind.ConfigError, match="no bonds"):
        base.with_weights(text=0.1)
    with pytest.raises(bind.ConfigError, match="unknown modality"):
        bond.with_weights(smell=0.1)


def test_bad_bonds_fail_at_build_time(base, expert, tables):
    with pytest.raises(bind.ConfigError, match="dimension mismatch: the projector maps 4->3"):
        CombinationBond(base, expert, linear(4, 3, seed=0))
    with pytest.raises(bind.ConfigError, match="dimension mismatch: the projector maps 3->4"):
        DisplacementBond(base, expert, linear(3, 4, seed=0))
    points_only = AnchorSpace({"points": tables["e-points"][0]})
    with pytest.raises(bind.ConfigError, match="share no modality"):
        CombinationBond(base, points_only, linear(3, 4, seed=0))
    for lam in (-0.1, 1.5, "high"):
        with pytest.raises(bind.ConfigError, match=r"lam must be a number in \[0, 1\]"):
            CombinationBond(base, expert, linear(3, 4, seed=0), lam=lam)
    with pytest.raises(bind.ConfigError, match=r"lam must be a number in \[0, 1\]"):
        CombinationBond(base, expert, linear(3, 4, seed=0), lam={"text": 2.0})
    other_base = AnchorSpace({"text": tables["u-text"][0]})
    b1 = CombinationBond(base, expert, linear(3, 4, seed=0))
    with pytest.raises(bind.ConfigError, match="different base space"):
        ParallelBond([b1, CombinationBond(other_base, expert, linear(3, 4, seed=0))])
    with pytest.raises(bind.ConfigError, match="must be a CombinationBond"):
        ParallelBond([b1, DisplacementBond(base, expert, linear(4, 3, seed=0))])
    with pytest.raises(bind.ConfigError, match="weights must be positive"):
        ParallelBond([b1], weights=[0])
    with pytest.raises(bind.ConfigError, match="step 2 must be a bond"):
        SequentialBond(b1, base)
    displaced = DisplacementBond(base, expert, linear(4, 3, seed=0))
    with pytest.raises(bind.ConfigError, match="SequentialBond step 2: dimension mismatch"):
        SequentialBond(displaced, b1)  # b1 expects a 4-d base, the running result is 3-d


def test_expert_may_be_a_card_name(base, tables, vec):
    p = linear(3, 4, seed=1)
    bond = CombinationBond(base, tables["e-text"][0], p, lam=1.0)
    torch.testing.assert_close(bond.embed("item 2"), apply(p, vec["e-text"][2]))


def test_a_batch_whose_items_all_fail_is_reported_not_crashing(tmp_path):
    """Every path of a bond sees an empty block; the failures come back, no dimension clash."""
    from bind.spaces.presets import bridge_space

    bond = CombinationBond(bridge_space(), AnchorSpace.from_expert("efficientnet-lite0.image"),
                           bind.build_projector({"type": "linear", "d_in": 1280, "d_out": 384}), lam=0.5)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = bond.embed([str(broken)], on_error="skip")
    assert result.embeddings.shape == (0, 384) and [f.index for f in result.failures] == [0]
