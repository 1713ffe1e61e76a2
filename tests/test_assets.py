"""The packaged sample media: manifest complete and truthful, every file decodes, licences recorded."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import trimesh
from PIL import Image

from bind import Modality
from bind.assets import AssetEntry, assets_dir, load_manifest
from bind.errors import ConfigError
from bind.experts.modality import extension_modality

NOT_LISTED = {"manifest.json", "README.md", "build_assets.py"}
ENTRIES = load_manifest()


def by_modality(modality: Modality) -> list[AssetEntry]:
    return [e for e in ENTRIES if e.modality is modality]


def test_entries_exist_with_caption_licence_and_source():
    assert len({e.id for e in ENTRIES}) == len(ENTRIES), "ids must be unique"
    for entry in ENTRIES:
        assert entry.path.is_absolute() and entry.path.is_file(), entry.id
        assert entry.caption.strip() and entry.licence.strip() and entry.source.strip(), entry.id
        assert entry.licence in {"CC0-1.0", "Public domain", "Apache-2.0"}, (entry.id, entry.licence)


def test_modality_matches_the_file_extension():
    for entry in ENTRIES:
        assert extension_modality(entry.path) is entry.modality, entry.id


def test_every_file_is_in_the_manifest():
    root = assets_dir()
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*")
               if p.is_file() and p.name not in NOT_LISTED and "__pycache__" not in p.parts}
    listed = {e.path.relative_to(root.resolve()).as_posix() for e in ENTRIES}
    assert on_disk == listed


def test_total_size_is_small():
    total = sum(p.stat().st_size for p in assets_dir().rglob("*") if p.is_file())
    assert total < 20e6, f"assets/ holds {total / 1e6:.1f} MB"


def test_each_modality_has_at_least_three_items():
    for modality in Modality:
        assert len(by_modality(modality)) >= 3, modality


def test_text_queries_have_matches_in_other_modalities():
    modalities = defaultdict(set)
    for entry in ENTRIES:
        modalities[entry.concept].add(entry.modality)
    for entry in by_modality(Modality.TEXT):
        assert modalities[entry.concept] - {Modality.TEXT}, f"nothing but text is about {entry.concept!r}"


@pytest.mark.parametrize("entry", by_modality(Modality.IMAGE), ids=lambda e: e.id)
def test_image_decodes(entry: AssetEntry):
    with Image.open(entry.path) as image:
        image.load()
        assert image.mode == "RGB" and 64 <= max(image.size) <= 512


@pytest.mark.parametrize("entry", by_modality(Modality.AUDIO), ids=lambda e: e.id)
def test_audio_decodes(entry: AssetEntry):
    samples, rate = sf.read(entry.path, dtype="float32", always_2d=True)
    assert samples.shape[1] == 1, "mono"
    assert 16000 <= rate <= 48000
    assert 1.0 <= len(samples) / rate <= 10.0
    assert np.abs(samples).max() > 0.1, "not silent"


def test_audio_formats_are_mixed():
    assert {e.path.suffix for e in by_modality(Modality.AUDIO)} >= {".wav", ".flac", ".ogg", ".mp3"}


@pytest.mark.parametrize("entry", by_modality(Modality.VIDEO), ids=lambda e: e.id)
def test_video_decodes(entry: AssetEntry):
    with av.open(str(entry.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) > 0
    assert frames[0].ndim == 3 and frames[0].shape[2] == 3 and max(frames[0].shape[:2]) <= 320
    assert any(not np.array_equal(frames[0], frame) for frame in frames[1:]), "the picture moves"


def test_videos_with_and_without_sound():
    tracks = []
    for entry in by_modality(Modality.VIDEO):
        with av.open(str(entry.path)) as container:
            tracks.append(len(container.streams.audio))
    assert 0 in tracks and any(tracks)


@pytest.mark.parametrize("entry", by_modality(Modality.POINTS), ids=lambda e: e.id)
def test_3d_decodes(entry: AssetEntry):
    if entry.path.suffix == ".npy":
        points = np.load(entry.path)
        assert points.ndim == 2 and points.shape[1] == 3 and len(points) >= 256
        assert np.isfinite(points).all()
    else:
        mesh = trimesh.load(entry.path, force="mesh")
        assert len(mesh.faces) > 0 and mesh.area > 0


@pytest.mark.parametrize("entry", by_modality(Modality.TEXT), ids=lambda e: e.id)
def test_text_is_its_caption(entry: AssetEntry):
    assert entry.path.read_text(encoding="utf-8").strip() == entry.caption


def _write_manifest(root: Path, records: list[dict]) -> None:
    (root / "manifest.json").write_text(json.dumps(records), encoding="utf-8")


def _record(**overrides: str) -> dict:
    record = {"id": "text/a", "modality": "text", "path": "a.txt", "caption": "a", "concept": "a",
              "licence": "Apache-2.0", "source": "test"}
    return {**record, **overrides}


def test_load_manifest_reads_another_folder(tmp_path: Path):
    (tmp_path / "a.txt").write_text("a\n")
    _write_manifest(tmp_path, [_record()])
    [entry] = load_manifest(tmp_path)
    assert entry.modality is Modality.TEXT and entry.path == (tmp_path / "a.txt").resolve()


def test_load_manifest_names_a_missing_file(tmp_path: Path):
    _write_manifest(tmp_path, [_record(path="gone.txt")])
    with pytest.raises(FileNotFoundError, match="gone.txt"):
        load_manifest(tmp_path)


@pytest.mark.parametrize("bad", [{"caption": ""}, {"modality": "smell"}], ids=["no caption", "bad modality"])
def test_load_manifest_rejects_a_malformed_entry(tmp_path: Path, bad: dict):
    (tmp_path / "a.txt").write_text("a\n")
    _write_manifest(tmp_path, [_record(**bad)])
    with pytest.raises(ConfigError, match="text/a"):
        load_manifest(tmp_path)
