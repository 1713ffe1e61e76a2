"""The vector-database store of bind.Index (store="milvus"), on the real embedded engine (Milvus Lite)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bind
from bind.assets import assets_dir
from bind.errors import ConfigError, IndexLockedError
from bind.index import Index
from bind.io import versions

pytest.importorskip("milvus_lite")
ASSETS = assets_dir()
QUERIES = ["a cat", "a dog barking", "a car", "music"]


@pytest.fixture(scope="module")
def space() -> bind.Space:
    return bind.load_space("lite")


@pytest.fixture(scope="module")
def memory(space: bind.Space) -> Index:
    return Index.build_from_folder(ASSETS, space, progress=False)[0]


@pytest.fixture(scope="module")
def built(space: bind.Space, tmp_path_factory: pytest.TempPathFactory) -> tuple[Index, Path]:
    uri = tmp_path_factory.mktemp("store") / "assets.db"
    index, report = Index.build_from_folder(ASSETS, space, store="milvus", uri=uri, progress=False)
    assert report.failures == [] and len(report.added) == len(index)
    return index, uri


def _same(a: list, b: list) -> None:
    assert [h.id for h in a] == [h.id for h in b]
    assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
    assert np.allclose([h.cosine for h in a], [h.cosine for h in b], atol=1e-5)
    assert [h.relevance is None for h in a] == [h.relevance is None for h in b]
    assert np.allclose([h.relevance or 0 for h in a], [h.relevance or 0 for h in b], atol=1e-5)
    assert [h.metadata for h in a] == [h.metadata for h in b]


def test_a_store_index_ranks_and_scores_as_the_in_memory_index(built: tuple[Index, Path], memory: Index) -> None:
    index, _ = built
    assert len(index) == len(memory) and sorted(index.ids) == sorted(memory.ids)
    assert index.active_backend == "milvus FLAT"
    for query in QUERIES:
        for options in ({}, {"correction": False}, {"correction": "qb_norm"}, {"result_modality": "image"},
                        {"result_modality": ["audio", "video"], "correction": "inverted_softmax"}):
            _same(index.search(query, k=6, **options), memory.search(query, k=6, **options))
    image = ASSETS / "images" / "cat.jpg"
    _same(index.search(image, k=5), memory.search(image, k=5))
    vector = memory.entry("images/dog.png").vector
    _same(index.search_vectors(vector, 5)[0], memory.search_vectors(vector, 5)[0])
    assert np.allclose(index.entry("images/dog.png").vector, vector, atol=1e-6)


def test_ids_stay_stable_across_add_remove_and_update(space: bind.Space, tmp_path: Path) -> None:
    index = Index(space, store="milvus", uri=tmp_path / "ids.db")
    assert index.add(["a red apple", "a blue car", "a green tree"]) == ["0", "1", "2"]
    index.remove("1")
    assert index.add("a yellow bus") == "3"  # numbers are never reused
    index.update("0", "a green apple", metadata={"fruit": True})
    assert sorted(index.ids) == ["0", "2", "3"] and "1" not in index and "0" in index
    assert index.search("a green apple", k=1)[0].id == "0"
    assert index.entry("0").metadata == {"fruit": True}
    weird = 'quote " back \\ slash \' é'
    index.add("odd ids are fine", ids=weird)
    assert index.entry(weird).modality == bind.Modality.TEXT
    index.remove([weird])
    with pytest.raises(KeyError):
        index.remove("1")
    with pytest.raises(ConfigError, match="already in the index"):
        index.add("again", ids="2")
    index.close()
    again = Index(space, store="milvus", uri=tmp_path / "ids.db")
    assert sorted(again.ids) == ["0", "2", "3"] and again.add("next") == "4"


def test_incremental_folder_builds(space: bind.Space, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("cat", "dog", "car"):
        shutil.copy(ASSETS / "text" / f"{name}.txt", folder)
    uri = tmp_path / "docs.db"
    index, report = Index.build_from_folder(folder, space, store="milvus", uri=uri, progress=False)
    assert sorted(report.added) == ["car.txt", "cat.txt", "dog.txt"] and report.embedded == 3
    index.close()
    (folder / "dog.txt").write_text("a puppy chasing a ball", encoding="utf-8")
    (folder / "car.txt").unlink()
    shutil.copy(folder / "cat.txt", folder / "cat copy.txt")
    index, report = Index.build_from_folder(folder, space, store="milvus", uri=uri, progress=False)
    assert report.updated == ["dog.txt"] and report.removed == ["car.txt"] and report.added == ["cat copy.txt"]
    assert report.embedded == 1 and report.unchanged == 1  # the copy reused the cat's vector
    assert sorted(index.ids) == ["cat copy.txt", "cat.txt", "dog.txt"]
    assert index.search("a puppy chasing a ball", k=1)[0].id == "dog.txt"


def test_the_space_identity_and_settings_are_kept_and_checked(space: bind.Space, tmp_path: Path) -> None:
    uri = tmp_path / "checked.db"
    index = Index(space, store="milvus", uri=uri)
    index.add("a cat")
    settings = index.store.settings()
    assert settings["format_version"] == versions.FORMAT_VERSION and settings["space_identity"] == space.identity
    index.close()
    other = space.with_audio_weight(0)
    assert other.identity != space.identity
    with pytest.raises(ConfigError, match="cannot be searched with space"):
        Index(other, store="milvus", uri=uri)
    with pytest.raises(ConfigError, match="cannot switch"):
        Index(space, store="milvus", uri=uri, scoring="none")
    newer = Index(space, store="milvus", uri=uri)
    newer.store.write_settings({**settings, "format_version": versions.FORMAT_VERSION + 1}, newer.dim)
    newer.close()
    with pytest.raises(ConfigError, match="newer bind"):
        Index(space, store="milvus", uri=uri)
    with pytest.raises(ConfigError, match="store needs uri"):
        Index(space, store="milvus")
    with pytest.raises(ConfigError, match="unknown index store"):
        Index(space, store="qdrant", uri=uri)


def test_a_query_bank_is_stored_and_scores_as_in_memory(space: bind.Space, tmp_path: Path) -> None:
    texts = ["a cat on a sofa", "a dog in the park", "a red car", "a violin", "rain on a roof", "a rocket launch",
             "coffee in a cup", "a bicycle", "a guitar chord", "a bell ringing", "a cat asleep", "a sports car"]
    bank = ["a photo of a cat", "a loud engine", "a string instrument", "a pet", "a vehicle", "some music",
            "weather", "a drink", "space travel", "a bell", "an animal", "a machine"]
    uri = tmp_path / "bank.db"
    stored = Index(space, store="milvus", uri=uri)
    memory = Index(space)
    for index in (stored, memory):
        index.add(texts)
        index.set_query_bank(bank, "text")
        index.add("a kitten playing")  # after the bank: references computed on insert
    stored.close()
    stored = Index(space, store="milvus", uri=uri)
    for query in ("a kitten", "an engine", "music"):
        _same(stored.search(query, k=5), memory.search(query, k=5))


def test_a_second_process_is_refused_while_the_embedded_store_is_open(built: tuple[Index, Path]) -> None:
    _, uri = built
    code = ("import bind, sys\nfrom bind.index import Index\nfrom bind.errors import IndexLockedError\n"
            "try:\n    Index(bind.load_space('lite'), store='milvus', uri=sys.argv[1])\n"
            "except IndexLockedError as exc:\n    print('LOCKED', exc)\n")
    done = subprocess.run([sys.executable, "-c", code, str(uri)], capture_output=True, text=True, timeout=300)
    assert "LOCKED" in done.stdout and "another process has it open" in done.stdout, done.stderr[-2000:]
    assert issubclass(IndexLockedError, bind.errors.BindError)


BUILD = """
import sys
import bind
from bind.index import Index
from bind.index.stored import StoredIndex

original = StoredIndex._append
def announcing(self, ids, *args, **kwargs):
    original(self, ids, *args, **kwargs)
    print("stored", len(ids), flush=True)
StoredIndex._append = announcing
index, report = Index.build_from_folder(sys.argv[1], bind.load_space("lite"), store="milvus", uri=sys.argv[2],
                                        chunk_size=8, batch_size=8, progress=False)
print("done", len(index), flush=True)
"""


@pytest.mark.slow
def test_a_build_killed_midway_reopens_and_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(160):
        (folder / f"d{i:03d}.txt").write_text(f"note {i} about topic {i % 13}", encoding="utf-8")
    uri = tmp_path / "killed.db"
    script = tmp_path / "build.py"
    script.write_text(BUILD, encoding="utf-8")
    env = dict(os.environ)  # the bind under test, installed or on PYTHONPATH
    child = subprocess.Popen([sys.executable, str(script), str(folder), str(uri)], stdout=subprocess.PIPE,
                             text=True, env=env, start_new_session=True)
    stored = 0
    for line in child.stdout:  # type: ignore[union-attr]
        stored += line.startswith("stored")
        if stored == 3:
            os.killpg(child.pid, signal.SIGKILL)  # the process and the Milvus Lite server it started
            break
    child.wait(timeout=60)
    assert stored == 3, "the build finished before it could be killed"
    deadline = time.time() + 30
    while True:  # the dead server's lock goes with it
        try:
            index = Index(bind.load_space("lite"), store="milvus", uri=uri)
            break
        except IndexLockedError:
            assert time.time() < deadline
            time.sleep(1)
    kept = len(index)
    assert 24 <= kept < 160 and len(set(index.ids)) == kept
    index.close()
    done = subprocess.run([sys.executable, str(script), str(folder), str(uri)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert "done 160" in done.stdout, done.stderr[-2000:]
    index = Index(bind.load_space("lite"), store="milvus", uri=uri)
    assert len(index) == 160 and sorted(index.ids) == sorted(p.name for p in folder.iterdir())
    assert index.search("note 7 about topic 7", k=1)[0].id == "d007.txt"


def test_the_cli_builds_and_searches_a_store(tmp_path: Path) -> None:
    uri = tmp_path / "cli.db"
    run = [sys.executable, "-m", "bind.apps.cli"]
    built = subprocess.run([*run, "index", "build", str(ASSETS / "text"), "--space", "lite", "--store", "milvus",
                            "--out", str(uri), "--quiet"], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    found = subprocess.run([*run, "search", str(uri), "a cat", "--store", "milvus", "--space", "lite", "--json",
                            "-k", "2"], capture_output=True, text=True, timeout=600)
    assert found.returncode == 0, found.stderr[-2000:]
    assert json.loads(found.stdout)[0]["id"] == "cat.txt"
    missing = subprocess.run([*run, "search", str(uri), "a cat", "--store", "milvus"], capture_output=True,
                             text=True, timeout=600)
    assert missing.returncode == 2 and "needs --space" in missing.stderr
