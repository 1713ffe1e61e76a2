"""aiSFX (A. B. Ma and A. Lerch, ISMIR 2022): a sound-effects CNN whose checkpoint ships in the ``aisfx`` wheel.

"Representation Learning for the Automatic Indexing of Sound Effects Libraries": a 9-layer CNN (the DCASE
cross-task baseline) trained across nine sound-effects libraries (UCS categories); the 512-d embedding is
the network before its per-library class heads (the class names are not shipped, so only the embedding is
offered). The ``aisfx`` package itself pins numpy==1.23.0 and librosa==0.9.2, so it is installed with
``pip install --no-deps aisfx==0.1.2`` and never imported: this module only finds its checkpoint file and
re-implements the network and the package's librosa spectrogram path in PyTorch.

Preprocessing (``aisfx.spectrogram.spectrogram_librosa`` + ``aisfx.inference``): mono, 44.1 kHz, peak
normalised to 1; librosa 0.9.2's ``melspectrogram`` (2048-sample periodic Hann frames, hop 1024, centred
with zero padding; power 2; 96 HTK mel bands over 0-22050 Hz, each filter l1-normalised, librosa's
``norm=1``), then ``log10(10000 x + 1)`` and the package's "original" min-max scaling (0 .. 9.4578).
Frames are laid out ``[time, mel]`` (the network's input; the package's librosa path forgets this
transpose, its Essentia path, which the paper used, has it). The paper's Essentia spectrogram differs in
its loader gain (ReplayGain instead of peak normalisation) and mel weighting, so scores can differ a little
from the paper's.

Block policy: 100-frame blocks (2.32 s) every 50 frames, a trailing partial block dropped unless it is the
only one (then zero-padded), as the package's ``blocking``; a clip with more than ``max_blocks`` blocks
keeps ``max_blocks`` of them at evenly spread positions (first and last included). An item's vector is the
mean of its blocks' embeddings (the package returns one embedding per block).

Licence: the pre-trained model and the paper are CC BY 4.0 (attribution: A. B. Ma and A. Lerch, ISMIR
2022); the package code is MIT.
"""
from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, InputError, WeightsUnavailableError
from ...io.audio import MIN_SECONDS, SILENCE_PEAK, check_duration, load_audio, to_mono_resampled
from ..cards import EncoderCard
from ..encoder import Encoder, collate_segments, pool_segments

INSTALL_HINT = ("pip install --no-deps aisfx==0.1.2 (--no-deps: the wheel pins numpy==1.23.0 and librosa==0.9.2, "
                "which bind does not need); the aiSFX model is licensed CC BY 4.0 (attribution: A. B. Ma and "
                "A. Lerch, ISMIR 2022)")
CHECKPOINT = "models/checkpoint.pth"  # inside the aisfx package folder
# the network's input contract (aisfx.inference constants and the "original" spectrogram normalisation)
SPECTROGRAM = {"sample_rate": 44100, "n_fft": 2048, "hop_length": 1024, "n_mels": 96, "f_min": 0.0,
               "f_max": 22050.0, "block_frames": 100, "block_hop": 50}
LOG_SCALE = 10000.0
NORM_MIN, NORM_MAX = 0.0, 9.457798957824707
WIDTH = 64  # hl1 of the released EmbeddingNet('max', 3, 1, 64): 64-128-256-512 channels
TINY_WIDTH = 8


def checkpoint_path() -> Path:
    """The checkpoint inside the installed aisfx package, found without importing it."""
    spec = importlib.util.find_spec("aisfx")
    if spec is None or spec.origin is None:
        raise WeightsUnavailableError(f"the aiSFX checkpoint ships in the aisfx package, which is not installed: {INSTALL_HINT}")
    path = Path(spec.origin).parent / CHECKPOINT
    if not path.is_file():
        raise WeightsUnavailableError(f"aisfx is installed but has no {CHECKPOINT} (needs aisfx 0.1.2): {INSTALL_HINT}")
    return path


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The embedding network's weights from the ``(state_dict, ds_dict)`` checkpoint, unpickled safely.

    ``ds_dict`` holds numpy integers, so those two numpy globals are allowed; nothing else is executed.
    """
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype(np.int64))]
    with torch.serialization.safe_globals(allowed):
        state, _ = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "embedding_net."
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


@functools.lru_cache(maxsize=1)
def mel_filterbank() -> torch.Tensor:
    """librosa 0.9.2 ``filters.mel(sr=44100, n_fft=2048, n_mels=96, fmin=0, fmax=22050, htk=True, norm=1)``:
    ``[96, 1025]`` triangles between HTK-mel-spaced edges, each row divided by its sum."""
    s = SPECTROGRAM
    fft_freqs = np.linspace(0, s["sample_rate"] / 2, 1 + s["n_fft"] // 2)
    mel_range = [2595.0 * np.log10(1.0 + s[key] / 700.0) for key in ("f_min", "f_max")]  # HTK mel scale
    edges = 700.0 * (10.0 ** (np.linspace(*mel_range, s["n_mels"] + 2) / 2595.0) - 1.0)
    ramps = edges[:, None] - fft_freqs[None, :]
    widths = np.diff(edges)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)
    return torch.from_numpy(weights)


def block_starts(frames: int, max_blocks: int) -> np.ndarray:
    """First frames of the blocks an item keeps: the package's ``blocking`` (drop_partial_block=True, hop 0.5),
    then at most ``max_blocks`` of them, evenly spread (first and last included)."""
    size, hop = SPECTROGRAM["block_frames"], SPECTROGRAM["block_hop"]
    count = (frames - size) // hop + 1 if frames >= size else 1
    keep = np.linspace(0, count - 1, min(count, max_blocks)).round().astype(int)
    return keep * hop


def log_mel_blocks(samples: np.ndarray, max_blocks: int = 8) -> torch.Tensor:
    """A peak-normalised 44.1 kHz mono clip -> the network's input blocks ``[N, 100, 96]``.

    Each block's frames are computed from its own slice of the (virtually) centre-padded clip, so a long
    clip never needs its whole spectrogram. Frames past the clip's last frame are zeros, as the package's
    zero padding of a short clip's only block.
    """
    s = SPECTROGRAM
    n_fft, hop, size = s["n_fft"], s["hop_length"], s["block_frames"]
    frames = 1 + len(samples) // hop  # librosa's frame count with center=True
    span = (size - 1) * hop + n_fft
    starts = block_starts(frames, max_blocks)
    segments = np.zeros((len(starts), span), np.float32)
    for row, first in enumerate(starts):
        begin = first * hop - n_fft // 2  # the block's first sample in clip coordinates
        chunk = samples[max(begin, 0) : begin + span]
        offset = max(-begin, 0)
        segments[row, offset : offset + len(chunk)] = chunk
    spectrum = torch.stft(torch.from_numpy(segments), n_fft=n_fft, hop_length=hop, win_length=n_fft,
                          window=torch.hann_window(n_fft), center=False, return_complex=True)
    power = spectrum.abs().pow(2).transpose(1, 2)  # [N, 100, 1025]
    mel = torch.log10(power @ mel_filterbank().T * LOG_SCALE + 1.0)
    blocks = (mel - NORM_MIN) / (NORM_MAX - NORM_MIN)
    valid = torch.from_numpy(starts)[:, None] + torch.arange(size)[None, :] < frames
    return blocks * valid.unsqueeze(-1)


class AisfxPreprocessor:
    """Item (path, bytes or Waveform) -> float32 blocks ``[N, 100, 96]`` (see the module doc). Picklable."""

    def __init__(self, max_blocks: int = 8, min_seconds: float = MIN_SECONDS) -> None:
        self.max_blocks = int(max_blocks)
        self.min_seconds = float(min_seconds)

    def __call__(self, item: Any) -> torch.Tensor:
        rate = SPECTROGRAM["sample_rate"]
        mono = check_duration(item, to_mono_resampled(load_audio(item), rate), rate, self.min_seconds)
        peak = float(np.abs(mono).max())
        if peak < SILENCE_PEAK:
            raise InputError(item, f"audio is silent after mixing to mono (peak {peak:.2g} < {SILENCE_PEAK:g})")
        return log_mel_blocks(mono / peak, self.max_blocks)


class ConvBlock(nn.Module):
    """Two 3x3 conv-BN-ReLU layers, then max pooling (aisfx.models.cnn2d.ConvBlock, pool_type 'max')."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.bn2 = nn.BatchNorm2d(channels_out)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, kernel_size=pool)


class EmbeddingNet(nn.Module):
    """aisfx's EmbeddingNet('max', 3, 1, width): ``[B, time, mel]`` -> ``[B, 8 * width]`` (mean over mel
    bands, then max over time). Parameter names match the checkpoint's ``embedding_net.*``."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        channels = [1, width, 2 * width, 4 * width, 8 * width]
        for index in range(4):
            self.add_module(f"conv_block{index + 1}", ConvBlock(channels[index], channels[index + 1]))
        self.out_features = channels[-1]

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        x = blocks.unsqueeze(1)
        for index, pool in enumerate((2, 2, 2, 1)):
            x = getattr(self, f"conv_block{index + 1}")(x, pool)
        return x.mean(dim=3).amax(dim=2)


class AisfxEncoder(Encoder):
    """aiSFX (X-Sequential-CE, the package's released model): 512-d sound-effects embeddings; see the module doc."""

    def __init__(self, card: EncoderCard, pretrained: bool = True, width: int = WIDTH) -> None:
        super().__init__(card)
        documented = {key: card.preprocess[key] for key in SPECTROGRAM if key in card.preprocess}
        if any(value != SPECTROGRAM[key] for key, value in documented.items()):
            raise ConfigError(f"{card.name!r}: aiSFX takes {SPECTROGRAM}; the card's preprocess says {documented}")
        self.max_blocks = int(card.preprocess.get("max_blocks", 8))
        if self.max_blocks < 1:
            raise ConfigError(f"{card.name!r}: preprocess.max_blocks must be at least 1")
        self.net = EmbeddingNet(width)
        if pretrained:
            path = checkpoint_path()
            try:
                self.net.load_state_dict(_load_state_dict(path))
            except (RuntimeError, KeyError, ValueError, OSError) as exc:
                raise ConfigError(f"{card.name!r}: {path} is not the aiSFX 0.1.2 checkpoint: {exc}") from None
        if width == WIDTH and card.dim != self.net.out_features:
            raise ConfigError(f"{card.name!r}: aiSFX embeddings are {self.net.out_features}-d, the card says {card.dim}")
        self.resize = nn.Linear(self.net.out_features, card.dim) if width != WIDTH else None

    @classmethod
    def weights_available(cls, card: EncoderCard) -> bool:
        try:
            checkpoint_path()
        except WeightsUnavailableError:
            return False
        return True

    @classmethod
    def tiny(cls, card: EncoderCard) -> AisfxEncoder:
        """The same network at width 8 (8-16-32-64 channels), random, with a linear map to ``card.dim``."""
        torch.manual_seed(0)
        return cls(card, pretrained=False, width=TINY_WIDTH)

    def preprocessor(self) -> AisfxPreprocessor:
        return AisfxPreprocessor(self.max_blocks, float(self.card.preprocess.get("min_seconds", MIN_SECONDS)))

    def collate(self, samples: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return collate_segments(samples)

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        blocks, counts = batch
        size, bands = SPECTROGRAM["block_frames"], SPECTROGRAM["n_mels"]
        if blocks.ndim != 3 or tuple(blocks.shape[1:]) != (size, bands):
            raise ConfigError(f"expected log-mel blocks [N, {size}, {bands}], got {tuple(blocks.shape)}")
        features = self.net(self.to_input(blocks))
        if self.resize is not None:
            features = self.resize(features)
        return pool_segments(features, counts)
