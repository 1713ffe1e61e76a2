"""The packaged offline default space ``lite`` (spaces/lite, built by recipes/build_lite_space.py)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import bind
from bind.assets import assets_dir
from bind.errors import InputError
from bind.modality import Modality
from bind.space import Space, load_space


@pytest.fixture(scope="module")
def lite() -> Space:
    return load_space("lite")


def test_lite_has_every_modality_but_audio(lite: Space) -> None:
    assert lite.dim == 384
    assert lite.modalities == {Modality.TEXT, Modality.IMAGE, Modality.VIDEO, Modality.POINTS}


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


def test_audio_is_refused_with_a_clear_reason(lite: Space, tmp_path) -> None:
    path = tmp_path / "tone.wav"
    sf.write(path, np.sin(np.linspace(0, 2000, 16000)).astype(np.float32), 16000)
    with pytest.raises(InputError, match="no audio path"):
        lite.embed(path)
    result = lite.embed([path, "a cat"], on_error="skip")
    assert isinstance(result, bind.EmbedResult)
    assert result.indices == [1] and "no audio path" in str(result.failures[0])


def test_identity_is_stable_across_loads_and_saves(lite: Space, tmp_path) -> None:
    again = load_space("lite")
    assert again.identity == lite.identity
    assert load_space(lite.save(tmp_path / "copy")).identity == lite.identity
    assert lite.with_weights(image=0.0).identity != lite.identity
