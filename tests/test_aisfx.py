"""aiSFX (ISMIR 2022): the checkpoint from the aisfx wheel run by bind's own PyTorch network and spectrogram."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import bind
from bind.experts.backends import aisfx
from bind.io.audio import Waveform

RATE = 44100
CARD = bind.get_card("aisfx.audio")
REAL = bind.weights_available(CARD)


def wave(samples: np.ndarray, rate: int = RATE) -> Waveform:
    return Waveform.from_array(np.asarray(samples, np.float32), rate)


def noise(seconds: float, seed: int) -> np.ndarray:
    return 0.3 * np.random.default_rng(seed).standard_normal(int(RATE * seconds))


def sine(seconds: float, freq: float = 440.0) -> np.ndarray:
    return 0.3 * np.sin(2 * np.pi * freq * np.arange(int(RATE * seconds)) / RATE)


@pytest.fixture(scope="module")
def tiny() -> bind.Encoder:
    return bind.create_encoder("aisfx.audio", tiny=True)


@pytest.fixture(scope="module")
def real() -> bind.Encoder:
    if not REAL:
        pytest.skip("aisfx is not installed (pip install --no-deps aisfx==0.1.2)")
    return bind.create_encoder("aisfx.audio")


@pytest.mark.parametrize(("frames", "starts"), [
    (1, [0]), (44, [0]), (100, [0]), (149, [0]), (150, [0, 50]), (431, list(range(0, 301, 50))),
    (1292, [0, 150, 350, 500, 650, 800, 1000, 1150]),  # 24 blocks -> 8 spread, first and last kept
])
def test_block_policy_is_the_packages_blocking_capped_at_8(frames, starts):
    assert aisfx.block_starts(frames, 8).tolist() == starts


def test_mel_filterbank_is_librosas_htk_l1_bank():
    bank = aisfx.mel_filterbank()
    assert bank.shape == (96, 1025) and (bank >= 0).all()
    assert torch.allclose(bank.sum(dim=1), torch.ones(96))
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=RATE, n_fft=2048, n_mels=96, fmin=0.0, fmax=22050.0, htk=True, norm=1.0)
    assert np.abs(bank.numpy() - expected).max() < 1e-6


def test_log_mel_blocks_match_librosa_melspectrogram():
    librosa = pytest.importorskip("librosa")
    clip = (sine(6.0, 330.0) + noise(6.0, 1) * np.linspace(0, 1, 6 * RATE)).astype(np.float32)
    clip /= np.abs(clip).max()
    mel = librosa.feature.melspectrogram(y=clip, sr=RATE, n_fft=2048, hop_length=1024, win_length=2048, n_mels=96,
                                         fmin=0.0, fmax=22050.0, htk=True, norm=1.0, power=2.0)
    expected = (np.log10(mel * 10000.0 + 1) / aisfx.NORM_MAX).T  # [T, 96]
    blocks = aisfx.log_mel_blocks(clip)
    assert blocks.shape == (4, 100, 96)  # 259 frames: blocks at 0, 50, 100, 150; the partial one dropped
    for block, first in zip(blocks, aisfx.block_starts(len(expected), 8)):
        assert np.abs(block.numpy() - expected[first : first + 100]).max() < 1e-4


def test_short_clip_is_one_zero_padded_block():
    blocks = aisfx.log_mel_blocks(sine(0.5))
    frames = 1 + int(0.5 * RATE) // 1024
    assert blocks.shape == (1, 100, 96)
    assert (blocks[0, :frames].amax(dim=1) > 0).all() and (blocks[0, frames:] == 0).all()


def test_preprocessor_resamples_normalises_peak_and_caps_blocks(tiny):
    prep = pickle.loads(pickle.dumps(tiny.preprocessor()))  # DataLoader workers get a pickled copy
    loud, quiet = prep(wave(noise(3.0, 0))), prep(wave(0.1 * noise(3.0, 0)))
    assert torch.allclose(loud, quiet, atol=1e-5), "peak normalisation makes the level irrelevant"
    assert prep(wave(noise(60.0, 0))).shape == (8, 100, 96)
    at_16k = prep(wave(0.3 * np.sin(2 * np.pi * 440.0 * np.arange(3 * 16000) / 16000), 16000))
    native = prep(wave(sine(3.0)))
    assert at_16k.shape == native.shape == (1, 100, 96)
    # below ~6 kHz (mel band 60) and away from the onset, which is broadband at 44.1 kHz only; above, the
    # resampler leaves faint images of the tone around 16 kHz
    inside = (0, slice(2, 100), slice(0, 60))
    assert (at_16k[inside] - native[inside]).abs().max() < 0.01, "a 16 kHz clip is resampled to 44.1 kHz"


def test_tiny_instance_contract(tiny):
    assert tiny.dim == 512 and not tiny.training
    items = [wave(noise(3.0, 0)), wave(sine(2.0)), wave(sine(7.0, 880.0))]
    batch = bind.embed(items, encoder=tiny, batch_size=2)
    assert batch.shape == (3, 512) and torch.isfinite(batch).all()
    assert torch.allclose(batch.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(batch, bind.embed(items, encoder=tiny, batch_size=3), atol=1e-5)


def test_bad_input_raises_input_error(tiny):
    with pytest.raises(bind.InputError, match="silent"):
        bind.embed(wave(np.zeros(RATE)), encoder=tiny)
    cancelling = np.stack([sine(1.0), -sine(1.0)])
    with pytest.raises(bind.InputError, match="silent after mixing to mono"):
        bind.embed(wave(cancelling), encoder=tiny)
    with pytest.raises(bind.InputError, match="sample_rate"):
        bind.embed(noise(1.0, 0).astype(np.float32), encoder=tiny)


def test_card_contract_is_checked():
    with pytest.raises(bind.ConfigError, match="aiSFX takes"):
        bind.create_encoder(CARD.replace(preprocess={**CARD.preprocess, "sample_rate": 48000}), tiny=True)
    with pytest.raises(bind.ConfigError, match="512-d"):
        bind.create_encoder(CARD.replace(dim=256), pretrained=False)


def test_missing_checkpoint_names_the_install_step_and_licence(monkeypatch):
    monkeypatch.setattr(aisfx, "CHECKPOINT", "models/no_such_checkpoint.pth")
    assert not bind.weights_available(CARD)
    with pytest.raises(bind.WeightsUnavailableError, match=r"--no-deps aisfx==0\.1\.2.*CC BY 4\.0"):
        bind.create_encoder(CARD)


def test_real_network_equals_the_packages_network(real):
    cnn2d = pytest.importorskip("aisfx.models.cnn2d")
    theirs = cnn2d.EmbeddingNet("max", 3, 1, 64)
    theirs.load_state_dict(aisfx._load_state_dict(aisfx.checkpoint_path()))
    blocks = torch.rand(3, 100, 96)
    with torch.no_grad():
        assert torch.allclose(real.net(blocks), theirs.eval()(blocks), atol=1e-5)


def test_real_embeddings_are_unit_deterministic_and_pool_blocks(real):
    items = [wave(noise(3.0, 0)), wave(noise(3.0, 1)), wave(sine(3.0))]
    batch = bind.embed(items, encoder=real, batch_size=2)
    assert batch.shape == (3, 512) and torch.isfinite(batch).all()
    assert torch.allclose(batch.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(batch, bind.embed(items, encoder=real, batch_size=1), atol=1e-5)
    assert batch[0] @ batch[1] > batch[0] @ batch[2] + 0.05, "two noises are closer than noise and a sine"
    assert batch[0] @ batch[1] > batch[1] @ batch[2] + 0.05
    long = wave(sine(10.0, 330.0) + noise(10.0, 2) * np.linspace(0, 1, 10 * RATE))
    blocks = real.preprocessor()(long)
    with torch.no_grad():
        per_block = real.net(blocks)
    whole = bind.embed(long, encoder=real, normalize=False)
    assert blocks.shape[0] == 7 and torch.allclose(whole, per_block.mean(0), atol=1e-4), "an item is its blocks' mean"
