"""bind.experts.api: one item or many, order, normalisation, workers, skip/raise on bad input, real quality."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import bind
from bind.spaces.bridges import LabelBridge


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_single_item_and_batch(minilm):
    one = bind.embed("a cat", encoder=minilm)
    many = bind.embed(["a cat", "a truck"], encoder=minilm)
    assert one.shape == (384,) and many.shape == (2, 384)
    assert torch.allclose(one, many[0], atol=1e-5)
    assert torch.allclose(many.norm(dim=1), torch.ones(2), atol=1e-5)
    raw = bind.embed(["a cat"], encoder=minilm, normalize=False)
    assert raw.shape == (1, 384)


def test_order_is_input_order_despite_length_sorting(minilm):
    texts = ["short", "a much longer sentence about a dog running on a beach at sunset", "mid length text"]
    together = bind.embed(texts, encoder=minilm, batch_size=2)
    alone = torch.stack([bind.embed(t, encoder=minilm) for t in texts])
    assert torch.allclose(together, alone, atol=1e-5)


def test_generator_input_and_default_encoder():
    out = bind.embed((t for t in ["one", "two", "three"]), modality="text")
    assert out.shape == (3, 384)


def test_similar_sentences_are_closer(minilm):
    a, b, c = bind.embed(["A man is playing a guitar.", "Someone plays an acoustic guitar.",
                          "The stock market fell sharply today."], encoder=minilm)
    assert a @ b > a @ c + 0.3


def test_workers_give_the_same_result(effnet):
    images = [np.random.default_rng(i).integers(0, 256, (60, 70, 3), dtype=np.uint8) for i in range(6)]
    serial = bind.embed(images, encoder=effnet, batch_size=2, num_workers=0)
    parallel = bind.embed(images, encoder=effnet, batch_size=2, num_workers=2)
    assert torch.allclose(serial, parallel, atol=1e-5)


def test_image_inputs_of_every_kind_agree(effnet, tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(array).save(path)
    inputs = [array, Image.fromarray(array), str(path), path, _png_bytes(array),
              torch.from_numpy(array).permute(2, 0, 1), array.astype(np.float32) / 255]
    out = bind.embed(inputs, encoder=effnet, progress=True)
    assert torch.allclose(out, out[0].expand_as(out), atol=1e-4)


def _bad_image_inputs(tmp_path):
    good = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    png = _png_bytes(good)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (tmp_path / "truncated.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "notes.xyz").write_text("hello")
    (tmp_path / "garbage.png").write_bytes(b"GARBAGE" * 20)
    nan = np.full((8, 8, 3), np.nan, np.float32)
    return [
        (str(tmp_path / "empty.png"), "empty file"),
        (str(tmp_path / "corrupt.jpg"), "corrupt"),
        (str(tmp_path / "truncated.png"), "truncated"),
        (str(tmp_path / "garbage.png"), "not a readable image"),
        (str(tmp_path / "folder.png"), "is a directory"),
        (tmp_path / "notes.xyz", "unknown file extension"),
        (str(tmp_path / "missing.png"), "file not found"),
        (np.zeros((8, 8, 7), np.uint8), "1, 3 or 4 channels"),
        (np.zeros((2, 8, 8, 7), np.uint8), "must be HWC or CHW"),
        (np.zeros((8, 8, 3), np.complex64), "unsupported image dtype"),
        (nan, "NaN"),
        (np.full((8, 8, 3), 7.0, np.float32), "values in \\[0, 1\\]"),
        (b"", "empty input"),
    ]


def test_bad_images_raise_naming_item_and_reason(effnet, tmp_path):
    for item, reason in _bad_image_inputs(tmp_path):
        with pytest.raises(bind.InputError, match=reason) as info:
            bind.embed([item], encoder=effnet)
        assert info.value.index == 0 and info.value.item is item


def test_skip_embeds_the_good_and_reports_the_bad(effnet, tmp_path):
    bad = _bad_image_inputs(tmp_path)
    good = [np.full((40, 40, 3), v, np.uint8) for v in (10, 200)]
    items = [good[0]] + [item for item, _ in bad] + [good[1]]
    result = bind.embed(items, encoder=effnet, on_error="skip", batch_size=4)
    assert isinstance(result, bind.EmbedResult)
    assert result.indices == [0, len(items) - 1]
    assert result.embeddings.shape == (2, 1280)
    assert [f.index for f in result.failures] == list(range(1, len(items) - 1))
    for failure, (_, reason) in zip(result.failures, bad):
        assert failure.reason and pytest.importorskip("re").search(reason, str(failure))
    expected = bind.embed(good, encoder=effnet)
    assert torch.allclose(result.embeddings, expected, atol=1e-5)


@pytest.mark.parametrize("item, reason", [("", "empty text"), ("   \n", "empty text"), (42, "unsupported input type")])
def test_bad_text(minilm, item, reason):
    with pytest.raises(bind.InputError, match=reason):
        bind.embed([item], encoder=minilm)


def test_text_encoder_reads_strings_as_text_even_if_they_look_like_paths(minilm):
    assert bind.embed("holiday.jpg", encoder=minilm).shape == (384,)


def test_modality_mismatch_and_mixed_batches(minilm):
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(bind.InputError, match="is image but this call embeds text"):
        bind.embed(["a cat", image], encoder=minilm)
    with pytest.raises(bind.InputError, match="is image but this call embeds text"):
        bind.embed(["a cat", image])
    with pytest.raises(bind.ConfigError, match="embeds text, not image"):
        bind.embed([image], encoder=minilm, modality="image")
    with pytest.raises(bind.ConfigError, match="on_error"):
        bind.embed(["a"], encoder=minilm, on_error="ignore")


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_a_1d_array_without_sample_rate_is_ambiguous(on_error):
    wave = np.zeros(16000, np.float32)
    with pytest.raises(bind.AmbiguousModalityError, match="sample_rate"):
        bind.embed(wave, on_error=on_error)
    with pytest.raises(bind.AmbiguousModalityError, match="sample_rate"):
        bind.embed([wave, wave], on_error=on_error)


def test_empty_batch(minilm):
    assert bind.embed([], encoder=minilm).shape == (0, 384)


def test_label_bridge_arithmetic():
    labels = torch.eye(3)
    bridge = LabelBridge(labels, top_k=2)
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    expected = torch.nn.functional.normalize(torch.tensor([[0.7, 0.2, 0.0]]) / 0.9, dim=1)
    assert torch.allclose(bridge(logits), expected, atol=1e-6)
    with pytest.raises(bind.ConfigError, match="top_k"):
        LabelBridge(labels, top_k=4)
    with pytest.raises(bind.ConfigError, match="logits over 3 classes"):
        bridge(torch.zeros(1, 5))


def test_label_bridge_prompt_ensemble_averages_each_class_over_its_templates() -> None:
    labels = ["cat", "violin", "rocket"]
    templates = ["a photo of a {}.", "a drawing of a {}.", "art of the {}."]
    single = LabelBridge.from_labels(labels, "minilm-l6.text", template=templates[0], top_k=2)
    ensemble = LabelBridge.from_labels(labels, "minilm-l6.text", template=templates, top_k=2)
    per_template = torch.stack([LabelBridge.from_labels(labels, "minilm-l6.text", template=t, top_k=2).label_embeddings
                                for t in templates])
    expected = torch.nn.functional.normalize(per_template.mean(dim=0), dim=-1)
    assert torch.allclose(ensemble.label_embeddings, expected, atol=1e-5)
    assert not torch.allclose(ensemble.label_embeddings, single.label_embeddings, atol=1e-3)
    assert torch.allclose(single.label_embeddings, bind.embed([f"a photo of a {x}." for x in labels],
                                                              encoder="minilm-l6.text"), atol=1e-6)
    with pytest.raises(bind.ConfigError, match="need a '\\{\\}'"):
        LabelBridge.from_labels(labels, "minilm-l6.text", template=["a photo"], top_k=2)
