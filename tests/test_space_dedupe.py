"""Space.save stores each distinct tensor once: a LabelBridge shared by two paths is written once and listed
as an alias in space.json; loading restores every alias key exactly (same identity, same embeddings); a folder
in the older layout (every key written, no "aliases") still loads.

The experts are test_space's "table" experts: an image or a point cloud whose first value is 3 -> row 3 of
its "logits" table.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
from test_space import register_table

import bind
from bind.spaces import AnchorSpace, ExpertPath, load_space
from bind.spaces.bridges import LabelBridge

CLASSES, DIM = 5, 4


@pytest.fixture(scope="module")
def space() -> AnchorSpace:
    """Image and points classifiers over the same CLASSES labels, both through one LabelBridge."""
    g = torch.Generator().manual_seed(0)
    names = []
    for modality in ("image", "points"):
        names.append(register_table(f"dedupe-{modality}.test", modality, torch.randn(CLASSES, CLASSES, generator=g)))
    bridge = LabelBridge(torch.randn(CLASSES, DIM, generator=g), top_k=2)
    yield AnchorSpace({"image": ExpertPath(names[0], bridge), "points": ExpertPath(names[1], bridge)})
    for name in names:
        bind.unregister_encoder(name)


ITEMS = [np.full((4, 4, 3), 1, dtype=np.uint8), np.full((6, 3), 3, dtype=np.float32)]
IMAGE_KEY, POINTS_KEY = "paths.image.adapter.label_embeddings", "paths.points.adapter.label_embeddings"


def stored_keys(folder) -> set[str]:
    with safetensors.safe_open(str(folder / "weights.safetensors"), framework="pt") as handle:
        return set(handle.keys())


def test_a_shared_label_bridge_is_stored_once_and_loads_back_exactly(tmp_path, space):
    _, tensors = space.state()
    assert {IMAGE_KEY, POINTS_KEY} <= set(tensors)
    folder = space.save(tmp_path / "space")
    assert stored_keys(folder) == set(tensors) - {POINTS_KEY}
    assert json.loads((folder / "space.json").read_text())["aliases"] == {POINTS_KEY: IMAGE_KEY}
    loaded = load_space(folder)
    assert loaded.identity == space.identity
    _, reloaded = loaded.state()
    assert set(reloaded) == set(tensors)
    assert torch.equal(reloaded[POINTS_KEY], tensors[POINTS_KEY])
    assert torch.equal(loaded.embed(ITEMS), space.embed(ITEMS))


def test_distinct_tensors_are_not_aliased(tmp_path, space):
    other = LabelBridge(torch.randn(CLASSES, DIM, generator=torch.Generator().manual_seed(1)), top_k=2)
    image, points = space.paths[bind.Modality.IMAGE], space.paths[bind.Modality.POINTS]
    distinct = AnchorSpace({"image": image, "points": ExpertPath(points.expert, other)})
    folder = distinct.save(tmp_path / "distinct")
    assert {IMAGE_KEY, POINTS_KEY} <= stored_keys(folder)
    assert json.loads((folder / "space.json").read_text())["aliases"] == {}
    assert load_space(folder).identity == distinct.identity


def test_a_folder_without_aliases_still_loads(tmp_path, space):
    folder = tmp_path / "old"
    folder.mkdir()
    config, tensors = space.state()
    (folder / "space.json").write_text(json.dumps({"format_version": 1, "space": config}))
    safetensors.torch.save_file({k: v.clone().contiguous() for k, v in tensors.items()},
                                str(folder / "weights.safetensors"))
    loaded = load_space(folder)
    assert loaded.identity == space.identity
    assert torch.equal(loaded.embed(ITEMS), space.embed(ITEMS))


def test_a_bad_alias_is_a_config_error(tmp_path, space):
    folder = space.save(tmp_path / "space")
    data = json.loads((folder / "space.json").read_text())
    data["aliases"] = {POINTS_KEY: "no.such.key"}
    (folder / "space.json").write_text(json.dumps(data))
    with pytest.raises(bind.ConfigError, match="bad alias"):
        load_space(folder)
