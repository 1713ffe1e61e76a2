"""One run, one table: does a trained depth-view adapter help 3D? Label bridge vs trained projectors.

3D items are embedded by ``pointviews-efficientnet-lite0.points`` (6 depth views through EfficientNet-Lite0).
Rows:
- ConSE label bridge (zero training; what the ``bridge`` space does): the same depth views through
  ``efficientnet-lite0.imagenet-logits`` (the pointviews card with ``card.replace``, as ``bind.demo.bridge_space``),
  top-10 ImageNet probabilities weighting MiniLM embeddings of the class names;
- the clip-art image adapter (``projectors/efficientnet-lite0_to_minilm-l6``, no 3D training) on the view features;
- linear and MLP adapters trained here through ``bind train`` (recipe ``points_to_minilm_offline.yaml``) on
  ``data/shapes/pairs.csv`` (``prepare_shapes.py``), the checkpoint the recipe chooses (best val/R@1, with
  early stopping);
- "bridge + 3D mlp (lam 0.5)": the mean of the two unit vectors, renormalised: ``bind.bonds``' mix
  ``l2(lam * l2(P(e)) + (1 - lam) * u)`` of the adapter and the bridge at its default ``lam = 0.5``.

Evaluation (class-level, since many shapes share one caption): a shape ranks every distinct caption of its
set, a hit is its own caption; a caption ranks the shapes, a hit is a shape of its class. Sets: the test
split's seen classes (instances no training step saw), its held-out classes (captions never trained on), and
the 7 asset shapes of ``assets/manifest.json`` against all asset captions (as ``bench/quality_lite.py``) and
against the 7 shape captions only; with ``--real`` (``recipes/prepare_real_meshes.py``: real models from
Debian/PyPI packages, mostly of classes no adapter saw) the real models against their own captions (all of
them; those of a class the adapters were trained on; the others), and against those plus the 25 shape-class
captions, where a pull toward the training classes shows.

    python recipes/compare_points_to_minilm.py [--manifest data/shapes/pairs.csv] [--out runs/compare_points_to_minilm]
        [--real data/real_meshes/pairs.csv]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import torch.nn.functional as F

from bind.assets import load_manifest as load_assets
from bind.data.manifest import load_manifest
from bind.eval.metrics import ranks_of_targets
from bind.experts.cache import FeatureCache
from bind.experts.modality import Modality
from bind.experts.registry import create_encoder, get_card
from bind.io.atomic import atomic_path
from bind.spaces.bridges import LabelBridge
from bind.spaces.projectors import Projector, load_projector
from bind.train.cli import train_variant
from bind.train.datamodule import PairedFeatures

ROOT = Path(__file__).resolve().parent.parent
RECIPE = Path(__file__).with_name("points_to_minilm_offline.yaml")
POINTS, LOGITS, TEXT = "pointviews-efficientnet-lite0.points", "efficientnet-lite0.imagenet-logits", "minilm-l6.text"
IMAGE_ADAPTER = ROOT / "projectors" / "efficientnet-lite0_to_minilm-l6"
TEMPLATES = ("a photo of a {}.", "a 3D model of a {}.")
VARIANTS: dict[str, list[str]] = {"linear": ["--model.projector", '{"type": "linear"}'], "mlp": []}


def recall(similarity: torch.Tensor, targets: list[list[int]]) -> dict[str, float]:
    ranks = ranks_of_targets(similarity, targets)
    return {"R@1": float((ranks == 1).float().mean()), "R@5": float((ranks <= 5).float().mean())}


def class_scores(shapes: torch.Tensor, labels: list[str], captions: list[str], caption_labels: list[str],
                 text: torch.Tensor, queries: list[int]) -> dict[str, float]:
    """shape->text over ``captions`` and text->shape over all ``shapes``, for the shapes ``queries``."""
    to_text = [[j for j, c in enumerate(caption_labels) if c == labels[i]] for i in queries]
    asked = sorted({labels[i] for i in queries})
    own = [caption_labels.index(label) for label in asked]
    to_shapes = [[i for i, label in enumerate(labels) if label == query] for query in asked]
    a2b = recall(shapes[queries] @ text.T, to_text)
    b2a = recall(text[own] @ shapes.T, to_shapes)
    return {**{f"a2b/{k}": v for k, v in a2b.items()}, **{f"b2a/{k}": v for k, v in b2a.items()}}


def caption_set(cache: FeatureCache, features: torch.Tensor, logits: torch.Tensor, labels: list[str],
                captions: list[str], label_of: dict[str, str], queries: list[int] | None = None) -> dict[str, Any]:
    """One evaluation set: shapes (features, logits, labels) against ``captions`` (``label_of``: caption -> label)."""
    return {"features": features, "logits": logits, "labels": labels, "captions": captions,
            "caption_labels": [label_of[c] for c in captions],
            "text": F.normalize(cache.embed(captions, TEXT, progress=False).float(), dim=-1),
            "queries": list(range(len(labels))) if queries is None else queries}


def project(projector: Projector, features: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.normalize(projector(F.normalize(features.float(), dim=-1)), dim=-1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", default="data/shapes/pairs.csv")
    parser.add_argument("--cache-dir", default="~/.cache/bind/features")
    parser.add_argument("--out", type=Path, default=Path("runs/compare_points_to_minilm"))
    parser.add_argument("--real", type=Path, help="real models (recipes/prepare_real_meshes.py), e.g. "
                                                  "data/real_meshes/pairs.csv; skipped when missing")
    args = parser.parse_args(argv)
    dataset = {"format": "manifest", "path": args.manifest}
    common = ["--data.dataset", json.dumps(dataset), "--data.cache_dir", args.cache_dir]

    start = time.perf_counter()
    data = PairedFeatures(dataset, POINTS, TEXT, cache_dir=args.cache_dir)
    data.setup()
    counts = {split: len(part.source) for split, part in data.splits.items()}
    test = data.manifest().split("test")
    cache = FeatureCache(Path(args.cache_dir).expanduser())
    text_encoder = create_encoder(TEXT)
    card = get_card(POINTS)
    logits_card = card.replace(dim=get_card(LOGITS).dim, options={**card.options, "image_encoder": LOGITS})
    logits_encoder = create_encoder(logits_card)
    assets = load_assets()
    shapes = [a for a in assets if a.modality == Modality.POINTS]
    asset_captions = sorted({a.caption for a in assets})
    concept_of = {a.caption: a.concept for a in assets}
    sets: dict[str, dict[str, Any]] = {}
    test_labels = [p.meta["label"] for p in test]
    test_captions = sorted({p.target for p in test})
    caption_label = {p.target: p.meta["label"] for p in test}
    test_logits = cache.embed(test.sources(), logits_encoder, progress=True)
    held = [p.meta.get("held_out") == "1" for p in test]
    for name, keep in (("seen classes", lambda i: not held[i]), ("held-out classes", lambda i: held[i])):
        sets[f"test: {name}"] = caption_set(cache, data.splits["test"].source, test_logits, test_labels,
                                            test_captions, caption_label, [i for i in range(len(test)) if keep(i)])
    asset_features = cache.embed([a.path for a in shapes], POINTS, progress=False)
    asset_logits = cache.embed([a.path for a in shapes], logits_encoder, progress=False)
    for name, captions in (("assets: 7 shapes vs all asset captions", asset_captions),
                           ("assets: 7 shapes vs their 7 captions", [a.caption for a in shapes])):
        sets[name] = caption_set(cache, asset_features, asset_logits, [a.concept for a in shapes], captions, concept_of)
    if args.real is not None and not args.real.is_file():
        print(f"no {args.real}: the real-models set is skipped (recipes/prepare_real_meshes.py makes it)")
    elif args.real is not None:
        real = load_manifest(args.real)
        models = real.sources()
        features = cache.embed(models, POINTS, progress=True)
        logits = cache.embed(models, logits_encoder, progress=True)
        real_label = {p.target: p.meta["label"] for p in real}
        captions = sorted(real_label)
        trained = [i for i, p in enumerate(real) if p.meta.get("held_out") == "0"]
        other = [i for i in range(len(real)) if i not in trained]
        own = f"real models vs their {len(captions)} captions"
        for name, pool, queries in ((own, captions, None), (f"{own}: trained classes only", captions, trained),
                                    (f"{own}: other classes only", captions, other),
                                    (f"real models vs theirs + the {len(test_captions)} shape-class captions",
                                     sorted(set(captions) | set(test_captions)), None)):
            sets[name] = caption_set(cache, features, logits, [p.meta["label"] for p in real], pool,
                                     {**caption_label, **real_label}, queries)
    features_seconds = round(time.perf_counter() - start, 1)

    embedders: dict[str, Any] = {}
    facts: dict[str, dict[str, Any]] = {}
    for template in TEMPLATES:
        bridge = LabelBridge.for_classifier(create_encoder(LOGITS), text_encoder, template=template, top_k=10)
        embedders[f'ConSE bridge "{template}"'] = lambda s, b=bridge: b(s["logits"])
        facts[f'ConSE bridge "{template}"'] = {"params": 0}
    if IMAGE_ADAPTER.is_dir():
        image_adapter = load_projector(IMAGE_ADAPTER)
        embedders["clip-art image adapter (no 3D training)"] = lambda s: project(image_adapter, s["features"])
        facts["clip-art image adapter (no 3D training)"] = {"params": sum(p.numel() for p in image_adapter.parameters())}
    for name, overrides in VARIANTS.items():
        projector, facts[f"3D adapter: {name}"] = train_variant(RECIPE, args.out / name, [*common, *overrides])
        embedders[f"3D adapter: {name}"] = lambda s, p=projector: project(p, s["features"])
    bridge_name = f'ConSE bridge "{TEMPLATES[0]}"'
    embedders["bridge + 3D mlp (lam 0.5)"] = lambda s: F.normalize(
        embedders[bridge_name](s) + embedders["3D adapter: mlp"](s), dim=-1)
    facts["bridge + 3D mlp (lam 0.5)"] = {"params": facts["3D adapter: mlp"]["params"]}

    score_and_report(embedders, facts, sets, args.out,
                     manifest=args.manifest, pairs=counts, features_seconds=features_seconds)


def score_and_report(embedders: dict[str, Any], facts: dict[str, dict[str, Any]], sets: dict[str, dict[str, Any]],
                     out: Path, **header: Any) -> None:
    """Score every method on every set (:func:`class_scores`), write ``out/results.json`` (``header`` first)
    atomically and print the tables."""
    rows: dict[str, dict[str, Any]] = {}
    for method, embed in embedders.items():
        with torch.no_grad():
            rows[method] = {**facts[method], "sets": {
                name: class_scores(embed(s), s["labels"], s["captions"], s["caption_labels"], s["text"], s["queries"])
                for name, s in sets.items()}}
    report = {**header, "rows": rows,
              "set_sizes": {n: {"items": len(s["queries"]), "captions": len(s["captions"])} for n, s in sets.items()}}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)


def print_tables(report: dict[str, Any]) -> None:
    keys = ("a2b/R@1", "a2b/R@5", "b2a/R@1", "b2a/R@5")
    print(f"\npairs per split: {report['pairs']}; features in {report['features_seconds']} s (cached on reruns)\n")
    print("| set (items x candidate captions) | method | item->txt R@1 | item->txt R@5 | txt->item R@1 | "
          "txt->item R@5 |")
    print("|---|---|---|---|---|---|")
    for name, size in report["set_sizes"].items():
        for method, row in report["rows"].items():
            cells = " | ".join(f"{row['sets'][name][k]:.3f}" for k in keys)
            print(f"| {name} ({size['items']} x {size['captions']}) | {method} | {cells} |")
    print("\n| method | params | epochs | run s |\n|---|---|---|---|")
    for method, row in report["rows"].items():
        print(f"| {method} | {row['params']:,} | {row.get('epochs', '-')} | {row.get('run_seconds', '-')} |")


if __name__ == "__main__":
    main()
