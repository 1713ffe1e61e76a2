"""Embedding a corpus for an index on Lightning's predict loop (bind.train.predict): per-rank shards merged
into one index, equal to the index built in one process; for real with 2 CPU processes (DDP over gloo).

The space is real and offline: MiniLM text, and EfficientNet-Lite0 logits bridged into MiniLM's space.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bind.errors import ConfigError
from bind.index import Index
from bind.spaces import AnchorSpace, ExpertPath, load_space
from bind.train.predict import embed_corpus, merge_shards

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["a cat sleeping on a sofa", "a red truck on the highway", "rain on a window", "two dogs playing",
         "an old clock", "a guitar solo", "a bowl of soup", "snow on the mountains", "a violin", "a sailing boat"]


@pytest.fixture(scope="module")
def space_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = ExpertPath.label_bridge("efficientnet-lite0.imagenet-logits", "minilm-l6.text")
    return AnchorSpace({"text": "minilm-l6.text", "image": image}).save(tmp_path_factory.mktemp("space") / "space")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str]]:
    """Texts, four generated images and one corrupt image file; explicit ids."""
    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    images = []
    for i in range(4):
        path = root / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8)).save(path)
        images.append(str(path))
    bad = root / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    items = TEXTS[:5] + images[:2] + [str(bad)] + TEXTS[5:] + images[2:]
    return items, [f"item{i:02d}" for i in range(len(items))]


def reference(space_dir: Path, items: list[str], ids: list[str]) -> Index:
    index = Index(load_space(space_dir))
    index.add(items, ids=ids, on_error="skip")
    return index


def assert_same_index(got: Index, want: Index) -> None:
    assert (sorted(got.ids) if got.backend == "milvus" else got.ids) == want.ids  # a database has its own order
    for item_id in want.ids:
        a, b = got.entry(item_id), want.entry(item_id)
        assert a.modality == b.modality and a.metadata == b.metadata
        np.testing.assert_allclose(a.vector.numpy(), b.vector.numpy(), atol=1e-5)
    for query in ("a cat", "music", "weather"):
        assert [h.id for h in got.search(query, k=6)] == [h.id for h in want.search(query, k=6)]


def test_one_process_equals_index_add_and_resumes(space_dir: Path, corpus: tuple[list[str], list[str]],
                                                 tmp_path: Path) -> None:
    items, ids = corpus
    out = tmp_path / "shards"
    result = embed_corpus(items, space_dir, out, ids=ids, batch_size=4, items_per_step=5)
    assert result is not None
    index, report = result
    assert_same_index(index, reference(space_dir, items, ids))
    assert report.added == index.ids and report.embedded == len(items) - 1
    [failure] = report.failures
    assert failure.item.endswith("broken.jpg") and failure.index == 7 and failure.reason

    shards = sorted(p.name for p in out.glob("shard-*"))
    assert len(shards) == 2 * 3  # 15 items in steps of 5: a .safetensors and a .json each
    index_again, report_again = embed_corpus(items, space_dir, out, ids=ids, batch_size=4, items_per_step=5)
    assert sorted(p.name for p in out.glob("shard-*")) == shards  # resumed: nothing left to embed
    assert index_again.ids == index.ids and len(report_again.failures) == 1

    (out / shards[0]).unlink()  # a lost shard: the JSON of positions 0-4 (".json" sorts first)
    with pytest.raises(ConfigError, match="cover 10 of 15 items"):
        merge_shards(out, space_dir)
    with pytest.raises(ConfigError, match="another corpus"):
        embed_corpus(items[:3], space_dir, out, ids=ids[:3])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        embed_corpus(items, space_dir, tmp_path / "busy", ids=ids)


SCRIPT = """
import json, sys
from bind.train.predict import embed_corpus

items, ids, space, out, index_out, uri = json.loads(open(sys.argv[1]).read())
store = {"store": "milvus", "uri": uri} if uri else {}
result = embed_corpus(items, space, out, ids=ids, batch_size=4, items_per_step=3,
                      accelerator="cpu", devices=2, strategy="ddp", **store)
if result is not None:  # global rank 0 only
    index, report = result
    if not uri:  # a store index was written as the shards came in
        index.save(index_out)
    print("FAILURES", json.dumps([[f.item, f.index, f.reason] for f in report.failures]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("store", [False, True], ids=["merged", "streamed-into-milvus"])
def test_two_processes_ddp_equal_one_process(space_dir: Path, corpus: tuple[list[str], list[str]],
                                            tmp_path: Path, store: bool) -> None:
    if store:
        pytest.importorskip("milvus_lite")
    items, ids = corpus
    out, index_out, uri = tmp_path / "shards", tmp_path / "index", tmp_path / "vectors.db"
    (tmp_path / "args.json").write_text(json.dumps([items, ids, str(space_dir), str(out), str(index_out),
                                                    str(uri) if store else None]))
    (tmp_path / "run.py").write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "MASTER_ADDR": "127.0.0.1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "args.json")],
                          check=False, cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    ranks = {p.stem.rsplit("-rank", 1)[1] for p in out.glob("shard-*.json")}
    assert ranks == {"0", "1"}  # both processes embedded and wrote shards
    want = reference(space_dir, items, ids)
    if store:  # rank 0 inserted every rank's shards (the embedded store serves one process) and marked them
        assert len(list(out.glob("shard-*.stored"))) == len(list(out.glob("shard-*.json")))
        assert_same_index(Index(load_space(space_dir), store="milvus", uri=uri), want)
    else:
        assert_same_index(Index.load(index_out), want)
    assert_same_index(merge_shards(out, space_dir)[0], want)
    [line] = [line for line in done.stdout.splitlines() if line.startswith("FAILURES ")]
    [(item, position, reason)] = json.loads(line.removeprefix("FAILURES "))
    assert item.endswith("broken.jpg") and position == 7 and reason
