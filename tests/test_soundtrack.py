"""SoundTrackFusion: a video's sound track, through the space's audio path, mixed into its video embedding.

The experts are small user-registered ones with hand-checkable outputs: the video expert gives the mean
colour of 4 frames, the audio expert the loudness and zero-crossing rate of the waveform.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_video

import bind
from bind.errors import WeightsUnavailableError
from bind.io.audio import load_audio, to_mono_resampled
from bind.io.video import read_audio_track, read_frames
from bind.spaces import AnchorSpace, load_space
from bind.spaces.fusion import SoundTrackFusion

DIM = 4


def frame_colour(item) -> torch.Tensor:
    frames = read_frames(item, 4).astype(np.float32) / 255
    return torch.tensor([*frames.mean(axis=(0, 1, 2)), 0.5])


def loudness(item) -> torch.Tensor:
    samples = to_mono_resampled(load_audio(item), 16000)
    crossings = np.mean(np.abs(np.diff(np.sign(samples))) > 0)
    return torch.tensor([float(np.sqrt(np.mean(samples ** 2))), float(np.abs(samples).max()), float(crossings), 0.1])


class StatsEncoder(bind.Encoder):
    """Stacks the 4-d statistics its preprocessor computes."""

    def __init__(self, card: bind.EncoderCard, pretrained: bool = True) -> None:
        super().__init__(card)
        self.reader = frame_colour if card.modality == bind.Modality.VIDEO else loudness

    def preprocessor(self):
        return self.reader

    def collate(self, samples):
        return torch.stack(list(samples))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


class MissingWeights(StatsEncoder):
    def __init__(self, card: bind.EncoderCard, pretrained: bool = True) -> None:
        raise WeightsUnavailableError(f"{card.name}: install the optional extra")


def register(name: str, modality: str, backend: type[bind.Encoder]) -> str:
    bind.register_encoder({"name": name, "modality": modality, "dim": DIM, "backend": f"test_{name}",
                           "model_id": "stats", "licence": "MIT", "weights": "none (statistics)"},
                          backend=backend, overwrite=True)
    return name


@pytest.fixture(scope="module")
def experts():
    names = [register("colour.video", "video", StatsEncoder), register("loudness.audio", "audio", StatsEncoder),
             register("missing.audio", "audio", MissingWeights)]
    yield names
    for name in names:
        bind.unregister_encoder(name)


@pytest.fixture(scope="module")
def base(experts) -> AnchorSpace:
    return AnchorSpace({"video": "colour.video", "audio": "loudness.audio"})


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {"sound": write_video(folder / "sound.mp4", 20, audio=True),
            "quiet": write_video(folder / "quiet.mp4", 20, audio=True, amplitude=0.0),
            "mute": write_video(folder / "mute.mp4", 20)}


def test_videos_with_sound_mix_the_audio_path_in(base, clips):
    fused = SoundTrackFusion(base, audio_weight=0.3)
    videos = [clips["sound"], clips["mute"], clips["quiet"]]
    got = fused.embed(videos, "video")
    frames = base.embed(videos, "video")
    heard = base.embed(read_audio_track(clips["sound"]), "audio")
    assert torch.allclose(got[0], F.normalize(0.7 * frames[0] + 0.3 * heard, dim=-1), atol=1e-6)
    assert torch.allclose(got[1:], frames[1:])  # no track, and a silent track: frames alone
    assert not torch.allclose(got[0], frames[0], atol=1e-3)


def test_weight_zero_and_other_modalities_are_the_base(base, clips):
    videos = [clips["sound"], clips["mute"]]
    assert torch.allclose(SoundTrackFusion(base, 0.5).with_audio_weight(0.0).embed(videos, "video"),
                          base.embed(videos, "video"))
    tone = bind.Waveform.from_array(0.2 * np.sin(np.arange(8000) / 5).astype(np.float32), 16000)
    assert torch.equal(SoundTrackFusion(base, 0.5).embed(tone, "audio"), base.embed(tone, "audio"))


def test_unavailable_audio_path_warns_and_keeps_frames(experts, clips):
    base = AnchorSpace({"video": "colour.video", "audio": "missing.audio"})
    with pytest.warns(UserWarning, match="without their sound.*install the optional extra"):
        got = SoundTrackFusion(base, 0.5).embed([clips["sound"]], "video")
    assert torch.allclose(got, base.embed([clips["sound"]], "video"))


def test_bad_videos_are_reported_by_position(base, clips, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clips["sound"].read_bytes()[:2000])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a bad video is a failure of its own, not an audio warning
        result = SoundTrackFusion(base, 0.5).embed([clips["sound"], broken], "video", on_error="skip")
    assert result.indices == [0] and [f.index for f in result.failures] == [1]
    assert "broken.mp4" in str(result.failures[0])


def test_a_corrupt_sound_track_fails_its_video_only(base, clips, monkeypatch):
    import bind.spaces.fusion as soundtrack

    def read(item):
        if str(item).endswith("quiet.mp4"):
            raise bind.InputError(item, "corrupt audio track: invalid data")
        return read_audio_track(item)

    monkeypatch.setattr(soundtrack, "read_audio_track", read)
    videos = [clips["sound"], clips["quiet"], clips["mute"]]
    result = SoundTrackFusion(base, 0.5).embed(videos, "video", on_error="skip")
    assert result.indices == [0, 2] and [f.index for f in result.failures] == [1]
    assert "corrupt audio track" in str(result.failures[0])
    expected = SoundTrackFusion(base, 0.5).embed([clips["sound"], clips["mute"]], "video")
    assert torch.allclose(result.embeddings, expected)


def test_long_sound_tracks_go_through_a_temporary_file(base, clips, monkeypatch, tmp_path):
    import bind.spaces.fusion as soundtrack

    in_memory = SoundTrackFusion(base, 0.5).embed([clips["sound"], clips["mute"]], "video")
    monkeypatch.setattr(soundtrack, "LONG_TRACK_SECONDS", 0.1)  # the 0.8 s track counts as long
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    streamed = SoundTrackFusion(base, 0.5).embed([clips["sound"], clips["mute"]], "video")
    assert torch.allclose(streamed, in_memory, atol=1e-3)  # the same track, via 24-bit FLAC
    assert not torch.allclose(streamed[0], base.embed(clips["sound"], "video"), atol=1e-3)  # the sound is in
    assert list(tmp_path.iterdir()) == []  # the temporary tracks are gone


def test_save_load_and_weights(base, clips, tmp_path):
    fused = SoundTrackFusion(base, 0.25)
    loaded = load_space(fused.save(tmp_path / "space"))
    assert isinstance(loaded, SoundTrackFusion) and loaded.audio_weight == 0.25
    assert loaded.identity == fused.identity != SoundTrackFusion(base, 0.5).identity
    assert torch.allclose(loaded.embed([clips["sound"]], "video"), fused.embed([clips["sound"]], "video"))
    assert "SoundTrackFusion(dim=4, audio_weight=0.25)" in repr(fused)


def test_build_errors(experts):
    with pytest.raises(bind.ConfigError, match="no audio path"):
        SoundTrackFusion(AnchorSpace({"video": "colour.video"}), 0.5)
    with pytest.raises(bind.ConfigError, match="audio_weight"):
        SoundTrackFusion(AnchorSpace({"video": "colour.video", "audio": "loudness.audio"}), 1.5)
    with pytest.raises(bind.ConfigError, match="no bonds"):
        SoundTrackFusion(AnchorSpace({"video": "colour.video", "audio": "loudness.audio"}), 0.5).with_weights(video=0)
