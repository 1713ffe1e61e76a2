"""Modality inference: types, extensions and magic bytes; ambiguity is an error, not a guess."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bind import AmbiguousModalityError, InputError, Modality, infer_modality


@pytest.mark.parametrize("item, expected", [
    ("a photo of a cat", Modality.TEXT),
    ("photos/cat.JPG", Modality.IMAGE),
    ("bark.flac", Modality.AUDIO),
    ("clip.mp4", Modality.VIDEO),
    ("chair.ply", Modality.POINTS),
    (Path("x/y.stl"), Modality.POINTS),
    (Image.new("RGB", (4, 4)), Modality.IMAGE),
    (np.zeros((10, 3), np.float32), Modality.POINTS),
    (np.zeros((32, 32, 3), np.uint8), Modality.IMAGE),
    (torch.zeros(3, 32, 32), Modality.IMAGE),
    (np.zeros((4, 16, 16, 3), np.uint8), Modality.VIDEO),
    (b"\x89PNG\r\n\x1a\n....", Modality.IMAGE),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", Modality.AUDIO),
    (b"fLaC\x00\x00", Modality.AUDIO),
])
def test_inferred(item, expected):
    assert infer_modality(item) == expected


def test_audio_array_needs_sample_rate():
    wave = np.zeros(16000, np.float32)
    assert infer_modality(wave, sample_rate=16000) == Modality.AUDIO
    with pytest.raises(AmbiguousModalityError, match="sample_rate"):
        infer_modality(wave)


@pytest.mark.parametrize("item", [b"\x00\x01\x02\x03 unknown", np.zeros((5, 7)), np.zeros((2, 3, 4, 5, 6))])
def test_ambiguous_inputs_raise(item):
    with pytest.raises(InputError):
        infer_modality(item)


def test_unknown_extension_of_existing_file(tmp_path):
    path = tmp_path / "notes.xyz"
    path.write_text("hello")
    with pytest.raises(InputError, match="unknown file extension '.xyz'"):
        infer_modality(path)
    with pytest.raises(InputError, match="unknown file extension"):
        infer_modality(str(path))


def test_unsupported_type():
    with pytest.raises(InputError, match="unsupported input type"):
        infer_modality(3.5)


def test_modality_parse():
    assert Modality.parse("points") is Modality.POINTS
    with pytest.raises(ValueError, match="unknown modality 'smell'"):
        Modality.parse("smell")
