"""A damaged index is never used silently: checksums on load, a named error, and a rebuild that repairs it."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

import bind
from bind.apps.cli import main
from bind.errors import IndexCorruptError
from bind.index import storage
from bind.io import versions


@pytest.fixture(scope="module")
def space() -> bind.Space:
    return bind.AnchorSpace({"text": "minilm-l6.text"})


def notes(folder: Path) -> Path:
    folder.mkdir()
    for i, topic in enumerate(["boats", "trains", "violins"]):
        (folder / f"{topic}.txt").write_text(f"a note about {topic}, number {i}")
    return folder


def version(out: Path) -> Path:
    return storage.live_version(out)


def flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 + 7] ^= 0xFF  # same size, other content
    path.write_bytes(bytes(data))


def test_the_manifest_records_every_file(tmp_path, space) -> None:
    index, _ = bind.Index.build_from_folder(notes(tmp_path / "n"), space, out=tmp_path / "idx")
    manifest = json.loads((version(tmp_path / "idx") / "manifest.json").read_text())
    assert manifest["format_version"] == versions.FORMAT_VERSION
    assert {"vectors.npy", "records.jsonl", "space/space.json", "space/weights.safetensors"} <= set(manifest["files"])
    assert all(set(f) == {"size", "sha256"} for f in manifest["files"].values())
    assert len(bind.Index.load(tmp_path / "idx")) == 3


def test_same_size_corruption_is_caught_on_load_and_named(tmp_path, space) -> None:
    bind.Index.build_from_folder(notes(tmp_path / "n"), space, out=tmp_path / "idx")
    flip_middle_byte(version(tmp_path / "idx") / "vectors.npy")
    with pytest.raises(IndexCorruptError, match=r"vectors.npy is damaged: its content does not match the sha256"):
        bind.Index.load(tmp_path / "idx")
    assert main(["index", "verify", str(tmp_path / "idx")]) == 2


def test_truncated_files_are_named_even_without_the_full_check(tmp_path, space) -> None:
    bind.Index.build_from_folder(notes(tmp_path / "n"), space, out=tmp_path / "idx")
    records = version(tmp_path / "idx") / "records.jsonl"
    records.write_bytes(records.read_bytes()[:-20])
    with pytest.raises(IndexCorruptError, match=r"records.jsonl is damaged: \d+ bytes, \d+ written"):
        bind.Index.load(tmp_path / "idx", verify=False)


def test_an_index_without_checksums_is_still_checked_for_non_finite_vectors(tmp_path, space) -> None:
    bind.Index.build_from_folder(notes(tmp_path / "n"), space, out=tmp_path / "idx")
    folder = version(tmp_path / "idx")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]
    manifest["format_version"] = 2  # as the previous version wrote it: no checksums
    (folder / "manifest.json").write_text(json.dumps(manifest))
    vectors = np.load(folder / "vectors.npy")
    vectors[1, 5] = np.nan
    np.save(folder / "vectors.npy", vectors)
    with pytest.raises(IndexCorruptError, match="non-finite"):
        bind.Index.load(tmp_path / "idx")


def test_a_rebuild_repairs_a_damaged_index(tmp_path, space, caplog) -> None:
    folder = notes(tmp_path / "n")
    bind.Index.build_from_folder(folder, space, out=tmp_path / "idx")
    flip_middle_byte(version(tmp_path / "idx") / "vectors.npy")
    with caplog.at_level(logging.WARNING, logger="bind.index"):
        index, report = bind.Index.build_from_folder(folder, space, out=tmp_path / "idx")
    assert "rebuilding it from scratch" in caplog.text and report.embedded == 3
    assert index.search("a note about violins", k=1)[0].id == "violins.txt"
    assert main(["index", "verify", str(tmp_path / "idx")]) == 0
