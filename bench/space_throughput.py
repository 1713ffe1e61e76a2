"""Throughput of the packaged offline space ``lite`` vs bare forwards of its experts, in one run.

Each workload is measured as items/s for (a) ``bind.load_space("lite").embed(items, modality=M)`` on files
(decoding included) and (b) the bare network over the same items already decoded to tensors:

- images: N JPEG files; bare = one EfficientNet-Lite0 (features) forward per image, batches of 32.
- videos: mp4 files of 8 sampled frames; bare = one EfficientNet-Lite0 forward over the 8 frames of each
  video, read with ``bind.io.video.read_frames`` and transformed by the image expert's preprocessor beforehand.
- 3D: point clouds and meshes; bare = one EfficientNet-Lite0 forward over the 6 depth views of each shape,
  rendered beforehand by the 3D expert's own preprocessor.
- text: sentences; bare = one MiniLM-L6 forward over length-sorted batches tokenised beforehand (lite's text
  path also runs e5-small and its projector).

Video and 3D frames/views go through the bare network 64 at a time (the video and 3D experts' chunk). Sides
run in alternating rounds (bare, lite, bare, lite, ...) after one warm-up call each, so load from other
processes hits both alike; the table shows each side's median items/s and the ratio lite / bare. A second
table counts the EfficientNet-Lite0 images (stem-convolution inputs) per item on each side, from one extra
untimed call. All inputs live in a temporary folder.
Goal: images >= 0.85x (videos, 3D and text are reported without a goal).

    python bench/space_throughput.py [--images 128] [--videos 16] [--shapes 16] [--sentences 512] [--rounds 3]
    python bench/space_throughput.py --quick     # small sizes, one round: a smoke run
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import bind  # noqa: E402
from bind.assets import load_manifest  # noqa: E402
from bind.io.video import read_frames  # noqa: E402

sys.dont_write_bytecode = True  # importing the sibling benchmarks below leaves no __pycache__ in the repo
sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_throughput import make_jpegs  # noqa: E402
from search import alternate  # noqa: E402

IMAGE_EXPERT = "efficientnet-lite0.image"
POINTS_EXPERT = "pointviews-efficientnet-lite0.points"
TEXT_EXPERT = "minilm-l6.text"
FRAMES = 8  # lite's video path samples 8 frames
CHUNK = 64  # frames / views per image-expert call in the video and 3D experts
BATCH_SIZE = 32  # items per batch, as Space.embed's default


@dataclass
class Workload:
    """One row: what is embedded, both sides as zero-argument calls, and the goal ratio (None: report only)."""

    name: str
    modality: str
    items: list[Any]
    bare: Callable[[], None]
    goal: float | None = None


@dataclass
class Result:
    name: str
    bare: float  # median items/s
    lite: float
    goal: float | None
    bare_images: float  # EfficientNet-Lite0 images per item
    lite_images: float


def make_videos(folder: Path, count: int, frames: int = 48, size: tuple[int, int] = (320, 240)) -> list[str]:
    """Slow pans across the asset photos, saved as H.264 mp4s (25 fps, ``frames`` long) with PyAV."""
    import av

    rng = random.Random(1)
    photos = [Image.open(e.path).convert("RGB") for e in load_manifest() if e.modality == bind.Modality.IMAGE]
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)].resize((2 * size[0], 2 * size[1]))
        x0, y0 = rng.randint(0, size[0]), rng.randint(0, size[1])
        x1, y1 = rng.randint(0, size[0]), rng.randint(0, size[1])
        path = folder / f"video{i:03d}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
            stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
            for f in range(frames):
                t = f / max(1, frames - 1)
                x, y = round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0))
                frame = np.asarray(photo.crop((x, y, x + size[0], y + size[1])))
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        paths.append(str(path))
    return paths


def make_shapes(folder: Path, count: int) -> list[str]:
    """Alternately trimesh primitives of varied proportions (.ply/.off/.obj/.stl meshes, sampled on their
    surface when read) and 8192-point .npy clouds (noisy ellipsoids, helices)."""
    import trimesh

    rng = np.random.default_rng(0)
    primitives = (lambda: trimesh.creation.box(extents=rng.uniform(0.5, 2.0, 3)),
                  lambda: trimesh.creation.icosphere(2, rng.uniform(0.5, 1.5)),
                  lambda: trimesh.creation.cylinder(rng.uniform(0.2, 1.0), rng.uniform(0.5, 2.0)),
                  lambda: trimesh.creation.capsule(rng.uniform(0.5, 2.0), rng.uniform(0.2, 0.8)),
                  lambda: trimesh.creation.cone(rng.uniform(0.3, 1.0), rng.uniform(0.5, 2.0)),
                  lambda: trimesh.creation.torus(1.0, rng.uniform(0.1, 0.5)))
    suffixes = (".ply", ".off", ".obj", ".stl")
    paths = []
    for i in range(count):
        if i % 2 == 0:
            path = folder / f"shape{i:03d}{suffixes[(i // 2) % len(suffixes)]}"
            primitives[(i // 2) % len(primitives)]().export(path)
        else:
            path = folder / f"cloud{i:03d}.npy"
            t = rng.uniform(0, 2 * np.pi, 8192)
            if i % 4 == 1:
                u = rng.normal(size=(8192, 3))
                cloud = u / np.linalg.norm(u, axis=1, keepdims=True) * rng.uniform(0.3, 1.5, 3)
            else:
                turns = rng.uniform(2, 6)
                cloud = np.stack([np.cos(turns * t), np.sin(turns * t), t / np.pi - 1], axis=1)
            np.save(path, (cloud + rng.normal(scale=0.02, size=cloud.shape)).astype(np.float32))
        paths.append(str(path))
    return paths


def make_sentences(count: int) -> list[str]:
    """Random sentences of 4-40 words from a small vocabulary."""
    rng = random.Random(0)
    words = "a the cat dog red blue car runs sleeps on under big small old young music plays loud quiet".split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 40))) for _ in range(count)]


def network_loop(encoder: bind.Encoder, inputs: torch.Tensor, chunk: int) -> Callable[[], None]:
    """The bare side: ``encoder`` over pre-decoded image tensors ``[M, 3, H, W]``, ``chunk`` at a time."""

    def run() -> None:
        with torch.inference_mode():
            for start in range(0, len(inputs), chunk):
                encoder(inputs[start:start + chunk])

    return run


def image_workload(encoder: bind.Encoder, folder: Path, count: int) -> Workload:
    paths = make_jpegs(folder, count)
    preprocess = encoder.preprocessor()
    decoded = torch.stack([preprocess(p) for p in paths])
    return Workload(f"images, {count} JPEGs", "image", paths, network_loop(encoder, decoded, BATCH_SIZE), 0.85)


def video_workload(encoder: bind.Encoder, folder: Path, count: int) -> Workload:
    paths = make_videos(folder, count)
    preprocess = encoder.preprocessor()
    frames = torch.cat([torch.stack([preprocess(f) for f in read_frames(p, FRAMES)]) for p in paths])
    return Workload(f"videos, {count} x {FRAMES} frames", "video", paths, network_loop(encoder, frames, CHUNK))


def points_workload(encoder: bind.Encoder, folder: Path, count: int) -> Workload:
    paths = make_shapes(folder, count)
    render = bind.create_encoder(POINTS_EXPERT).preprocessor()
    views = torch.cat([render(p) for p in paths])
    per_item = len(views) // count
    return Workload(f"3D, {count} x {per_item} views", "points", paths, network_loop(encoder, views, CHUNK))


def text_workload(count: int) -> Workload:
    encoder = bind.create_encoder(TEXT_EXPERT)
    sentences = make_sentences(count)
    ordered = sorted(sentences, key=len, reverse=True)
    batches = [encoder.collate(ordered[i:i + BATCH_SIZE]) for i in range(0, count, BATCH_SIZE)]

    def bare() -> None:
        with torch.inference_mode():
            for batch in batches:
                encoder(batch)

    return Workload(f"text, {count} sentences (MiniLM)", "text", sentences, bare)


def stem_images(fn: Callable[[], Any]) -> int:
    """How many images enter an RGB-input convolution (the EfficientNet-Lite0 stem) during one call of ``fn``."""
    seen = [0]

    def count(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3:
            seen[0] += args[0].shape[0]

    handle = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        fn()
    finally:
        handle.remove()
    return seen[0]


def measure(space: bind.Space, work: Workload, rounds: int) -> Result:
    """Median items/s of both sides over alternating rounds, and network images per item of each."""

    def lite() -> None:
        space.embed(work.items, modality=work.modality, batch_size=BATCH_SIZE)

    bare_s, lite_s = (statistics.median(times) for times in alternate([work.bare, lite], rounds))
    n = len(work.items)
    return Result(work.name, n / bare_s, n / lite_s, work.goal,
                  stem_images(work.bare) / n, stem_images(lite) / n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--shapes", type=int, default=16)
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="16 images, 2 videos, 2 shapes, 32 sentences, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.images, args.videos, args.shapes, args.sentences, args.rounds = 16, 2, 2, 32, 1

    print(f"lite space (bind.load_space('lite').embed on files) vs bare forwards over pre-decoded tensors "
          f"(EfficientNet-Lite0 features '{IMAGE_EXPERT}', one forward per image / frame / view; MiniLM "
          f"'{TEXT_EXPERT}' for text); median of {args.rounds} alternating round(s) after a warm-up")
    print(f"torch threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    space = bind.load_space("lite")
    encoder = bind.create_encoder(IMAGE_EXPERT)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for build in (lambda: image_workload(encoder, folder, args.images),
                      lambda: video_workload(encoder, folder, args.videos),
                      lambda: points_workload(encoder, folder, args.shapes),
                      lambda: text_workload(args.sentences)):
            work = build()
            results.append(measure(space, work, args.rounds))
            print(f"  done: {work.name}", flush=True)

    print("\n| workload | bare items/s | lite items/s | ratio | goal |\n|---|---:|---:|---:|---:|")
    for r in results:
        goal = f">= {r.goal:.2f}" if r.goal is not None else "-"
        print(f"| {r.name} | {r.bare:.1f} | {r.lite:.1f} | {r.lite / r.bare:.2f} | {goal} |")
    print("\nEfficientNet-Lite0 images per item (inputs to its stem convolution, one untimed call each):\n"
          "| workload | bare | lite |\n|---|---:|---:|")
    for r in results:
        print(f"| {r.name} | {r.bare_images:.1f} | {r.lite_images:.1f} |")


if __name__ == "__main__":
    main()
