"""Shared fixtures. Tests never touch a model hub: offline mode is forced before anything imports HF code."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import csv  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import bind  # noqa: E402

VIDEO_AUDIO_RATE = 16000  # the sample rate of write_video's sound track


@pytest.fixture(scope="session")
def minilm() -> bind.Encoder:
    return bind.create_encoder("minilm-l6.text")


@pytest.fixture(scope="session")
def effnet() -> bind.Encoder:
    return bind.create_encoder("efficientnet-lite0.image")


@pytest.fixture(scope="session")
def effnet_logits() -> bind.Encoder:
    return bind.create_encoder("efficientnet-lite0.imagenet-logits")


def make_expert(card: bind.EncoderCard) -> bind.Encoder:
    """The real expert when its weights are here, else its backend's tiny random-weight instance."""
    if bind.weights_available(card):
        return bind.create_encoder(card.name)
    try:
        return bind.get_backend(card.backend).tiny(card).freeze()
    except bind.WeightsUnavailableError as exc:  # e.g. BirdNET: a TFLite graph has no tiny stand-in
        pytest.skip(f"{card.name}: no tiny stand-in without its optional extra ({exc})")


def sample_inputs(modality: bind.Modality, count: int, seed: int = 0) -> list:
    """Small in-memory inputs of one modality, all different."""
    rng = np.random.default_rng(seed)
    if modality == bind.Modality.TEXT:
        words = ["a cat", "a red truck", "rain on a window", "two dogs playing", "an old clock", "a guitar solo"]
        return [words[i % len(words)] + f" number {i}" for i in range(count)]
    if modality == bind.Modality.IMAGE:
        return [rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8) for i in range(count)]
    if modality == bind.Modality.AUDIO:
        t = np.arange(16000 * 2) / 16000
        return [(0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t)).astype(np.float32) for i in range(count)]
    if modality == bind.Modality.VIDEO:
        return [rng.integers(0, 256, (6, 40, 48, 3), dtype=np.uint8) for _ in range(count)]
    if modality == bind.Modality.POINTS:
        return [rng.normal(size=(256, 3)).astype(np.float32) * (1 + i) for i in range(count)]
    raise ValueError(modality)


def put_in_hf_cache(cache: Path, repo_id: str, filename: str) -> Path:
    """The path a file of ``repo_id`` has in a Hugging Face cache rooted at ``cache`` (refs/main -> snapshot)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text("0" * 40)
    target = repo / "snapshots" / ("0" * 40) / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    """A CSV file with a header row (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_video(path: Path, frames: int, size: tuple[int, int] = (64, 48), audio: bool = False,
                faststart: bool = False, amplitude: float = 0.3) -> Path:
    """Frame i is a flat grey of level 8 * (i % 32), so decoded frames tell their index; ``audio`` adds a
    16 kHz mono 440 Hz tone of peak ``amplitude`` (0: a silent track) as long as the frames."""
    import av

    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        sound = container.add_stream("aac", rate=VIDEO_AUDIO_RATE, layout="mono") if audio else None
        for i in range(frames):
            image = np.full((size[1], size[0], 3), 8 * (i % 32), np.uint8)
            if faststart:  # a pattern: more bytes per frame, so cutting the file loses frames
                image[::2, ::3] = 255 - image[::2, ::3]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
        if sound is not None:
            t = np.arange(VIDEO_AUDIO_RATE * frames // 25) / VIDEO_AUDIO_RATE
            tone = amplitude * np.sin(2 * np.pi * 440 * t)
            frame = av.AudioFrame.from_ndarray(tone.astype(np.float32)[None], format="fltp", layout="mono")
            frame.sample_rate = VIDEO_AUDIO_RATE
            container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return path
