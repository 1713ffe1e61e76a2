"""Video sound tracks fused into a space's video embeddings, in the space itself.

:class:`SoundTrackFusion` wraps a space that has a video path and an audio path. A video with a sound track
is embedded as ``z = l2((1 - w) * v + w * a)``: ``v`` the base space's video embedding (from its frames),
``a`` the base space's audio embedding of the video's first audio stream, ``w`` the ``audio_weight``. Both
are unit vectors of the same space, so the fusion needs no training and works with any pair of paths (it
is the video expert's own ``audio_encoder`` option, moved after the adapters).

The frames and the sound track of a video come from one opened container in one pass, in the DataLoader
worker that decodes the frames (the space's video experts read their frames through the runner's
"video-frames" decoding, which this fusion replaces for its calls; experts that decode videos their own way,
and features served from a FeatureCache, get their tracks read apart). A track longer than
``LONG_TRACK_SECONDS`` (10 min) is streamed to a temporary FLAC file instead of memory, so the audio path
reads only the windows its expert uses (bounded memory for films). A video gets ``v``
alone when it has no sound track, when the track is silent, or when the audio path cannot embed it (e.g.
the space's audio expert is an optional extra that is not installed; a warning gives the reason). A corrupt
sound track is an :class:`~bind.errors.InputError` of the video, as for the video experts. Every other
modality passes through the base space unchanged.
"""
from __future__ import annotations

import copy
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputError
from ..experts.cards import EncoderCard
from ..experts.modality import Modality
from ..experts.runner import Decoded
from ..io.audio import SILENCE_PEAK
from ..io.video import audio_track_seconds, read_audio_track, read_frames_and_track, write_audio_track
from .base import Space, indent
from .call import Call
from .lams import check_lam, fmt
from .persist import space_from_state
from .rows import Rows

LONG_TRACK_SECONDS = 600.0  # longer sound tracks go to the audio path as a temporary file, not in memory


SOUND_TRACK = "sound track"  # the by-product name of the frames-and-track decoder


class FramesAndTrack:
    """A video's frames and its sound track from one pass over one opened container (picklable: runs in the
    runner's DataLoader workers); None where that cannot be done, leaving the frames to the usual decoder."""

    def __init__(self, folder: str | os.PathLike, long_seconds: float) -> None:
        self.folder, self.long_seconds = str(folder), long_seconds

    def __call__(self, item: Any, count: int) -> Decoded | None:
        read = read_frames_and_track(item, count, self.folder, self.long_seconds)
        return None if read is None else Decoded(read[0], {SOUND_TRACK: read[1]})


def audible(track: Any) -> bool:
    """Whether a track is worth embedding: a file (a long track), or a waveform that is not silent."""
    return track is not None and (not hasattr(track, "samples") or float(np.abs(track.samples).max()) >= SILENCE_PEAK)


def sound_tracks(items: list[Any], indices: list[int], folder: Path) -> tuple[dict[int, Any], list[InputError]]:
    """The audible sound track of the videos at ``indices`` (by index), read apart from their frames, and
    the videos whose track is corrupt.

    A track is a Waveform in memory, or, when longer than ``LONG_TRACK_SECONDS``, a mono FLAC file streamed
    into ``folder`` (the audio path then reads only the windows its expert uses).
    """
    tracks: dict[int, Any] = {}
    failures: list[InputError] = []
    for index in indices:
        try:
            seconds = audio_track_seconds(items[index])
            if seconds is None:
                continue
            if seconds > LONG_TRACK_SECONDS:
                path = folder / f"track-{index}.flac"
                if write_audio_track(items[index], path):
                    tracks[index] = path
                continue
            track = read_audio_track(items[index])
        except InputError as exc:
            failures.append(exc.at(index))
            continue
        if audible(track):
            tracks[index] = track
    return tracks, failures


class SoundTrackFusion(Space):
    """``base``, with each video's sound track (through ``base``'s audio path) mixed into its video embedding.

    ``audio_weight`` ``w`` in [0, 1]: ``z = l2((1 - w) * video + w * audio)`` for videos with a sound track;
    ``w = 0`` gives the base space exactly.
    """

    kind = "soundtrack"

    def __init__(self, base: Space, audio_weight: float) -> None:
        super().__init__()
        missing = {Modality.VIDEO, Modality.AUDIO} - base.modalities
        if missing:
            raise ConfigError(f"SoundTrackFusion needs a base space with video and audio paths; it has no "
                              f"{', '.join(sorted(m.value for m in missing))} path")
        self.base = base
        self.audio_weight = check_lam(audio_weight, "SoundTrackFusion(audio_weight=...)")

    @property
    def dim(self) -> int:
        return self.base.dim

    @property
    def modalities(self) -> frozenset[Modality]:
        return self.base.modalities

    def expert_cards(self, modality: Modality) -> list[EncoderCard]:
        return self.base.expert_cards(modality)

    def with_audio_weight(self, audio_weight: float) -> SoundTrackFusion:
        """A copy that mixes sound tracks in with ``audio_weight`` (0: frames only)."""
        out = copy.copy(self)
        out.audio_weight = check_lam(audio_weight, "with_audio_weight(...)")
        return out

    def _encode(self, call: Call) -> Rows:
        if call.modality != Modality.VIDEO or self.audio_weight == 0:
            return self.base._rows(call)
        with tempfile.TemporaryDirectory(prefix="bind-tracks-") as folder:
            call.decoders["video-frames"] = FramesAndTrack(folder, LONG_TRACK_SECONDS)
            video = self.base._rows(call)
            if not video.indices:
                return video
            read = {i: call.extras[i][SOUND_TRACK] for i in video.indices if SOUND_TRACK in call.extras.get(i, {})}
            tracks, corrupt = sound_tracks(call.items, [i for i in video.indices if i not in read], Path(folder))
            tracks.update({i: track for i, track in read.items() if audible(track)})
            bad = {failure.index for failure in corrupt}
            keep = torch.tensor([i not in bad for i in video.indices], dtype=torch.bool)
            video = Rows(video.embeddings[keep], [i for i in video.indices if i not in bad],
                         sorted(video.failures + corrupt, key=_position))
            positions = [i for i in video.indices if i in tracks]
            if not positions:
                return video
            audio = self.base._rows(call.derived([tracks[i] for i in positions], Modality.AUDIO,
                                                  self.base.expert_cards(Modality.AUDIO)))
        if audio.failures:
            reasons = "; ".join(sorted({failure.reason for failure in audio.failures}))
            warnings.warn(f"{len(audio.failures)} of {len(positions)} video sound tracks are embedded without "
                          f"their sound (frames only): {reasons}", stacklevel=3)
        heard = [positions[i] for i in audio.indices]
        if not heard:
            return video
        w = self.audio_weight
        mixed = F.normalize((1 - w) * video.take(heard) + w * audio.embeddings.to(video.embeddings.dtype), dim=-1)
        out = video.embeddings.clone()
        row_of = {index: row for row, index in enumerate(video.indices)}
        out[[row_of[i] for i in heard]] = mixed
        return video.replace(out)

    def _has_bonds(self) -> bool:
        return self.base._has_bonds()

    def _with_lams(self, lams: dict[Modality, float]) -> Space:
        out = copy.copy(self)
        out.base = self.base._with_lams(lams)
        return out

    def _node_state(self, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        base, tensors = self.base.state(f"{prefix}base.")
        return {"audio_weight": self.audio_weight, "base": base}, tensors

    @classmethod
    def _from_node_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> Space:
        return cls(space_from_state(config["base"], tensors, f"{prefix}base."), config["audio_weight"])

    def _lines(self) -> list[str]:
        return [f"SoundTrackFusion(dim={self.dim}, audio_weight={fmt(self.audio_weight)})", "  base:",
                *indent(self.base._lines(), "    "), *self._calibration_line()]


def _position(failure: InputError) -> int:
    return failure.index if failure.index is not None else -1
