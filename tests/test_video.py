"""Video inputs (decord and PyAV paths, arrays, audio tracks, bad files) and the frame-pooling video expert."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from conftest import VIDEO_AUDIO_RATE, write_video

import bind
from bind.experts.backends.video import VideoFramesEncoder
from bind.io.audio import Waveform
from bind.io.video import audio_track_seconds, frame_indices, read_audio_track, read_frames, write_audio_track

CARD = "video-efficientnet-lite0.video"
RATE = VIDEO_AUDIO_RATE


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    clips = {"clip": write_video(folder / "clip.mp4", 30), "sound": write_video(folder / "sound.mp4", 30, audio=True),
             "mkv": write_video(folder / "clip.mkv", 30), "long": write_video(folder / "long.mp4", 300, (320, 240))}
    with av.open(str(folder / "tone.m4a"), "w") as container:  # audio only
        stream = container.add_stream("aac", rate=RATE)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, RATE), np.float32), format="fltp", layout="mono")
        frame.sample_rate = RATE
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with av.open(str(folder / "zero.avi"), "w") as container:  # a video stream with no frames
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    data = clips["clip"].read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])  # its index (moov) is at the end: lost
    data = write_video(folder / "faststart.mp4", 60, faststart=True).read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])  # index first: half the frames are missing
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "folder.mp4").mkdir()
    (folder / "clip.xyz").write_bytes(data)
    bad = {"cut": "cut.mp4", "tone": "tone.m4a", "zero": "zero.avi", "truncated": "truncated.mp4",
           "corrupt": "corrupt.mp4", "empty": "empty.mp4", "folder": "folder.mp4", "missing": "missing.mp4",
           "unknown": "clip.xyz"}
    return {**clips, **{name: folder / file for name, file in bad.items()}}


def levels(frames: np.ndarray) -> list[int]:
    return [int(round(f.mean() / 8)) for f in frames]


def test_frame_indices_are_evenly_spaced():
    assert frame_indices(30, 3).tolist() == [5, 15, 25]
    assert frame_indices(4, 8).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("decoder", ["auto", "decord", "pyav"])
def test_frames_are_the_evenly_spaced_ones(videos, decoder):
    frames = read_frames(videos["clip"], 3, decoder=decoder)
    assert frames.shape == (3, 48, 64, 3) and frames.dtype == np.uint8
    assert levels(frames) == [5, 15, 25]


def test_decord_and_pyav_decode_the_same_frames(videos):
    for name in ("clip", "long", "mkv"):
        by_decord = read_frames(videos[name], 8, decoder="decord").astype(int)
        by_pyav = read_frames(videos[name], 8, decoder="pyav")
        assert np.abs(by_decord - by_pyav).max() <= 2, name


def test_bytes_are_read_with_pyav(videos):
    data = videos["sound"].read_bytes()
    assert np.array_equal(read_frames(data, 4), read_frames(videos["sound"], 4, decoder="pyav"))
    with pytest.raises(bind.InputError, match="decord reads files only"):
        read_frames(data, 4, decoder="decord")


@pytest.mark.parametrize("count", [1, 8, 16, 50])
def test_frame_count_is_configurable(videos, count):
    assert len(read_frames(videos["clip"], count)) == min(count, 30)


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_long_videos_hold_only_the_wanted_frames(videos, decoder):
    frame_bytes = 320 * 240 * 3
    tracemalloc.start()
    frames = read_frames(videos["long"], 4, decoder=decoder)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert levels(frames) == [(i % 32) for i in frame_indices(300, 4)]
    assert peak < 12 * frame_bytes, f"peak {peak / frame_bytes:.1f} frames of Python memory for 4 of 300"


def test_arrays_are_videos():
    clip = np.stack([np.full((24, 32, 3), 8 * i, np.uint8) for i in range(30)])
    assert levels(read_frames(clip, 3)) == [5, 15, 25]
    assert np.array_equal(read_frames(torch.from_numpy(clip).permute(0, 3, 1, 2), 3), read_frames(clip, 3))
    assert np.array_equal(read_frames(clip / 255.0, 3), read_frames(clip, 3))


def test_audio_track(videos):
    track = read_audio_track(videos["sound"])
    assert isinstance(track, Waveform) and track.sample_rate == RATE and track.samples.shape[0] == 1
    assert abs(track.samples.shape[1] / RATE - 1.2) < 0.15 and 0.25 < np.abs(track.samples).max() < 0.35
    slower = read_audio_track(videos["sound"].read_bytes(), sample_rate=8000)
    assert slower.sample_rate == 8000 and abs(slower.samples.shape[1] - track.samples.shape[1] / 2) < 400
    assert read_audio_track(videos["clip"]) is None and read_audio_track(np.zeros((2, 8, 8, 3), np.uint8)) is None


def test_audio_track_duration_and_streaming_to_a_file(videos, tmp_path):
    assert abs(audio_track_seconds(videos["sound"]) - 1.2) < 0.1
    assert audio_track_seconds(videos["clip"]) is None and audio_track_seconds(np.zeros((2, 8, 8, 3), np.uint8)) is None
    assert write_audio_track(videos["sound"], tmp_path / "track.flac")
    written, rate = sf.read(tmp_path / "track.flac", dtype="float32")
    track = read_audio_track(videos["sound"])
    assert rate == track.sample_rate and written.ndim == 1 and len(written) == track.samples.shape[1]
    assert np.abs(written - track.samples.mean(axis=0)).max() < 1e-5
    assert not write_audio_track(videos["clip"], tmp_path / "none.flac") and not (tmp_path / "none.flac").exists()


@pytest.mark.parametrize("name, reason", [
    ("corrupt", "not a readable video"), ("truncated", "not a readable video"), ("cut", "truncated video"),
    ("empty", "empty file"),
    ("tone", "no video stream \\(audio only\\)"), ("zero", "0 frames"), ("folder", "directory"),
    ("missing", "not found"),
])
def test_bad_files(videos, name, reason):
    with pytest.raises(bind.InputError, match=reason):
        read_frames(videos[name])


@pytest.mark.parametrize("array, reason", [
    (np.zeros((8, 8, 3), np.uint8), "must be \\[T, H, W, 3\\]"), (np.zeros((0, 8, 8, 3), np.uint8), "0 frames"),
    (np.zeros((2, 8, 8, 2), np.uint8), "3 colour channels"), (np.full((2, 8, 8, 3), 2.0), "\\[0, 1\\]"),
    (np.zeros((2, 8, 8, 3), bool), "dtype"),
])
def test_bad_arrays(array, reason):
    with pytest.raises(bind.InputError, match=reason):
        read_frames(array)


def test_bad_inputs_in_a_batch_are_reported(videos):
    expert = VideoFramesEncoder.tiny(bind.get_card(CARD).replace(options={"image_encoder": "efficientnet-lite0.image",
                                                                          "frames": 2}))
    items = [videos["clip"], videos["truncated"], videos["tone"], videos["unknown"], videos["sound"]]
    result = bind.embed(items, encoder=expert.freeze(), on_error="skip")
    assert result.indices == [0, 4] and result.embeddings.shape == (2, 1280)
    assert [e.index for e in result.failures] == [1, 2, 3]
    assert "unknown file extension" in result.failures[2].reason


def test_tiny_expert_and_frames_option(videos):
    card = bind.get_card(CARD)
    expert = VideoFramesEncoder.tiny(card).freeze()
    assert expert.frames == 8 and expert.preprocessor()(videos["clip"])[0].shape == (8, 3, 224, 224)
    vectors = bind.embed([videos["clip"], np.zeros((5, 32, 32, 3), np.uint8)], encoder=expert, batch_size=2)
    assert vectors.shape == (2, 1280) and torch.isfinite(vectors).all()
    assert bind.create_encoder(CARD, frames=16).frames == 16
    assert bind.weights_available(card)


def test_real_expert_is_the_mean_of_its_frame_embeddings(videos, effnet):
    card = bind.get_card(CARD)
    expert = VideoFramesEncoder(card.replace(options={**card.options, "frames": 2}),
                                experts={"image_encoder": effnet}).freeze()
    vectors = bind.embed([videos["clip"], videos["sound"].read_bytes()], encoder=expert, normalize=False)
    expected = bind.embed(list(read_frames(videos["clip"], 2)), encoder=effnet, normalize=False).mean(dim=0)
    assert torch.allclose(vectors[0], expected, atol=1e-4)
    assert F.cosine_similarity(vectors[0], vectors[1], dim=0) > 0.99, "the same picture, with or without sound"


class ToneExpert(bind.Encoder):
    """A small real audio expert for these tests: a learnt projection of the 1 s magnitude spectrum."""

    def __init__(self, card: bind.EncoderCard, pretrained: bool = True) -> None:
        super().__init__(card)
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(257, card.dim)

    @classmethod
    def tiny(cls, card: bind.EncoderCard) -> "ToneExpert":
        return cls(card, pretrained=False)

    def preprocessor(self):
        return tone_sample

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(self.to_input(batch), 512, window=torch.hann_window(512), return_complex=True)
        return self.proj(spectrum.abs().mean(dim=-1))


def tone_sample(track: Waveform) -> torch.Tensor:
    if track.sample_rate != 8000:
        raise bind.InputError(track, f"expected 8 kHz audio, got {track.sample_rate}")
    mono = torch.from_numpy(track.samples.mean(axis=0))[:8000]
    return F.pad(mono, (0, 8000 - len(mono)))


def fused_expert(fusion: str, audio_dim: int, dim: int, weight: float = 0.5) -> VideoFramesEncoder:
    bind.register_encoder({"name": f"tone{audio_dim}.test", "modality": "audio", "dim": audio_dim, "backend": "tone",
                           "model_id": "-", "licence": "MIT", "weights": "random", "preprocess": {"sample_rate": 8000}},
                          backend=ToneExpert, overwrite=True)
    options = {"image_encoder": "efficientnet-lite0.image", "audio_encoder": f"tone{audio_dim}.test", "frames": 2,
               "fusion": fusion, "audio_weight": weight}
    return VideoFramesEncoder.tiny(bind.get_card(CARD).replace(dim=dim, options=options)).freeze()


@pytest.mark.parametrize("fusion, audio_dim, dim", [("mean", 1280, 1280), ("concat", 64, 1344)])
def test_audio_fusion(videos, fusion, audio_dim, dim):
    expert = fused_expert(fusion, audio_dim, dim)
    items = [videos["clip"], videos["sound"]]
    fused = bind.embed(items, encoder=expert, normalize=False, batch_size=1, num_workers=1)  # decodes in a worker
    frames_only = F.normalize(pool_frames(expert, items), dim=-1)
    assert fused.shape == (2, dim)
    assert torch.allclose(fused[0, :1280], frames_only[0], atol=1e-5), "no sound track: the frame part alone"
    sound = F.normalize(expert.audio(tone_sample(read_audio_track(videos["sound"], 8000))[None]), dim=-1)[0]
    if fusion == "mean":
        assert torch.allclose(fused[1], F.normalize(0.5 * frames_only[1] + 0.5 * sound, dim=0), atol=1e-5)
    else:
        assert torch.allclose(fused[0, 1280:], torch.zeros(64))
        assert torch.allclose(fused[1], torch.cat([0.5 * frames_only[1], 0.5 * sound]), atol=1e-5)


def pool_frames(expert: VideoFramesEncoder, items: list) -> torch.Tensor:
    image = expert.image
    return torch.stack([image(torch.stack([image.encoder.preprocessor()(f) for f in read_frames(item, 2)])).mean(dim=0)
                        for item in items]).detach()


@pytest.mark.parametrize("fusion, audio_dim, dim, weight, match", [
    ("mean", 64, 1280, 0.5, "equal dim"), ("concat", 64, 1280, 0.5, "1344-d"), ("sum", 1280, 1280, 0.5, "fusion"),
    ("mean", 1280, 1280, 1.5, "audio_weight"),
])
def test_fusion_is_checked_when_built(fusion, audio_dim, dim, weight, match):
    with pytest.raises(bind.ConfigError, match=match):
        fused_expert(fusion, audio_dim, dim, weight)


@pytest.mark.parametrize("options, match", [
    ({"frames": 0}, "frames"), ({"image_encoder": None}, "image_encoder"),
    ({"audio_encoder": "efficientnet-lite0.image"}, "embeds image, not audio"),
])
def test_bad_options(options, match):
    with pytest.raises(bind.ConfigError, match=match):
        bind.create_encoder(CARD, **options)
