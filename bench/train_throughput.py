"""Training-loop and feature-cache benchmarks, in one run.

(a) Steps/s of the Lightning loop (AlignModule + Trainer; logger, checkpointing, progress bar and summary off)
    vs a bare PyTorch loop doing the same forward/backward/step: the same projector (FreeBind MLP), loss
    (InfoNCE, learnable temperature), AdamW, batch size and DataLoader over the same in-memory feature
    tensors (EfficientNet-Lite0 1280-d -> MiniLM 384-d shapes). Goal: ratio >= 0.8.
(b) Extracting and caching EfficientNet-Lite0 features of N JPEGs (random crops of the asset photos) with
    bind.cache.FeatureCache, then the same call again, served from the cache. Goal: speed-up >= 20x.

    python bench/train_throughput.py [--pairs 8192] [--steps 50] [--rounds 5] [--batch-size 256] [--images 1000]
        [--threads N]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import bind
from bind.experts.cache import FeatureCache
from bind.train.module import AlignModule

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_throughput import make_jpegs

D_IN, D_OUT = 1280, 384
PROJECTOR = {"type": "mlp", "hidden": 2048}


def loader(source: torch.Tensor, anchor: torch.Tensor, batch_size: int, seed: int) -> DataLoader:
    """Shuffled batches, the same order for both loops."""
    return DataLoader(TensorDataset(source, anchor), batch_size=batch_size, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed))


class StepTimer(L.Callback):
    """Wall time from the end of the first ``skip`` steps to the end of the last one."""

    def __init__(self, skip: int) -> None:
        self.skip, self.start, self.seconds = skip, 0.0, 0.0

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.skip:
            self.start = time.perf_counter()
        self.seconds = time.perf_counter() - self.start


def lightning_run(source: torch.Tensor, anchor: torch.Tensor, batch_size: int, steps: int) -> float:
    """Seconds for ``steps`` optimiser steps of AlignModule under a Trainer (after one warm-up step)."""
    torch.manual_seed(0)
    model = AlignModule(D_IN, D_OUT, projector=PROJECTOR)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps + 1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    timer = StepTimer(skip=1)
    trainer.callbacks.append(timer)
    trainer.fit(model, loader(source, anchor, batch_size, seed=0))
    return timer.seconds


def bare_run(source: torch.Tensor, anchor: torch.Tensor, batch_size: int, steps: int) -> float:
    """The same steps with a hand-written loop: forward, loss, backward, AdamW step, zero_grad."""
    torch.manual_seed(0)
    model = AlignModule(D_IN, D_OUT, projector=PROJECTOR)  # the same projector and loss modules
    projector, loss = model.projector.train(), model.loss.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    step, start = 0, 0.0
    while step <= steps:
        for batch_source, batch_anchor in loader(source, anchor, batch_size, seed=step):
            total, _ = loss(projector(batch_source), F.normalize(batch_anchor, dim=-1), frozen=batch_source,
                            step=step)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            step += 1
            if step == 1:
                start = time.perf_counter()
            if step > steps:
                break
    return time.perf_counter() - start


def best_of(rounds: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(rounds))


def bench_loops(pairs: int, steps: int, batch_size: int, rounds: int) -> tuple[float, float]:
    g = torch.Generator().manual_seed(0)
    source = F.normalize(torch.randn(pairs, D_IN, generator=g), dim=-1)
    anchor = F.normalize(source[:, :D_OUT] + 0.1 * torch.randn(pairs, D_OUT, generator=g), dim=-1)
    bare, ours = [], []
    for _ in range(rounds):  # interleaved, so both see the same machine load
        bare.append(bare_run(source, anchor, batch_size, steps))
        ours.append(lightning_run(source, anchor, batch_size, steps))
    return steps / min(bare), steps / min(ours)


def bench_cache(count: int, batch_size: int) -> tuple[float, float]:
    encoder = bind.create_encoder("efficientnet-lite0.image")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp), count)
        start = time.perf_counter()
        first = FeatureCache(Path(tmp) / "cache").embed(paths, encoder, batch_size=batch_size, progress=False)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        again = FeatureCache(Path(tmp) / "cache")
        second = again.embed(paths, encoder, batch_size=batch_size, progress=False)
        warm = time.perf_counter() - start
        assert torch.equal(first, second) and again.stats().hits == count and again.stats().misses == 0
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8192, help="cached feature pairs in memory")
    parser.add_argument("--steps", type=int, default=50, help="timed optimiser steps per loop and round")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the best of each loop counts")
    parser.add_argument("--images", type=int, default=1000, help="JPEGs to extract and cache (0: skip (b))")
    parser.add_argument("--extract-batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, lightning {L.__version__}, {torch.get_num_threads()} threads")

    bare, ours = bench_loops(args.pairs, args.steps, args.batch_size, args.rounds)
    print(f"(a) training loop, MLP {D_IN}->{PROJECTOR['hidden']}->{D_OUT}, batch {args.batch_size}, "
          f"{args.steps} steps x best of {args.rounds}:")
    print(f"    bare PyTorch  {bare:8.1f} steps/s")
    print(f"    Lightning     {ours:8.1f} steps/s   ratio {ours / bare:.2f}  (goal >= 0.8)")

    if not args.images:
        return
    cold, warm = bench_cache(args.images, args.extract_batch_size)
    print(f"(b) EfficientNet-Lite0 features of {args.images} JPEGs through FeatureCache:")
    print(f"    first run (extract + cache)  {cold:7.1f} s  ({args.images / cold:.1f} images/s)")
    print(f"    second run (cache hits)      {warm:7.2f} s  speed-up {cold / warm:.0f}x  (goal >= 20x)")


if __name__ == "__main__":
    main()
