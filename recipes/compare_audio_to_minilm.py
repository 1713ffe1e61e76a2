"""One run, one table: which offline audio route into MiniLM's text space? Label bridge vs trained adapters.

Rows:
- BirdNET label bridge (zero training; the lite space's audio route): BirdNET V2.4's top-10 class
  probabilities weighting MiniLM embeddings of "the sound of a {label}." (needs ``bind[birdnet]``);
- adapters trained here through ``bind train`` (recipe ``audio_to_minilm_offline.yaml``) on
  ``data/sound_effects/pairs.csv`` (``prepare_sound_effects.py``): on aiSFX embeddings (``aisfx.audio``,
  CC BY 4.0) and on BirdNET embeddings (``birdnet-v24.audio``), each an MLP, the checkpoint the recipe
  chooses (best val/R@1, clips sharing a caption scored as one class);
- "bridge + aiSFX mlp (lam 0.5)": ``bind.bonds``' mix ``l2(0.5 * l2(P(e)) + 0.5 * u)`` of the two.

Evaluation (class-level, since many clips share one caption): a clip ranks every distinct caption of its
set, a hit is its own; a caption ranks the clips, a hit is a clip of its label. Sets: the test split (its
clips come from packages no training step saw) and bind's 8 asset clips against all asset captions (as
``bench/quality_lite.py``).

    python recipes/compare_audio_to_minilm.py [--manifest data/sound_effects/pairs.csv]
        [--out runs/compare_audio_to_minilm]
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

import torch.nn.functional as F
from compare_points_to_minilm import project, score_and_report

from bind.assets import load_manifest as load_assets
from bind.experts.cache import FeatureCache
from bind.experts.modality import Modality
from bind.experts.registry import create_encoder
from bind.spaces.bridges import LabelBridge
from bind.train.cli import train_variant
from bind.train.datamodule import PairedFeatures

RECIPE = Path(__file__).with_name("audio_to_minilm_offline.yaml")
TEXT, BRIDGE_EXPERT = "minilm-l6.text", "birdnet-v24.audio-logits"
TEMPLATE = "the sound of a {}."
EXPERTS = {"aiSFX": "aisfx.audio", "BirdNET": "birdnet-v24.audio"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", default="data/sound_effects/pairs.csv")
    parser.add_argument("--cache-dir", default="~/.cache/bind/features")
    parser.add_argument("--out", type=Path, default=Path("runs/compare_audio_to_minilm"))
    args = parser.parse_args(argv)
    dataset = {"format": "manifest", "path": args.manifest}
    common = ["--data.dataset", json.dumps(dataset), "--data.cache_dir", args.cache_dir]

    start = time.perf_counter()
    cache = FeatureCache(Path(args.cache_dir).expanduser())
    data = {name: PairedFeatures(dataset, expert, TEXT, cache_dir=args.cache_dir) for name, expert in EXPERTS.items()}
    for part in data.values():
        part.setup()
    first = next(iter(data.values()))
    counts = {split: len(part.source) for split, part in first.splits.items()}
    test = first.manifest().split("test")
    clips = [a for a in load_assets() if a.modality == Modality.AUDIO]
    asset_captions = sorted({a.caption for a in load_assets()})
    concept_of = {a.caption: a.concept for a in load_assets()}
    label_of = {p.target: p.meta["label"] for p in test}
    test_captions = sorted(label_of)
    sets: dict[str, dict[str, Any]] = {
        "test split (held-out packages)": {
            "items": test.sources(), "labels": [p.meta["label"] for p in test], "captions": test_captions,
            "caption_labels": [label_of[c] for c in test_captions],
            "features": {name: part.splits["test"].source for name, part in data.items()}},
        "assets: 8 clips vs all asset captions": {
            "items": [a.path for a in clips], "labels": [a.concept for a in clips], "captions": asset_captions,
            "caption_labels": [concept_of[c] for c in asset_captions],
            "features": {name: cache.embed([a.path for a in clips], expert, progress=False)
                         for name, expert in EXPERTS.items()}}}
    logits_encoder = create_encoder(BRIDGE_EXPERT)
    for s in sets.values():
        s["text"] = F.normalize(cache.embed(s["captions"], TEXT, progress=False).float(), dim=-1)
        s["logits"] = cache.embed(s["items"], logits_encoder, progress=True)
        s["queries"] = list(range(len(s["labels"])))
    features_seconds = round(time.perf_counter() - start, 1)

    bridge = LabelBridge.for_classifier(logits_encoder, create_encoder(TEXT), template=TEMPLATE, top_k=10)
    bridge_name = f'BirdNET label bridge "{TEMPLATE}"'
    embedders: dict[str, Any] = {bridge_name: lambda s: bridge(s["logits"])}
    facts: dict[str, dict[str, Any]] = {bridge_name: {"params": 0}}
    for name, expert in EXPERTS.items():
        overrides = [*common, "--data.source_encoder", expert]
        projector, facts[f"{name} mlp"] = train_variant(RECIPE, args.out / name, overrides)
        embedders[f"{name} mlp"] = lambda s, p=projector, n=name: project(p, s["features"][n])
    embedders["bridge + aiSFX mlp (lam 0.5)"] = lambda s: F.normalize(
        embedders[bridge_name](s) + embedders["aiSFX mlp"](s), dim=-1)
    facts["bridge + aiSFX mlp (lam 0.5)"] = {"params": facts["aiSFX mlp"]["params"]}

    score_and_report(embedders, facts, sets, args.out,
                     manifest=args.manifest, pairs=counts, features_seconds=features_seconds)


if __name__ == "__main__":
    main()
