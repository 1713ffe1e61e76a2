"""One run, one table: the zero-training label bridge vs trained projectors, EfficientNet-Lite0 -> MiniLM.

Every trained variant goes through ``bind train`` itself (``bind.train.cli.main``: the recipe
``image_to_minilm_offline.yaml`` plus overrides), so each is fitted on the train split, picks its best
checkpoint on val/R@1 and is scored once on the test split, which no training step saw. The baseline is
ConSE (``bind.bridges.LabelBridge``): EfficientNet-Lite0's top-10 ImageNet probabilities weighting the
MiniLM embeddings of a prompt per class name, with two prompt templates. The same metrics are then taken on
the 12 image assets of ``bind.assets`` (photos and drawings, their captions as the candidates), an
out-of-domain check. Prepare the data first (see ``prepare_openclipart.py``), then::

    python recipes/compare_image_to_minilm.py [--manifest data/openclipart/pairs.csv] \
        [--out runs/compare_image_to_minilm]

Prints a Markdown table and writes ``OUT/results.json``. Feature extraction is cached, so reruns only train.
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

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bind.assets import load_manifest as load_assets  # noqa: E402
from bind.eval.metrics import paired_retrieval  # noqa: E402
from bind.experts.cache import FeatureCache  # noqa: E402
from bind.experts.modality import Modality  # noqa: E402
from bind.experts.registry import create_encoder  # noqa: E402
from bind.io.atomic import atomic_path  # noqa: E402
from bind.spaces.bridges import LabelBridge  # noqa: E402
from bind.spaces.projectors import Projector  # noqa: E402
from bind.train.cli import train_variant  # noqa: E402
from bind.train.datamodule import PairedFeatures  # noqa: E402

RECIPE = Path(__file__).with_name("image_to_minilm_offline.yaml")
IMAGE, LOGITS, TEXT = "efficientnet-lite0.image", "efficientnet-lite0.imagenet-logits", "minilm-l6.text"
TEMPLATES = ("a photo of a {}.", "a drawing of a {}.")
# name -> overrides of the recipe (the recipe itself is the MLP variant)
VARIANTS: dict[str, list[str]] = {
    "linear": ["--model.projector", '{"type": "linear"}'],
    "mlp": [],
    "mlp + fusemix + structure": ["--model.fusemix", "true", "--model.loss", json.dumps(
        {"init_temperature": 0.07, "structure": True, "structure_weight": 10.0, "structure_warmup_steps": 300})],
}


def scores(source: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """R@1/R@5 image->text (a2b) and text->image (b2a) for row-aligned unit vectors."""
    metrics = paired_retrieval(source, target, ks=(1, 5))
    return {f"{d}/R@{k}": metrics[f"{d}/R@{k}"] for d in ("a2b", "b2a") for k in (1, 5)}


def project(projector: Projector, features: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return projector(F.normalize(features.float(), dim=-1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", default="data/openclipart/pairs.csv")
    parser.add_argument("--cache-dir", default="~/.cache/bind/features")
    parser.add_argument("--out", type=Path, default=Path("runs/compare_image_to_minilm"))
    parser.add_argument("--top-k", type=int, default=10, help="classes the label bridge mixes")
    args = parser.parse_args(argv)
    dataset = {"format": "manifest", "path": args.manifest}
    common = ["--data.dataset", json.dumps(dataset), "--data.cache_dir", args.cache_dir]

    # the held-out split, exactly as bind train builds it (cached features, l2-normalised)
    start = time.perf_counter()
    data = PairedFeatures(dataset, IMAGE, TEXT, cache_dir=args.cache_dir)
    data.setup()
    test_pairs = data.manifest().split("test")
    test_images, test_text = data.splits["test"].source, data.splits["test"].target
    counts = {split: len(part.source) for split, part in data.splits.items()}
    cache = FeatureCache(Path(args.cache_dir).expanduser())
    test_logits = cache.embed(test_pairs.sources(), LOGITS, progress=True)
    assets = [a for a in load_assets() if a.modality == Modality.IMAGE]
    asset_images = F.normalize(cache.embed([a.path for a in assets], IMAGE, progress=False).float(), dim=-1)
    asset_logits = cache.embed([a.path for a in assets], LOGITS, progress=False)
    asset_text = F.normalize(cache.embed([a.caption for a in assets], TEXT, progress=False).float(), dim=-1)
    features_seconds = round(time.perf_counter() - start, 1)

    rows: dict[str, dict[str, Any]] = {}
    classifier, text_encoder = create_encoder(LOGITS), create_encoder(TEXT)
    for template in TEMPLATES:
        bridge = LabelBridge.for_classifier(classifier, text_encoder, template=template, top_k=args.top_k)
        with torch.no_grad():
            rows[f'ConSE "{template}"'] = {"test": scores(bridge(test_logits), test_text),
                                           "assets": scores(bridge(asset_logits), asset_text),
                                           "fit_seconds": 0.0, "params": 0}
    for name, overrides in VARIANTS.items():
        folder = args.out / name.replace(" ", "").replace("+", "_")
        projector, facts = train_variant(RECIPE, folder, [*common, *overrides])
        rows[name] = {"test": scores(project(projector, test_images), test_text),
                      "assets": scores(project(projector, asset_images), asset_text), **facts}

    report = {"manifest": args.manifest, "pairs": counts, "assets": [a.id for a in assets],
              "features_seconds": features_seconds, "threads": torch.get_num_threads(), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "results.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)


def print_tables(report: dict[str, Any]) -> None:
    keys = ("a2b/R@1", "a2b/R@5", "b2a/R@1", "b2a/R@5")
    print(f"\npairs per split: {report['pairs']}; features ready in {report['features_seconds']} s "
          f"(cached after the first run); torch threads: {report['threads']}\n")
    print(f"### Held-out test split ({report['pairs'].get('test')} clip-art pairs, never seen in training)\n")
    print("| method | params | img->txt R@1 | img->txt R@5 | txt->img R@1 | txt->img R@5 | best val R@1 | "
          "epochs | fit s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, row in report["rows"].items():
        cells = " | ".join(f"{row['test'][k]:.3f}" for k in keys)
        val = f"{row['best_val_R@1']:.3f}" if row.get("best_val_R@1") is not None else "-"
        epochs = row.get("epochs", "-")
        print(f"| {name} | {row['params']:,} | {cells} | {val} | {epochs} | {row['fit_seconds']:.1f} |")
    print(f"\n### Out of domain: the {len(report['assets'])} image assets (photos + drawings), captions as candidates\n")
    print("| method | img->txt R@1 | img->txt R@5 | txt->img R@1 | txt->img R@5 |")
    print("|---|---|---|---|---|")
    for name, row in report["rows"].items():
        print(f"| {name} | " + " | ".join(f"{row['assets'][k]:.3f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
