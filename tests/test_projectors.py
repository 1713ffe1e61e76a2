"""Projectors: every type's shape, unit norm, gradients, Ex-MCR identity init, config checks, exact and
atomic save -> load."""
from __future__ import annotations

import json
import re

import pytest
import safetensors.torch
import torch

import bind
from bind.spaces.projectors import (
    PROJECTOR_TYPES,
    ExMCRProjector,
    Projector,
    ProjectorConfig,
    build_projector,
    load_projector,
)

D_IN, D_OUT = 12, 8
TINY = {"linear": {}, "mlp": {"hidden": 16}, "cmcr": {"hidden": 16, "depth": 2}, "exmcr": {"hidden": 16},
        "fusemix": {"hidden": 24, "depth": 2, "dropout": 0.1}}


def tiny(kind: str, d_in: int = D_IN, d_out: int = D_OUT) -> Projector:
    torch.manual_seed(0)
    return build_projector({"type": kind, "d_in": d_in, "d_out": d_out, **TINY[kind]})


def trained_a_little(kind: str) -> Projector:
    """A projector whose weights and BN statistics moved away from their initial values."""
    projector = tiny(kind)
    optimiser = torch.optim.SGD(projector.parameters(), lr=0.5)
    for step in range(3):
        loss = projector(torch.randn(6, D_IN, generator=torch.Generator().manual_seed(step)))[:, 0].sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return projector.eval()


def test_every_type_is_tested():
    assert set(TINY) == set(PROJECTOR_TYPES)


@pytest.mark.parametrize("kind", sorted(TINY))
def test_shape_unit_norm_and_gradients(kind):
    projector = tiny(kind).train()
    x = torch.randn(5, D_IN, requires_grad=True)
    out = projector(x)
    assert out.shape == (5, D_OUT)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(5))
    (out * torch.randn(5, D_OUT)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    grads = [p.grad for p in projector.parameters()]
    assert all(g is not None for g in grads)
    assert sum(bool(g.abs().sum() > 0) for g in grads) > 0
    single = projector.eval()(x[0].detach())
    assert single.shape == (D_OUT,)
    torch.testing.assert_close(single, projector(x.detach())[0])


def test_architectures_follow_the_papers():
    mlp = build_projector({"type": "mlp", "d_in": 384, "d_out": 512})
    assert [type(m).__name__ for m in mlp.net] == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert mlp.config.hidden == 2048
    cmcr = build_projector({"type": "cmcr", "d_in": 512, "d_out": 512})
    assert (cmcr.config.hidden, cmcr.config.depth) == (1024, 1)
    fusemix = build_projector({"type": "fusemix", "d_in": 16, "d_out": 8})
    assert (fusemix.config.hidden, fusemix.config.depth) == (64, 2)
    assert isinstance(fusemix.net[-2], torch.nn.LayerNorm) and fusemix.net[-1].out_features == 8


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_exmcr_is_the_identity_at_init(mode):
    projector = build_projector({"type": "exmcr", "d_in": 10, "d_out": 10, "hidden": 20})
    getattr(projector, mode)()
    x = torch.randn(7, 10)
    torch.testing.assert_close(projector(x), torch.nn.functional.normalize(x, dim=-1))


def test_exmcr_rectangular_init_copies_the_shared_dims():
    x = torch.randn(4, 10)
    wide = build_projector({"type": "exmcr", "d_in": 10, "d_out": 14}).eval()(x)
    torch.testing.assert_close(wide[:, :10], torch.nn.functional.normalize(x, dim=-1))
    assert torch.all(wide[:, 10:] == 0)
    narrow = build_projector({"type": "exmcr", "d_in": 10, "d_out": 6}).eval()(x)
    torch.testing.assert_close(narrow, torch.nn.functional.normalize(x[:, :6], dim=-1))


def test_exmcr_blocks_learn_after_a_step():
    projector = ExMCRProjector(ProjectorConfig("exmcr", 6, 6, hidden=8))
    optimiser = torch.optim.SGD(projector.parameters(), lr=0.1)
    x = torch.randn(8, 6)
    loss = (projector(x) * torch.randn(8, 6)).sum()
    loss.backward()
    optimiser.step()
    assert not torch.allclose(projector(x), torch.nn.functional.normalize(projector.net[0](x), dim=-1))


@pytest.mark.parametrize("config, message", [
    ({"type": "transformer", "d_in": 4, "d_out": 4}, "unknown projector type 'transformer'.*known: cmcr"),
    ({"type": "mlp", "d_in": 0, "d_out": 4}, "d_in must be a positive integer"),
    ({"type": "mlp", "d_in": 4, "d_out": -2}, "d_out must be a positive integer"),
    ({"type": "mlp", "d_in": 4.0, "d_out": 4}, "d_in must be a positive integer"),
    ({"type": "mlp", "d_in": 4, "d_out": 4, "hidden": 0}, "hidden must be a positive integer"),
    ({"type": "fusemix", "d_in": 4, "d_out": 4, "depth": 0}, "depth must be an integer >= 1"),
    ({"type": "fusemix", "d_in": 4, "d_out": 4, "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"type": "mlp", "d_in": 4, "d_out": 4, "dropout": -0.1}, r"dropout must be in \[0, 1\)"),
    ({"type": "linear", "d_in": 4, "d_out": 4, "hidden": 8}, "linear projector takes no 'hidden'"),
    ({"type": "mlp", "d_in": 4, "d_out": 4, "depth": 3}, "mlp projector takes no 'depth'"),
    ({"type": "mlp", "d_in": 4, "d_out": 4, "width": 3}, r"unknown fields \['width'\]"),
    ({"d_in": 4, "d_out": 4}, r"missing \['type'\]"),
])
def test_config_validation(config, message):
    with pytest.raises(bind.ConfigError, match=message):
        build_projector(config)


def test_bad_input_is_an_input_error():
    projector = tiny("linear")
    with pytest.raises(bind.InputError, match=r"shape \[batch, 12\]"):
        projector(torch.randn(3, 5))
    with pytest.raises(bind.InputError, match="floating-point"):
        projector(torch.ones(3, D_IN, dtype=torch.long))
    with pytest.raises(bind.InputError, match="expected a tensor"):
        projector([[0.0] * D_IN])


@pytest.mark.parametrize("kind", sorted(TINY))
def test_save_load_round_trip_is_exact(kind, tmp_path):
    projector = trained_a_little(kind)
    meta = {"source": "efficientnet-lite0.image", "anchor": "minilm-l6.text", "metrics": {"r1": 0.25}}
    projector.save(tmp_path / "adapter", meta=meta, readme="# card\n")
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == ["README.md", "config.json",
                                                                       "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"], "no staging folders are left behind"
    loaded = load_projector(tmp_path / "adapter")
    assert not loaded.training and type(loaded) is type(projector)
    assert loaded.config == projector.config and loaded.meta == meta
    x = torch.randn(9, D_IN)
    assert torch.equal(loaded(x), projector(x))
    for key, value in projector.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_saved_config_is_plain_json(tmp_path):
    tiny("cmcr").save(tmp_path / "a", meta={"source": "s.x"})
    data = json.loads((tmp_path / "a" / "config.json").read_text())
    assert data == {"type": "cmcr", "d_in": D_IN, "d_out": D_OUT, "hidden": 16, "depth": 2, "dropout": 0.0,
                    "meta": {"source": "s.x"}}


def test_save_replaces_an_existing_adapter(tmp_path):
    tiny("linear").save(tmp_path / "a")
    second = trained_a_little("linear")
    second.save(tmp_path / "a")
    x = torch.randn(3, D_IN)
    assert torch.equal(load_projector(tmp_path / "a")(x), second(x))
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_failed_save_leaves_the_previous_adapter_intact(tmp_path, monkeypatch):
    first = trained_a_little("mlp")
    first.save(tmp_path / "a", meta={"version": 1})
    real_save = safetensors.torch.save_file

    def save_then_fail(tensors, path, metadata=None):
        real_save(tensors, path, metadata=metadata)
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        tiny("mlp").save(tmp_path / "a", meta={"version": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["a"], "the staging folder is removed"
    loaded = load_projector(tmp_path / "a")
    x = torch.randn(4, D_IN)
    assert loaded.meta == {"version": 1} and torch.equal(loaded(x), first(x))


def test_meta_must_be_json(tmp_path):
    with pytest.raises(bind.ConfigError, match="JSON-serialisable"):
        tiny("linear").save(tmp_path / "a", meta={"when": object()})
    assert not (tmp_path / "a").exists()


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    folder = tmp_path / "a"
    tiny("mlp").save(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(bind.ConfigError, match=f"{re.escape(str(weights))}.*corrupt"):
        load_projector(folder)
    weights.unlink()
    with pytest.raises(bind.ConfigError, match=f"no model.safetensors.*{re.escape(str(weights))}"):
        load_projector(folder)
    tiny("mlp").save(folder)
    config = folder / "config.json"
    config.write_text("{not json")
    with pytest.raises(bind.ConfigError, match=f"{re.escape(str(config))} is unreadable"):
        load_projector(folder)


def test_weights_that_do_not_match_the_config(tmp_path):
    tiny("mlp").save(tmp_path / "a")
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    config["hidden"] = 32
    (tmp_path / "a" / "config.json").write_text(json.dumps(config))
    with pytest.raises(bind.ConfigError, match="do not match"):
        load_projector(tmp_path / "a")


def test_unknown_path_or_name(tmp_path):
    with pytest.raises(bind.ConfigError, match="no packaged projector named 'no-such-adapter'"):
        load_projector("no-such-adapter")
    with pytest.raises(bind.ConfigError, match=f"no projector folder at {re.escape(str(tmp_path / 'x'))}"):
        load_projector(tmp_path / "x")


def test_packaged_name_resolves_under_projectors(tmp_path, monkeypatch):
    import bind.spaces.projectors as module

    root = tmp_path / "projectors"
    projector = trained_a_little("linear")
    projector.save(root / "tiny-linear")
    monkeypatch.setattr(module, "resource_dir", lambda name: root if name == "projectors" else None)
    x = torch.randn(2, D_IN)
    assert torch.equal(load_projector("tiny-linear")(x), projector(x))
