"""AnchorSpace: mixed-modality embed in input order, paths and their input normalisation, gap correction and
compose math, save -> load -> identical embeddings and identity, build-time errors; and one realistic space
(MiniLM text + EfficientNet-Lite0 logits through the label bridge) on real photos.

The hand-computed tests use "table" experts: user-registered encoders that look each item up in a fixed
table (text "item 3" -> row 3; an image or a point cloud whose first value is 3 -> row 3).
"""
from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bind
from bind.assets import load_manifest
from bind.spaces import AnchorSpace, ExpertPath, Space, load_space
from bind.spaces.bridges import LabelBridge
from bind.spaces.projectors import build_projector

l2 = F.normalize
ROWS = 6


def lookup(item: Any) -> int:
    """The table row of an item (picklable: runs in DataLoader workers)."""
    if isinstance(item, str):
        word, _, number = item.partition(" ")
        if word != "item" or not number.isdigit():
            raise bind.InputError(item, "not a table item ('item N')")
        return int(number)
    return int(np.asarray(item).flat[0])


class TableEncoder(bind.Encoder):
    """A fixed expert: item -> a row of ``TABLES[card.name]``."""

    TABLES: ClassVar[dict[str, torch.Tensor]] = {}

    def __init__(self, card: bind.EncoderCard, pretrained: bool = True) -> None:
        super().__init__(card)
        self.register_buffer("table", TableEncoder.TABLES[card.name])

    def preprocessor(self):
        return lookup

    def collate(self, samples):
        return torch.tensor(list(samples))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.table[batch]


def register_table(name: str, modality: str, table: torch.Tensor) -> str:
    TableEncoder.TABLES[name] = table.float()
    bind.register_encoder({"name": name, "modality": modality, "dim": table.shape[1], "backend": "test_table",
                           "model_id": "table", "licence": "MIT", "weights": "a fixed table in the tests"},
                          backend=TableEncoder, overwrite=True)
    return name


def image(row: int) -> np.ndarray:
    return np.full((4, 4, 3), row, dtype=np.uint8)


def cloud(row: int) -> np.ndarray:
    return np.full((5, 3), row, dtype=np.float32)


@pytest.fixture(scope="module")
def tables():
    """Base experts (text, image: 4-d) and expert-space experts (text, points: 3-d)."""
    g = torch.Generator().manual_seed(0)
    made = {key: torch.randn(ROWS, dim, generator=g) for key, dim in
            (("u-text", 4), ("u-image", 4), ("e-text", 3), ("e-points", 3), ("u-image-raw", 5))}
    names = {key: register_table(f"table-{key}.test", modality, made[key]) for key, modality in
             (("u-text", "text"), ("u-image", "image"), ("e-text", "text"), ("e-points", "points"),
              ("u-image-raw", "image"))}
    yield {key: (names[key], made[key]) for key in made}
    for name in names.values():
        bind.unregister_encoder(name)


@pytest.fixture(scope="module")
def base(tables) -> AnchorSpace:
    return AnchorSpace({"text": tables["u-text"][0], "image": tables["u-image"][0]})


def test_anchor_space_paths_are_l2_of_their_experts(base, tables):
    _, text = tables["u-text"]
    _, img = tables["u-image"]
    assert base.dim == 4 and base.modalities == {bind.Modality.TEXT, bind.Modality.IMAGE}
    out = base.embed(["item 2", "item 0"])
    torch.testing.assert_close(out, l2(text[[2, 0]], dim=-1))
    torch.testing.assert_close(base.embed(image(3)), l2(img[3], dim=-1))


def test_mixed_modality_embed_keeps_input_order(base, tables):
    _, text = tables["u-text"]
    _, img = tables["u-image"]
    out = base.embed([image(1), "item 4", image(5), "item 0"])
    expected = torch.stack([l2(img[1], dim=0), l2(text[4], dim=0), l2(img[5], dim=0), l2(text[0], dim=0)])
    torch.testing.assert_close(out, expected)
    assert torch.allclose(out.norm(dim=-1), torch.ones(4))


def test_missing_modality_and_bad_items_name_the_item(base):
    with pytest.raises(bind.InputError, match=r"item 1 .*no points path; it embeds image, text"):
        base.embed(["item 1", cloud(2)])
    result = base.embed(["item 1", cloud(2), "no such thing", image(0)], on_error="skip")
    assert isinstance(result, bind.EmbedResult)
    assert result.indices == [0, 3]
    assert [f.index for f in result.failures] == [1, 2]
    assert "not a table item" in str(result.failures[1])
    with pytest.raises(bind.InputError, match="not a table item"):
        base.embed(["no such thing"])


def test_projector_path_feeds_l2_features_and_bridge_path_raw_logits(tables):
    name, raw = tables["u-image-raw"]  # 5-d raw features, as a 5-class "classifier"
    projector = build_projector({"type": "linear", "d_in": 5, "d_out": 4})
    path = ExpertPath(name, projector)
    assert path.input_norm == "l2"
    space = AnchorSpace({"image": path})
    with torch.no_grad():
        torch.testing.assert_close(space.embed(image(2)), l2(projector.net(l2(raw[2], dim=0)), dim=0))
    labels = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    bridge = LabelBridge(labels, top_k=2)
    bridged = AnchorSpace({"image": ExpertPath(name, bridge)})
    assert bridged.paths[bind.Modality.IMAGE].input_norm == "none"
    torch.testing.assert_close(bridged.embed(image(2)), bridge(raw[2:3])[0])  # logits as they are, not l2


def test_build_time_errors(tables):
    with pytest.raises(bind.ConfigError, match="dimension mismatch: every path"):
        AnchorSpace({"text": tables["u-text"][0], "points": tables["e-points"][0]})
    with pytest.raises(bind.ConfigError, match="embeds text, not image"):
        AnchorSpace({"image": tables["u-text"][0]})
    with pytest.raises(bind.ConfigError, match="dimension mismatch: expert .* gives 4-d features"):
        ExpertPath(tables["u-text"][0], build_projector({"type": "linear", "d_in": 3, "d_out": 4}))
    with pytest.raises(bind.UnknownEncoderError):
        AnchorSpace({"text": "no-such.expert"})
    with pytest.raises(bind.ConfigError, match="input_norm"):
        ExpertPath(tables["u-text"][0], None, "zscore")


def test_gap_correction_subtracts_the_calibrated_mean(base, tables):
    _, text = tables["u-text"]
    calibration = [f"item {i}" for i in range(ROWS)]
    corrected = base.calibrate({"text": calibration})
    mean = l2(text, dim=-1).mean(dim=0)
    torch.testing.assert_close(corrected.calibration[bind.Modality.TEXT], mean)
    torch.testing.assert_close(corrected.embed("item 2"), l2(l2(text[2], dim=0) - mean, dim=0))
    torch.testing.assert_close(corrected.embed(image(2)), base.embed(image(2)))  # not calibrated: unchanged
    torch.testing.assert_close(corrected.with_gap_correction(False).embed("item 2"), base.embed("item 2"))
    assert not base.gap_correction and corrected.gap_correction  # the original is unchanged
    same = base.calibrate(embeddings={"text": l2(text, dim=-1)})
    torch.testing.assert_close(same.embed("item 2"), corrected.embed("item 2"))
    with pytest.raises(bind.ConfigError, match="no calibration"):
        base.with_gap_correction(True)
    with pytest.raises(bind.ConfigError, match=r"\[N, 4\]"):
        base.calibrate(embeddings={"text": torch.zeros(3, 5)})


def test_compose_is_the_l2_of_the_weighted_sum(base):
    a, b = base.embed(["item 1", image(3)])
    query = base.compose([("item 1", 1.0), (image(3), -0.5)])
    torch.testing.assert_close(query, l2(a - 0.5 * b, dim=0))
    with pytest.raises(bind.ConfigError, match="zero"):
        base.compose([("item 1", 1.0), ("item 1", -1.0)])
    with pytest.raises(bind.ConfigError, match="at least one"):
        base.compose([])


def test_save_load_round_trip_is_exact(tmp_path, base, tables):
    name, _ = tables["u-image-raw"]
    projector = build_projector({"type": "mlp", "d_in": 5, "d_out": 4, "hidden": 8}, meta={"note": "test"})
    with torch.no_grad():
        for p in projector.parameters():
            p.add_(0.1)
    space = AnchorSpace({"text": tables["u-text"][0], "image": ExpertPath(name, projector)})
    space = space.calibrate({"image": [image(i) for i in range(ROWS)]})
    items = ["item 3", image(1), image(4)]
    folder = space.save(tmp_path / "space")
    loaded = load_space(folder)
    assert torch.equal(loaded.embed(items), space.embed(items))
    assert loaded.identity == space.identity and len(space.identity) == 64
    assert loaded.gap_correction and set(loaded.calibration) == {bind.Modality.IMAGE}
    assert json.loads((folder / "space.json").read_text())["space"]["type"] == "anchor"
    space.save(folder)  # overwriting an existing space folder works and leaves no staging folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space"]


def test_identity_changes_with_weights_and_calibration(base, tables):
    assert AnchorSpace({"text": tables["u-text"][0], "image": tables["u-image"][0]}).identity == base.identity
    assert base.calibrate({"text": ["item 1"]}).identity != base.identity
    assert AnchorSpace({"text": tables["u-text"][0]}).identity != base.identity
    name, _ = tables["u-image-raw"]
    projector = build_projector({"type": "linear", "d_in": 5, "d_out": 4})
    space = AnchorSpace({"image": ExpertPath(name, projector)})
    before = space.identity
    with torch.no_grad():
        projector.net.bias.add_(1e-3)
    assert space.identity != before


def test_to_device_runs_every_expert_there_and_keeps_identity(base, tables, monkeypatch):
    from bind.experts.pool import POOL

    seen = []
    real = POOL.get
    monkeypatch.setattr(POOL, "get", lambda card, device="cpu", dtype=None: seen.append(device) or real(card, device, dtype))
    bonded = bind.CombinationBond(base, AnchorSpace({"text": tables["e-text"][0], "points": tables["e-points"][0]}),
                                  build_projector({"type": "linear", "d_in": 3, "d_out": 4}))
    moved = bonded.to("cpu:0")
    items = ["item 2", image(3), cloud(1)]
    assert torch.equal(moved.embed(items), bonded.embed(items)) and moved.identity == bonded.identity
    assert moved.device == "cpu:0" and bonded.device == "cpu"
    assert seen.count("cpu:0") == seen.count("cpu") == 4  # base text + image, expert text + points
    with pytest.raises(bind.ConfigError, match="unknown device 'gpu'"):
        base.to("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(bind.ConfigError, match="CUDA is not available"):
            base.to("cuda")


def test_feature_cache_serves_the_experts_features_again(base, tables, tmp_path):
    from bind.experts.cache import FeatureCache

    cache = FeatureCache(tmp_path / "features")
    bonded = bind.CombinationBond(base, AnchorSpace({"text": tables["e-text"][0], "points": tables["e-points"][0]}),
                                  build_projector({"type": "linear", "d_in": 3, "d_out": 4}))
    cached = bonded.with_feature_cache(cache)
    items = ["item 2", image(3), cloud(1), "item 4"]
    assert torch.allclose(cached.embed(items), bonded.embed(items))
    assert cache.stats().misses == 6 and cache.stats().hits == 0  # text x2 experts x2 items, image, points
    reweighted = cached.with_weights(text=0.9)  # another bond weight: the same expert features
    assert torch.allclose(reweighted.embed(items), bonded.with_weights(text=0.9).embed(items))
    assert cache.stats().hits == 6 and cache.stats().misses == 6
    assert cached.identity == bonded.identity and bonded.with_feature_cache(None).embed(items).shape == (4, 4)


def test_load_errors(tmp_path):
    with pytest.raises(bind.ConfigError, match="no space folder"):
        load_space(tmp_path / "missing")
    (tmp_path / "broken").mkdir()
    with pytest.raises(bind.ConfigError, match="has no space.json"):
        load_space(tmp_path / "broken")


def test_repr_lists_paths(base):
    text = repr(base)
    assert "AnchorSpace(dim=4)" in text and "text: table-u-text.test" in text


# --- a realistic space: MiniLM text + EfficientNet-Lite0 ImageNet logits through the label bridge --------

@pytest.fixture(scope="module")
def offline_space() -> AnchorSpace:
    bridge = ExpertPath.label_bridge("efficientnet-lite0.imagenet-logits", "minilm-l6.text")
    return AnchorSpace({"text": "minilm-l6.text", "image": bridge})


def _photo(concept: str):
    return next(e.path for e in load_manifest() if e.concept == concept and e.modality == bind.Modality.IMAGE)


def test_offline_space_puts_photos_next_to_their_words(offline_space, tmp_path):
    cat, guitar = _photo("cat"), _photo("guitar")
    vectors = offline_space.embed([cat, "a cat", "a truck", guitar, "a guitar"])  # one mixed call
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(5), atol=1e-5)
    sim = Space.similarity(vectors, vectors)
    assert sim[0, 1] > sim[0, 2] + 0.05
    assert sim[3, 4] > sim[3, 2] + 0.05
    assert "label bridge 1000 classes->384 (top_k=10) [input none]" in repr(offline_space)
    loaded = load_space(offline_space.save(tmp_path / "offline"))
    assert torch.equal(loaded.embed([cat, "a cat"]), offline_space.embed([cat, "a cat"]))
    assert loaded.identity == offline_space.identity
