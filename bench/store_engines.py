"""Which vector database under ``bind.Index(store=...)``: Milvus Lite 2.5.1 against Qdrant's local mode.

Both are embedded engines whose client code reaches a cluster by URI. Each is measured on its own (one
engine per run, so their memory does not mix) on the same real vectors as ``bench/search.py --real``:
200,000 MiniLM embeddings of Debian description sentences and WordNet glosses, 100 other sentences as
queries, a payload field ``modality`` (every fifth item "image") to filter on.

Printed per engine: insert time (5,000 rows per call, each engine's plain insert/upsert of row dicts),
the first search, single-query latency (unfiltered and filtered to "image"), batched latency (Milvus), recall@10
against exact inner products, and the growth of this process's resident memory (Milvus Lite's server
is a separate process, not counted; ``bench/search.py --store`` reports it).

    python bench/store_engines.py milvus
    python bench/store_engines.py qdrant      # pip install qdrant-client==1.20.0
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from search import real_vectors, status_mib  # noqa: E402

K = 10
ROWS_PER_CALL = 5000


def milvus(x: np.ndarray, q: np.ndarray, modalities: np.ndarray, folder: str) -> tuple[float, float, list, float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pymilvus import DataType, MilvusClient
    client = MilvusClient(os.path.join(folder, "m.db"))
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=x.shape[1])
    schema.add_field("modality", DataType.VARCHAR, max_length=16)
    params = client.prepare_index_params()
    params.add_index("vector", index_type="FLAT", metric_type="IP")
    client.create_collection("c", schema=schema, index_params=params)
    start = time.perf_counter()
    for first in range(0, len(x), ROWS_PER_CALL):
        client.insert("c", [{"id": i, "vector": x[i], "modality": modalities[i]}
                            for i in range(first, min(first + ROWS_PER_CALL, len(x)))])
    client.flush("c")
    insert = time.perf_counter() - start
    start = time.perf_counter()
    client.search("c", [q[0]], limit=K)
    first_search = time.perf_counter() - start
    start = time.perf_counter()
    got = [[hit["id"] for hit in client.search("c", [v], limit=K)[0]] for v in q]
    single = (time.perf_counter() - start) / len(q)
    start = time.perf_counter()
    for v in q:
        client.search("c", [v], limit=K, filter='modality == "image"')
    filtered = (time.perf_counter() - start) / len(q)
    start = time.perf_counter()
    client.search("c", list(q), limit=K)
    print(f"   batched: {1000 * (time.perf_counter() - start) / len(q):.2f} ms/query")
    return insert, first_search, got, single, filtered


def qdrant(x: np.ndarray, q: np.ndarray, modalities: np.ndarray, folder: str) -> tuple[float, float, list, float, float]:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=os.path.join(folder, "q"))
    client.create_collection("c", vectors_config=models.VectorParams(size=x.shape[1], distance=models.Distance.DOT))
    start = time.perf_counter()
    for first in range(0, len(x), ROWS_PER_CALL):
        stop = min(first + ROWS_PER_CALL, len(x))
        client.upsert("c", models.Batch(ids=list(range(first, stop)), vectors=x[first:stop].tolist(),
                                        payloads=[{"modality": str(m)} for m in modalities[first:stop]]))
    insert = time.perf_counter() - start
    start = time.perf_counter()
    client.query_points("c", query=q[0].tolist(), limit=K)
    first_search = time.perf_counter() - start
    start = time.perf_counter()
    got = [[p.id for p in client.query_points("c", query=v.tolist(), limit=K).points] for v in q]
    single = (time.perf_counter() - start) / len(q)
    image = models.Filter(must=[models.FieldCondition(key="modality", match=models.MatchValue(value="image"))])
    start = time.perf_counter()
    for v in q:
        client.query_points("c", query=v.tolist(), limit=K, query_filter=image)
    filtered = (time.perf_counter() - start) / len(q)
    client.close()
    return insert, first_search, got, single, filtered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("engine", choices=("milvus", "qdrant"))
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--feature-cache", default=os.path.expanduser("~/.cache/bind/features"))
    args = parser.parse_args()
    x, q = real_vectors(args.n, 500, args.feature_cache)  # the queries bench/search.py --real uses
    q = q[:100]
    truth = np.argsort(-(q @ x.T), axis=1)[:, :K]
    modalities = np.where(np.arange(len(x)) % 5 == 0, "image", "text")
    folder = tempfile.mkdtemp()
    try:
        before = status_mib("VmRSS")
        insert, first_search, got, single, filtered = (milvus if args.engine == "milvus" else qdrant)(
            x, q, modalities, folder)
        recall = np.mean([len(set(g) & set(t)) / K for g, t in zip(got, truth)])
        print(f"{args.engine}: insert {insert:.0f} s, first search {first_search:.2f} s, {1000 * single:.1f} ms/query, "
              f"filtered {1000 * filtered:.1f} ms/query, recall@{K} {recall:.3f}, "
              f"+{status_mib('VmRSS') - before:.0f} MiB here")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
