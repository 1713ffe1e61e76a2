"""Hubness correction and calibrated relevance at search time (bind.index.scores), saved with the index."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import bind
from bind.apps.cli import main
from bind.index import storage
from bind.index.scores import (
    METHODS,
    Calibration,
    Platt,
    Scoring,
    expected_calibration_error,
    fit_platt,
    pair_key,
    references,
)
from bind.io import versions

TEXT, IMAGE, AUDIO = bind.Modality.TEXT, bind.Modality.IMAGE, bind.Modality.AUDIO
DIM = 384


@pytest.fixture(scope="module")
def space() -> bind.Space:
    return bind.AnchorSpace({"text": "minilm-l6.text"})


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def gallery(space: bind.Space, seed: int = 0, **options) -> tuple[bind.Index, np.ndarray, np.ndarray]:
    """20 image and 10 audio items, and a bank of 30 text queries; one audio item is a hub: it sits near the
    centre of the bank, so it is close to every query."""
    rng = np.random.default_rng(seed)
    bank = unit(rng.normal(size=(30, DIM)) + 12.0 * np.eye(1, DIM))  # queries share a direction
    items = unit(rng.normal(size=(30, DIM)))
    items[20] = unit(bank.mean(axis=0, keepdims=True))[0]  # the hub
    index = bind.Index(space, backend=options.pop("backend", "exact"), calibration=options.pop("calibration", None),
                       scoring=options.pop("scoring", None))
    index.add_vectors(items, [f"i{i}" for i in range(30)], [IMAGE] * 20 + [AUDIO] * 10)
    index.set_query_bank(bank, TEXT)
    return index, items, bank


def brute_force(method: str, query: np.ndarray, items: np.ndarray, bank: np.ndarray, k: int = 10,
                beta: float = 20.0) -> np.ndarray:
    cos = items @ query
    to_bank = items @ bank.T
    if method == "none":
        return cos
    if method == "csls":
        return 2 * cos - np.sort(to_bank, axis=1)[:, -k:].mean(axis=1) - np.sort(cos)[-k:].mean()
    softmax = cos - (np.log(np.exp(beta * to_bank).mean(axis=1))) / beta
    if method == "inverted_softmax":
        return softmax
    hubs = set(np.argmax(to_bank, axis=0).tolist())
    return softmax if int(np.argmax(cos)) in hubs else cos


@pytest.mark.parametrize("method", METHODS)
def test_each_method_matches_its_formula(space, method) -> None:
    index, items, bank = gallery(space)
    query = unit(np.random.default_rng(5).normal(size=(1, DIM)) + 2.0 * np.eye(1, DIM))[0]
    hits = index.search_vectors(query, 30, query_modality="text", correction=method)[0]
    expected = brute_force(method, query, items, bank)
    got = {hit.id: hit.score for hit in hits}
    assert np.allclose([got[f"i{i}"] for i in range(30)], expected, atol=1e-4)
    assert np.allclose(sorted(expected, reverse=True), [h.score for h in hits], atol=1e-4)  # best first
    assert all(math.isclose(h.cosine, float(items[int(h.id[1:])] @ query), abs_tol=1e-5) for h in hits)


def test_csls_pulls_a_hub_down(space) -> None:
    index, items, bank = gallery(space)
    query = unit(bank[:1] + 0.3 * items[3:4])[0]  # a bank-like query that also looks like item 3
    plain = index.search_vectors(query, 3, query_modality="text", correction=False)[0]
    fixed = index.search_vectors(query, 3, query_modality="text", correction="csls")[0]
    assert plain[0].id == "i20" and plain[0].score == plain[0].cosine  # the hub wins on cosine
    assert fixed[0].id == "i3" and [h.id for h in fixed].index("i20") > 0


def test_own_items_are_the_bank_when_none_is_set_and_an_item_is_not_its_own_neighbour(space) -> None:
    rng = np.random.default_rng(1)
    vectors = unit(rng.normal(size=(12, DIM)))
    refs = references(vectors, np.ones(12, bool), vectors, np.arange(12), Scoring(k=3))
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    assert np.allclose(refs.csls, np.sort(sims, axis=1)[:, -3:].mean(axis=1), atol=1e-5)
    index = bind.Index(space, backend="exact", scoring=Scoring(k=3))
    index.add_vectors(vectors, [str(i) for i in range(12)], TEXT)
    hits = index.search_vectors(vectors[0], 12, query_modality="text")[0]
    assert np.allclose(sorted(h.score for h in hits), sorted(2 * (vectors @ vectors[0]) - refs.csls
                                                              - np.sort(vectors @ vectors[0])[-3:].mean()), atol=1e-4)


def test_too_small_a_bank_or_no_query_modality_ranks_by_cosine(space) -> None:
    index = bind.Index(space, backend="exact")
    vectors = unit(np.random.default_rng(2).normal(size=(5, DIM)))
    index.add_vectors(vectors, [str(i) for i in range(5)], TEXT)  # 5 < k + 1 own items
    for hits in (index.search_vectors(vectors[0], 3, query_modality="text")[0], index.search_vectors(vectors[0], 3)[0]):
        assert all(h.score == h.cosine for h in hits)


def test_an_ann_backend_reranks_over_fetched_candidates_like_exact_search(space) -> None:
    pytest.importorskip("faiss")
    exact, items, _ = gallery(space)
    flat, _, _ = gallery(space, backend="faiss-flat")
    query = unit(items[:1] + items[20:21])[0]
    for method in METHODS:
        a = exact.search_vectors(query, 5, query_modality="text", correction=method)[0]
        b = flat.search_vectors(query, 5, query_modality="text", correction=method)[0]
        assert [h.id for h in a] == [h.id for h in b]


def test_platt_calibration_is_monotone_and_fits_its_labels() -> None:
    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.normal(0.6, 0.1, 300), rng.normal(0.2, 0.1, 2700)])
    labels = np.concatenate([np.ones(300), np.zeros(2700)])
    platt = fit_platt(scores, labels, "synthetic")
    relevance = platt(np.linspace(-1, 2, 50))
    assert platt.a > 0 and (np.diff(relevance) >= 0).all() and relevance.min() >= 0 and relevance.max() <= 1
    assert platt(np.array([0.3]))[0] < platt(np.array([0.4]))[0] < platt(np.array([0.5]))[0]
    assert expected_calibration_error(platt(scores), labels) < 0.03
    assert expected_calibration_error(np.full(3000, 0.9), labels) > 0.5
    with pytest.raises(bind.ConfigError, match="relevant and irrelevant"):
        fit_platt(scores, np.ones(3000))


def calibrated(method: str = "csls") -> Calibration:
    return Calibration({method: {pair_key(TEXT, IMAGE): Platt(10.0, -2.0), pair_key(TEXT, AUDIO): Platt(2.0, -2.0)}})


def test_relevance_ranks_a_mixed_list_and_min_score_cuts_it(space) -> None:
    index, items, bank = gallery(space, calibration=calibrated())
    query = unit(bank[:1] + 0.5 * items[3:4])[0]
    hits = index.search_vectors(query, 30, query_modality="text")[0]
    relevance = [h.relevance for h in hits]
    assert all(0 <= r <= 1 for r in relevance) and relevance == sorted(relevance, reverse=True)
    cut = index.search_vectors(query, 30, query_modality="text", min_score=0.5)[0]
    assert cut == [h for h in hits if h.relevance >= 0.5] and len(cut) < len(hits)
    with pytest.raises(bind.ConfigError, match="min_score needs a calibrated relevance"):
        index.search_vectors(query, 5, query_modality="text", correction="inverted_softmax", min_score=0.5)
    plain = index.search_vectors(query, 5, query_modality="text", correction="inverted_softmax")[0]
    assert all(h.relevance is None for h in plain)


def test_scores_settings_banks_and_calibration_are_saved_with_the_index(space, tmp_path) -> None:
    index, items, _ = gallery(space, scoring="inverted_softmax", calibration=calibrated("inverted_softmax"))
    query = unit(items[:1] + items[20:21])[0]
    before = index.search_vectors(query, 5, query_modality="text")[0]
    index.save(tmp_path / "idx")
    manifest = json.loads((storage.live_version(tmp_path / "idx") / "manifest.json").read_text())
    assert manifest["format_version"] == versions.FORMAT_VERSION == 4 and manifest["banks"] == ["text"]
    loaded = bind.Index.load(tmp_path / "idx")
    assert loaded.scoring.method == "inverted_softmax"
    assert loaded.search_vectors(query, 5, query_modality="text")[0] == before


def test_an_index_saved_before_scores_loads_with_the_default_correction(tmp_path) -> None:
    index = bind.Index.load(Path(__file__).with_name("fixtures") / "index_format1")
    assert index.scoring == Scoring() and index.search("a photo of a tabby cat", k=1)[0].cosine is not None


def test_the_cli_shows_relevance_score_and_cosine(space, tmp_path, capsys) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for i, topic in enumerate(["boats", "trains", "violins", "rain", "bread", "cats", "maps", "tea", "owls",
                               "kites", "snow", "clocks"]):
        (notes / f"{topic}.txt").write_text(f"a short note about {topic}")
    bind.Index.build_from_folder(notes, space, out=tmp_path / "idx", progress=False)
    assert main(["search", str(tmp_path / "idx"), "a note about trains", "--json", "-k", "3"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["id"] == "trains.txt" and {"relevance", "score", "cosine"} <= set(rows[0])
    assert rows[0]["score"] != rows[0]["cosine"]  # corrected by default (csls against the notes themselves)
    assert main(["search", str(tmp_path / "idx"), "a note about trains", "--json", "--correction", "none"]) == 0
    assert all(r["score"] == r["cosine"] for r in json.loads(capsys.readouterr().out))
    assert main(["search", str(tmp_path / "idx"), "trains", "--min-score", "0.5"]) != 0
    assert "min_score needs a calibrated relevance" in capsys.readouterr().err


def test_a_space_keeps_its_shipped_score_data_only_for_its_own_identity(tmp_path) -> None:
    space = bind.AnchorSpace({"text": "minilm-l6.text"})
    bank = unit(np.random.default_rng(4).normal(size=(20, DIM)))
    space.score_calibration = {"space_identity": space.identity, "methods": calibrated().to_dict(),
                               "banks": {"text": bank}}
    loaded = bind.load_space(space.save(tmp_path / "s"))
    assert loaded.score_calibration["methods"] == calibrated().to_dict()
    assert np.allclose(loaded.score_calibration["banks"]["text"], bank, atol=1e-3)  # stored as float16
    index = bind.Index(loaded)
    assert index.calibration == calibrated()
    other = bind.AnchorSpace({"text": "e5-small-multilingual.text"})
    other.score_calibration = loaded.score_calibration  # fitted for another identity: ignored
    assert bind.Index(other).calibration == Calibration()
    assert not (bind.load_space(other.save(tmp_path / "o")).score_calibration or {})


@pytest.mark.parametrize("bank", ["set", "own"])
def test_references_kept_across_appends_equal_a_full_recompute(space, bank) -> None:
    rng = np.random.default_rng(7)
    index = bind.Index(space, backend="exact")
    index.add_vectors(unit(rng.normal(size=(40, DIM))), [f"t{i}" for i in range(40)], TEXT)
    index.add_vectors(unit(rng.normal(size=(20, DIM))), [f"a{i}" for i in range(20)], IMAGE)
    if bank == "set":
        index.set_query_bank(unit(rng.normal(size=(30, DIM))), TEXT)
    query = unit(rng.normal(size=(1, DIM)))[0]
    for method in ("csls", "qb_norm"):
        index.search_vectors(query, 5, query_modality="text", correction=method)  # computes the references
    index.add_vectors(unit(rng.normal(size=(15, DIM))), [f"b{i}" for i in range(15)], IMAGE)  # bank unchanged
    kept = index._references(TEXT)
    assert index._refs[TEXT][1] == len(index._ids)
    index._refs.clear()
    full = index._references(TEXT)
    assert np.allclose(kept.csls, full.csls, atol=1e-6) and np.allclose(kept.softmax, full.softmax, atol=1e-6)
    assert (kept.hub == full.hub).all()
    index.remove(["a3"])  # a removal recomputes
    assert index._references(TEXT) is not kept
