"""`bind index build` / `bind search` round trip, with a text-only space saved to disk."""
from __future__ import annotations

import json

import pytest

from bind.apps.cli import main
from bind.spaces import AnchorSpace


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    space = root / "space"
    AnchorSpace.from_expert("minilm-l6.text").save(space)
    docs = root / "docs"
    (docs / "sub").mkdir(parents=True)
    for name, text in {"dog.txt": "a dog barking at the postman", "piano.txt": "someone playing the piano",
                       "sub/rain.txt": "rain falling on a tin roof"}.items():
        (docs / name).write_text(text)
    (docs / "notes.md").write_text("ignored: not a media file")
    return root, space, docs


def test_index_build_and_search_json(corpus, capsys):
    root, space, docs = corpus
    out = root / "idx"
    assert main(["index", "build", str(docs), "--space", str(space), "--out", str(out), "--quiet"]) == 0
    assert "3 added" in capsys.readouterr().err
    assert main(["search", str(out), "a dog barking", "-k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["rank"] for h in hits] == [1, 2]
    assert hits[0]["id"] == "dog.txt" and hits[0]["modality"] == "text"
    assert hits[0]["score"] > hits[1]["score"] and hits[0]["metadata"]["path"].endswith("dog.txt")
    # incremental: a second build embeds nothing new
    assert main(["index", "build", str(docs), "--space", str(space), "--out", str(out), "--quiet"]) == 0
    assert "0 added" in capsys.readouterr().err


def test_index_build_with_a_feature_cache(corpus, capsys):
    root, space, docs = corpus
    features = root / "features"
    for out in (root / "idx-cached-1", root / "idx-cached-2"):  # the second build reads the cached features
        assert main(["index", "build", str(docs), "--space", str(space), "--out", str(out), "--quiet",
                     "--feature-cache", str(features)]) == 0
        assert "3 added" in capsys.readouterr().err
    assert len(list(features.glob("*/*/shards/*.safetensors"))) == 1  # one shard, written once
    assert main(["search", str(root / "idx-cached-2"), "a dog barking", "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "dog.txt"


def test_search_table_and_filters(corpus, capsys):
    root, space, docs = corpus
    out = root / "idx2"
    main(["index", "build", str(docs), "--space", str(space), "--out", str(out), "--quiet"])
    capsys.readouterr()
    assert main(["search", str(out), "water from the sky", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == ["rank", "relevance", "score", "cosine", "modality", "id"]
    assert lines[1].split()[5] == "sub/rain.txt" and len(lines) == 4
    assert main(["search", str(out), "a dog", "--result-modality", "image", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["search", str(out), "a dog", "--result-modality", "image", "--result-modality", "text", "-k", "1",
                 "--json"]) == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)] == ["dog.txt"]


def test_search_modality_flag_is_refused_naming_result_modality(capsys):
    with pytest.raises(SystemExit) as exit_:  # refused while parsing: before any index is read
        main(["search", "IDX", "a dog", "--modality", "image"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "bind search: error: --modality was the result filter" in err
    assert "use --result-modality M" in err
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    usage = capsys.readouterr().out
    assert "--result-modality M" in usage and "--modality" not in usage.replace("--result-modality", "")


def test_search_errors(corpus, tmp_path, capsys):
    root, space, docs = corpus
    out = root / "idx3"
    main(["index", "build", str(docs), "--space", str(space), "--out", str(out), "--quiet"])
    capsys.readouterr()
    assert main(["search", str(out)]) == 2
    assert "exactly one query" in capsys.readouterr().err
    image = tmp_path / "q.png"
    image.write_bytes(b"not a png")
    assert main(["search", str(out), "--image", str(image)]) == 2
    assert "no image path" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["index", "build"], ["search"], ["demo"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0 and "usage: bind" in capsys.readouterr().out


@pytest.mark.slow
def test_index_build_with_two_ddp_processes_equals_one(corpus, capsys):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from bind.index import Index

    root, space, docs = corpus
    single, double = root / "idx-one", root / "idx-ddp"
    assert main(["index", "build", str(docs), "--space", str(space), "--out", str(single), "--quiet"]) == 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]) + os.pathsep
           + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-m", "bind.apps.cli", "index", "build", str(docs), "--space", str(space),
                          "--out", str(double), "--devices", "2", "--quiet"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(p.name.split("rank")[-1] for p in (root / "idx-ddp.shards").glob("*.safetensors")) \
        == ["0.safetensors", "1.safetensors"], "both ranks wrote shards"
    one, two = Index.load(single), Index.load(double)
    assert sorted(one.ids) == sorted(two.ids)
    for query in ("a dog barking", "music", "weather"):
        assert [(h.id, round(h.score, 4)) for h in one.search(query, k=3)] == \
               [(h.id, round(h.score, 4)) for h in two.search(query, k=3)]
