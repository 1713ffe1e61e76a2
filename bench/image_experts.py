"""EfficientNet-Lite2 against EfficientNet-Lite0 in lite's zero-training visual paths, side by side in one run.

Both run the same label bridge (``bind.spaces.presets.bridge_space``: top-10 ImageNet probabilities weighting
MiniLM embeddings of "a photo of a {label}."), for images, video frames and 3D depth views. Printed:

- clip-art retrieval R@1, image->caption and caption->image, on the Open Clip Art val and test splits
  (``recipes/prepare_openclipart.py --out DATA``; drawings, not photos);
- on assets/: the share of images, videos and 3D shapes whose closest asset caption names their concept
  (``bind.apps.demo.caption_demo``), and how often the two networks' ImageNet top-1 agree on the 12 images;
- speed: images per second through each whole image path (decoding included), median of alternating rounds
  over the same clip-art files, and the ratio Lite2 / Lite0.

The trained adapter and lite's lam need a Lite2 adapter (``bind train recipes/image_to_minilm_offline.yaml
--data.source_encoder efficientnet-lite2.image``) and a photo validation set; neither is measured here.

    python bench/image_experts.py --data data/openclipart [--rounds 3] [--speed-images 64]
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

import bind  # noqa: E402
from bind.apps.demo import caption_demo  # noqa: E402
from bind.assets import assets_dir  # noqa: E402
from bind.experts.modality import Modality  # noqa: E402
from bind.spaces.presets import bridge_space  # noqa: E402

NETWORKS = {"Lite0": "efficientnet-lite0.imagenet-logits", "Lite2": "efficientnet-lite2.imagenet-logits"}


def split(data: Path, name: str) -> tuple[list[Path], list[str]]:
    with open(data / "pairs.csv", newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == name]
    return [data / r["source"] for r in rows], [r["target"] for r in rows]


def recall(space: bind.Space, images: list[Path], captions: list[str]) -> tuple[float, float]:
    """(image->caption R@1, caption->image R@1) with one right answer per query."""
    sims = space.embed(images, Modality.IMAGE) @ space.embed(captions, Modality.TEXT).T
    truth = torch.arange(len(images))
    return float((sims.argmax(1) == truth).float().mean()), float((sims.argmax(0) == truth).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speed-images", type=int, default=64)
    args = parser.parse_args()
    spaces = {name: bridge_space(card) for name, card in NETWORKS.items()}
    rows = {name: {} for name in spaces}
    for part in ("val", "test"):
        images, captions = split(args.data, part)
        for name, space in spaces.items():
            rows[name][f"{part} i->t"], rows[name][f"{part} t->i"] = recall(space, images, captions)
    for name, space in spaces.items():
        with contextlib.redirect_stdout(io.StringIO()):
            found = caption_demo(space=space)
        for modality, (hits, count) in found.items():
            rows[name][f"assets {modality.value}"] = f"{hits}/{count}"
    pictures = sorted((assets_dir() / "images").iterdir())
    tops = {name: bind.embed(pictures, encoder=card).argmax(dim=1) for name, card in NETWORKS.items()}
    agree = int((tops["Lite0"] == tops["Lite2"]).sum())
    files = split(args.data, "train")[0][: args.speed_images]
    times: dict[str, list[float]] = {name: [] for name in spaces}
    for space in spaces.values():
        space.embed(files[:8], Modality.IMAGE)  # warm-up
    for _ in range(args.rounds):
        for name, space in spaces.items():
            start = time.perf_counter()
            space.embed(files, Modality.IMAGE)
            times[name].append(len(files) / (time.perf_counter() - start))
    for name in spaces:
        rows[name]["images/s"] = statistics.median(times[name])
    columns = list(rows["Lite0"])
    print(f"{'network':8}" + "".join(f"{c:>15}" for c in columns))
    for name, row in rows.items():
        print(f"{name:8}" + "".join(f"{v:15.3f}" if isinstance(v, float) else f"{v:>15}" for v in row.values()))
    print(f"speed Lite2 / Lite0: {rows['Lite2']['images/s'] / rows['Lite0']['images/s']:.2f}x "
          f"({len(files)} clip-art files, median of {args.rounds} alternating rounds, {os.cpu_count()} CPUs)")
    print(f"ImageNet top-1 agreement on the {len(pictures)} asset images: {agree}/{len(pictures)}")


if __name__ == "__main__":
    main()
