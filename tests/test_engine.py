"""The engine does each piece of work once: one decode per file, one forward per network, one instance.

Counted, not timed, through the packaged ``lite`` space: its image path reads EfficientNet-Lite0's features
(trained adapter) and its logits (label bridge); its video frames and 3D views go through the same network.
"""
from __future__ import annotations

import collections
import tempfile
from collections.abc import Iterator

import pytest
import torch

import bind
from bind.assets import assets_dir
from bind.experts.backends import packaged, point_views
from bind.experts.pool import POOL, EncoderPool
from bind.io import image as image_io
from bind.io import video as video_io
from bind.spaces import fusion

IMAGE = assets_dir() / "images" / "cat.jpg"
VIDEO = assets_dir() / "video" / "rocket_pan.mp4"  # no sound track
POINTS = assets_dir() / "points" / "torus.ply"


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter]:
    """Counts of decodes (image, video frames, 3D files), EfficientNet builds and EfficientNet forwards."""
    seen: collections.Counter = collections.Counter()

    def counted(name: str, real):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            seen[name] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(image_io.ImagePreprocessor, "decode", counted("image decode", image_io.ImagePreprocessor.decode))
    monkeypatch.setattr(video_io, "read_frames", counted("video decode", video_io.read_frames))
    monkeypatch.setattr(fusion, "read_frames_and_track", counted("video decode", fusion.read_frames_and_track))
    monkeypatch.setattr(point_views, "load_points", counted("3D decode", point_views.load_points))
    real_init = packaged.EfficientNetLite.__init__
    monkeypatch.setattr(packaged.EfficientNetLite, "__init__", counted("EfficientNet built", real_init))
    real_heads = packaged.EfficientNetLite.forward_heads
    monkeypatch.setattr(packaged.EfficientNetLite, "forward_heads", counted("EfficientNet forward", real_heads))
    POOL.clear()
    yield seen
    POOL.clear()


@pytest.fixture(scope="module")
def lite() -> bind.Space:
    return bind.load_space("lite")


@pytest.mark.parametrize("item, decode", [(IMAGE, "image decode"), (VIDEO, "video decode"), (POINTS, "3D decode")])
def test_one_item_through_lite_is_one_decode_and_one_forward(lite, counts, item, decode) -> None:
    lite.embed(item)
    assert counts[decode] == 1
    assert counts["EfficientNet forward"] == 1  # features and logits are two heads of one forward
    assert counts["EfficientNet built"] == 1


def test_image_video_and_3d_in_one_call_share_one_network_instance(lite, counts) -> None:
    vectors = lite.embed([IMAGE, VIDEO, POINTS, "a cat"])
    assert vectors.shape == (4, lite.dim)
    assert counts["EfficientNet built"] == 1
    assert counts["image decode"] == counts["video decode"] == counts["3D decode"] == 1
    lite.embed([IMAGE, VIDEO])
    assert counts["EfficientNet built"] == 1  # the pool keeps it across calls


def test_bind_embed_reads_each_head_of_the_shared_network(counts) -> None:
    features = bind.embed(IMAGE, encoder="efficientnet-lite0.image", normalize=False)
    logits = bind.embed(IMAGE, encoder="efficientnet-lite0.imagenet-logits", normalize=False)
    assert features.shape == (1280,) and logits.shape == (1000,)
    assert counts["EfficientNet built"] == 1
    alone = bind.create_encoder("efficientnet-lite0.imagenet-logits")  # a standalone instance, its own head
    assert bind.embed(IMAGE, encoder=alone, normalize=False).allclose(logits, atol=1e-5)


def test_the_pool_is_bounded_and_keyed_by_device() -> None:
    pool = EncoderPool(capacity=1)
    text, _ = pool.get("minilm-l6.text")
    assert pool.get("minilm-l6.text")[0] is text
    pool.get("efficientnet-lite0.image")
    assert len(pool) == 1 and pool.get("minilm-l6.text")[0] is not text  # evicted, then built again
    assert pool.built == 3
    with pytest.raises(bind.ConfigError, match="unknown device"):
        pool.get("minilm-l6.text", device="gpu")


SOUND_VIDEO = assets_dir() / "video" / "alarm_clock_ticking.mp4"


def test_one_video_with_sound_is_one_container_open(lite, monkeypatch) -> None:
    opened: collections.Counter = collections.Counter()
    real_open, real_decord = video_io._open_av, video_io._read_decord
    monkeypatch.setattr(video_io, "_open_av", lambda item, source: opened.update(["pyav"]) or real_open(item, source))
    monkeypatch.setattr(video_io, "_read_decord", lambda path, count: opened.update(["decord"]) or real_decord(path, count))
    fused = lite.embed(SOUND_VIDEO)
    assert sum(opened.values()) == 1, opened  # frames and sound track from one pass over one container
    assert not torch.allclose(fused, lite.with_audio_weight(0.0).embed(SOUND_VIDEO), atol=1e-3)  # the sound is in


def test_long_sound_tracks_stream_to_a_temporary_file_in_the_same_pass(lite, monkeypatch, tmp_path) -> None:
    in_memory = lite.embed(SOUND_VIDEO)
    monkeypatch.setattr(fusion, "LONG_TRACK_SECONDS", 0.1)  # the asset's track counts as long
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    streamed = lite.embed(SOUND_VIDEO)
    assert torch.allclose(streamed, in_memory, atol=1e-3)  # the same track, via 24-bit FLAC
    assert list(tmp_path.iterdir()) == []  # the temporary tracks are gone


def test_a_decoding_worker_gives_the_same_vectors_and_sound_tracks(lite) -> None:
    items = [SOUND_VIDEO, VIDEO, IMAGE, POINTS]
    inline = lite.embed(items, num_workers=0, batch_size=1)
    in_worker = lite.embed(items, num_workers=1, batch_size=1)  # frames, tracks and views cross the process boundary
    assert torch.allclose(inline, in_worker, atol=1e-6)
