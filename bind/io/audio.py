"""Audio inputs: decoding (soundfile, PyAV), mono mix-down, resampling and the fixed-window policy.

Experts with a fixed input length (CLAP: 10 s at 48 kHz) see every clip through ``split_windows``;
the encoder averages the windows' embeddings (``bind.encoder.pool_segments``).
"""
from __future__ import annotations

import dataclasses
import io
import math
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import InputError
from .files import open_source

# soundfile (libsndfile) decodes these with no system package; PyAV (bundled ffmpeg) decodes the rest,
# including the audio track of video containers
SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif")
AV_EXTENSIONS = (".mp3", ".m4a", ".aac", ".opus", ".wma", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
SILENCE_PEAK = 1e-4  # a clip whose absolute peak stays below this is rejected as silent
MIN_SECONDS = 0.1  # the shortest clip an audio expert embeds, unless its card's preprocess.min_seconds says otherwise
_TRUNCATION_TOLERANCE = (0.1, 0.1)  # (fraction, seconds) a decode may fall short of the declared duration


@dataclasses.dataclass
class Waveform:
    """Samples ``[channels, time]`` (float32 in [-1, 1]) and their sample rate in Hz."""

    samples: np.ndarray
    sample_rate: int

    @classmethod
    def from_array(cls, array: Any, sample_rate: int | None) -> "Waveform":
        """Validate a 1-D ``[time]`` or 2-D ``[channels, time]`` float array given with its sample rate."""
        if sample_rate is None or int(sample_rate) <= 0:
            raise InputError(array, "raw audio needs a positive sample_rate=...")
        samples = array.detach().cpu().numpy() if hasattr(array, "detach") else np.asarray(array)
        if samples.ndim == 1:
            samples = samples[None]
        if samples.ndim != 2 or samples.shape[0] > 8:
            raise InputError(array, f"audio must be [time] or [channels, time], got shape {samples.shape}")
        if not np.issubdtype(samples.dtype, np.floating):
            raise InputError(array, f"audio arrays must be float, got {samples.dtype}")
        if not np.isfinite(samples).all():
            raise InputError(array, "audio contains NaN or inf")
        return cls(samples.astype(np.float32, copy=False), int(sample_rate))


def load_audio(item: Any) -> Waveform:
    """A checked Waveform from a path, raw bytes or a Waveform.

    Paths pick their decoder by extension (soundfile for wav/flac/ogg/aiff, PyAV for mp3/m4a/aac/opus and
    video containers; the other decoder is tried when the first cannot read the file); bytes try both.
    Raises InputError for missing, empty, corrupt, truncated or unknown files, 0-sample audio, NaN/inf
    and silent audio (peak below ``SILENCE_PEAK``).
    """
    if isinstance(item, Waveform):
        return _checked(item, item)
    if isinstance(item, np.ndarray) or hasattr(item, "detach"):
        raise InputError(item, "raw audio arrays need their sample rate: pass Waveform.from_array(array, sample_rate)")
    source, ext = open_source(item)
    if ext in SOUNDFILE_EXTENSIONS or ext == "":
        decoders = (_decode_soundfile, decode_av)
    elif ext in AV_EXTENSIONS:
        decoders = (decode_av,)
    else:
        known = ", ".join(SOUNDFILE_EXTENSIONS + AV_EXTENSIONS)
        raise InputError(item, f"unsupported audio file extension {ext!r} (supported: {known})")
    errors = []
    for decode in decoders:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        try:
            return _checked(decode(source, item), item)
        except InputError:
            raise
        except Exception as exc:  # each decoder raises its own types for data it cannot read
            errors.append(f"{decode.__name__.strip('_')}: {type(exc).__name__}: {exc}")
    raise InputError(item, "not a readable audio file (unknown format, corrupt or truncated); " + "; ".join(errors))


def _checked(wave: Waveform, item: Any) -> Waveform:
    samples = wave.samples
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise InputError(item, "audio has no samples (0 frames)")
    if not np.isfinite(samples).all():
        raise InputError(item, "audio contains NaN or inf")
    peak = float(np.abs(samples).max())
    if peak < SILENCE_PEAK:
        raise InputError(item, f"audio is silent (peak amplitude {peak:.2g} < {SILENCE_PEAK:g})")
    return wave


def _decode_soundfile(source: str | BinaryIO, item: Any) -> Waveform:
    import soundfile as sf

    with sf.SoundFile(source) as handle:
        declared = handle.frames
        samples = handle.read(dtype="float32", always_2d=True)
        rate = handle.samplerate
    _check_riff_size(source, item)
    if declared > 0 and len(samples) < declared:
        raise InputError(item, f"truncated audio: decoded {len(samples)} of {declared} declared frames")
    return Waveform(np.ascontiguousarray(samples.T), int(rate))


def _check_riff_size(source: str | BinaryIO, item: Any) -> None:
    """WAV/AIFF headers declare their size; libsndfile reads a cut-off file without complaint, so compare.

    Streamed files write 0 or 0xFFFFFFFF there (size unknown when the header was written); those pass,
    and so does a few bytes' slack (a missing pad byte, writers that count the 8-byte RIFF header).
    """
    if isinstance(source, str):
        with open(source, "rb") as handle:
            head = handle.read(12)
        size = Path(source).stat().st_size
    else:
        source.seek(0)
        head = source.read(12)
        size = len(source.getbuffer()) if isinstance(source, io.BytesIO) else None
    if size is None or len(head) < 12:
        return
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        declared = struct.unpack("<I", head[4:8])[0] + 8
    elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        declared = struct.unpack(">I", head[4:8])[0] + 8
    else:
        return
    if declared - 8 not in (0, 0xFFFFFFFF) and declared > size + 8:
        raise InputError(item, f"truncated audio file: the header declares {declared} bytes, the file has {size}")


def decode_av(source: str | BinaryIO, item: Any) -> Waveform:
    """The first audio stream of any container PyAV (ffmpeg) reads, as float32 ``[channels, time]``.

    Raises InputError when there is no audio stream or the decode falls clearly short of the duration
    the container declares (a cut-off file).
    """
    import av

    with av.open(source) as container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise InputError(item, "no audio stream in this file")
        resampler = av.AudioResampler(format="fltp")  # planar float, same layout and rate
        chunks = []
        for frame in container.decode(stream):
            chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray() for f in resampler.resample(None))
        rate = stream.rate or stream.codec_context.sample_rate
        duration = container.duration  # microseconds, or None when unknown
    if not chunks or not rate:
        return Waveform(np.zeros((1, 0), np.float32), int(rate or 1))
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    if duration:
        declared = duration / 1e6
        got = samples.shape[1] / rate
        fraction, seconds = _TRUNCATION_TOLERANCE
        if got < declared * (1 - fraction) - seconds:
            raise InputError(item, f"truncated audio: decoded {got:.2f} s of {declared:.2f} s declared")
    return Waveform(samples, int(rate))


def to_mono_resampled(wave: Waveform, sample_rate: int) -> np.ndarray:
    """Mix down to mono (mean of the channels) and resample to ``sample_rate``: float32 ``[time]``."""
    mono = wave.samples.mean(axis=0, dtype=np.float32)
    if wave.sample_rate == sample_rate:
        return mono
    import torch
    import torchaudio.functional as AF

    resampled = AF.resample(torch.from_numpy(np.ascontiguousarray(mono)), wave.sample_rate, int(sample_rate))
    return resampled.numpy()


def window_starts(length: int, window: int, max_windows: int) -> np.ndarray:
    """Where ``split_windows`` starts the windows of a clip of ``length`` samples longer than one ``window``."""
    count = min(math.ceil(length / window), max_windows)
    return np.linspace(0, length - window, count).round().astype(int)


def split_windows(samples: np.ndarray, sample_rate: int, seconds: float, max_windows: int = 8) -> np.ndarray:
    """The fixed-length windows an expert sees of a mono clip: ``[W, round(sample_rate * seconds)]``.

    Policy (nothing is silently dropped):
    - a clip no longer than one window becomes one window, repeat-padded as CLAP's "repeatpad"
      (the clip repeated as many whole times as fit, the rest zeros);
    - a longer clip becomes ``ceil(length / window)`` full windows with evenly spaced starts from the
      first sample to ``length - window``: consecutive when the length is a multiple of the window,
      otherwise neighbours overlap (by less than a window) so that the end is covered without padding;
    - when that is more than ``max_windows``, ``max_windows`` windows are taken at evenly spaced starts
      over the whole clip (first and last window included), i.e. the clip is sampled, not cut.
    The encoder averages the windows' embeddings.
    """
    window = int(round(sample_rate * seconds))
    length = len(samples)
    if length == 0:
        raise ValueError("cannot window an empty clip")
    if max_windows < 1:
        raise ValueError(f"max_windows must be at least 1, got {max_windows}")
    if length <= window:
        repeated = np.tile(samples, window // length)
        return np.pad(repeated, (0, window - len(repeated)))[None].astype(np.float32, copy=False)
    starts = window_starts(length, window, max_windows)
    return np.stack([samples[s : s + window] for s in starts]).astype(np.float32, copy=False)


def read_long_windows(item: Any, sample_rate: int, seconds: float, max_windows: int) -> np.ndarray | None:
    """``split_windows`` of a long file read window by window from disk, so memory stays at
    ``max_windows`` windows however long the file; None for anything else (load it whole).

    Applies to soundfile-readable files (wav, flac, ogg, aiff) that need more than ``max_windows`` windows,
    i.e. whose windows sample the clip. Each window is read at the file's rate with 10 ms of context on
    both sides, mixed to mono and resampled on its own, starting on an instant both rates share, so the
    windows equal ``split_windows``'s of the whole clip (tested to 1e-5). Raises InputError for a truncated
    file, NaN/inf, or all-silent windows.
    """
    if not isinstance(item, (str, Path)) or Path(item).suffix.lower() not in SOUNDFILE_EXTENSIONS:
        return None
    import soundfile as sf

    try:
        info = sf.info(str(item))
    except (RuntimeError, OSError, sf.LibsndfileError):
        return None  # the whole-file path reports what is wrong with it
    native, frames = int(info.samplerate), int(info.frames)
    window = int(round(sample_rate * seconds))
    length = int(round(frames * sample_rate / native))
    if frames <= 0 or math.ceil(length / window) <= max_windows:
        return None
    _check_riff_size(str(item), item)
    # a read starts on a sample where both rates meet (a multiple of native/gcd), so its resampled samples
    # fall on the same instants as the whole clip's; 10 ms of context on each side absorbs the filter's edges
    common = math.gcd(native, sample_rate)
    step_native, step_target = native // common, sample_rate // common
    context = int(math.ceil(sample_rate / 100)) if native != sample_rate else 0
    windows = []
    with sf.SoundFile(str(item)) as handle:
        for start in window_starts(length, window, max_windows):
            block = max(0, int(start) - context) // step_target
            begin, offset = block * step_native, int(start) - block * step_target
            wanted = int(math.ceil((offset + window) * native / sample_rate)) + context * native // sample_rate
            handle.seek(begin)
            chunk = handle.read(min(wanted, frames - begin), dtype="float32", always_2d=True)
            if len(chunk) < min(wanted, frames - begin):
                raise InputError(item, f"truncated audio: the file ends before {frames} declared frames")
            mono = chunk.mean(axis=1, dtype=np.float32)
            if not np.isfinite(mono).all():
                raise InputError(item, "audio contains NaN or inf")
            part = to_mono_resampled(Waveform(mono[None], native), sample_rate)[offset : offset + window]
            windows.append(np.pad(part, (0, window - len(part))))
    stacked = np.stack(windows).astype(np.float32, copy=False)
    if float(np.abs(stacked).max()) < SILENCE_PEAK:
        raise InputError(item, f"audio is silent in every window (peak below {SILENCE_PEAK:g})")
    return stacked


def load_clip(path: Any, min_seconds: float, max_seconds: float) -> Waveform:
    """:func:`load_audio` for data preparation: also an InputError when the clip does not last between
    ``min_seconds`` and ``max_seconds``."""
    wave = load_audio(path)
    seconds = wave.samples.shape[1] / wave.sample_rate
    if not min_seconds <= seconds <= max_seconds:
        raise InputError(path, f"{seconds:.2f} s is outside [{min_seconds:g}, {max_seconds:g}] s")
    return wave


def check_duration(item: Any, samples: np.ndarray, sample_rate: int, min_seconds: float) -> np.ndarray:
    """``samples`` when the clip lasts at least ``min_seconds``, else an InputError naming ``item``.

    A shorter clip would reach the expert mostly as padding (a 10 s CLAP window repeats a 1 ms clip 10,000
    times, a tone that is not the sound)."""
    if len(samples) < min_seconds * sample_rate:
        raise InputError(item, f"audio is {len(samples) / sample_rate:.3g} s long, shorter than this expert's "
                               f"minimum of {min_seconds:g} s")
    return samples


class AudioPreprocessor:
    """Item (path, bytes or Waveform) -> float32 tensor ``[W, sample_rate * seconds]``: load, mono,
    resample, refuse clips under ``min_seconds``, split into windows (``split_windows``); long wav/flac/ogg files are read window by window
    (``read_long_windows``). Picklable for DataLoader workers."""

    def __init__(self, sample_rate: int, seconds: float, max_windows: int = 8, min_seconds: float = MIN_SECONDS) -> None:
        self.sample_rate = int(sample_rate)
        self.seconds = float(seconds)
        self.max_windows = int(max_windows)
        self.min_seconds = float(min_seconds)

    def __call__(self, item: Any) -> Any:
        import torch

        windows = read_long_windows(item, self.sample_rate, self.seconds, self.max_windows)
        if windows is None:
            mono = check_duration(item, to_mono_resampled(load_audio(item), self.sample_rate), self.sample_rate,
                                  self.min_seconds)
            windows = split_windows(mono, self.sample_rate, self.seconds, self.max_windows)
        return torch.from_numpy(windows)
