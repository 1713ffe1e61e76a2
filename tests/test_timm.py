"""timm backend: every registered timm card (real weights when cached, else its tiny instance), dynamic
``timm:`` names, offline errors, random-init architectures and loading from the HF cache."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import timm
import torch
from conftest import make_expert, put_in_hf_cache, sample_inputs
from timm.data import resolve_model_data_config

import bind
from bind.experts.backends.timm import TimmEncoder

CARDS = [bind.get_card(row.name) for row in bind.list_encoders() if row.backend == "timm"]


def _ids(cards: list[bind.EncoderCard]) -> list[str]:
    return [card.name for card in cards]


@pytest.fixture(scope="module")
def experts() -> dict[str, bind.Encoder]:
    return {card.name: make_expert(card) for card in CARDS}


def test_cards_registered():
    assert len(CARDS) >= 2 and all(c.modality == bind.Modality.IMAGE for c in CARDS)


@pytest.mark.parametrize("card", CARDS, ids=_ids(CARDS))
def test_card_matches_timm_pretrained_cfg(card):
    name = f"{card.model_id}.{card.pretrained}"
    assert name in timm.list_pretrained()
    derived = bind.get_card(f"timm:{name}")
    assert derived.dim == card.dim and derived.preprocess == card.preprocess
    licence = timm.models.get_pretrained_cfg(name).license
    assert licence.lower() in card.licence.lower()


@pytest.mark.parametrize("card", CARDS, ids=_ids(CARDS))
def test_transform_comes_from_model_config(card, experts):
    expert = experts[card.name]
    config = resolve_model_data_config(expert.model)  # test_efficientnet's 160 px, or the real model's
    preprocess = expert.preprocessor()
    mean_colour = np.full((90, 120, 3), np.round(np.array(config["mean"]) * 255), dtype=np.uint8)
    sample = preprocess(mean_colour)
    assert sample.shape == config["input_size"]
    assert sample.abs().max() < 1 / min(config["std"]) / 255
    assert torch.equal(pickle.loads(pickle.dumps(preprocess))(mean_colour), sample)


def test_dynamic_spec_names():
    card = bind.get_card("timm:resnet50.a1_in1k")
    assert (card.dim, card.model_id, card.pretrained) == (2048, "resnet50", "a1_in1k")
    assert card.preprocess["crop_pct"] == 0.95
    default = bind.get_card("timm:mobilenetv3_large_100")
    assert default.pretrained == timm.models.get_pretrained_cfg("mobilenetv3_large_100").tag
    assert default.dim == 1280  # the pooled head width, not num_features (960)
    assert bind.embed(sample_inputs(bind.Modality.IMAGE, 2), encoder=TimmEncoder.tiny(card)).shape == (2, 2048)


@pytest.mark.parametrize("spec, hint", [("resnet51.a1_in1k", "resnet50.a1_in1k"), ("resnet50.nope", "resnet50."),
                                        ("no_such_model", "timm.list_pretrained()")])
def test_unknown_names_error_clearly(spec, hint):
    with pytest.raises(bind.UnknownEncoderError) as info:
        bind.get_card(f"timm:{spec}")
    assert hint in str(info.value)


def test_random_init_builds_the_real_architecture():
    expert = bind.create_encoder("timm:resnet18.a1_in1k", pretrained=False)
    assert type(expert.model).__name__ == "ResNet" and expert.model.num_classes == 0
    assert expert.preprocessor()(np.zeros((300, 400, 3), np.uint8)).shape == (3, 224, 224)
    assert bind.embed(sample_inputs(bind.Modality.IMAGE, 2), encoder=expert).shape == (2, 512)


def test_card_width_must_match_the_model():
    card = bind.get_card("timm:resnet18.a1_in1k").replace(dim=100)
    with pytest.raises(bind.ConfigError, match="512-d"):
        TimmEncoder(card, pretrained=False)


def test_pretrained_loads_from_the_hf_cache(tmp_path, monkeypatch):
    """The real loading path, offline: timm finds the checkpoint in the HF cache and drops the classifier."""
    import huggingface_hub
    from safetensors.torch import save_file

    card = bind.get_card("timm:resnet18.a1_in1k")
    assert not bind.weights_available(card)
    torch.manual_seed(1)
    source = timm.create_model("resnet18.a1_in1k", pretrained=False).eval()  # with its 1000-class head
    repo_id = timm.models.get_pretrained_cfg("resnet18.a1_in1k").hf_hub_id
    save_file(source.state_dict(), str(put_in_hf_cache(tmp_path, repo_id, "model.safetensors")))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert bind.weights_available(card)
    loaded = bind.create_encoder(card)
    images = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.allclose(loaded(images), source.forward_head(source.forward_features(images), pre_logits=True),
                              atol=1e-5)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_your_own_checkpoint_file_loads_through_timms_loader(tmp_path, suffix):
    """options.checkpoint: a state dict saved the way timm users save one, with its classifier."""
    from safetensors.torch import save_file

    torch.manual_seed(2)
    source = timm.create_model("resnet18.a1_in1k", pretrained=False).eval()
    path = tmp_path / f"my-resnet18{suffix}"
    if suffix == ".safetensors":
        save_file(source.state_dict(), str(path))
    else:
        torch.save(source.state_dict(), path)
    card = bind.get_card("timm:resnet18.a1_in1k").replace(options={"checkpoint": str(path)})
    assert bind.weights_available(card)
    loaded = bind.create_encoder("timm:resnet18.a1_in1k", checkpoint=str(path))
    images = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.allclose(loaded(images), source.forward_head(source.forward_features(images), pre_logits=True),
                              atol=1e-5)
    missing = card.replace(options={"checkpoint": str(tmp_path / "nope.pth")})
    assert not bind.weights_available(missing)
    with pytest.raises(bind.WeightsUnavailableError, match="nope.pth is not a file"):
        bind.create_encoder(missing)
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(bind.WeightsUnavailableError, match="timm cannot load"):
        bind.create_encoder(card.replace(options={"checkpoint": str(tmp_path / "bad.pth")}))
