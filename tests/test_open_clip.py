"""open_clip backend: every registered open_clip card (real weights when cached, else its tiny instance),
dynamic ``open_clip:`` names, offline errors, random-init architectures and loading from the HF cache."""
from __future__ import annotations

import pickle
import time

import numpy as np
import open_clip
import pytest
import torch
from conftest import make_expert, put_in_hf_cache, sample_inputs

import bind
from bind.experts.backends.open_clip import OpenClipEncoder

CARDS = [bind.get_card(row.name) for row in bind.list_encoders() if row.backend == "open_clip"]
IMAGE_CARDS = [c for c in CARDS if c.modality == bind.Modality.IMAGE]
TEXT_CARDS = [c for c in CARDS if c.modality == bind.Modality.TEXT]


def _ids(cards: list[bind.EncoderCard]) -> list[str]:
    return [card.name for card in cards]


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


@pytest.fixture(scope="module")
def experts() -> dict[str, bind.Encoder]:
    return {card.name: make_expert(card) for card in CARDS}


def test_cards_registered():
    assert {"image", "text"} <= {c.modality.value for c in CARDS}
    assert {c.model_id for c in CARDS} >= {"ViT-B-32", "ViT-L-14", "ViT-B-16-SigLIP"}


@pytest.mark.parametrize("card", CARDS, ids=_ids(CARDS))
def test_card_matches_open_clip_configs(card):
    assert (card.model_id, card.pretrained) in open_clip.list_pretrained()
    assert card.dim == open_clip.get_model_config(card.model_id)["embed_dim"]
    derived = bind.get_card(f"open_clip:{card.model_id}@{card.pretrained}#{card.modality.value}")
    assert derived.dim == card.dim and derived.modality == card.modality
    assert {k: _plain(v) for k, v in derived.preprocess.items()} == card.preprocess


@pytest.mark.parametrize("card", IMAGE_CARDS, ids=_ids(IMAGE_CARDS))
def test_image_transform_comes_from_model_config(card, experts):
    expert = experts[card.name]
    size = tuple(expert.model.visual.preprocess_cfg["size"])
    assert size == tuple(expert.model.visual.image_size)  # the tiny model's 32 px, or the real model's size
    preprocess = expert.preprocessor()
    mean_colour = np.full((40, 90, 3), np.round(np.array(card.preprocess["mean"]) * 255), dtype=np.uint8)
    sample = preprocess(mean_colour)
    assert sample.shape == (3, *size)
    assert sample.abs().max() < 1 / min(card.preprocess["std"]) / 255  # normalised with the card's statistics
    assert torch.equal(pickle.loads(pickle.dumps(preprocess))(mean_colour), sample)


@pytest.mark.parametrize("card", TEXT_CARDS, ids=_ids(TEXT_CARDS))
def test_long_text_is_truncated_to_the_context_length(card, experts):
    expert = experts[card.name]
    long = "a photo of a very long caption " * 300
    tokens = expert.collate([long, "a cat"])
    assert tokens.shape == (2, card.preprocess["context_length"])
    first = bind.embed(long, encoder=expert)
    assert torch.isfinite(first).all()
    assert torch.allclose(first, bind.embed(long + " with a different ending", encoder=expert), atol=1e-6)


def test_dynamic_spec_names():
    text = bind.get_card("open_clip:ViT-B-32@laion2b_s34b_b79k#text")
    assert (text.modality, text.dim, text.model_id, text.pretrained) == (bind.Modality.TEXT, 512, "ViT-B-32",
                                                                        "laion2b_s34b_b79k")
    image = bind.get_card("open_clip:ViT-B-16-SigLIP@webli")
    assert image.modality == bind.Modality.IMAGE and image.dim == 768
    assert image.preprocess["resize_mode"] == "squash" and image.preprocess["mean"] == (0.5, 0.5, 0.5)
    vectors = bind.embed(["a dog", "a cat"], encoder=OpenClipEncoder.tiny(text))
    assert vectors.shape == (2, 512)


@pytest.mark.parametrize("spec, error, hint", [
    ("ViT-B-33@laion2b_s34b_b79k", bind.UnknownEncoderError, "open_clip.list_pretrained()"),
    ("ViT-B-32@laion9b", bind.UnknownEncoderError, "laion2b_s34b_b79k"),
    ("ViT-B-32", bind.ConfigError, "needs a pretrained tag"),
    ("ViT-B-32@openai#audio", bind.ConfigError, "'image' or 'text'"),
])
def test_bad_spec_names(spec, error, hint):
    with pytest.raises(error) as info:
        bind.get_card(f"open_clip:{spec}")
    assert hint in str(info.value)


def test_hub_spec_offline_raises_quickly():
    start = time.monotonic()
    with pytest.raises(bind.WeightsUnavailableError, match="not in the Hugging Face cache"):
        bind.get_card("open_clip:hf-hub:timm/ViT-B-16-SigLIP#text")
    assert time.monotonic() - start < 10


@pytest.fixture(scope="module")
def rn50_random() -> bind.Encoder:
    return bind.create_encoder("open_clip:RN50@openai#image", pretrained=False)


@pytest.mark.parametrize("tower", ["image", "text"])
def test_random_init_builds_the_real_architecture(tower, rn50_random):
    card = bind.get_card(f"open_clip:RN50@openai#{tower}")
    expert = rn50_random if tower == "image" else bind.create_encoder(card, pretrained=False)
    assert type(expert.model.visual).__name__ == "ModifiedResNet"
    assert isinstance(expert.model.transformer.resblocks[0].mlp.gelu, open_clip.model.QuickGELU)  # OpenAI's
    out = bind.embed(sample_inputs(card.modality, 2), encoder=expert)
    assert out.shape == (2, 1024)


def test_a_text_tower_also_needs_its_hub_tokenizer(tmp_path, monkeypatch):
    import huggingface_hub

    image, text = bind.get_card("siglip-vit-b16-webli.image"), bind.get_card("siglip-vit-b16-webli.text")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    put_in_hf_cache(tmp_path, "timm/ViT-B-16-SigLIP", "open_clip_model.safetensors").write_bytes(b"")
    assert bind.weights_available(image) and not bind.weights_available(text)
    put_in_hf_cache(tmp_path, "timm/ViT-B-16-SigLIP", "tokenizer_config.json").write_text("{}")
    assert bind.weights_available(text)


@pytest.mark.slow
def test_pretrained_loads_from_the_hf_cache(tmp_path, monkeypatch, rn50_random):
    """The real loading path, offline: weights in the HF cache are found and loaded strictly."""
    import huggingface_hub
    from safetensors.torch import save_file

    card, source = rn50_random.card, rn50_random
    assert not bind.weights_available(card)
    repo_id = open_clip.get_pretrained_cfg("RN50", "openai")["hf_hub"].rstrip("/")
    weights = put_in_hf_cache(tmp_path, repo_id, "open_clip_model.safetensors")
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, str(weights))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert bind.weights_available(card)
    loaded = bind.create_encoder(card)
    images = sample_inputs(bind.Modality.IMAGE, 2)
    assert torch.allclose(bind.embed(images, encoder=loaded), bind.embed(images, encoder=source), atol=1e-5)
