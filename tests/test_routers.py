# ruff: noqa: F811  (the fixtures imported from test_space are requested by name)
"""Routers: weights are a distribution per query, routed embeddings follow z = l2(sum_s w_s c_s), routed
spaces save/load exactly, bad configurations fail at build time, and a router trained for real on a toy task
(a few hundred steps, CPU) learns to pick the informative space; the toy recipe runs through `bind train`."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from test_space import image, register_table, tables  # noqa: F401 - fixtures

import bind
from bind.spaces import AnchorSpace, ExpertPath, load_space
from bind.spaces.projectors import build_projector
from bind.spaces.routed import RoutedSpace, Router
from bind.train.router import RouterModule, ToyRouting, uniformity

ROOT = Path(__file__).resolve().parents[1]


def test_router_weights_are_a_distribution():
    torch.manual_seed(0)
    router = Router(8, 3, hidden=16, bottleneck=4).eval()
    w = router(torch.randn(10, 8))
    assert w.shape == (10, 3) and (w > 0).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(10))
    assert (w.max(dim=1).values / w.min(dim=1).values).max() <= math.e + 1e-5  # softmax of sigmoid: soft weights
    masked = router(torch.randn(4, 8), torch.tensor([True, False, True]))
    assert (masked[:, 1] == 0).all()
    torch.testing.assert_close(masked.sum(dim=1), torch.ones(4))
    with pytest.raises(bind.ConfigError, match=r"features \[batch, 8\]"):
        router(torch.randn(2, 5))
    with pytest.raises(bind.ConfigError, match="positive integer"):
        Router(0, 2)


@pytest.fixture(scope="module")
def routed(tables):
    """Two 4-d candidates for text and image (the second has no image path); an image router on 5-d features."""
    g = torch.Generator().manual_seed(5)
    second_text = register_table("table-v-text.test", "text", torch.randn(6, 4, generator=g))
    first = AnchorSpace({"text": tables["u-text"][0], "image": tables["u-image"][0]})
    second = AnchorSpace({"text": second_text})
    torch.manual_seed(0)
    router = Router(5, 2, expert=tables["u-image-raw"][0], hidden=16, bottleneck=4)
    text_router = Router(4, 2, expert=tables["u-text"][0], hidden=16, bottleneck=4)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval-mode routing is not just the init
        router.train()(torch.randn(32, 5))
        text_router.train()(torch.randn(32, 4))
    yield RoutedSpace([first, second], {"image": router, "text": text_router}), first, second
    bind.unregister_encoder(second_text)


def test_routed_space_mixes_candidates_with_the_router_weights(routed, tables):
    space, first, second = routed
    _, raw = tables["u-image-raw"]
    _, text_features = tables["u-text"]
    texts = ["item 1", "item 4"]
    w = space.route_weights(texts)
    expected_w = space.routers[bind.Modality.TEXT](F.normalize(text_features[[1, 4]], dim=-1))
    torch.testing.assert_close(w, expected_w)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(2))
    want = F.normalize(w[:, :1] * first.embed(texts) + w[:, 1:] * second.embed(texts), dim=-1)
    torch.testing.assert_close(space.embed(texts), want)
    # only the first candidate embeds images: it gets all the weight, whatever the router says
    torch.testing.assert_close(space.route_weights(image(2)), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(space.embed(image(2)), first.embed(image(2)))
    mixed = space.route_weights([image(0), "item 2"])
    torch.testing.assert_close(mixed[1], space.route_weights("item 2"))
    assert "text: router on table-u-text.test features (4-d)" in repr(space)
    assert raw.shape[1] == 5


def test_modality_without_router_averages_its_candidates(tables):
    first = AnchorSpace({"text": tables["u-text"][0]})
    second = AnchorSpace({"text": ExpertPath(tables["e-text"][0], build_projector({"type": "linear", "d_in": 3,
                                                                                 "d_out": 4}))})
    space = RoutedSpace([first, second])
    torch.testing.assert_close(space.route_weights(["item 1"]), torch.tensor([[0.5, 0.5]]))
    want = F.normalize(0.5 * first.embed("item 1") + 0.5 * second.embed("item 1"), dim=0)
    torch.testing.assert_close(space.embed("item 1"), want)


def test_routed_space_round_trip(routed, tmp_path):
    space, _, _ = routed
    items = ["item 0", image(3), "item 5"]
    loaded = load_space(space.save(tmp_path / "routed"))
    assert torch.equal(loaded.embed(items), space.embed(items))
    assert torch.equal(loaded.route_weights(items), space.route_weights(items))
    assert loaded.identity == space.identity


def test_bad_routed_spaces_fail_at_build_time(tables):
    text4 = AnchorSpace({"text": tables["u-text"][0]})
    text3 = AnchorSpace({"text": tables["e-text"][0]})
    with pytest.raises(bind.ConfigError, match="dimension mismatch"):
        RoutedSpace([text4, text3])
    with pytest.raises(bind.ConfigError, match="weighs 3 spaces, but there are 2"):
        RoutedSpace([text4, text4], {"text": Router(4, 3, expert=tables["u-text"][0])})
    with pytest.raises(bind.ConfigError, match="names no expert"):
        RoutedSpace([text4, text4], {"text": Router(4, 2)})
    with pytest.raises(bind.ConfigError, match="gives 5-d image features"):
        RoutedSpace([text4, text4], {"text": Router(5, 2, expert=tables["u-image-raw"][0])})
    with pytest.raises(bind.ConfigError, match="no candidate space embeds image"):
        RoutedSpace([text4, text4], {"image": Router(5, 2, expert=tables["u-image-raw"][0])})


def test_uniformity_is_lower_for_spread_rows():
    close = F.normalize(torch.ones(4, 3) + 0.01 * torch.randn(4, 3), dim=-1)
    spread = torch.eye(3)
    assert uniformity(spread) < uniformity(close)


def _evaluate(module: RouterModule, data: ToyRouting) -> tuple[float, float]:
    """(val R@1 image<->text mean, mean image-router weight on the informative space)."""
    image_c, image_f, text_c, text_f, informative = data.splits["val"]
    module.eval()
    with torch.no_grad():
        z_a, z_b = module((image_c, image_f, text_c, text_f))
        sim = z_a @ z_b.T
        target = torch.arange(len(sim))
        recall = ((sim.argmax(1) == target).float().mean() + (sim.argmax(0) == target).float().mean()) / 2
        weights = module.weights(bind.Modality.IMAGE, image_f, len(image_f))
    module.train()
    return float(recall), float(weights[torch.arange(len(weights)), informative].mean())


def test_a_trained_router_picks_the_informative_space(tables, tmp_path):
    """4 candidate spaces, one informative per image (its features say which): equal weights give 0.25 to it;
    the best a softmax-of-sigmoid router can give is e / (e + 3) = 0.475."""
    L.seed_everything(0)
    data = ToyRouting(train_size=1024, val_size=256, num_spaces=4, dim=16, feature_dim=8, noise=0.5, batch_size=64)
    data.setup()
    module = RouterModule(4, data.router_dims, data.modalities, hidden=32, bottleneck=8, lr=3e-3,
                          experts={"image": "toy-image-features.test", "text": "toy-text-features.test"})
    before_recall, before_weight = _evaluate(module, data)
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is ~100x faster than two contended ones
    try:
        trainer.fit(module, datamodule=data)  # 16 steps an epoch: 320 steps
    finally:
        torch.set_num_threads(threads)
    after_recall, after_weight = _evaluate(module, data)
    assert before_weight < 0.3 and after_weight > 0.42, (before_weight, after_weight)
    assert after_recall > before_recall + 0.1, (before_recall, after_recall)

    # the trained routers inside a RoutedSpace: per-query weights over real (table) candidate spaces
    image_c, image_f, text_c, text_f, informative = (t[:32] for t in data.splits["val"])
    names = [register_table("toy-image-features.test", "image", image_f),
             register_table("toy-text-features.test", "text", text_f)]
    candidates = []
    for s in range(4):
        names += [register_table(f"toy-image-{s}.test", "image", image_c[:, s]),
                  register_table(f"toy-text-{s}.test", "text", text_c[:, s])]
        candidates.append(AnchorSpace({"image": names[-2], "text": names[-1]}))
    try:
        space = module.routed_space(candidates)
        items = [image(i) for i in range(32)]
        weights = space.route_weights(items)
        assert (weights.argmax(dim=1) == informative).float().mean() > 0.9
        with torch.no_grad():
            expected = module.route(bind.Modality.IMAGE, image_c, image_f)
        torch.testing.assert_close(space.embed(items), expected, atol=1e-5, rtol=1e-5)
    finally:
        for name in names:
            bind.unregister_encoder(name)


def test_router_recipe_runs_through_bind_train(tmp_path, capsys, monkeypatch):
    from bind.apps.cli import main

    monkeypatch.setattr(sys, "argv", ["bind"])  # LightningCLI parses only the given arguments
    code = main(["train", str(ROOT / "recipes" / "router_toy.yaml"), "--trainer.max_epochs", "1",
                 "--trainer.limit_train_batches", "2", "--trainer.default_root_dir", str(tmp_path)])
    assert code == 0
    assert '"val/R@1"' in capsys.readouterr().out
