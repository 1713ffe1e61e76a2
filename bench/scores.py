"""Scores across modalities, before and after hubness correction and calibration, in one run (lite space).

Data (nothing here is a report set and a tuning set at once):

- **banks**: 2,000 training captions and 2,000 training images of the Open Clip Art data
  (``recipes/prepare_openclipart.py --out DATA``), embedded once: the query banks of the correction.
- **selection**: the default method is the one with the best mean of three validation R@1: clip-art val
  (401 pairs) caption->image and image->caption, and the fitting half of the multilingual captions
  (``recipes/data/multilingual_captions.jsonl``, de/es/fr -> en over all 44 English captions, halves by a
  seeded hash of the id). Calibration maps are fitted on the same data: each validation query's top-10
  hits labelled right or wrong (text->image, image->text on clip-art val; text->text on the fitting half).
- **sounds** (``--sounds``): text->audio and audio->text maps fitted on the val clips (10, supertux-data)
  and reported on the test clips (57, scorched3d-data); **meshes** (``--meshes``): text->points and
  points->text maps fitted on half of the real meshes' labels and reported on the other half.
- **reported**: the clip-art test split (403 pairs), R@1 both ways; the held-out half of the multilingual
  captions, R@1 x->en; the twelve asset concept queries ("a cat", ...) over the demo index of assets/:
  the concept's image in the top 3 and top 5, and the mean share of the top 8 taken by the most frequent
  non-text modality; the expected calibration error (10 bins) of each fitted pair on its held-out half.
- **over-fetch**: how much of the corrected top 10 the default re-ranking of ``candidates(10)`` cosine
  candidates keeps, against re-ranking every item, over a gallery of all 2,804 bank, val and test images
  searched by the 403 test captions (exact search; an ANN backend re-ranks the same candidates).

- **centred rows**: the same measures after subtracting the banks' text and image means (GR-CLIP, what
  ``Space.calibrate`` does). That changes the space, so these rows are shown for comparison, never selected.

Data preparation (Debian packages, downloaded by apt)::

    apt-get install openclipart-png openclipart-svg && python recipes/prepare_openclipart.py --out data/openclipart
    (cd data/sound_effects/packages && apt-get download supertux-data scorched3d-data)
    PYTHONPATH=. python recipes/prepare_sound_effects.py --only supertux-data scorched3d-data
    (see recipes/prepare_real_meshes.py for data/real_meshes)

``--write spaces/lite`` stores the banks and the fitted maps (every method) with the space (its
``calibration.json`` and ``query_banks.safetensors``, bound to its identity).

    python bench/scores.py --data data/openclipart [--sounds data/sound_effects] [--meshes data/real_meshes]
        [--write spaces/lite]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import bind  # noqa: E402
from bind.apps.demo import cache_dir, demo_index  # noqa: E402
from bind.assets import load_manifest  # noqa: E402
from bind.experts.modality import Modality  # noqa: E402
from bind.index.scores import METHODS, Calibration, Platt, expected_calibration_error, fit_platt, pair_key  # noqa: E402
from bind.spaces.persist import write_score_data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BANK_SIZE = 2000
TEXT, IMAGE = Modality.TEXT, Modality.IMAGE


def read_pairs(data: Path) -> dict[str, list[tuple[Path, str]]]:
    with open(data / "pairs.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    splits: dict[str, list[tuple[Path, str]]] = {}
    for row in rows:
        splits.setdefault(row["split"], []).append((data / row["source"], row["target"]))
    return splits


def embedded(space: bind.Space, items: list, modality: Modality, cache: Path, name: str) -> torch.Tensor:
    """Space embeddings of ``items``, cached under ``cache`` by the space identity and ``name``."""
    path = cache / f"{space.identity[:16]}-{name}.npy"
    if path.is_file():
        return torch.from_numpy(np.load(path))
    vectors = space.embed(items, modality, progress=True)
    np.save(path, vectors.numpy())
    return vectors


def index_of(space: bind.Space, vectors: torch.Tensor, modality: Modality, banks: dict[Modality, torch.Tensor]) -> bind.Index:
    index = bind.Index(space, backend="exact", calibration=Calibration())
    index.add_vectors(vectors, [str(i) for i in range(len(vectors))], modality)
    for kind, bank in banks.items():
        index.set_query_bank(bank, kind)
    return index


def retrieval(index: bind.Index, queries: torch.Tensor, kind: Modality, method: str, k: int = 10) -> list[list]:
    return index.search_vectors(queries, k, query_modality=kind, correction=method)


def recall_at_1(hits: list[list], truth: list[int]) -> float:
    return float(np.mean([bool(h) and h[0].id == str(t) for h, t in zip(hits, truth)]))


def labelled(hits: list[list], truth: list[int] | list[set[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(score, right or wrong) of every hit; ``truth``: each query's right item, or set of right items."""
    right = [{str(i) for i in t} if isinstance(t, set) else {str(t)} for t in truth]
    scores = [h.score for row in hits for h in row]
    labels = [h.id in r for row, r in zip(hits, right) for h in row]
    return np.array(scores), np.array(labels)


def labelled_sets(space: bind.Space, data: Path, modality: Modality, cache: Path) -> dict[str, tuple]:
    """Per split (val, test): (item vectors, label-caption vectors, each item's caption number, each caption's
    items). Rows keep their ``split``; a data set that is all test (real meshes) is halved by a seeded hash
    of the label, so no label is in both halves."""
    with open(data / "pairs.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if {r["split"] for r in rows} == {"test"}:
        for r in rows:
            r["split"] = "val" if int(hashlib.sha256(f"0\0{r['target']}".encode()).hexdigest()[:8], 16) % 2 else "test"
    out = {}
    for split in ("val", "test"):
        chosen = [r for r in rows if r["split"] == split]
        captions = sorted({r["target"] for r in chosen})
        name = f"{data.name}-{split}"
        clips = embedded(space, [data / r["source"] for r in chosen], modality, cache, name)
        texts = embedded(space, captions, TEXT, cache, f"{name}-captions")
        of_clip = [captions.index(r["target"]) for r in chosen]
        out[split] = (clips, texts, of_clip, [{i for i, c in enumerate(of_clip) if c == j} for j in range(len(captions))])
    return out


def multilingual() -> tuple[list[str], list[tuple[str, int, bool]]]:
    """English captions, and (caption, index of its English caption, in the fitting half) per translation."""
    lines = (ROOT / "recipes" / "data" / "multilingual_captions.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines[1:]]
    english = [row["en"] for row in rows]
    queries = []
    for i, row in enumerate(rows):
        fit = int(hashlib.sha256(f"0\0{row['id']}".encode()).hexdigest()[:8], 16) % 2 == 0
        queries += [(row[lang], i, fit) for lang in ("de", "es", "fr")]
    return english, queries


def concept_queries(index: bind.Index, method: str, centre: Callable | None = None) -> tuple[int, int, float]:
    """(concept image in top 3, in top 5, mean share of the top 8 taken by the most frequent non-text modality).
    ``centre``: applied to the query vectors (the centred variant)."""
    entries = [e for e in load_manifest() if e.modality == IMAGE]
    queries = index.space.embed([f"a {entry.concept}" for entry in entries], TEXT)
    queries = centre(queries, TEXT) if centre else queries
    top3 = top5 = 0
    shares = []
    for entry, query in zip(entries, queries):
        hits = index.search_vectors(query, 8, query_modality="text", correction=method)[0]
        paths = [h.metadata.get("path") for h in hits]
        rank = paths.index(str(entry.path)) if str(entry.path) in paths else 99
        top3 += rank < 3
        top5 += rank < 5
        counts = [sum(h.modality == m for h in hits) for m in Modality if m != TEXT]
        shares.append(max(counts) / len(hits))
    return top3, top5, float(np.mean(shares))


def centred_rows(space: bind.Space, sets: dict, en: torch.Tensor, other: torch.Tensor, translations: list,
                 banks: dict[Modality, torch.Tensor], assets: bind.Index) -> list[dict]:
    """The same measures with per-modality centering (GR-CLIP, what ``Space.calibrate`` does) of text and
    image vectors, means from the banks; other modalities pass unchanged. Not an index option: it changes
    the space (and its identity), so it is reported for comparison, not selected."""
    means = {kind: bank.mean(dim=0) for kind, bank in banks.items()}

    def centre(vectors: torch.Tensor, kind: Modality) -> torch.Tensor:
        return F.normalize(vectors - means[kind], dim=-1) if kind in means else vectors

    cbanks = {kind: centre(bank, kind) for kind, bank in banks.items()}
    index = bind.Index(space, backend="exact", calibration=Calibration())
    entries = [assets.entry(i) for i in assets.ids]
    index.add_vectors(torch.stack([centre(e.vector[None].float(), e.modality)[0] for e in entries]),
                      [e.id for e in entries], [e.modality for e in entries], metadata=[e.metadata for e in entries])
    for kind, bank in cbanks.items():
        index.set_query_bank(bank, kind)
    rows = []
    for method in ("none", "csls"):
        result = {"method": f"centred + {method}"}
        for split in ("val", "test"):
            images, captions = centre(sets[split][0], IMAGE), centre(sets[split][1], TEXT)
            truth = list(range(len(images)))
            result[f"{split} t->i"] = recall_at_1(retrieval(index_of(space, images, IMAGE, cbanks), captions, TEXT, method), truth)
            result[f"{split} i->t"] = recall_at_1(retrieval(index_of(space, captions, TEXT, cbanks), images, IMAGE, method), truth)
        ml = retrieval(index_of(space, centre(en, TEXT), TEXT, cbanks), centre(other, TEXT), TEXT, method)
        truth = [i for _, i, _ in translations]
        for name, half in (("val ml x->en", True), ("test ml x->en", False)):
            chosen = [i for i, (_, _, f) in enumerate(translations) if f == half]
            result[name] = recall_at_1([ml[i] for i in chosen], [truth[i] for i in chosen])
        result["assets top3"], result["assets top5"], result["assets share"] = concept_queries(index, method, centre)
        rows.append(result)
    return rows


def overfetch_recall(space: bind.Space, gallery: torch.Tensor, queries: torch.Tensor,
                     banks: dict[Modality, torch.Tensor], method: str, k: int = 10) -> tuple[float, int]:
    """(share of the fully re-ranked top ``k`` that the default candidates keep, candidates per query)."""
    from bind.index import scores

    index = index_of(space, gallery, IMAGE, banks)
    default = retrieval(index, queries, TEXT, method, k)
    saved = scores.MIN_CANDIDATES
    scores.MIN_CANDIDATES = len(gallery)
    try:
        full = retrieval(index, queries, TEXT, method, k)
    finally:
        scores.MIN_CANDIDATES = saved
    kept = [len({h.id for h in a} & {h.id for h in b}) / k for a, b in zip(default, full)]
    return float(np.mean(kept)), scores.candidates(k, len(gallery))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="output folder of recipes/prepare_openclipart.py")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bind-bench-scores")
    parser.add_argument("--sounds", type=Path, help="output folder of recipes/prepare_sound_effects.py (its val and "
                        "test packages suffice): fit text<->audio maps on val, report them on test")
    parser.add_argument("--meshes", type=Path, help="output folder of recipes/prepare_real_meshes.py: fit text<->points "
                        "maps on half of its labels, report them on the other half")
    parser.add_argument("--write", type=Path, help="store banks and maps in this space folder (spaces/lite)")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    space = bind.load_space("lite")
    space.score_calibration = None  # measure without what a previous --write shipped
    splits = read_pairs(args.data)
    rng = np.random.default_rng(0)
    train = [splits["train"][i] for i in sorted(rng.choice(len(splits["train"]), BANK_SIZE, replace=False))]
    banks = {TEXT: embedded(space, [c for _, c in train], TEXT, args.cache, "bank-text"),
             IMAGE: embedded(space, [p for p, _ in train], IMAGE, args.cache, "bank-image")}
    sets = {}
    for split in ("val", "test"):
        pairs = splits[split]
        sets[split] = (embedded(space, [p for p, _ in pairs], IMAGE, args.cache, f"{split}-images"),
                       embedded(space, [c for _, c in pairs], TEXT, args.cache, f"{split}-captions"))
    english, translations = multilingual()
    en = embedded(space, english, TEXT, args.cache, "ml-en")
    other = embedded(space, [q for q, _, _ in translations], TEXT, args.cache, "ml-other")
    labelled_data = {}
    if args.sounds:
        labelled_data[Modality.AUDIO] = (labelled_sets(space, args.sounds, Modality.AUDIO, args.cache),
                                         "sound effects val (supertux-data)")
    if args.meshes:
        labelled_data[Modality.POINTS] = (labelled_sets(space, args.meshes, Modality.POINTS, args.cache),
                                          "real meshes, the fitting half of the labels")
    with tempfile.TemporaryDirectory() as tmp:
        assets = demo_index(cache_dir(Path(tmp)), progress=False)[0]
    for kind, bank in banks.items():
        assets.set_query_bank(bank, kind)

    rows, maps, eces = [], {}, {}
    for method in METHODS:
        result = {"method": method}
        for split in ("val", "test"):
            images, captions = sets[split]
            truth = list(range(len(images)))
            t2i = retrieval(index_of(space, images, IMAGE, banks), captions, TEXT, method)
            i2t = retrieval(index_of(space, captions, TEXT, banks), images, IMAGE, method)
            result[f"{split} t->i"], result[f"{split} i->t"] = recall_at_1(t2i, truth), recall_at_1(i2t, truth)
            fitted = {pair_key(TEXT, IMAGE): labelled(t2i, truth), pair_key(IMAGE, TEXT): labelled(i2t, truth)}
            for pair, (scores, labels) in fitted.items():
                if split == "val":
                    maps.setdefault(method, {})[pair] = fit_platt(scores, labels, f"openclipart val, {split} top-10")
                else:
                    eces[(method, pair)] = (expected_calibration_error(maps[method][pair](scores), labels), len(labels))
        ml = retrieval(index_of(space, en, TEXT, banks), other, TEXT, method)
        truth = [i for _, i, _ in translations]
        fit = [i for i, (_, _, f) in enumerate(translations) if f]
        held = [i for i, (_, _, f) in enumerate(translations) if not f]
        result["val ml x->en"] = recall_at_1([ml[i] for i in fit], [truth[i] for i in fit])
        result["test ml x->en"] = recall_at_1([ml[i] for i in held], [truth[i] for i in held])
        scores, labels = labelled([ml[i] for i in fit], [truth[i] for i in fit])
        platt = fit_platt(scores, labels, "multilingual captions, fitting half, top-10")
        maps[method][pair_key(TEXT, TEXT)] = Platt(platt.a, platt.b, platt.n, platt.data)
        scores, labels = labelled([ml[i] for i in held], [truth[i] for i in held])
        eces[(method, pair_key(TEXT, TEXT))] = (expected_calibration_error(platt(scores), labels), len(labels))
        for kind, (halves, source) in labelled_data.items():
            for split in ("val", "test"):
                clips, texts, of_clip, of_caption = halves[split]
                t2a = retrieval(index_of(space, clips, kind, banks), texts, TEXT, method)
                a2t = retrieval(index_of(space, texts, TEXT, banks), clips, kind, method)
                for pair, (scores, labels) in {pair_key(TEXT, kind): labelled(t2a, of_caption),
                                               pair_key(kind, TEXT): labelled(a2t, of_clip)}.items():
                    if split == "val":
                        maps[method][pair] = fit_platt(scores, labels, f"{source}, top-10")
                    else:
                        eces[(method, pair)] = (expected_calibration_error(maps[method][pair](scores), labels),
                                                len(labels))
        result["assets top3"], result["assets top5"], result["assets share"] = concept_queries(assets, method)
        rows.append(result)
    best = max(rows, key=lambda r: r["val t->i"] + r["val i->t"] + r["val ml x->en"])["method"]

    print(f"lite {space.identity[:16]}; banks: {BANK_SIZE} train captions and images of {args.data}")
    columns = ["val t->i", "val i->t", "val ml x->en", "test t->i", "test i->t", "test ml x->en", "assets top3",
               "assets top5", "assets share"]
    print(f"{'method':18}" + "".join(f"{c:>14}" for c in columns))
    for row in rows + centred_rows(space, sets, en, other, translations, banks, assets):
        cells = [f"{row[c]:.3f}" if isinstance(row[c], float) else f"{row[c]}/12" for c in columns]
        print(f"{row['method'] + (' *' if row['method'] == best else ''):18}" + "".join(f"{c:>14}" for c in cells))
    print(f"* chosen on validation (mean of val t->i, val i->t and val ml x->en): {best}; the centred rows change "
          "the space and are shown for comparison only")
    print("\nexpected calibration error on held-out pairs (10 bins; pairs = top-10 hits of each held-out query)")
    print(f"{'method':18}{'pair':>14}{'ECE':>8}{'pairs':>8}{'a':>9}{'b':>9}")
    for (method, pair), (ece, count) in eces.items():
        platt = maps[method][pair]
        print(f"{method:18}{pair:>14}{ece:8.3f}{count:8d}{platt.a:9.2f}{platt.b:9.2f}")
    gallery = torch.cat([banks[IMAGE], sets["val"][0], sets["test"][0]])
    print(f"\nover-fetch: corrected top 10 kept by re-ranking the default candidates ({len(gallery)} images, "
          f"{len(sets['test'][1])} test captions)")
    for method in METHODS[1:]:
        kept, count = overfetch_recall(space, gallery, sets["test"][1], banks, method)
        print(f"{method:18} {kept:.4f} with {count} candidates per query")
    if args.write:
        data = {"space_identity": space.identity, "default_method": best,
                "about": f"bench/scores.py: banks = {BANK_SIZE} Open Clip Art train captions and images; maps "
                         "fitted on its val split (text<->image), on half of the multilingual captions (text->text)"
                         + "".join(f", {source} ({kind.value}<->text)" for kind, (_, source) in labelled_data.items()),
                "methods": Calibration(maps).to_dict(),
                "banks": {m.value: b.numpy().astype(np.float32) for m, b in banks.items()}}
        write_score_data(data, args.write)
        print(f"\nwrote {args.write}/calibration.json and query_banks.safetensors", file=sys.stderr)


if __name__ == "__main__":
    main()
