"""The registry: packaged cards, listing, creation, user experts, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import safetensors.torch
import torch

import bind
from bind.experts.cards import EncoderCard
from bind.resources import resource_dir


def test_every_card_file_parses_and_names_its_backend():
    paths = sorted(resource_dir("encoders").glob("*.json"))
    assert paths, "no encoder cards found"
    for path in paths:
        card = EncoderCard.from_file(path)
        assert path.stem == card.name, f"{path.name} should be named after its card {card.name!r}"
        assert bind.get_backend(card.backend) is not None
        assert card.licence and card.weights


def test_list_encoders_filters_by_modality():
    everything = bind.list_encoders()
    images = bind.list_encoders(modality="image")
    assert images and all(row.modality == bind.Modality.IMAGE for row in images)
    assert {row.name for row in images} < {row.name for row in everything}
    assert {"minilm-l6.text", "efficientnet-lite0.image"} <= {row.name for row in everything if row.offline}
    with pytest.raises(ValueError, match="unknown modality"):
        bind.list_encoders(modality="smell")


def test_created_encoder_is_frozen(minilm):
    assert not minilm.training
    assert all(not p.requires_grad for p in minilm.parameters())
    minilm.train()
    assert not minilm.training, "experts stay in eval mode"
    assert minilm.dim == 384 and minilm.modality == bind.Modality.TEXT


def test_dtype_and_device():
    enc = bind.create_encoder("minilm-l6.text", dtype=torch.float64)
    out = bind.embed(["a cat"], encoder=enc)
    assert enc.dtype == torch.float64 and out.dtype == torch.float32 and out.shape == (1, 384)
    with pytest.raises(bind.ConfigError, match="unknown device 'gpu'"):
        bind.embed("a cat", device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(bind.ConfigError, match="'cuda': CUDA is not available"):
            bind.create_encoder("minilm-l6.text", device="cuda")


def test_unknown_names_raise_with_hints():
    with pytest.raises(bind.UnknownEncoderError, match="did you mean .*minilm-l6.text"):
        bind.create_encoder("minilm")
    with pytest.raises(bind.UnknownEncoderError, match="unknown backend"):
        bind.get_backend("nope")


def test_bad_card_is_a_config_error():
    with pytest.raises(bind.ConfigError, match="family.tag"):
        EncoderCard(name="noperiod", modality="text", dim=4, backend="x", model_id="x", licence="x", weights="x")
    with pytest.raises(bind.ConfigError, match="missing"):
        EncoderCard.from_dict({"name": "a.b", "modality": "text"})


# --- a user's own expert, exactly as the README shows it (under 20 lines) ---------------------------------
from bind.io.image import ImagePreprocessor, image_transform  # noqa: E402


class TinyCNN(bind.Encoder):
    def __init__(self, card, pretrained=True):
        super().__init__(card)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                       torch.nn.Flatten(), torch.nn.Linear(16, card.dim))
        if pretrained:
            self.net.load_state_dict(safetensors.torch.load_file(card.model_id))

    def preprocessor(self):
        return ImagePreprocessor(image_transform(self.card.preprocess))

    def forward(self, batch):
        return self.net(self.to_input(batch))
# ---------------------------------------------------------------------------------------------------------


def test_user_registered_expert(tmp_path):
    card = {"name": "tinycnn.v1", "modality": "image", "dim": 64, "backend": "tinycnn",
            "model_id": str(tmp_path / "tinycnn.safetensors"), "licence": "MIT", "weights": "local file",
            "preprocess": {"image_size": 64}}
    trained = TinyCNN(EncoderCard.from_dict(card), pretrained=False)  # stands for the user's trained network
    safetensors.torch.save_file(trained.net.state_dict(), card["model_id"])
    bind.register_encoder(card, backend=TinyCNN)
    try:
        assert "tinycnn.v1" in {row.name for row in bind.list_encoders(modality="image")}
        images = [np.full((80, 90, 3), v, np.uint8) for v in (0, 128, 255)]
        vectors = bind.embed(images, encoder="tinycnn.v1")
        assert vectors.shape == (3, 64)
        expected = torch.nn.functional.normalize(bind.embed(images, encoder=trained, normalize=False), dim=1)
        assert torch.allclose(vectors, expected, atol=1e-6), "registered expert loads the saved weights"
        assert torch.allclose(vectors.norm(dim=1), torch.ones(3))
        with pytest.raises(bind.ConfigError, match="already registered"):
            bind.register_encoder(bind.get_card("tinycnn.v1"))
    finally:
        bind.unregister_encoder("tinycnn.v1")
    with pytest.raises(bind.UnknownEncoderError):
        bind.get_card("tinycnn.v1")
