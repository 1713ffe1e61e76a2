"""Quality of bind's packaged offline space ``lite``: retrieval R@1/R@5 for every modality pair it supports,
next to the zero-training baselines, on held-out real data no training step saw.

Spaces compared (all are ``load_space("lite")`` with other bond weights, no re-training):
- ``lite``: as shipped (image/video/points: label bridge + trained adapter at lam 0.5; text: MiniLM + e5 at 0.25;
  videos: their sound track through the audio path mixed in with weight 0.25);
- ``bridge``: the zero-training baseline, ``with_weights(image=0, video=0, points=0)``: every visual item
  through EfficientNet-Lite0's ImageNet probabilities and the label bridge (videos keep their sound);
- ``adapter``: ``with_weights(image=1, video=1, points=1)``, the trained adapter alone (for reference);
- for videos also ``frames only``: ``with_audio_weight(0)``, the shipped space without the sound tracks;
- for multilingual text: ``minilm`` = ``with_weights(text=0)`` (MiniLM alone) against the shipped text bond;
- for audio: the shipped path is itself the zero-training baseline (BirdNET V2.4 logits through a label
  bridge; needs ``pip install 'bind[birdnet]'``); no other offline audio path exists, so it is compared with
  chance (the exact expected R@k of a uniformly random ranking).

Data:
- clip art: the val (401) and test (403) pairs of ``data/openclipart/pairs.csv`` (the adapter trained on its
  train split; val chose its checkpoint and lite's image lam); each image has one unique caption.
- photos: ``data/photos/pairs.csv`` (``recipes/prepare_photos.py``: 699 captioned real photos, GCompris and
  IFCT 2017; split by object): val (343; lite's image lam and label names were chosen on it with clip-art
  val, ``bench/photo_bridge.py``) and test (356, chose nothing). Next to lite's variants, issue 13's
  ``standard label bridge``: ``bind.spaces.presets.bridge_space()`` (top-10 ImageNet probabilities x MiniLM
  embeddings of "a photo of a {first lemma}.", images on white, text through MiniLM alone).
- photos in other languages: ``pairs_{de,es,fr}.csv`` next to the photo manifest (95 photos with translated
  captions): per split, a caption ranks that split's translated photos; MiniLM alone against lite's text.
- everyday sounds: ``data/everyday_sounds/pairs.csv`` (``recipes/prepare_photos.py --sounds-out``: 76 labelled
  GCompris sounds, val/test split by label), through lite's only audio path (BirdNET's label bridge), next to
  chance; lite has no aisfx path.
- Missing manifests are skipped with a message.
- real 3D models: ``data/real_meshes/pairs.csv`` (``recipes/prepare_real_meshes.py``: 87 models people made,
  70 labels, from Debian/PyPI packages; no training step saw them). Scored by class: a model ranks the
  distinct captions, a caption ranks the models (a hit is any model of its label). Skipped when missing.
- assets: bind's sample assets (``assets/manifest.json``; none is in any training set): 12 images (4 photos,
  8 drawings), 4 videos, 7 3D shapes, 8 audio clips. ``X->text``: an item ranks every distinct caption of the
  manifest; a hit is a caption of the item's concept. ``text->X``: the item's own caption ranks the items of
  its modality. Few items: one video is 0.25 of R@1, one shape 0.14, one audio clip 0.125.
- multilingual: ``recipes/data/multilingual_captions.jsonl`` (hand-written de/es/fr/en captions of the assets,
  used only for evaluation): a caption of an item whose concept has a sample image ranks the 12 images.
- any-to-any (table 3): asset items of one non-text modality rank the items of another (a hit: same concept),
  for every ordered pair with a concept in common; a handful of queries each, next to chance.

    python bench/quality_lite.py [--space lite] [--clipart data/openclipart/pairs.csv]
        [--photos data/photos/pairs.csv] [--sounds data/everyday_sounds/pairs.csv]
        [--real-meshes data/real_meshes/pairs.csv]
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from bind.assets import AssetEntry, load_manifest
from bind.eval.metrics import ranks_of_targets
from bind.experts.modality import Modality
from bind.spaces import Space, load_space
from bind.spaces.fusion import SoundTrackFusion
from bind.spaces.presets import bridge_space

ROOT = Path(__file__).resolve().parent.parent
VISUAL = (Modality.IMAGE, Modality.VIDEO, Modality.POINTS)
LANGS = ("en", "de", "es", "fr")


def recall(similarity: torch.Tensor, targets: list[list[int]]) -> tuple[float, float]:
    """R@1 and R@5 of the best-ranked target of each row."""
    ranks = ranks_of_targets(similarity, targets)
    return float((ranks == 1).float().mean()), float((ranks <= 5).float().mean())


def variants(space: Space, modality: Modality = Modality.IMAGE) -> dict[str, Space]:
    """The shipped space and its baselines for ``modality``'s rows (videos also: without their sound)."""
    out = {"bridge (no training)": space.with_weights(**{m.value: 0.0 for m in VISUAL}),
           "adapter alone": space.with_weights(**{m.value: 1.0 for m in VISUAL})}
    if modality == Modality.VIDEO and isinstance(space, SoundTrackFusion):
        out["lite, frames only (audio_weight 0)"] = space.with_audio_weight(0.0)
    return {**out, "lite (shipped)": space}


def manifest_rows(spaces: dict[str, Space], manifest: Path, modality: Modality, data: str,
                  split: str = "test") -> list[list[str]]:
    """X <-> text on one split of a pair manifest (columns source, target, split), scored by class:
    an item ranks the distinct captions, a hit is its own; a caption ranks the items, a hit is any item of it.
    Each space embeds the captions through its own text path."""
    with manifest.open(encoding="utf-8") as handle:
        pairs = [(manifest.parent / r["source"], r["target"]) for r in csv.DictReader(handle) if r["split"] == split]
    captions = sorted({caption for _, caption in pairs})
    to_text = [[captions.index(caption)] for _, caption in pairs]
    to_items = [[i for i, (_, other) in enumerate(pairs) if other == caption] for caption in captions]
    rows = []
    for name, space in spaces.items():
        text = space.embed(captions, "text")
        items = space.embed([item for item, _ in pairs], modality)
        rows.append([f"{data}, {split} split ({len(pairs)} {modality.value} vs {len(captions)} captions)", name,
                     *fmt(recall(Space.similarity(items, text), to_text)),
                     *fmt(recall(Space.similarity(text, items), to_items))])
    return rows


def sound_rows(space: Space, manifest: Path, split: str) -> list[list[str]]:
    """Sound -> caption and caption -> sound on one split of a labelled sound manifest, next to chance; only
    the shipped audio path (BirdNET's label bridge: lite has no aisfx path and no other audio route)."""
    with manifest.open(encoding="utf-8") as handle:
        pairs = [(manifest.parent / r["source"], r["target"]) for r in csv.DictReader(handle) if r["split"] == split]
    captions = sorted({caption for _, caption in pairs})
    to_text = [[captions.index(caption)] for _, caption in pairs]
    to_items = [[i for i, (_, other) in enumerate(pairs) if other == caption] for caption in captions]
    data = f"everyday sounds, {split} split ({len(pairs)} audio vs {len(captions)} captions)"
    random = [chance(len(captions), to_text, 1), chance(len(captions), to_text, 5),
              chance(len(pairs), to_items, 1), chance(len(pairs), to_items, 5)]
    rows = [[data, "chance (random ranking)", *(f"{value:.3f}" for value in random)]]
    if Modality.AUDIO not in space.modalities:
        return rows
    result = space.embed([item for item, _ in pairs], Modality.AUDIO, on_error="skip")
    if result.failures:  # type: ignore[union-attr]
        print(f"everyday sound rows skipped: {result.failures[0]}\n")  # type: ignore[union-attr]
        return []
    vectors = result.embeddings  # type: ignore[union-attr]
    text = space.embed(captions, "text")
    return rows + [[data, "lite (shipped: BirdNET label bridge)", *fmt(recall(Space.similarity(vectors, text), to_text)),
                    *fmt(recall(Space.similarity(text, vectors), to_items))]]


def photo_language_rows(space: Space, photos: Path) -> list[list[str]]:
    """Caption -> photo R@1 per caption language (``pairs_{de,es,fr}.csv`` next to ``photos``: the photos with
    translated captions), per split; the photos of a split with translations rank among themselves."""
    by_lang = {}
    for lang in LANGS[1:]:
        with (photos.parent / f"pairs_{lang}.csv").open(encoding="utf-8") as handle:
            by_lang[lang] = {r["source"]: r for r in csv.DictReader(handle)}
    with photos.open(encoding="utf-8") as handle:
        english = {r["source"]: r for r in csv.DictReader(handle) if all(r["source"] in m for m in by_lang.values())}
    rows = []
    for split in ("val", "test"):
        sources = sorted(s for s, r in english.items() if r["split"] == split)
        targets = [[i] for i in range(len(sources))]
        for name, which in (("minilm alone (text lam 0)", space.with_weights(text=0.0)), ("lite (shipped)", space)):
            images = which.embed([photos.parent / s for s in sources], "image")
            cells = []
            for lang in LANGS:
                captions = [(english if lang == "en" else by_lang[lang])[s]["target"] for s in sources]
                cells.append(recall(Space.similarity(which.embed(captions, "text"), images), targets)[0])
            rows.append([f"photos, {split} split: caption -> {len(sources)} photos", name,
                         *(f"{c:.3f}" for c in cells), f"{sum(cells[1:]) / 3:.3f}"])
    return rows


def asset_rows(space: Space, entries: list[AssetEntry], modality: Modality) -> list[list[str]]:
    spaces = variants(space, modality)
    items = [e for e in entries if e.modality == modality]
    captions = sorted({e.caption for e in entries})
    concept_of = {e.caption: e.concept for e in entries}
    text = spaces["lite (shipped)"].embed(captions, "text")
    to_text = [[j for j, c in enumerate(captions) if concept_of[c] == e.concept] for e in items]
    own = spaces["lite (shipped)"].embed([e.caption for e in items], "text")
    to_items = [[j for j, other in enumerate(items) if other.concept == e.concept] for e in items]
    rows = []
    for name, variant in spaces.items():
        vectors = variant.embed([e.path for e in items], modality)
        rows.append([f"assets: {len(items)} {modality.value} vs {len(captions)} captions", name,
                     *fmt(recall(Space.similarity(vectors, text), to_text)),
                     *fmt(recall(Space.similarity(own, vectors), to_items))])
    return rows


def chance(pool: int, targets: list[list[int]], k: int) -> float:
    """Expected R@k of a uniformly random ranking of ``pool`` candidates: 1 - C(pool - t, k) / C(pool, k)."""
    k = min(k, pool)
    return sum(1.0 - math.comb(pool - len(t), k) / math.comb(pool, k) for t in targets) / len(targets)


def audio_rows(space: Space, entries: list[AssetEntry]) -> list[list[str]]:
    """Audio <-> text on the asset clips through the shipped BirdNET label bridge, next to chance."""
    items = [e for e in entries if e.modality == Modality.AUDIO]
    captions = sorted({e.caption for e in entries})
    concept_of = {e.caption: e.concept for e in entries}
    to_text = [[j for j, c in enumerate(captions) if concept_of[c] == e.concept] for e in items]
    to_items = [[j for j, other in enumerate(items) if other.concept == e.concept] for e in items]
    data = f"assets: {len(items)} audio vs {len(captions)} captions"
    if Modality.AUDIO not in space.modalities:
        return []
    result = space.embed([e.path for e in items], Modality.AUDIO, on_error="skip")
    if result.failures:  # type: ignore[union-attr]
        print(f"audio rows skipped: {result.failures[0]}\n")  # type: ignore[union-attr]
        return []
    vectors = result.embeddings  # type: ignore[union-attr]
    text = space.embed(captions, "text")
    own = space.embed([e.caption for e in items], "text")
    random = [chance(len(captions), to_text, 1), chance(len(captions), to_text, 5),
              chance(len(items), to_items, 1), chance(len(items), to_items, 5)]
    return [[data, "chance (random ranking)", *(f"{value:.3f}" for value in random)],
            [data, "lite (shipped: BirdNET label bridge)", *fmt(recall(Space.similarity(vectors, text), to_text)),
             *fmt(recall(Space.similarity(own, vectors), to_items))]]


def cross_modal_rows(space: Space, entries: list[AssetEntry]) -> list[list[str]]:
    """Asset items of one non-text modality ranking the items of another; a hit is an item of the same concept.

    Every ordered pair of modalities with a concept in common, for each variant (and chance)."""
    modalities = [m for m in (*VISUAL, Modality.AUDIO) if m in space.modalities]
    groups = {m: [e for e in entries if e.modality == m] for m in modalities}
    pairs = {(a, b): [i for i, e in enumerate(groups[a]) if any(o.concept == e.concept for o in groups[b])]
             for a in modalities for b in modalities if a != b}
    pairs = {pair: queries for pair, queries in pairs.items() if queries}
    rows: dict[tuple[Modality, Modality], list[list[str]]] = {}
    for name, which in variants(space, Modality.VIDEO).items():
        vectors = {}
        for modality, group in groups.items():
            result = which.embed([e.path for e in group], modality, on_error="skip")
            if result.failures:  # type: ignore[union-attr]
                failure = result.failures[0]  # type: ignore[union-attr]
                print(f"{modality.value} left out of table 3 ({name}): {failure}\n")
                continue
            vectors[modality] = result.embeddings  # type: ignore[union-attr]
        for (a, b), queries in pairs.items():
            if a not in vectors or b not in vectors:
                continue
            targets = [[j for j, o in enumerate(groups[b]) if o.concept == groups[a][i].concept] for i in queries]
            data = f"assets: {a.value} -> {b.value} ({len(queries)} queries, {len(groups[b])} candidates)"
            if (a, b) not in rows:
                random = [chance(len(groups[b]), targets, 1), chance(len(groups[b]), targets, 5)]
                rows[(a, b)] = [[data, "chance (random ranking)", *(f"{value:.3f}" for value in random)]]
            rows[(a, b)].append([data, name, *fmt(recall(Space.similarity(vectors[a][queries], vectors[b]), targets))])
    return [row for pair in sorted(rows, key=lambda p: (p[0].value, p[1].value)) for row in rows[pair]]


def multilingual_rows(space: Space, entries: list[AssetEntry], path: Path) -> list[list[str]]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    images = [e for e in entries if e.modality == Modality.IMAGE]
    concepts = [e.concept for e in images]
    queried = [r for r in records if r.get("concept") in concepts]
    targets = [[i for i, c in enumerate(concepts) if c == r["concept"]] for r in queried]
    rows = []
    for name, which in (("minilm alone (text lam 0)", space.with_weights(text=0.0)), ("lite (shipped)", space)):
        vectors = which.embed([e.path for e in images], "image")
        cells = []
        for lang in LANGS:
            r1, _ = recall(Space.similarity(which.embed([r[lang] for r in queried], "text"), vectors), targets)
            cells.append(f"{r1:.3f}")
        rows.append([f"multilingual captions -> {len(images)} asset images ({len(queried)} queries)", name, *cells])
    return rows


def fmt(pair: tuple[float, float]) -> list[str]:
    return [f"{value:.3f}" for value in pair]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="lite", help="a packaged space name or a space folder")
    parser.add_argument("--clipart", type=Path, default=ROOT / "data" / "openclipart" / "pairs.csv")
    parser.add_argument("--photos", type=Path, default=ROOT / "data" / "photos" / "pairs.csv")
    parser.add_argument("--sounds", type=Path, default=ROOT / "data" / "everyday_sounds" / "pairs.csv")
    parser.add_argument("--real-meshes", type=Path, default=ROOT / "data" / "real_meshes" / "pairs.csv")
    parser.add_argument("--captions", type=Path, default=ROOT / "recipes" / "data" / "multilingual_captions.jsonl")
    args = parser.parse_args()
    start = time.perf_counter()
    space = load_space(args.space)
    entries = load_manifest()
    print(f"space {args.space!r}: identity {space.identity[:16]}, modalities "
          f"{', '.join(sorted(m.value for m in space.modalities))}\n")

    rows: list[list[str]] = []
    held_out = ((args.clipart, Modality.IMAGE, "clip art", "prepare_openclipart", ("val", "test")),
                (args.photos, Modality.IMAGE, "photos", "prepare_photos", ("val", "test")),
                (args.real_meshes, Modality.POINTS, "real 3D models", "prepare_real_meshes", ("test",)))
    for manifest, modality, data, script, splits in held_out:
        if not manifest.is_file():
            print(f"{data} rows skipped: {manifest} is missing (build it with recipes/{script}.py)\n")
            continue
        spaces = variants(space, modality)
        if data == "photos":  # issue 13's reference: the label bridge computed the standard way, MiniLM text
            spaces = {"standard label bridge (MiniLM text alone)": bridge_space(), **spaces}
        for split in splits:
            rows += manifest_rows(spaces, manifest, modality, data, split)
    if args.sounds.is_file():
        for split in ("val", "test"):
            rows += sound_rows(space, args.sounds, split)
    else:
        print(f"everyday sound rows skipped: {args.sounds} is missing (recipes/prepare_photos.py --sounds-out)\n")
    for modality in VISUAL:
        rows += asset_rows(space, entries, modality)
    rows += audio_rows(space, entries)
    print("Table 1: X <-> text retrieval (text always through the shipped text path)")
    print(table(["data", "space", "X->text R@1", "X->text R@5", "text->X R@1", "text->X R@5"], rows))

    print("\nTable 2: caption -> image R@1 by caption language (images through the shipped image path)")
    print(table(["data", "space", *(f"{lang}->image R@1" for lang in LANGS)],
                multilingual_rows(space, entries, args.captions)))
    if all((args.photos.parent / f"pairs_{lang}.csv").is_file() for lang in LANGS[1:]):
        print("\nTable 2b: caption -> photo R@1 by caption language (photos with de/es/fr captions)")
        print(table(["data", "space", *(f"{lang}->photo R@1" for lang in LANGS), "mean de/es/fr"],
                    photo_language_rows(space, args.photos)))
    print("\nTable 3: any-to-any among the other modalities (asset items; a hit shares the query's concept)")
    print(table(["data", "space", "R@1", "R@5"], cross_modal_rows(space, entries)))
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
