"""Search speed of ``bind.Index`` vs ``faiss.IndexFlatIP`` on the same vectors, in one run, plus memory;
and the approximate (faiss IVF / HNSW) backends' recall@10 and speed against exact search.

Exact part: for every size N and dim d, N random unit vectors; single-query latency (median over
``--queries`` queries, one at a time) and batch throughput (``--batch`` queries per call), ours (float32 and
float16 storage) against faiss flat, measured in alternating rounds so load from other processes hits both
sides alike. Goal: ours within 1.2x of faiss flat (ratio = ours / faiss time; below 1 = faster).

Approximate part (``--ann-size`` rows, dim 384): recall@10 against our exact search and the speed-up over
it, for a sweep of IVF ``nprobe`` (and HNSW ``ef_search`` with ``--hnsw``) on two kinds of random unit
vectors: uniform on the sphere (no structure at all: every neighbour is about as far as any other, the
worst case for any ANN method) and clustered (random centres plus noise, the structure real embeddings
have). Goal: recall@10 >= 0.95 at >= 5x the exact speed at 1M.

Real embeddings (``--real N``): MiniLM-L6 embeddings of N sentences from the Debian package descriptions
in apt's English translation lists (``apt-get update -o Acquire::Languages=en`` once) and WordNet's glosses
(``apt-get install wordnet-base``), searched by 5 x
``--queries`` other sentences of the same corpus. They are embedded through bind's feature cache
(``--feature-cache``), so a rerun or an interrupted run reuses them. The defaults row of each backend is
marked; the goal is that the defaults reach recall@10 >= 0.95 at >= 5x exact without tuning.

The index is searched with raw vectors; its space (MiniLM text, with a random linear projector for 512-d)
only fixes the dimension and identity.

    python bench/search.py                                  # 10k, 100k, 1M x 384, 512; ANN at 1M
    python bench/search.py --sizes 10000,100000 --ann-size 100000 --hnsw
    python bench/search.py --sizes "" --ann-size 0 --real 200000 --hnsw      # real MiniLM embeddings
    python bench/search.py --sizes "" --ann-size 0 --real 200000 --nprobe "" --store   # the Milvus store vs faiss flat
"""
from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import bind  # noqa: E402
from bind.index import Index  # noqa: E402
from bind.spaces import AnchorSpace, ExpertPath  # noqa: E402
from bind.spaces.projectors import ProjectorConfig, build_projector  # noqa: E402

K = 10
ADD_CHUNK = 100_000


def status_mib(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def children_mib() -> float:
    """Resident memory of this process's children (the Milvus Lite server), from /proc."""
    total = 0.0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid():  # ppid
                with open(stat.replace("/stat", "/status")) as handle:
                    total += next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:")) / 1024
        except (OSError, StopIteration, ValueError):
            continue
    return total


def peak_extra_mib(fn: Callable[[], Any]) -> float:
    """How far resident memory rises above its starting level while ``fn`` runs (Linux peak-RSS reset)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    before = status_mib("VmRSS")
    fn()
    return status_mib("VmHWM") - before


def make_space(dim: int) -> AnchorSpace:
    if dim == 384:
        return AnchorSpace.from_expert("minilm-l6.text")
    projector = build_projector(ProjectorConfig("linear", 384, dim))
    return AnchorSpace({"text": ExpertPath("minilm-l6.text", projector)})


def uniform(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, ADD_CHUNK):
        part = rng.standard_normal((min(ADD_CHUNK, n - start), dim), dtype=np.float32)
        out[start : start + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return out


def clustered(rng: np.random.Generator, n: int, dim: int, centres: np.ndarray, spread: float = 0.6) -> np.ndarray:
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, ADD_CHUNK):
        m = min(ADD_CHUNK, n - start)
        part = centres[rng.integers(0, len(centres), m)] + spread / np.sqrt(dim) * rng.standard_normal((m, dim), dtype=np.float32)
        out[start : start + m] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return out


def fill(index: Index, vectors: np.ndarray) -> None:
    for start in range(0, len(vectors), ADD_CHUNK):
        part = vectors[start : start + ADD_CHUNK]
        index.add_vectors(part, [str(start + i) for i in range(len(part))], "text")


def alternate(fns: list[Callable[[], Any]], rounds: int) -> list[list[float]]:
    """Wall times of each function over ``rounds`` alternating rounds, after one warm-up call each."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for side, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - start)
    return times


def exact_part(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    print(f"\n== exact search, k={K}: ours (bind.Index, float32 and float16 storage) vs faiss.IndexFlatIP ==")
    print(f"{'N':>9} {'dim':>4} | {'1-query latency ms: ours':>24} {'fp16':>7} {'faiss':>7} {'ratio':>6} | "
          f"{'batch queries/s: ours':>21} {'fp16':>7} {'faiss':>7} {'ratio':>6} | "
          f"{'stored MiB':>19} | {'batch search peak MiB':>21}")
    print(f"{'':>14} | {'':>24} {'':>7} {'':>7} {'':>6} | {'':>21} {'':>7} {'':>7} {'':>6} | "
          f"{'ours':>7} {'fp16':>5} {'faiss':>5} | {'ours':>7} {'fp16':>5} {'faiss':>5}")
    rng = np.random.default_rng(0)
    for dim in args.dims:
        space = make_space(dim)
        for n in args.sizes:
            row = exact_row(space, n, dim, rng, args)
            results.append(row)
            lat, qps = row["latency_ms"], row["queries_per_s"]
            stored, peak = row["memory_mib"]["stored"], row["memory_mib"]["search_peak"]
            print(f"{n:>9} {dim:>4} | {lat['ours']:>24.2f} {lat['fp16']:>7.2f} {lat['faiss']:>7.2f} "
                  f"{row['latency_ratio']:>6.2f} | {qps['ours']:>21.0f} {qps['fp16']:>7.0f} {qps['faiss']:>7.0f} "
                  f"{row['throughput_ratio']:>6.2f} | {stored['ours']:>7.0f} {stored['fp16']:>5.0f} "
                  f"{stored['faiss']:>5.0f} | {peak['ours']:>7.0f} {peak['fp16']:>5.0f} {peak['faiss']:>5.0f}",
                  flush=True)
            gc.collect()
    print("ratio = ours time / faiss time (latency; for batches faiss q/s over ours): below 1 = ours faster. "
          "Peak = resident memory added during one batch search.")


def exact_row(space: AnchorSpace, n: int, dim: int, rng: np.random.Generator,
              args: argparse.Namespace) -> dict[str, Any]:
    """One size: ours (float32, float16) and faiss flat over the same N random unit vectors."""
    import faiss

    x = uniform(rng, n, dim)
    queries = uniform(rng, max(args.queries, args.batch), dim)
    ours = Index(space, backend="exact")
    fill(ours, x)
    half = Index(space, backend="exact", dtype="float16")
    fill(half, x)
    flat = faiss.IndexFlatIP(dim)
    flat.add(x)
    del x
    gc.collect()
    check = ours.search_vectors(queries[:3], K)
    _, want = flat.search(queries[:3], K)
    assert [[int(h.id) for h in row] for row in check] == want.tolist(), "ours and faiss disagree"

    singles = [q[None] for q in queries[: args.queries]]
    batch = queries[: args.batch]
    sides = {"ours": (lambda q: ours.search_vectors(q, K)), "fp16": (lambda q: half.search_vectors(q, K)),
             "faiss": (lambda q: flat.search(q, K))}
    lat = alternate([lambda f=f: [f(q) for q in singles] for f in sides.values()], args.rounds)
    thr = alternate([lambda f=f: f(batch) for f in sides.values()], args.rounds)
    lat_ms = {name: 1000 * statistics.median(t) / len(singles) for name, t in zip(sides, lat)}
    qps = {name: len(batch) / min(t) for name, t in zip(sides, thr)}
    stored = {"ours": ours._vectors[:n].nbytes / 2**20, "fp16": half._vectors[:n].nbytes / 2**20,
              "faiss": flat.code_size * flat.ntotal / 2**20}
    peak = {name: peak_extra_mib(lambda f=f: f(batch)) for name, f in sides.items()}
    return {"n": n, "dim": dim, "latency_ms": lat_ms, "queries_per_s": qps,
            "memory_mib": {"stored": stored, "search_peak": peak},
            "latency_ratio": lat_ms["ours"] / lat_ms["faiss"], "throughput_ratio": qps["faiss"] / qps["ours"]}


def recall(got: list[list[Any]], truth: list[list[Any]]) -> float:
    return float(np.mean([len({h.id for h in g} & {h.id for h in t}) / K for g, t in zip(got, truth)]))


def corpus_sentences(count: int) -> list[str]:
    """Distinct sentences (20-300 characters) of the package descriptions in apt's English translation
    lists (``apt-get update -o Acquire::Languages=en`` fetches them) and WordNet's glosses (the Debian
    package ``wordnet-base``), in a seeded order."""
    import glob
    import random
    import re
    import subprocess

    lists = sorted(glob.glob("/var/lib/apt/lists/*_i18n_Translation-en*"))
    if not lists:
        raise SystemExit("no Translation-en lists in /var/lib/apt/lists: apt-get update -o Acquire::Languages=en")
    sentences: dict[str, None] = {}
    for path in lists:
        text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", path], capture_output=True, text=True,
                              check=True).stdout
        description: list[str] = []
        for line in text.splitlines() + [""]:
            if line.startswith("Description-en:"):
                description = [line.partition(":")[2].strip()]
            elif line.startswith(" ") and description:
                if line.strip() != ".":  # " ." separates paragraphs
                    description.append(line.strip())
            elif description:
                for sentence in re.split(r"(?<=[.!?])\s+", " ".join(description)):
                    if 20 <= len(sentence) <= 300:
                        sentences[sentence] = None
                description = []
    for path in sorted(glob.glob("/usr/share/wordnet/data.*")):  # WordNet glosses (Debian wordnet-base)
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.startswith(" ") and "|" in line:
                    gloss = line.split("|", 1)[1].strip()
                    if 20 <= len(gloss) <= 300:
                        sentences[gloss] = None
    ordered = list(sentences)
    random.Random(0).shuffle(ordered)
    if len(ordered) < count:
        raise SystemExit(f"{len(ordered)} usable sentences, fewer than {count} (apt-get install wordnet-base?)")
    return ordered[:count]


def real_vectors(n: int, queries: int, cache: str) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM-L6 embeddings of ``n + queries`` Debian description sentences (``n`` to index, the rest to ask)."""
    from bind.experts.cache import FeatureCache

    sentences = corpus_sentences(n + queries)
    vectors = FeatureCache(cache).embed(sentences, "minilm-l6.text", batch_size=256, progress=True)
    vectors = torch.nn.functional.normalize(vectors.float(), dim=-1).numpy()
    return vectors[:n], vectors[n:]


def ann_part(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    dim = 384
    space = make_space(dim)
    rng = np.random.default_rng(1)
    centres = uniform(rng, args.clusters, dim)
    kinds = (["clustered", "uniform"] if args.ann_size else []) + (["real"] if args.real else [])
    for data in kinds:
        n = args.real if data == "real" else args.ann_size
        print(f"\n== approximate search at N={n}, dim {dim}: recall@{K} and speed-up over our exact search ==")
        if data == "real":
            x, queries = real_vectors(n, args.queries * 5, args.feature_cache)
        else:
            make = (lambda m: clustered(rng, m, dim, centres)) if data == "clustered" else (lambda m: uniform(rng, m, dim))
            x, queries = make(n), make(args.queries * 5)
        exact_index = Index(space, backend="exact")
        fill(exact_index, x)
        singles = [q[None] for q in queries]
        start = time.perf_counter()
        truth = [exact_index.search_vectors(q, K)[0] for q in singles]
        exact_ms = 1000 * (time.perf_counter() - start) / len(singles)
        what = "MiniLM embeddings of Debian description sentences" if data == "real" else "random unit vectors"
        print(f"-- {data} {what}: exact {exact_ms:.2f} ms/query")
        del exact_index
        gc.collect()
        backends = [("faiss-ivf", "nprobe", args.nprobe)] + ([("faiss-hnsw", "ef_search", args.ef)] if args.hnsw else [])
        for backend, knob, values in backends:
            index = Index(space, backend=backend)
            fill(index, x)
            before = status_mib("VmRSS")
            start = time.perf_counter()
            index.search_vectors(queries[:1], K)  # builds the faiss structure
            build = time.perf_counter() - start
            default = index._ann.nprobe if knob == "nprobe" else index._ann.options[knob]
            print(f"   {backend}: built in {build:.0f} s, +{status_mib('VmRSS') - before:.0f} MiB resident "
                  f"({index._ann.options}; default {knob} {default})")
            for value in sorted(set(values) | {default}):
                index._ann.options[knob] = value
                index.search_vectors(queries[:1], K)
                start = time.perf_counter()
                got = [index.search_vectors(q, K)[0] for q in singles]
                ms = 1000 * (time.perf_counter() - start) / len(singles)
                r = recall(got, truth)
                row = {"data": data, "n": n, "dim": dim, "backend": backend, knob: value, "recall_at_10": r,
                       "ms_per_query": ms, "exact_ms_per_query": exact_ms, "speedup": exact_ms / ms,
                       "build_s": build}
                results.append(row)
                goal = ("  <- meets the goal" if r >= 0.95 and exact_ms / ms >= 5 else "") + \
                    ("  (default)" if value == default else "")
                print(f"   {knob}={value:<5} recall@{K} {r:.3f}  {ms:7.2f} ms/query  {exact_ms / ms:6.1f}x exact{goal}",
                      flush=True)
            del index
            gc.collect()
        if args.store:
            store_rows(data, n, dim, space, x, queries, singles, truth, exact_ms, results)
        del x
        gc.collect()


def store_rows(data: str, n: int, dim: int, space: AnchorSpace, x: np.ndarray, queries: np.ndarray,
               singles: list[np.ndarray], truth: list[list[Any]], exact_ms: float, results: list[dict[str, Any]]) -> None:
    """The Milvus store (embedded Milvus Lite) next to faiss flat on the same vectors: insert time, memory of
    this process and of the Milvus server, latency of single queries, throughput of a batch, recall@10."""
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        before, server_before = status_mib("VmRSS"), children_mib()
        start = time.perf_counter()
        stored = Index(space, store="milvus", uri=os.path.join(folder, "bench.db"))
        for first in range(0, n, ADD_CHUNK // 10):
            part = x[first : first + ADD_CHUNK // 10]
            stored.add_vectors(part, [str(first + i) for i in range(len(part))], "text")
        build = time.perf_counter() - start
        memory = (status_mib("VmRSS") - before, children_mib() - server_before)
        flat = Index(space, backend="faiss-flat")
        fill(flat, x)
        flat.search_vectors(queries[:1], K)
        for name, index, extra in (("milvus-lite (FLAT)", stored, memory), ("faiss-flat", flat, None)):
            index.search_vectors(queries[:1], K)
            start = time.perf_counter()
            got = [index.search_vectors(q, K)[0] for q in singles]
            ms = 1000 * (time.perf_counter() - start) / len(singles)
            start = time.perf_counter()
            index.search_vectors(queries, K)
            qps = len(queries) / (time.perf_counter() - start)
            row = {"data": data, "n": n, "dim": dim, "backend": name, "recall_at_10": recall(got, truth),
                   "ms_per_query": ms, "queries_per_s_batched": qps, "exact_ms_per_query": exact_ms,
                   "speedup": exact_ms / ms, "build_s": build if index is stored else None}
            rows.append(row)
            resident = f", +{extra[0]:.0f} MiB here, server {extra[1]:.0f} MiB" if extra else ""
            built = f"; inserted in {build:.0f} s ({n / build:.0f} rows/s)" if index is stored else ""
            print(f"   {name}: recall@{K} {row['recall_at_10']:.3f}  {ms:7.2f} ms/query  {exact_ms / ms:6.1f}x exact  "
                  f"{qps:7.0f} queries/s batched{built}{resident}", flush=True)
        stored.close()
    results.extend(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ints = lambda text: [int(float(v)) for v in text.split(",") if v]  # noqa: E731
    parser.add_argument("--sizes", type=ints, default=[10_000, 100_000, 1_000_000], help="corpus sizes, e.g. 10000,1e5")
    parser.add_argument("--dims", type=ints, default=[384, 512])
    parser.add_argument("--queries", type=int, default=20, help="single queries timed per size")
    parser.add_argument("--batch", type=int, default=256, help="queries per batch call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ann-size", type=int, default=1_000_000, help="0 skips the approximate part")
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--nprobe", type=ints, default=[4, 8, 16, 32, 64, 128])
    parser.add_argument("--hnsw", action="store_true", help="also HNSW (slow to build on few cores)")
    parser.add_argument("--store", action="store_true",
                        help="also the Milvus store (embedded Milvus Lite) next to faiss flat (bind[store])")
    parser.add_argument("--real", type=int, default=0, help="also N real MiniLM embeddings (e.g. 200000)")
    parser.add_argument("--feature-cache", default=os.path.expanduser("~/.cache/bind/features"),
                        help="where the real embeddings are cached")
    parser.add_argument("--ef", type=ints, default=[32, 64, 128, 256])
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    print(f"bind {bind.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{os.cpu_count()} CPUs")
    results: list[dict[str, Any]] = []
    if args.sizes:
        exact_part(args, results)
    if args.ann_size or args.real:
        ann_part(args, results)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
