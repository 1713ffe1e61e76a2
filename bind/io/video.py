"""Video inputs: N evenly spaced frames (never the whole clip in memory) and the audio track.

Paths are read with decord (``VideoReader.get_batch`` seeks to the wanted frames); bytes, and files
decord cannot open, with PyAV in one streaming pass that converts and keeps only the wanted frames.
A ``[T, H, W, 3]`` or ``[T, 3, H, W]`` array (uint8, or floats in [0, 1]) is a video too.
"""
from __future__ import annotations

import contextlib
import io
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch

from ..errors import InputError
from .atomic import atomic_path
from .audio import Waveform
from .files import open_source

Decoder = Literal["auto", "decord", "pyav"]



def rgb_frame(frame: Any) -> np.ndarray:
    """A decoded PyAV frame as an ``HxWx3`` uint8 array, converted on the calling thread: PyAV >= 17 converts
    on a pool of threads by default, which a DataLoader worker forked from a process that used it waits on
    forever."""
    return frame.to_ndarray(format="rgb24", threads=1)

def frame_indices(total: int, count: int) -> np.ndarray:
    """``count`` evenly spaced indices into ``total`` frames (segment centres); every frame once if fewer."""
    if total <= count:
        return np.arange(total)
    return ((np.arange(count) + 0.5) * total / count).astype(np.int64)


def read_frames(item: Any, count: int = 8, decoder: Decoder = "auto") -> np.ndarray:
    """Up to ``count`` evenly spaced RGB frames ``[T, H, W, 3]`` uint8 of a video path, bytes or array.

    ``decoder``: "auto" (decord for paths, PyAV for bytes or where decord fails), "decord" or "pyav".
    Raises InputError for missing, empty, corrupt or truncated files, no video stream and 0 frames.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return _sample_array(item, count)
    source, _ = open_source(item)
    if decoder != "pyav" and isinstance(source, str):
        frames = _read_decord(source, count)
        if frames is not None:
            return frames
        if decoder == "decord":
            raise InputError(item, "decord cannot read this video")
    elif decoder == "decord":
        raise InputError(item, "decord reads files only; use decoder='pyav' for bytes")
    return _read_pyav(item, source, count)


def _sample_array(item: Any, count: int) -> np.ndarray:
    array = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item
    if array.ndim != 4:
        raise InputError(item, f"a video array must be [T, H, W, 3] or [T, 3, H, W], got shape {array.shape}")
    if array.shape[-1] != 3 and array.shape[1] == 3:
        array = np.moveaxis(array, 1, -1)
    if array.shape[-1] != 3:
        raise InputError(item, f"a video array needs 3 colour channels, got shape {array.shape}")
    if array.shape[0] == 0:
        raise InputError(item, "the video has 0 frames")
    frames = array[frame_indices(array.shape[0], count)]
    if frames.dtype == np.uint8:
        return np.ascontiguousarray(frames)
    if not np.issubdtype(frames.dtype, np.floating):
        raise InputError(item, f"unsupported video dtype {array.dtype} (use uint8 or float in [0, 1])")
    if not np.isfinite(frames).all() or frames.min() < 0 or frames.max() > 1:
        raise InputError(item, "a float video array must hold finite values in [0, 1]")
    return (frames * 255).round().astype(np.uint8)


def _read_decord(path: str, count: int) -> np.ndarray | None:
    """The frames via decord, or None where decord cannot read the file (PyAV then says why)."""
    try:
        import decord
    except ImportError:
        return None
    try:
        reader = decord.VideoReader(path, num_threads=1)
        if len(reader) == 0:
            return None
        return reader.get_batch(frame_indices(len(reader), count).tolist()).asnumpy()
    except (decord.DECORDError, RuntimeError, AssertionError):
        return None


def _open_av(item: Any, source: str | io.BytesIO) -> Any:
    import av

    if isinstance(source, io.BytesIO):
        source.seek(0)
    try:
        return av.open(source)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(item, f"not a readable video (corrupt, truncated or unknown format): {exc}") from None


def _read_pyav(item: Any, source: str | io.BytesIO, count: int) -> np.ndarray:
    import av

    with _open_av(item, source) as container:
        if not container.streams.video:
            kind = " (audio only)" if container.streams.audio else ""
            raise InputError(item, f"has no video stream{kind}")
        total = container.streams.video[0].frames
    if total == 0:  # containers without a frame count in their header (e.g. Matroska): count packets
        with _open_av(item, source) as container:
            try:
                total = sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
            except av.error.FFmpegError as exc:
                raise InputError(item, f"corrupt or truncated video: {exc}") from None
    if total == 0:
        raise InputError(item, "the video has 0 frames")
    wanted = frame_indices(total, count)
    keep, frames, decoded = set(wanted.tolist()), [], 0
    with _open_av(item, source) as container:
        try:
            for decoded, frame in enumerate(container.decode(container.streams.video[0]), start=1):
                if decoded - 1 in keep:
                    frames.append(rgb_frame(frame))
                if decoded > wanted[-1]:
                    break
        except av.error.FFmpegError as exc:
            raise InputError(item, f"corrupt or truncated video after {decoded} frames: {exc}") from None
    if len(frames) < len(wanted):
        raise InputError(item, f"corrupt or truncated video: {decoded} frames decode, the header says {total}")
    return np.stack(frames)


class _TrackInMemory:
    """Collects an audio stream's frames as float32 ``[channels, time]`` at ``rate`` (a Waveform)."""

    def __init__(self, rate: int) -> None:
        import av

        self.rate = rate
        self.resampler = av.AudioResampler(format="fltp", rate=rate)
        self.chunks: list[np.ndarray] = []

    def add(self, frames: Iterable[Any]) -> None:
        for frame in frames:
            self.chunks.extend(out.to_ndarray() for out in self.resampler.resample(frame))

    def finish(self) -> Waveform | None:
        self.chunks.extend(out.to_ndarray() for out in self.resampler.resample(None))
        if not self.chunks:
            return None
        return Waveform(np.concatenate(self.chunks, axis=1).astype(np.float32, copy=False), self.rate)


class _TrackToFile:
    """Streams an audio stream's frames into ``path`` as mono 24-bit FLAC at ``rate`` (never in memory;
    the file appears whole or not at all). Use as a context manager."""

    def __init__(self, path: str | os.PathLike, rate: int) -> None:
        import av

        self.path, self.rate = Path(path), rate
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> _TrackToFile:
        import soundfile as sf

        tmp = self._stack.enter_context(atomic_path(self.path))
        self.out = self._stack.enter_context(sf.SoundFile(str(tmp), "w", samplerate=self.rate, channels=1,
                                                          format="FLAC", subtype="PCM_24"))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)

    def add(self, frames: Iterable[Any]) -> None:
        for frame in frames:
            for chunk in self.resampler.resample(frame):
                self.out.write(chunk.to_ndarray().reshape(-1))

    def finish(self) -> Path:
        for chunk in self.resampler.resample(None):
            self.out.write(chunk.to_ndarray().reshape(-1))
        return self.path


def _stream_seconds(container: Any, stream: Any) -> float:
    """An audio stream's duration from the header (0.0 when the header does not say)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / 1e6 if container.duration else 0.0


def read_audio_track(item: Any, sample_rate: int | None = None) -> Waveform | None:
    """The first audio stream of a video file/bytes as float32 ``[channels, time]`` (PyAV), or None.

    None when there is no audio stream (or it holds no samples); arrays carry no audio. ``sample_rate``
    resamples while decoding (the whole track is held, at that rate: pass the audio expert's rate).
    """
    import av

    if isinstance(item, (np.ndarray, torch.Tensor)):
        return None
    source, _ = open_source(item)
    with _open_av(item, source) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        track = _TrackInMemory(int(sample_rate or stream.rate))
        try:
            track.add(container.decode(stream))
        except av.error.FFmpegError as exc:
            raise InputError(item, f"corrupt audio track: {exc}") from None
        return track.finish()


def audio_track_seconds(item: Any) -> float | None:
    """The duration of the first audio stream of a video file/bytes from its header, 0.0 when the header
    does not say, None when there is no audio stream (arrays carry no audio)."""
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return None
    source, _ = open_source(item)
    with _open_av(item, source) as container:
        if not container.streams.audio:
            return None
        return _stream_seconds(container, container.streams.audio[0])


def write_audio_track(item: Any, path: str | os.PathLike) -> bool:
    """Stream the first audio stream of a video into ``path`` as mono 24-bit FLAC at the track's own rate,
    frame by frame (the track is never held in memory; the file appears whole or not at all); False when
    there is no audio stream."""
    import av

    source, _ = open_source(item)
    with _open_av(item, source) as container:
        if not container.streams.audio:
            return False
        stream = container.streams.audio[0]
        with _TrackToFile(path, stream.rate) as track:
            try:
                track.add(container.decode(stream))
            except av.error.FFmpegError as exc:
                raise InputError(item, f"corrupt audio track: {exc}") from None
            track.finish()
    return True


def read_frames_and_track(item: Any, count: int, folder: str | os.PathLike,
                          long_seconds: float) -> tuple[np.ndarray, Waveform | Path | None] | None:
    """``count`` evenly spaced frames (as :func:`read_frames`) and the first audio stream, from ONE opened
    container in one pass (PyAV), or None where that cannot be done (arrays, no frame count in the header):
    then read them apart.

    The track is a Waveform at its own rate, or, when longer than ``long_seconds``, a mono FLAC file
    streamed into ``folder`` (as :func:`write_audio_track`); None when there is no audio stream.
    """
    import av

    if isinstance(item, (np.ndarray, torch.Tensor)):
        return None
    source, _ = open_source(item)
    with _open_av(item, source) as container:
        if not container.streams.video:
            kind = " (audio only)" if container.streams.audio else ""
            raise InputError(item, f"has no video stream{kind}")
        video = container.streams.video[0]
        if video.frames == 0:
            return None
        wanted = frame_indices(video.frames, count)
        keep, frames, decoded = set(wanted.tolist()), [], 0
        audio = container.streams.audio[0] if container.streams.audio else None
        with contextlib.ExitStack() as stack:
            track: _TrackInMemory | _TrackToFile | None = None
            if audio is not None and _stream_seconds(container, audio) > long_seconds:
                track = stack.enter_context(_TrackToFile(Path(folder) / f"track-{uuid.uuid4().hex}.flac", audio.rate))
            elif audio is not None:
                track = _TrackInMemory(audio.rate)
            for packet in container.demux(*[s for s in (video, audio) if s is not None]):
                if packet.stream.index == video.index:
                    if decoded > wanted[-1]:
                        continue
                    try:
                        for frame in packet.decode():
                            if decoded in keep:
                                frames.append(rgb_frame(frame))
                            decoded += 1
                    except av.error.FFmpegError as exc:
                        raise InputError(item, f"corrupt or truncated video after {decoded} frames: {exc}") from None
                elif track is not None:
                    try:
                        track.add(packet.decode())
                    except av.error.FFmpegError as exc:
                        raise InputError(item, f"corrupt audio track: {exc}") from None
            sound = track.finish() if track is not None else None
    if len(frames) < len(wanted):
        raise InputError(item, f"corrupt or truncated video: {decoded} frames decode, the header says {video.frames}")
    return np.stack(frames), sound


class VideoPreprocessor:
    """Item -> (frames ``[T, ...]`` through ``frame_transform``, audio sample or None); picklable.

    ``audio_transform`` (an audio expert's preprocessor, given a Waveform) runs on the audio track
    when set; videos without one give None.
    """

    def __init__(self, frames: int, frame_transform: Callable[[np.ndarray], torch.Tensor],
                 audio_transform: Callable[[Waveform], Any] | None = None, sample_rate: int | None = None) -> None:
        self.frames, self.frame_transform = frames, frame_transform
        self.audio_transform, self.sample_rate = audio_transform, sample_rate

    @property
    def decode_key(self) -> tuple[str, int] | None:
        """Frame-only experts that read as many frames share one decoding of a video (bind.experts.runner)."""
        return ("video-frames", self.frames) if self.audio_transform is None else None

    def decode(self, item: Any) -> np.ndarray:
        return read_frames(item, self.frames)

    def transform(self, clip: np.ndarray) -> tuple[torch.Tensor, None]:
        return torch.stack([self.frame_transform(frame) for frame in clip]), None

    def __call__(self, item: Any) -> tuple[torch.Tensor, Any]:
        images, _ = self.transform(self.decode(item))
        if self.audio_transform is None:
            return images, None
        track = read_audio_track(item, self.sample_rate)
        return images, (self.audio_transform(track) if track is not None else None)
