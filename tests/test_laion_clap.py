"""The LAION-CLAP backend: tiny random towers through bind.embed, and honest failure without real weights."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

import bind
from bind.errors import ConfigError, InputError, WeightsUnavailableError
from bind.experts.backends.laion_clap import TEXT_MODEL, ClapEncoder
from bind.experts.registry import create_encoder, get_card

ROOT = Path(__file__).resolve().parents[1]


def tone(rate: int, seconds: float, freq: float) -> np.ndarray:
    return (0.4 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


@pytest.fixture(scope="module")
def audio_encoder() -> ClapEncoder:
    return ClapEncoder.tiny(get_card("clap-htsat-tiny.audio")).freeze()


@pytest.fixture(scope="module")
def text_encoder() -> ClapEncoder:
    return ClapEncoder.tiny(get_card("clap-htsat-tiny.text")).freeze()


def test_audio_embeddings_are_unit_norm_512d_and_in_input_order(audio_encoder: ClapEncoder, tmp_path: Path) -> None:
    paths = []
    for i, (rate, seconds, freq) in enumerate([(16000, 1.0, 300.0), (44100, 3.0, 900.0), (48000, 0.5, 2000.0)]):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], tone(rate, seconds, freq), rate, subtype="FLOAT")
    batch = bind.embed(paths, encoder=audio_encoder, batch_size=2)
    assert batch.shape == (3, 512)
    torch.testing.assert_close(batch.norm(dim=1), torch.ones(3))
    reordered = bind.embed([paths[2], paths[0]], encoder=audio_encoder)
    torch.testing.assert_close(reordered, batch[[2, 0]], atol=1e-5, rtol=0)
    assert F.cosine_similarity(batch[0], batch[1], dim=0) < 0.999  # different clips, different embeddings
    single = bind.embed(tone(16000, 1.0, 300.0), encoder=audio_encoder, sample_rate=16000)
    torch.testing.assert_close(single, batch[0], atol=1e-4, rtol=0)  # array == the same clip from a file


def test_long_clip_is_the_mean_of_its_window_embeddings(audio_encoder: ClapEncoder) -> None:
    clip = np.concatenate([tone(48000, 10.0, 200.0), tone(48000, 10.0, 3000.0), tone(48000, 5.0, 800.0)])
    windows = audio_encoder.preprocessor()(bind.io.audio.Waveform.from_array(clip, 48000))
    assert windows.shape == (3, 480000)
    with torch.inference_mode():
        per_window = torch.cat([audio_encoder(audio_encoder.collate([w[None]])) for w in windows])
    expected = F.normalize(F.normalize(per_window, dim=-1).mean(dim=0), dim=0)
    got = bind.embed(clip, encoder=audio_encoder, sample_rate=48000)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert F.cosine_similarity(per_window[0], per_window[1], dim=0) < 0.9999  # the windows differ


def test_fused_tiny_model_embeds_short_and_long_clips() -> None:
    fused = ClapEncoder.tiny(get_card("clap-htsat-fused.audio")).freeze()
    out = bind.embed([tone(16000, 2.0, 500.0), tone(16000, 14.0, 500.0)], encoder=fused, sample_rate=16000)
    assert out.shape == (2, 512) and torch.isfinite(out).all()
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_bad_audio_is_reported_with_its_position(audio_encoder: ClapEncoder, tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    good = tmp_path / "good.wav"
    sf.write(good, tone(16000, 1.0, 440.0), 16000)
    result = bind.embed([good, silent, good], encoder=audio_encoder, on_error="skip")
    assert result.indices == [0, 2] and result.embeddings.shape == (2, 512)
    assert [f.index for f in result.failures] == [1] and "silent" in result.failures[0].reason
    with pytest.raises(InputError, match="silent"):
        bind.embed([good, silent], encoder=audio_encoder)


def test_text_embeddings_are_unit_norm_512d_in_order_and_truncated_at_77_tokens(text_encoder: ClapEncoder) -> None:
    texts = ["a dog barks in the distance", "rain", "birds sing at dawn over a quiet lake"]
    batch = bind.embed(texts, encoder=text_encoder)
    assert batch.shape == (3, 512)
    torch.testing.assert_close(batch.norm(dim=1), torch.ones(3))
    for text, row in zip(texts, batch):
        torch.testing.assert_close(bind.embed(text, encoder=text_encoder), row, atol=1e-5, rtol=0)
    long_a, long_b = "rain on a tin roof " * 40 + "dog", "rain on a tin roof " * 40 + "car"
    assert text_encoder.collate([long_a])["input_ids"].shape[1] == 77
    a, b, short_a, short_b = bind.embed([long_a, long_b, "dog", "car"], encoder=text_encoder)
    torch.testing.assert_close(a, b)  # the words past token 77 are cut off
    assert F.cosine_similarity(short_a, short_b, dim=0) < 0.99


@pytest.fixture
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.mark.parametrize("name", ["clap-htsat-tiny.audio", "clap-htsat-fused.text", "clap-htsat-base.audio"])
def test_pretrained_offline_raises_quickly(name: str, empty_hub_cache: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="not downloaded and the hub is offline"):
        create_encoder(name)
    checkpoint = tmp_path / "local.pt"
    checkpoint.write_bytes(b"not read: the text model is checked first")
    with pytest.raises(WeightsUnavailableError, match=f"{TEXT_MODEL}.*not in the local Hugging Face cache"):
        create_encoder(name, checkpoint=str(checkpoint))
    assert time.monotonic() - start < 10


def _fake_roberta_cache(cache: Path) -> None:
    snapshot = cache / f"models--{TEXT_MODEL}" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (cache / f"models--{TEXT_MODEL}" / "refs").mkdir()
    (cache / f"models--{TEXT_MODEL}" / "refs" / "main").write_text("0123abc")
    for name in ("config.json", "vocab.json", "merges.txt", "model.safetensors"):
        (snapshot / name).write_text("{}")


def test_weights_available_needs_both_checkpoint_and_roberta(empty_hub_cache: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "clap.pt"
    checkpoint.write_bytes(b"x")
    released = get_card("clap-htsat-tiny.audio")
    local = released.replace(options={**released.options, "checkpoint": str(checkpoint)})
    assert not ClapEncoder.weights_available(released)
    assert not ClapEncoder.weights_available(local)  # roberta-base missing
    _fake_roberta_cache(empty_hub_cache)
    assert ClapEncoder.weights_available(local)
    assert not ClapEncoder.weights_available(released)  # the released checkpoint is not downloaded
    assert not bind.experts.registry.weights_available(released)


def test_card_mismatches_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="enable_fusion"):
        create_encoder("clap-htsat-tiny.audio", enable_fusion=True)
    with pytest.raises(ConfigError, match="512"):
        ClapEncoder(get_card("clap-htsat-tiny.text").replace(dim=768))
    with pytest.raises(ConfigError, match="no audio model"):
        create_encoder("clap-htsat-tiny.audio", amodel="HTSAT-huge", checkpoint="x.pt")


def test_laion_clap_import_does_not_hang_without_offline_env() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    code = ("import os, huggingface_hub.constants as c\n"
            "from bind.experts.backends.laion_clap import laion\n"
            "laion()\n"
            "print('imported', os.environ.get('HF_HUB_OFFLINE'), c.HF_HUB_OFFLINE)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("imported None False")  # the offline switch is restored afterwards


def _local_roberta(folder: Path) -> Path:
    """A random-weight RoBERTa saved the way roberta-base's hub repo holds it (config, vocab, merges, weights),
    with CLAP's 768-d width and one small layer; its tokenizer is trained offline."""
    from transformers import RobertaConfig, RobertaModel

    from bind.experts.backends.laion_clap import _tiny_tokenizer

    tokenizer = _tiny_tokenizer()
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                           intermediate_size=64, max_position_embeddings=130, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(3)
    RobertaModel(config).save_pretrained(folder)
    tokenizer.backend_tokenizer.model.save(str(folder))  # vocab.json and merges.txt, as roberta-base has them
    return folder


def test_a_local_roberta_folder_replaces_the_hub_for_the_text_tower(empty_hub_cache: Path, tmp_path: Path) -> None:
    """options.text_model: laion_clap's hard-coded roberta-base and its tokenizer come from a folder; a CLAP
    checkpoint saved from that model loads back through laion_clap's own loader and gives the same vectors."""
    folder = _local_roberta(tmp_path / "roberta-base")
    card = get_card("clap-htsat-tiny.text")
    options = {**card.options, "text_model": str(folder)}
    random = ClapEncoder(card.replace(options=options), pretrained=False).freeze()
    assert random.branch.config.num_hidden_layers == 1  # built from the folder, not roberta-base
    checkpoint = tmp_path / "my-clap.pt"
    towers = {f"text_branch.{k}": v for k, v in random.branch.state_dict().items()}
    towers |= {f"text_projection.{k}": v for k, v in random.projection.state_dict().items()}
    lib = bind.experts.backends.laion_clap.laion()
    with bind.experts.backends.laion_clap._roberta_from(str(folder)):
        model, _ = lib.create_model("HTSAT-tiny", "roberta", precision="fp32", device=torch.device("cpu"),
                                    enable_fusion=False, fusion_type="None")
    state = {**model.state_dict(), **towers,  # released checkpoints keep this buffer; laion_clap's loader drops it
             "text_branch.embeddings.position_ids": torch.arange(130)[None]}
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, checkpoint)
    local = card.replace(options={**options, "checkpoint": str(checkpoint)})
    assert ClapEncoder.weights_available(local)
    loaded = create_encoder(local)
    texts = ["a dog barks in the distance", "rain falls on a tin roof"]
    assert torch.allclose(bind.embed(texts, encoder=loaded), bind.embed(texts, encoder=random), atol=1e-5)
    with pytest.raises(WeightsUnavailableError, match="does not hold roberta-base"):
        create_encoder(local.replace(options={**local.options, "text_model": str(tmp_path)}))
