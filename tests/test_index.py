"""bind.Index: correctness against brute force, filters, composed queries, faiss backends, persistence
(including a save killed midway), wrong-space refusal, incremental folder builds, the API rules (``modality``
names an input's modality; ``add`` returns like ``bind.embed``) and the shared format version.

The spaces are real and offline: MiniLM text, and EfficientNet-Lite0 logits bridged into MiniLM's space.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bind
from bind.errors import ConfigError, InputError
from bind.index import AddResult, Index, ann, exact, storage
from bind.index import core as index_core
from bind.io import versions
from bind.spaces import AnchorSpace, ExpertPath

DIM = 384
needs_faiss = pytest.mark.skipif(not ann.faiss_available(), reason="faiss is not installed (pip install 'bind[index]')")


@pytest.fixture(scope="module")
def space() -> AnchorSpace:
    """Text through MiniLM, images through EfficientNet-Lite0's ImageNet logits and the label bridge."""
    image = ExpertPath.label_bridge("efficientnet-lite0.imagenet-logits", "minilm-l6.text")
    return AnchorSpace({"text": "minilm-l6.text", "image": image})


@pytest.fixture(scope="module")
def text_space() -> AnchorSpace:
    return AnchorSpace.from_expert("minilm-l6.text")


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(rng: np.random.Generator, n: int, clusters: int = 50, spread: float = 0.4) -> np.ndarray:
    """Random unit vectors around random centres (embeddings have such structure; uniform noise has none)."""
    centres = unit(rng, clusters)
    x = centres[rng.integers(0, clusters, n)] + spread / np.sqrt(DIM) * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute(vectors: np.ndarray, ids: list[str], queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
    scores = queries @ vectors.T
    out = []
    for row in scores:
        order = np.argsort(-row, kind="stable")[:k]
        out.append([(ids[i], float(row[i])) for i in order])
    return out


def hit_pairs(hits: list[bind.index.Hit]) -> list[tuple[str, float]]:
    return [(h.id, h.score) for h in hits]


def assert_hits_close(got: list[bind.index.Hit], want: list[bind.index.Hit]) -> None:
    assert [h.id for h in got] == [h.id for h in want]
    np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-5)


def assert_same(got: list[list[bind.index.Hit]], want: list[list[tuple[str, float]]]) -> None:
    assert len(got) == len(want)
    for hits, expected in zip(got, want):
        assert [h.id for h in hits] == [i for i, _ in expected]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)


def filled(space: AnchorSpace, vectors: np.ndarray, modalities: list[str], **kwargs: object) -> Index:
    index = Index(space, **kwargs)  # type: ignore[arg-type]
    ids = [f"v{i}" for i in range(len(vectors))]
    index.add_vectors(vectors, ids, modalities, [{"row": i} for i in range(len(vectors))])
    return index


# --- exact search -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("share", [1.0, 0.6, 0.05])  # no filter, masked filter, gathered filter
def test_exact_topk_matches_brute_force_across_chunks(share: float) -> None:
    rng = np.random.default_rng(0)
    x, q = unit(rng, 1000, 32), unit(rng, 300, 32)  # 300 queries: two query blocks
    allowed = rng.random(1000) < share
    scores, rows = exact.topk(torch.from_numpy(q), torch.from_numpy(x), 7,
                              None if share == 1.0 else torch.from_numpy(allowed), chunk_rows=64)
    full = q @ x.T
    full[:, ~allowed] = -np.inf
    want = np.argsort(-full, axis=1, kind="stable")[:, : min(7, allowed.sum())]
    np.testing.assert_array_equal(rows.numpy(), want)
    np.testing.assert_allclose(scores.numpy(), np.take_along_axis(full, want, 1), atol=1e-5)


def test_add_search_remove_update_match_brute_force(space: AnchorSpace) -> None:
    rng = np.random.default_rng(1)
    x = unit(rng, 2000)
    mods = ["text" if i % 3 else "image" for i in range(2000)]
    index = filled(space, x, mods, backend="exact")
    ids = [f"v{i}" for i in range(2000)]
    q = unit(rng, 5)
    assert_same(index.search(q, k=10), brute(x, ids, q, 10))
    assert [h.metadata["row"] for h in index.search(q[0], k=3)] == [int(i[1:]) for i, _ in brute(x, ids, q[:1], 3)[0]]

    index.remove(["v0", "v5"])  # tombstones
    keep = [i for i in range(2000) if i not in (0, 5)]
    assert_same(index.search(q, k=10), brute(x[keep], [ids[i] for i in keep], q, 10))
    index.remove([f"v{i}" for i in range(100, 800)])  # over a quarter dead: compacted
    keep = [i for i in keep if not 100 <= i < 800]
    assert len(index) == len(keep) and len(index._ids) == len(keep)
    assert_same(index.search(q, k=10), brute(x[keep], [ids[i] for i in keep], q, 10))

    target = -q[1]  # v1 becomes the item most unlike query 1...
    index.add_vectors(target[None], ["new"], "image")
    assert index.search(q[1], k=len(index))[-1].id == "new"
    index.update("v1", "a photo of a dog", metadata={"row": "dog"})  # ...and v1 is re-embedded from text
    assert index.entry("v1").metadata == {"row": "dog"}
    assert index.entry("v1").modality == bind.Modality.TEXT
    torch.testing.assert_close(index.entry("v1").vector, space.embed("a photo of a dog"), atol=1e-6, rtol=0)
    with pytest.raises(KeyError, match="nope"):
        index.remove(["v2", "nope"])
    assert "v2" in index  # all or nothing
    with pytest.raises(ConfigError, match="already in the index"):
        index.add_vectors(x[:1], ["v2"], "text")
    with pytest.raises(KeyError):
        index.update("nope", "text")


def test_modality_filter_returns_k_hits(space: AnchorSpace) -> None:
    rng = np.random.default_rng(2)
    x = unit(rng, 3000)
    mods = ["image" if i % 100 == 0 else "text" for i in range(3000)]  # 30 images among 3000
    index = filled(space, x, mods, backend="exact")
    q = unit(rng, 4)
    hits = index.search(q, k=10, result_modality="image")
    images = [i for i in range(3000) if mods[i] == "image"]
    assert_same(hits, brute(x[images], [f"v{i}" for i in images], q, 10))
    assert all(h.modality == bind.Modality.IMAGE for row in hits for h in row)
    assert len(index.search(q[0], k=50, result_modality="image")) == 30  # all that exist
    assert len(index.search(q[0], k=5, result_modality=["image", "text"])) == 5
    assert index.search(q[0], k=5, result_modality="audio") == []


@needs_faiss
@pytest.mark.parametrize("backend", ["faiss-flat", "faiss-ivf", "faiss-hnsw"])
def test_filtered_ann_search_still_returns_k_hits(space: AnchorSpace, backend: str) -> None:
    rng = np.random.default_rng(3)
    x = clustered(rng, 4000)
    mods = ["image" if i % 200 == 0 else "text" for i in range(4000)]  # 20 images
    index = filled(space, x, mods, backend=backend)
    index.remove(["v0"])  # a dead slot must never come back either
    q = clustered(rng, 3)
    images = [i for i in range(4000) if mods[i] == "image" and i != 0]
    for row in index.search(q, k=10, result_modality="image"):
        assert len(row) == 10 and all(h.modality == bind.Modality.IMAGE and h.id != "v0" for h in row)
    assert all(len(row) == 19 for row in index.search(q, k=25, result_modality="image"))
    want = brute(x[images], [f"v{i}" for i in images], q, 10)
    exact_ids = [[i for i, _ in row] for row in want]
    got = [[h.id for h in row] for row in index.search(q, k=10, result_modality="image")]
    if backend == "faiss-flat":
        assert got == exact_ids


@needs_faiss
def test_faiss_flat_equals_exact(space: AnchorSpace) -> None:
    rng = np.random.default_rng(4)
    x = unit(rng, 3000)
    mods = ["text"] * 3000
    q = unit(rng, 20)
    exact_hits = filled(space, x, mods, backend="exact").search(q, k=10)
    flat = filled(space, x, mods, backend="faiss-flat")
    assert flat.active_backend == "faiss-flat"
    flat_hits = flat.search(q, k=10)
    assert [[h.id for h in r] for r in flat_hits] == [[h.id for h in r] for r in exact_hits]
    np.testing.assert_allclose([[h.score for h in r] for r in flat_hits],
                               [[h.score for h in r] for r in exact_hits], atol=1e-5)


def recall(got: list[list[bind.index.Hit]], want: list[list[bind.index.Hit]]) -> float:
    return float(np.mean([len({h.id for h in g} & {h.id for h in w}) / len(w) for g, w in zip(got, want)]))


@needs_faiss
@pytest.mark.parametrize("backend", ["faiss-ivf", "faiss-hnsw"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_approximate_recall_on_random_clustered_data(space: AnchorSpace, backend: str, dtype: str) -> None:
    rng = np.random.default_rng(5)
    x, q = clustered(rng, 5000), clustered(rng, 50)
    mods = ["text"] * 5000
    truth = filled(space, x, mods, backend="exact").search(q, k=10)
    ann = filled(space, x, mods, backend=backend, dtype=dtype)
    assert recall(ann.search(q, k=10), truth) >= 0.9
    ann.add_vectors(clustered(rng, 100), [f"late{i}" for i in range(100)], "text")  # added to the built structure
    assert ann._ann is not None and ann._ann.count == 5000
    ann.search(q[0], k=1)
    assert ann._ann.count == 5100


def test_float16_storage_close_to_float32(space: AnchorSpace) -> None:
    rng = np.random.default_rng(6)
    x, q = clustered(rng, 3000), clustered(rng, 30)
    mods = ["text"] * 3000
    full = filled(space, x, mods, backend="exact").search(q, k=10)
    half_index = filled(space, x, mods, backend="exact", dtype=torch.float16)
    assert half_index._vectors.dtype == np.float16
    for batch in (q[:2], q):  # half products (few queries) and widened chunks (many)
        half = half_index.search(batch, k=10)
        assert recall(half, full[: len(batch)]) >= 0.9
        np.testing.assert_allclose([r[0].score for r in half], [r[0].score for r in full[: len(batch)]], atol=2e-3)


@needs_faiss
def test_auto_backend_switches_to_ivf_by_size(space: AnchorSpace, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    x, q = clustered(rng, 3000), clustered(rng, 20)
    index = filled(space, x, ["text"] * 3000)
    assert index.backend == "auto" and index.active_backend == "exact"
    truth = index.search(q, k=10)
    monkeypatch.setattr(index_core, "AUTO_THRESHOLD", 2000)
    assert index.active_backend == "faiss-ivf"
    assert recall(index.search(q, k=10), truth) >= 0.9
    index.remove([f"v{i}" for i in range(1500)])
    assert index.active_backend == "exact"


# --- real items, composed and raw-vector queries ------------------------------------------------------------

def colour_image(rgb: tuple[int, int, int], size: int = 64) -> Image.Image:
    return Image.new("RGB", (size, size), rgb)


def test_items_of_any_modality_and_query_kinds(space: AnchorSpace, tmp_path: Path) -> None:
    captions = ["a cat sleeping on a sofa", "a red truck on the highway", "rain falling on a window",
                "two dogs playing in a park", "an old clock on the wall"]
    picture = tmp_path / "red.png"
    colour_image((220, 20, 20)).save(picture)
    index = Index(space)
    added = index.add(captions + [str(picture), colour_image((20, 20, 220))], metadata=[{"n": i} for i in range(7)])
    assert added == ["0", "1", "2", "3", "4", str(picture), "5"]
    assert index.entry(str(picture)).metadata == {"n": 5, "path": str(picture)}
    assert index.entry("5").modality == bind.Modality.IMAGE

    hits = index.search("a kitten napping", k=3)
    assert hits[0].id == "0" and hits[0].metadata == {"n": 0}
    assert hits[0].score == pytest.approx(float(space.embed("a kitten napping") @ space.embed(captions[0])), abs=1e-5)
    only_images = index.search("a kitten napping", k=5, result_modality="image")
    assert {h.id for h in only_images} == {str(picture), "5"}
    # a query of another modality; the same query as a raw vector; a batch equals single searches
    by_image = index.search(str(picture), k=7)
    assert by_image[0].id == str(picture) and by_image[0].score == pytest.approx(1.0, abs=1e-5)
    assert_hits_close(index.search(space.embed(str(picture)), k=7), by_image)
    batch = index.search(["a kitten napping", str(picture)], k=4)
    assert_hits_close(batch[0], index.search("a kitten napping", k=4))
    assert_hits_close(batch[1], index.search(str(picture), k=4))
    # composed: the hits are those of space.compose's vector
    terms = [("a cat", 1.0), ("a truck", 1.0)]
    composed = index.search(compose=terms, k=7)
    assert_hits_close(composed, index.search(space.compose(terms), k=7))
    assert {h.id for h in composed[:2]} == {"0", "1"}


def test_bad_items_and_queries(space: AnchorSpace, tmp_path: Path) -> None:
    index = Index(space)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(InputError, match="broken.jpg"):
        index.add(["fine text", str(broken)])
    assert len(index) == 0  # nothing added on error
    result = index.add(["fine text", str(broken), ""], on_error="skip")
    assert result.ids == ["0"] and [f.index for f in result.failures] == [1, 2]
    with pytest.raises(InputError, match="this space has no audio path"):
        index.add([np.zeros(16000, np.float32)], sample_rate=16000)
    with pytest.raises(InputError, match="zero norm"):
        index.search(np.zeros(DIM, np.float32))
    with pytest.raises(ConfigError, match="k must be"):
        index.search("x", k=0)
    with pytest.raises(ConfigError, match="not both"):
        index.search("x", compose=[("y", 1.0)])
    with pytest.raises(ConfigError, match="unknown index backend"):
        Index(space, backend="annoy")
    with pytest.raises(ConfigError, match="float32 or float16"):
        Index(space, dtype=torch.int8)
    with pytest.raises(ConfigError, match="unknown option"):
        Index(space, backend="faiss-hnsw", options={"nprobe": 3})
    with pytest.raises(ConfigError, match="JSON"):
        index.add("more text", metadata={"bad": object()})
    with pytest.raises(ConfigError, match=r"\[384\] or \[N, 384\]"):
        index.add_vectors(np.ones((2, 10), np.float32), ["a", "b"], "text")


# --- the API rules -----------------------------------------------------------------------------------------

def test_modality_names_the_input_and_the_result_filter_is_result_modality(space: AnchorSpace, tmp_path: Path) -> None:
    picture = tmp_path / "red.png"
    colour_image((220, 20, 20)).save(picture)
    index = Index(space)
    index.add(["a red truck", "a cat on a sofa"])
    index.add(str(picture), modality="image")  # the input's modality
    assert index.entry(str(picture)).modality == bind.Modality.IMAGE
    truck = space.embed("a red truck")
    with pytest.raises(bind.ConfigError) as info:
        index.search("a red truck", modality="image")
    assert "was the result filter: use result_modality=" in str(info.value)
    assert "the query's own modality is query_modality=" in str(info.value)
    with pytest.raises(bind.ConfigError, match="was the result filter: use result_modality="):
        index.search_vectors(truck, modality="image")
    with pytest.raises(TypeError):
        index.search("a red truck", 5, "image")  # keyword-only, never a positional filter
    assert [h.id for h in index.search("a red truck", result_modality="image")] == [str(picture)]
    assert [h.id for h in index.search_vectors(truck, result_modality=["image"])[0]] == [str(picture)]
    assert {h.id for h in index.search("a red truck", result_modality=["text", "image"])} == {"0", "1", str(picture)}

    # query_modality: the query's own modality, for a query that could be two things (bytes of no known format)
    tiff = io.BytesIO()
    colour_image((220, 20, 20)).save(tiff, format="TIFF")
    with pytest.raises(InputError, match="pass modality"):
        index.search(tiff.getvalue())  # no guess
    hit = index.search(tiff.getvalue(), k=1, query_modality="image")[0]
    assert hit.id == str(picture) and hit.score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ConfigError, match="query_modality applies to query"):
        index.search(compose=[("a cat", 1.0)], query_modality="text")


def test_add_returns_like_embed(space: AnchorSpace, monkeypatch: pytest.MonkeyPatch) -> None:
    index = Index(space)
    assert index.add("one sentence") == "0"  # one item: its id
    assert index.add(["two", "three"]) == ["1", "2"]  # a list: a list
    assert index.add(["four"]) == ["3"]
    assert index.add("five", on_error="skip") == AddResult(["4"], [])  # skip: an AddResult for one item too
    bad = index.add("", on_error="skip")
    assert bad.ids == [] and [f.index for f in bad.failures] == [0]
    many = index.add(["six", ""], on_error="skip")
    assert many.ids == ["5"] and [f.index for f in many.failures] == [1]
    with pytest.raises(ConfigError, match="on_error must be 'raise' or 'skip'"):
        index.add("seven", on_error="ignore")
    assert len(index) == 6

    seen: list[tuple[bool, int | None]] = []
    embed = AnchorSpace.embed

    def spy(self: AnchorSpace, *args: object, **kwargs: object) -> object:
        seen.append((kwargs["progress"], kwargs["num_workers"]))  # type: ignore[arg-type]
        return embed(self, *args, **kwargs)

    monkeypatch.setattr(AnchorSpace, "embed", spy)
    index.add("seven")
    index.add(["eight"], progress=True, num_workers=0)
    assert seen == [(False, None), (True, 0)]


def test_a_bad_modality_name_is_a_config_error(space: AnchorSpace) -> None:
    index = Index(space)
    index.add("a red truck", ids="truck")
    vector = np.ones(DIM, np.float32)
    calls = [lambda: index.add("more", modality="sound"), lambda: index.update("truck", "x", modality="sound"),
             lambda: index.add_vectors(vector, ["v"], "sound"), lambda: index.search("x", result_modality="sound"),
             lambda: index.search("x", query_modality="sound"),
             lambda: index.search_vectors(vector, result_modality=["text", "sound"])]
    for call in calls:
        with pytest.raises(bind.ConfigError, match="unknown modality 'sound'"):
            call()
    assert index.ids == ["truck"] and index.entry("truck").modality == bind.Modality.TEXT


# --- persistence --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend,dtype", [("exact", "float32"), pytest.param("faiss-ivf", "float16", marks=needs_faiss),
                                           pytest.param("faiss-hnsw", "float32", marks=needs_faiss)])
def test_save_load_round_trip(space: AnchorSpace, tmp_path: Path, backend: str, dtype: str) -> None:
    rng = np.random.default_rng(8)
    x = clustered(rng, 2000)
    mods = ["image" if i % 10 == 0 else "text" for i in range(2000)]
    index = filled(space, x, mods, backend=backend, dtype=dtype)
    index.add("a sentence about a lighthouse", ids="lighthouse", metadata={"lang": "en"})
    assert index.add("a sentence with an automatic id") == "0"  # one item: its id
    index.remove(["v3"])
    q = clustered(rng, 10)
    before = index.search(q, k=10, result_modality="text")
    version = index.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [".writer.lock", "CURRENT", version.name]
    assert {"manifest.json", "vectors.npy", "records.jsonl", "space"} <= {p.name for p in version.iterdir()}
    assert ((version / "ann.faiss").exists()) == (backend != "exact")

    for loaded in (Index.load(tmp_path / "idx", space), Index.load(tmp_path / "idx"), Index.load(tmp_path / "idx", mmap=True)):
        assert loaded.backend == backend and loaded.dtype == index.dtype and len(loaded) == len(index)
        assert loaded.identity == space.identity
        assert [hit_pairs(r) for r in loaded.search(q, k=10, result_modality="text")] == [hit_pairs(r) for r in before]
        assert loaded.entry("lighthouse").metadata == {"lang": "en"} and "v3" not in loaded
        assert_hits_close(loaded.search("a lighthouse by the sea", k=3), index.search("a lighthouse by the sea", k=3))
    assert loaded.add("a second sentence") == "1"  # a loaded (memory-mapped) index grows like any other
    assert loaded.add(["a third sentence"]) == ["2"]
    second = loaded.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [".writer.lock", "CURRENT", second.name]
    assert len(Index.load(tmp_path / "idx", space)) == len(index) + 2


def test_loading_with_another_space_is_refused(space: AnchorSpace, text_space: AnchorSpace, tmp_path: Path) -> None:
    index = Index(space)
    index.add(["one", "two"])
    index.save(tmp_path / "idx")
    with pytest.raises(ConfigError) as info:
        Index.load(tmp_path / "idx", text_space)
    assert space.identity in str(info.value) and text_space.identity in str(info.value)
    with pytest.raises(ConfigError, match="no bind index"):
        Index.load(tmp_path / "nothing-here", space)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a bind index"):
        index.save(tmp_path / "notes")  # never overwrites a folder that is not an index


def test_saved_indexes_name_modalities_and_codes_stay_in_memory(space: AnchorSpace, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    picture = tmp_path / "red.png"
    colour_image((220, 20, 20)).save(picture)
    index = Index(space)
    index.add(["a red truck", str(picture)])
    version = index.save(tmp_path / "idx")
    records = [json.loads(line) for line in (version / "records.jsonl").read_text().splitlines()]
    assert [r["modality"] for r in records] == ["text", "image"]
    monkeypatch.setattr(index_core, "_CODES", tuple(reversed(bind.Modality)))  # another in-memory numbering
    loaded = Index.load(tmp_path / "idx", space)
    assert [loaded.entry(i).modality for i in ("0", str(picture))] == [bind.Modality.TEXT, bind.Modality.IMAGE]
    assert [h.id for h in loaded.search("a red truck", result_modality="image")] == [str(picture)]
    loaded.save(tmp_path / "idx")
    monkeypatch.undo()
    again = Index.load(tmp_path / "idx", space)
    assert [again.entry(i).modality for i in ("0", str(picture))] == [bind.Modality.TEXT, bind.Modality.IMAGE]


def test_indexes_are_saved_with_the_shared_format_version(text_space: AnchorSpace, tmp_path: Path) -> None:
    index = Index(text_space)
    index.add(["one sentence", "another sentence"])
    manifest_path = index.save(tmp_path / "idx") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["format"] == "bind-index" and manifest["format_version"] == versions.FORMAT_VERSION
    assert not hasattr(index_core, "FORMAT_VERSION")  # one version for everything bind saves

    manifest_path.write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ConfigError, match="written by a newer bind"):
        Index.load(tmp_path / "idx")
    manifest_path.write_text(json.dumps({**manifest, "format": "bind-space"}))
    with pytest.raises(ConfigError, match="not a bind index"):
        Index.load(tmp_path / "idx")
    manifest_path.write_text(json.dumps({k: v for k, v in manifest.items() if k != "format_version"}))
    with pytest.raises(ConfigError, match="no format_version"):
        Index.load(tmp_path / "idx")


def test_an_index_of_format_version_1_is_upgraded_when_saved_again(tmp_path: Path) -> None:
    old = Path(__file__).with_name("fixtures") / "index_format1"
    shutil.copytree(old, tmp_path / "idx")
    index = Index.load(tmp_path / "idx")
    before = hit_pairs(index.search("a photo of a tabby cat", k=5))
    version = index.save(tmp_path / "idx")
    assert json.loads((version / "manifest.json").read_text())["format_version"] == versions.FORMAT_VERSION
    [old_version] = [p for p in old.iterdir() if p.is_dir()]
    assert (version / "records.jsonl").read_text() == (old_version / "records.jsonl").read_text()
    assert hit_pairs(Index.load(tmp_path / "idx").search("a photo of a tabby cat", k=5)) == before


def test_failed_save_leaves_previous_index(space: AnchorSpace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = Index(space)
    index.add(["first", "second"])
    index.save(tmp_path / "idx")
    index.add("third")

    def broken_write(path: Path, array: np.ndarray) -> None:
        path.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage, "write_array", broken_write)
    with pytest.raises(OSError, match="No space left"):
        index.save(tmp_path / "idx")
    assert len(list((tmp_path / "idx").iterdir())) == 3  # the lock, CURRENT and the old version; the new one removed
    assert sorted(Index.load(tmp_path / "idx", space).ids) == ["0", "1"]


KILLED_SAVE = """
import os, signal, sys
import numpy as np
from bind.index import Index, storage

index = Index.load(sys.argv[1])            # the space comes from the index folder
index.add(["a fourth sentence", "a fifth sentence"])

def write_half_then_die(path, array):
    data = array.tobytes()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        os.fsync(handle.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

storage.write_array = write_half_then_die
index.save(sys.argv[1])
"""


def test_save_killed_midway_leaves_previous_index(text_space: AnchorSpace, tmp_path: Path) -> None:
    target = tmp_path / "idx"
    index = Index(text_space)
    index.add(["one sentence", "another sentence", "a third sentence"])
    index.save(target)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_SAVE), str(target)], env=env,
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    versions = [p for p in target.iterdir() if p.name.startswith("v-")]
    assert len(versions) == 2  # the live one and the half-written one
    loaded = Index.load(target, text_space)
    assert loaded.ids == ["0", "1", "2"]
    assert loaded.search("another sentence", k=1)[0].id == "1"
    loaded.save(target)  # the next save clears the debris
    assert len([p for p in target.iterdir() if p.name.startswith("v-")]) == 1


# --- folders ------------------------------------------------------------------------------------------------

def make_folder(root: Path) -> None:
    (root / "pics").mkdir(parents=True)
    colour_image((220, 30, 30)).save(root / "pics" / "red.png")
    colour_image((30, 30, 220)).save(root / "pics" / "blue.jpg")
    (root / "notes.txt").write_text("a note about lighthouses by the sea")
    (root / "pics" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "pics" / "empty.jpg").write_bytes(b"")
    (root / "sound.wav").write_bytes(b"RIFF....WAVE")  # the space has no audio path
    (root / "README.md").write_text("not media")
    (root / ".hidden.png").write_bytes(b"skipped")


def test_folder_build_is_incremental_and_reports_bad_files(space: AnchorSpace, tmp_path: Path) -> None:
    root, out = tmp_path / "media", tmp_path / "idx"
    make_folder(root)
    index, report = Index.build_from_folder(root, space, out=out, progress=False)
    assert sorted(report.added) == ["notes.txt", "pics/blue.jpg", "pics/red.png"] and report.embedded == 3
    failed = {Path(str(f.item)).name: f.reason for f in report.failures}
    assert set(failed) == {"broken.png", "empty.jpg", "sound.wav"}
    assert "empty" in failed["empty.jpg"] and "no audio path" in failed["sound.wav"]
    assert report.ignored == ["README.md"]
    assert "3 added" in str(report) and "broken.png" in str(report)
    red = index.entry("pics/red.png")
    assert red.modality == bind.Modality.IMAGE and red.metadata == {"path": str((root / "pics" / "red.png").resolve())}
    torch.testing.assert_close(red.vector, space.embed(str(root / "pics" / "red.png")), atol=1e-6, rtol=0)
    assert index.search("lighthouse", k=1)[0].id == "notes.txt"

    _, again = Index.build_from_folder(root, space, out=out, progress=False)  # nothing changed
    assert (again.added, again.updated, again.removed, again.embedded, again.unchanged) == ([], [], [], 0, 3)

    os.utime(root / "notes.txt", ns=(1, 1))  # touched, same content: hashed, not embedded
    colour_image((30, 200, 30)).save(root / "pics" / "red.png")  # modified
    (root / "pics" / "blue.jpg").rename(root / "pics" / "blue-renamed.jpg")  # moved: reuses its embedding
    (root / "notes2.txt").write_text("a brand new note about violins")
    index, third = Index.build_from_folder(root, space, out=out, progress=False)
    assert third.updated == ["pics/red.png"] and third.removed == ["pics/blue.jpg"]
    assert sorted(third.added) == ["notes2.txt", "pics/blue-renamed.jpg"]
    assert third.embedded == 2 and third.unchanged == 1
    torch.testing.assert_close(index.entry("pics/red.png").vector, space.embed(str(root / "pics" / "red.png")),
                               atol=1e-6, rtol=0)
    assert sorted(index.ids) == ["notes.txt", "notes2.txt", "pics/blue-renamed.jpg", "pics/red.png"]

    (root / "notes2.txt").unlink()
    (root / "notes.txt").write_bytes(b"\xff\xfe\x00 not utf-8")  # a file that went bad is dropped
    index = Index.load(out, space)
    fourth = index.add_folder(root, progress=False)
    assert sorted(fourth.removed) == ["notes.txt", "notes2.txt"]
    assert "notes.txt" in {Path(str(f.item)).name for f in fourth.failures}
    assert sorted(index.ids) == ["pics/blue-renamed.jpg", "pics/red.png"]
    records = (storage.live_version(out) / "records.jsonl").read_text().splitlines()
    assert all(json.loads(r)["source"]["sha256"] for r in records if r != "null")


def test_faiss_backends_without_faiss_say_how_to_install(space: AnchorSpace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # what an environment without faiss-cpu looks like
    with pytest.raises(ConfigError, match="pip install faiss-cpu"):
        Index(space, backend="faiss-hnsw")
    index = Index(space)  # auto: exact search, which needs no faiss
    index.add_vectors(unit(np.random.default_rng(9), 3), ["a", "b", "c"], "text")
    assert index.active_backend == "exact" and len(index.search(np.ones(DIM, np.float32), k=2)) == 2
