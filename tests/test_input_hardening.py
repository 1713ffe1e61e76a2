"""Inputs that used to crash or be read wrong get a named InputError for that item only."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bind
from bind.assets import assets_dir
from bind.io.image import MAX_PIXELS_ENV

IMAGE = assets_dir() / "images" / "cat.jpg"


def test_lone_surrogates_fail_their_item_only() -> None:
    result = bind.embed(["a cat", "caf\udce9", "a dog"], encoder="minilm-l6.text", on_error="skip")
    assert result.indices == [0, 2] and [f.index for f in result.failures] == [1]
    assert "not valid Unicode" in result.failures[0].reason
    with pytest.raises(bind.InputError, match="not valid Unicode"):
        bind.embed("a \ud800", encoder="minilm-l6.text")


def test_lone_surrogates_in_a_mixed_space_call_keep_the_other_items() -> None:
    result = bind.load_space("lite").embed([IMAGE, "a \ud800", "a cat"], on_error="skip")
    assert result.indices == [0, 2] and [f.index for f in result.failures] == [1]


@pytest.mark.parametrize("item", [{"a cat": 1}, {"a cat", "a dog"}])
def test_a_dict_or_set_is_one_unsupported_item_not_a_batch_of_keys(item) -> None:
    with pytest.raises(bind.InputError, match=f"unsupported input type {type(item).__name__}"):
        bind.embed(item, encoder="minilm-l6.text")


def test_an_empty_image_array_is_named() -> None:
    with pytest.raises(bind.InputError, match=r"the image is empty \(0 x 0 pixels\)"):
        bind.embed(np.zeros((0, 0, 3), np.uint8), encoder="efficientnet-lite0.image")


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 20)).save(path)
    monkeypatch.setenv(MAX_PIXELS_ENV, "399")
    with pytest.raises(bind.InputError, match=rf"20 x 20 = 400 pixels, over the limit of 399 \(set {MAX_PIXELS_ENV}"):
        bind.embed(path, encoder="efficientnet-lite0.image")
    monkeypatch.setenv(MAX_PIXELS_ENV, "400")
    assert bind.embed(path, encoder="efficientnet-lite0.image").shape == (1280,)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(bind.ConfigError, match=MAX_PIXELS_ENV):
        bind.embed(path, encoder="efficientnet-lite0.image")


def test_loading_the_packaged_image_expert_prints_nothing(capfd) -> None:
    bind.create_encoder("efficientnet-lite0.image")
    assert "Loaded pretrained weights" not in capfd.readouterr().out


TEXT_FILE = assets_dir() / "text" / "cat.txt"


def test_a_text_file_named_by_a_string_embeds_its_contents() -> None:
    contents = TEXT_FILE.read_text(encoding="utf-8")
    lite = bind.load_space("lite")
    assert torch.allclose(lite.embed(str(TEXT_FILE)), lite.embed(contents, "text"), atol=1e-6)
    assert torch.allclose(bind.embed(str(TEXT_FILE)), bind.embed(contents, encoder="minilm-l6.text"), atol=1e-6)
    literal = lite.embed(str(TEXT_FILE), "text")  # modality="text": the string itself
    assert not torch.allclose(literal, lite.embed(contents, "text"), atol=1e-3)


def test_a_missing_text_file_or_a_folder_is_an_error_not_text(tmp_path) -> None:
    lite = bind.load_space("lite")
    with pytest.raises(bind.InputError, match="no such text file"):
        lite.embed(str(tmp_path / "missing.txt"))
    with pytest.raises(bind.InputError, match="is a folder"):
        bind.embed(str(tmp_path))
    assert lite.embed(str(tmp_path / "missing.txt"), "text").shape == (lite.dim,)  # forced: the string itself


def _tiny_space() -> bind.Space:
    return bind.AnchorSpace({"text": "minilm-l6.text"})


def test_an_index_saved_inside_the_folder_it_indexes_is_never_indexed(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("a note about lighthouses")
    out = tmp_path / "index"
    _, first = bind.Index.build_from_folder(tmp_path, _tiny_space(), out=out)
    assert first.added == ["a.txt"] and not first.failures
    _, again = bind.Index.build_from_folder(tmp_path, out=out)
    assert (again.added, again.removed, again.unchanged) == ([], [], 1)
    out.rename(tmp_path / "elsewhere")  # any saved bind index inside the folder is left out, whatever its name
    _, third = bind.Index.build_from_folder(tmp_path, _tiny_space(), out=tmp_path / "index2")
    assert third.added == ["a.txt"] and not third.failures


def test_fifos_are_skipped_and_named_and_link_loops_are_named(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("a note about lighthouses")
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it would block forever
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    index = bind.Index(_tiny_space())
    report = index.add_folder(tmp_path)
    assert index.ids == ["a.txt"]
    reasons = {Path(str(f.item)).name: f.reason for f in report.failures}
    assert "not a regular file" in reasons["pipe.jpg"]
    assert "loop.png" in reasons and "cannot be read" in reasons["loop.png"]


@pytest.mark.parametrize("expert", ["aisfx.audio", "clap-htsat-tiny.audio"])
def test_audio_shorter_than_the_experts_minimum_is_named(tmp_path, expert) -> None:
    import soundfile

    if not bind.weights_available(expert) and expert == "aisfx.audio":
        pytest.skip("aisfx is not installed")
    encoder = bind.create_encoder(expert, tiny=True)
    blip = tmp_path / "blip.wav"
    soundfile.write(blip, np.array([0.5], np.float32), 16000)  # one sample
    good = tmp_path / "tone.wav"
    soundfile.write(good, (0.3 * np.sin(np.arange(3200) / 5)).astype(np.float32), 16000)  # 0.2 s
    result = bind.embed([blip, good], encoder=encoder, on_error="skip")
    assert result.indices == [1] and result.failures[0].item == blip
    assert "shorter than this expert's minimum of 0.1 s" in result.failures[0].reason


def test_an_audio_array_with_a_sample_rate_uses_the_default_audio_expert() -> None:
    if not bind.weights_available("aisfx.audio"):
        pytest.skip("aisfx is not installed")
    wave = (0.3 * np.sin(np.arange(16000) / 3)).astype(np.float32)
    vector = bind.embed(wave, modality="audio", sample_rate=16000)
    assert vector.shape == (bind.get_card("aisfx.audio").dim,) and torch.isfinite(vector).all()
