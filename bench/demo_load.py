"""Latency of the served demo under load, over loopback, in one run: does one user's huge query stall others?

The demo page (``bind.apps.webdemo.serve``, the lite index over assets/) is served on a free local port and
queried through ``gradio_client`` by ``--users`` concurrent users, each sending ``--queries`` short text
queries one after another. Three scenarios run in one process, side by side:

- ``quiet``: the users alone;
- ``huge refused``: the same, while one more user sends a ``--huge``-character query (over the demo's cap,
  refused with a message);
- ``heavy at cap``: the same, while one more user keeps sending queries of exactly ``MAX_QUERY_CHARS``
  characters (the heaviest text the demo accepts).

Printed per scenario: p50, p95 and max latency of the short queries, and each scenario's p95 over quiet's.
Before the cap and the queue, one 100,000-character query delayed another user's query by 49 s.

    python bench/demo_load.py [--users 20] [--queries 5] [--huge 100000]
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from gradio_client import Client  # noqa: E402

from bind.apps.demo import cache_dir, demo_index  # noqa: E402
from bind.apps.webdemo import MAX_QUERY_CHARS, serve  # noqa: E402

QUERIES = ["a cat", "a dog barking", "a guitar", "a rocket", "a bicycle", "a ticking clock", "an airplane"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def user(url: str, modalities: list[str], count: int, offset: int) -> list[float]:
    """One user's latencies (seconds) for ``count`` short queries in a row."""
    client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    latencies = []
    for i in range(count):
        start = time.perf_counter()
        html, _ = client.predict(QUERIES[(offset + i) % len(QUERIES)], None, modalities, 8, "mixed", api_name="/search")
        latencies.append(time.perf_counter() - start)
        if "bind-hit" not in html:
            raise RuntimeError("a short query got no results")
    return latencies


def disturber(url: str, modalities: list[str], text: str, stop: threading.Event) -> int:
    """Send ``text`` again and again until ``stop``; returns how many were sent."""
    client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    sent = 0
    while not stop.is_set():
        client.predict(text, None, modalities, 8, "mixed", api_name="/search")
        sent += 1
    return sent


def scenario(url: str, modalities: list[str], users: int, queries: int, noise: str | None) -> list[float]:
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=users + 1) as pool:
        noisy = pool.submit(disturber, url, modalities, noise, stop) if noise else None
        if noisy:
            time.sleep(0.5)  # let the disturbing query reach the server first
        runs = [pool.submit(user, url, modalities, queries, i) for i in range(users)]
        latencies = [t for run in runs for t in run.result()]
        stop.set()
        if noisy:
            noisy.result()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--huge", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index = demo_index(cache_dir(Path(tmp)), progress=False)[0]
        present = sorted({index.entry(i).modality.value for i in index.ids})
        port = free_port()
        page = serve(index, host="127.0.0.1", port=port, cache=Path(tmp), block=False)
        url = f"http://127.0.0.1:{port}/"
        try:
            user(url, present, 2, 0)  # warm-up: experts loaded, caches filled
            heavy = ("a long rambling query about cats and dogs and guitars " * MAX_QUERY_CHARS)[:MAX_QUERY_CHARS]
            rows = [(name, scenario(url, present, args.users, args.queries, noise)) for name, noise in [
                ("quiet", None), (f"huge refused ({args.huge:,} chars)", "x " * (args.huge // 2)),
                (f"heavy at cap ({MAX_QUERY_CHARS:,} chars)", heavy)]]
        finally:
            page.close()
    base = statistics.quantiles(rows[0][1], n=20)[18]
    print(f"{args.users} users x {args.queries} short queries, served demo over loopback (lite index over assets/)")
    print(f"{'scenario':32} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'p95 / quiet':>12}")
    for name, latencies in rows:
        p95 = statistics.quantiles(latencies, n=20)[18]
        print(f"{name:32} {statistics.median(latencies):7.2f} {p95:7.2f} {max(latencies):7.2f} {p95 / base:12.2f}")


if __name__ == "__main__":
    main()
