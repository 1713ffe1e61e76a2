"""Audio decoding, mix-down, resampling, the window policy and every bad-input row."""
from __future__ import annotations

import pickle
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from bind.errors import InputError
from bind.io.audio import (
    AudioPreprocessor,
    Waveform,
    load_audio,
    read_long_windows,
    split_windows,
    to_mono_resampled,
)


def tone(rate: int, seconds: float, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def write_av(path: Path, codec: str, rate: int, seconds: float) -> Path:
    """Encode a stereo tone with PyAV (mp3/m4a)."""
    samples = np.stack([tone(rate, seconds), tone(rate, seconds, 660.0)])
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
        frame.rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


@pytest.fixture
def stereo_wav(tmp_path: Path) -> Path:
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([tone(16000, 2.0), -tone(16000, 2.0) * 0.5], axis=1), 16000)
    return path


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_soundfile_formats_decode_from_path_and_bytes(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"clip.{ext}"
    sf.write(path, tone(22050, 1.5), 22050)
    for item in (path, str(path), path.read_bytes()):
        wave = load_audio(item)
        assert wave.sample_rate == 22050 and wave.samples.dtype == np.float32
        assert wave.samples.shape[0] == 1 and abs(wave.samples.shape[1] - 22050 * 1.5) < 600
        assert 0.45 < np.abs(wave.samples).max() < 0.55


@pytest.mark.parametrize("ext,codec,rate", [("mp3", "libmp3lame", 44100), ("m4a", "aac", 48000)])
def test_pyav_formats_decode_from_path_and_bytes(tmp_path: Path, ext: str, codec: str, rate: int) -> None:
    path = write_av(tmp_path / f"clip.{ext}", codec, rate, 2.0)
    for item in (path, path.read_bytes()):
        wave = load_audio(item)
        assert wave.sample_rate == rate and wave.samples.shape[0] == 2
        assert abs(wave.samples.shape[1] / rate - 2.0) < 0.1
        assert 0.3 < np.abs(wave.samples).max() < 0.7


def test_stereo_is_mixed_down_by_channel_mean(stereo_wav: Path) -> None:
    wave = load_audio(stereo_wav)
    mono = to_mono_resampled(wave, 16000)
    np.testing.assert_allclose(mono, wave.samples.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(mono, tone(16000, 2.0) * 0.25, atol=1e-3)


@pytest.mark.parametrize("rate_in,rate_out", [(16000, 48000), (44100, 48000), (48000, 16000), (48000, 48000)])
def test_resampling_keeps_the_duration(rate_in: int, rate_out: int) -> None:
    mono = to_mono_resampled(Waveform.from_array(tone(rate_in, 1.25), rate_in), rate_out)
    assert mono.dtype == np.float32 and mono.ndim == 1
    assert abs(len(mono) - 1.25 * rate_out) <= 1
    assert 0.45 < np.abs(mono[100:-100]).max() < 0.55  # same tone, not garbage


def test_short_clip_is_one_repeat_padded_window() -> None:
    clip = np.arange(1, 4, dtype=np.float32)  # 3 samples, window of 10 at rate 10 Hz for 1 s
    windows = split_windows(clip, 10, 1.0)
    np.testing.assert_array_equal(windows, [[1, 2, 3, 1, 2, 3, 1, 2, 3, 0]])


def test_exact_clip_is_one_window_unchanged() -> None:
    clip = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(split_windows(clip, 10, 1.0), clip[None])


def test_long_clip_windows_cover_every_sample_without_padding() -> None:
    clip = np.arange(25, dtype=np.float32)
    windows = split_windows(clip, 10, 1.0, max_windows=8)
    assert windows.shape == (3, 10)
    np.testing.assert_array_equal(windows[0], clip[:10])
    np.testing.assert_array_equal(windows[-1], clip[-10:])
    assert set(windows.ravel().tolist()) == set(clip.tolist())
    multiple = split_windows(np.arange(30, dtype=np.float32), 10, 1.0)
    np.testing.assert_array_equal(multiple, np.arange(30).reshape(3, 10))  # consecutive when it divides


def test_max_windows_spreads_windows_over_the_whole_clip() -> None:
    clip = np.arange(100, dtype=np.float32)
    windows = split_windows(clip, 10, 1.0, max_windows=3)
    assert windows.shape == (3, 10)
    np.testing.assert_array_equal(windows[:, 0], [0, 45, 90])


def test_preprocessor_is_picklable_and_windows_at_the_target_rate(stereo_wav: Path) -> None:
    prep = pickle.loads(pickle.dumps(AudioPreprocessor(8000, 0.5, max_windows=3)))
    out = prep(stereo_wav)  # 2 s -> 4 windows of 0.5 s, capped at 3
    assert out.shape == (3, 4000) and str(out.dtype) == "torch.float32"
    assert prep(Waveform.from_array(tone(8000, 0.2), 8000)).shape == (1, 4000)


def _truncated(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    return path


def bad_items(tmp_path: Path) -> list[tuple[object, str]]:
    """(item, expected words of the reason) for every way an audio input can be unusable."""
    good = tmp_path / "good.wav"
    sf.write(good, tone(16000, 2.0), 16000)
    flac = tmp_path / "good.flac"
    sf.write(flac, tone(16000, 2.0), 16000)
    mp3 = write_av(tmp_path / "good.mp3", "libmp3lame", 44100, 2.0)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(good.read_bytes()[:20] + np.random.default_rng(0).bytes(4000))
    text = tmp_path / "notes.ogg"
    text.write_text("this is not audio at all")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    unknown = tmp_path / "clip.xyz"
    unknown.write_bytes(good.read_bytes())
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    no_samples = tmp_path / "zero.wav"
    sf.write(no_samples, np.zeros(0, np.float32), 16000)
    return [
        (corrupt, "not a readable audio file"),
        (text, "not a readable audio file"),
        (np.random.default_rng(1).bytes(3000), "not a readable audio file"),
        (_truncated(tmp_path, "cut.wav", good.read_bytes()), "truncated"),
        (_truncated(tmp_path, "cut.flac", flac.read_bytes()), "not a readable audio file"),
        (_truncated(tmp_path, "cut.mp3", mp3.read_bytes()), "truncated"),
        (empty, "empty file"),
        (b"", "empty input"),
        (tmp_path, "directory"),
        (tmp_path / "missing.wav", "not found"),
        (unknown, "unsupported audio file extension '.xyz'"),
        (silent, "silent"),
        (no_samples, "no samples"),
        (Waveform(np.zeros((1, 0), np.float32), 16000), "no samples"),
        (Waveform(np.full((1, 100), np.nan, np.float32), 16000), "NaN"),
        (Waveform(np.full((2, 100), 1e-6, np.float32), 16000), "silent"),
        (tone(16000, 1.0), "sample rate"),
        (12345, "expected a path or bytes"),
    ]


def _long_tone(path: Path, rate: int, seconds: float, channels: int = 1) -> Path:
    """A chirp with a slow amplitude ramp, so every window differs; int16 like most long recordings."""
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.2 + 0.6 * t / seconds) * np.sin(2 * np.pi * (200 + 20 * t) * t)
    sf.write(path, np.stack([tone] * channels, axis=1), rate, subtype="PCM_16")
    return path


def test_long_files_are_read_window_by_window_as_split_windows_would_cut_them(tmp_path: Path) -> None:
    same = _long_tone(tmp_path / "same.wav", 16000, 95.0, channels=2)
    whole = split_windows(to_mono_resampled(load_audio(same), 16000), 16000, 3.0, 8)
    direct = read_long_windows(same, 16000, 3.0, 8)
    assert direct is not None and np.array_equal(direct, whole)  # same rate: exactly the same samples
    other = _long_tone(tmp_path / "other.flac", 22050, 95.0)
    whole = split_windows(to_mono_resampled(load_audio(other), 16000), 16000, 3.0, 8)
    direct = read_long_windows(other, 16000, 3.0, 8)
    assert direct is not None and direct.shape == whole.shape == (8, 48000)
    assert np.abs(direct - whole).max() < 1e-5  # resampled per window, on the same instants as the whole clip
    short = _long_tone(tmp_path / "short.wav", 16000, 20.0)  # 7 windows: loaded whole, as before
    assert read_long_windows(short, 16000, 3.0, 8) is None
    assert read_long_windows(str(same), 16000, 3.0, 40) is None  # 32 windows fit under the cap


def test_a_long_file_costs_only_its_windows_in_memory(tmp_path: Path) -> None:
    import tracemalloc

    path = _long_tone(tmp_path / "long.wav", 16000, 600.0)  # 10 min: 38 MB as float32
    preprocess = AudioPreprocessor(16000, 3.0, 8)
    tracemalloc.start()
    windows = preprocess(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert windows.shape == (8, 48000) and peak < 8e6, f"peak {peak / 1e6:.1f} MB"


def test_long_file_errors(tmp_path: Path) -> None:
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(16000 * 60, np.float32), 16000)
    with pytest.raises(InputError, match="silent in every window"):
        read_long_windows(quiet, 16000, 3.0, 8)
    cut = tmp_path / "cut.wav"
    data = _long_tone(tmp_path / "full.wav", 16000, 60.0).read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # the header still declares 60 s
    with pytest.raises(InputError, match="truncated"):
        AudioPreprocessor(16000, 3.0, 8)(cut)


def test_every_bad_input_raises_input_error_naming_item_and_reason(tmp_path: Path) -> None:
    for item, reason in bad_items(tmp_path):
        with pytest.raises(InputError) as info:
            AudioPreprocessor(16000, 1.0)(item)
        assert reason in info.value.reason, (item, info.value.reason)
        assert info.value.item is item
        if isinstance(item, Path):
            assert str(item) in str(info.value)


@pytest.mark.parametrize("array,rate,reason", [
    (np.array([0.1, np.nan, 0.2], np.float32), 16000, "NaN or inf"),
    (np.array([0.1, np.inf], np.float32), 16000, "NaN or inf"),
    (np.zeros((2, 3, 100), np.float32), 16000, "must be [time] or [channels, time]"),
    (np.zeros((16000, 2), np.float32), 16000, "must be [time] or [channels, time]"),
    ((np.ones(100) * 1000).astype(np.int16), 16000, "must be float"),
    (np.ones(100, np.float32), None, "sample_rate"),
    (np.ones(100, np.float32), 0, "sample_rate"),
])
def test_bad_arrays_raise_input_error(array: np.ndarray, rate: int | None, reason: str) -> None:
    with pytest.raises(InputError) as info:
        Waveform.from_array(array, rate)
    assert reason in info.value.reason
    assert "ndarray" in str(info.value)
