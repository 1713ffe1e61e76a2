"""Throughput of ``bind.embed`` vs a bare forward loop over the same pre-decoded tensors, in one run.

Images: EfficientNet-Lite0 on N JPEG files (bind.embed decodes them, overlapping decoding with compute in
a DataLoader worker; the bare loop gets tensors already decoded and transformed).
Text: MiniLM on M sentences (the bare loop gets the same length-sorted batches already tokenised).
Goals: images >= 0.85x, text >= 0.9x.

    python bench/embed_throughput.py [--images 256] [--sentences 1000] [--batch-size 32]
"""
from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

import bind  # noqa: E402
from bind.assets import load_manifest  # noqa: E402


def make_jpegs(folder: Path, count: int) -> list[str]:
    """Random crops of the asset photos, saved as ~400 px JPEGs (real decoding work, like a photo folder)."""
    rng = random.Random(0)
    photos = [Image.open(e.path).convert("RGB") for e in load_manifest() if e.modality == bind.Modality.IMAGE]
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = photo.crop((x, y, x + cw, y + ch)).resize((400, int(400 * ch / cw)))
        path = folder / f"img{i:04d}.jpg"
        crop.save(path, quality=90)
        paths.append(str(path))
    return paths


def timed_pair(bare: Callable[[], None], ours: Callable[[], None], rounds: int = 3) -> tuple[float, float]:
    """Best wall time of each, measured in alternating rounds after one warm-up run of each, so that load
    from other processes hits both sides alike."""
    bare()
    ours()
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for side, fn in enumerate((bare, ours)):
            start = time.perf_counter()
            fn()
            best[side] = min(best[side], time.perf_counter() - start)
    return best[0], best[1]


def bench_images(count: int, batch_size: int) -> tuple[float, float]:
    encoder = bind.create_encoder("efficientnet-lite0.image")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp), count)
        preprocess = encoder.preprocessor()
        decoded = torch.stack([preprocess(p) for p in paths])

        def bare() -> None:
            with torch.inference_mode():
                for start in range(0, count, batch_size):
                    encoder(decoded[start:start + batch_size])

        def ours() -> None:
            bind.embed(paths, encoder=encoder, batch_size=batch_size)

        bare_s, ours_s = timed_pair(bare, ours)
        return count / bare_s, count / ours_s


def bench_text(count: int, batch_size: int) -> tuple[float, float]:
    encoder = bind.create_encoder("minilm-l6.text")
    rng = random.Random(0)
    words = "a the cat dog red blue car runs sleeps on under big small old young music plays loud quiet".split()
    sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 40))) for _ in range(count)]
    ordered = sorted(sentences, key=len, reverse=True)
    batches = [encoder.collate(ordered[i:i + batch_size]) for i in range(0, count, batch_size)]

    def bare() -> None:
        with torch.inference_mode():
            for batch in batches:
                encoder(batch)

    def ours() -> None:
        bind.embed(sentences, encoder=encoder, batch_size=batch_size)

    bare_s, ours_s = timed_pair(bare, ours)
    return count / bare_s, count / ours_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    print(f"{'workload':<34}{'bare items/s':>14}{'bind.embed items/s':>20}{'ratio':>8}{'goal':>7}")
    for name, (bare, ours), goal in (
        (f"EfficientNet-Lite0, {args.images} JPEGs", bench_images(args.images, args.batch_size), 0.85),
        (f"MiniLM-L6, {args.sentences} sentences", bench_text(args.sentences, args.batch_size), 0.9),
    ):
        print(f"{name:<34}{bare:>14.1f}{ours:>20.1f}{ours / bare:>8.2f}{goal:>7.2f}")


if __name__ == "__main__":
    main()
