"""faiss backends (flat, IVF, HNSW) over an index's rows, for corpora too large for exact search.

A faiss index here holds the rows of the bind index in slot order, so faiss ids are slot numbers; removed
slots stay in it and are excluded at search time by an ``IDSelectorBitmap`` (the same selector applies a
modality filter), so a filtered search looks only at the rows it may return. float16 storage maps to
faiss's ``SQfp16`` codes. Inner product on unit vectors = cosine similarity.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

KINDS = ("flat", "ivf", "hnsw")
ADD_CHUNK = 65536
DEFAULTS: dict[str, dict[str, Any]] = {
    "flat": {},
    # nlist None: sqrt(rows) lists (at least 39 training rows each; fewer lists than faiss's 4-16 sqrt(rows)
    # advice keeps training and adding 1M rows to about a minute on 2 CPU cores); nprobe None: nlist / 16,
    # at least 8 (~6% of the rows scanned: recall@10 ~1.0 on clustered data, bench/search.py)
    "ivf": {"nlist": None, "nprobe": None, "train_rows_per_list": 64},
    "hnsw": {"M": 32, "ef_construction": 80, "ef_search": 128},
}


def import_faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise ConfigError("the faiss index backends need faiss: pip install faiss-cpu "
                          "(or pip install 'bind[index]')") from None
    return faiss


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def check_options(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """The backend's defaults overridden by ``options``; unknown keys are an error."""
    unknown = set(options) - set(DEFAULTS[kind])
    if unknown:
        known = ", ".join(sorted(DEFAULTS[kind])) or "none"
        raise ConfigError(f"unknown option(s) {', '.join(sorted(unknown))} for faiss-{kind}; known: {known}")
    return {**DEFAULTS[kind], **options}


@dataclasses.dataclass
class Ann:
    """One faiss index over slots ``[0, count)``; ``trained_on``: rows the IVF quantiser was trained on."""

    kind: str
    index: Any
    options: dict[str, Any]
    trained_on: int = 0

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    @property
    def nprobe(self) -> int:
        """The IVF lists a search scans: ``options.nprobe``, else nlist / 16, at least 8."""
        nlist = int(self.options["nlist"])
        return int(self.options["nprobe"] or min(nlist, max(8, nlist // 16)))

    @classmethod
    def build(cls, kind: str, vectors: np.ndarray, alive: np.ndarray, options: dict[str, Any]) -> Ann:
        """A new faiss index over every row of ``vectors`` (``[n, d]``); IVF trains on alive rows."""
        faiss = import_faiss()
        dim, half = vectors.shape[1], vectors.dtype == np.float16
        codes = "SQfp16" if half else "Flat"
        options = dict(options)
        trained_on = 0
        if kind == "flat":
            index = faiss.index_factory(dim, codes, faiss.METRIC_INNER_PRODUCT)
        elif kind == "hnsw":
            index = faiss.index_factory(dim, f"HNSW{int(options['M'])},{codes}", faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(options["ef_construction"])
        elif kind == "ivf":
            live = np.flatnonzero(alive)
            nlist = options["nlist"] or max(1, min(int(math.sqrt(len(live))), len(live) // 39))
            index = faiss.index_factory(dim, f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
            sample = min(len(live), int(options["train_rows_per_list"]) * nlist)
            rows = np.sort(np.random.default_rng(0).choice(live, sample, replace=False))
            index.train(np.ascontiguousarray(vectors[rows], dtype=np.float32))
            trained_on, options["nlist"] = len(live), nlist
        else:
            raise ConfigError(f"unknown faiss backend {kind!r}; expected one of {', '.join(KINDS)}")
        ann = cls(kind, index, options, trained_on)
        ann.add(vectors)
        return ann

    def add(self, vectors: np.ndarray) -> None:
        for start in range(0, len(vectors), ADD_CHUNK):
            self.index.add(np.ascontiguousarray(vectors[start : start + ADD_CHUNK], dtype=np.float32))

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """faiss's (scores, slots) ``[q, k]``; slot -1 where fewer than k allowed rows were found."""
        faiss = import_faiss()
        kwargs: dict[str, Any] = {}
        if allowed is not None:
            bits = np.packbits(allowed[: self.count], bitorder="little")
            kwargs["sel"] = faiss.IDSelectorBitmap(self.count, faiss.swig_ptr(bits))
        if self.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=self.nprobe, **kwargs)
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(int(self.options["ef_search"]), k), **kwargs)
        else:
            params = faiss.SearchParameters(**kwargs) if kwargs else None
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores, slots = self.index.search(queries, k, params=params)
        return scores, slots

    def write(self, path: Path) -> None:
        import_faiss().write_index(self.index, str(path))

    @classmethod
    def read(cls, path: Path, kind: str, options: dict[str, Any], trained_on: int) -> Ann:
        return cls(kind, import_faiss().read_index(str(path)), options, trained_on)
