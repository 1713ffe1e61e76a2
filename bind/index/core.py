"""``bind.Index``: items of any modality in one space, searched with a query of any modality.

Every row is a unit vector of the space, so a score is a cosine similarity. Rows live in one
``[slots, dim]`` float32 or float16 array; removing or updating an item leaves a dead slot (skipped by
every search) until more than a quarter of the slots are dead, then the array is compacted.

Backends: ``"exact"`` (chunked matrix products, see :mod:`bind.index.exact`), ``"faiss-flat"``,
``"faiss-ivf"``, ``"faiss-hnsw"`` (:mod:`bind.index.ann`), or ``"auto"``: exact below
:data:`AUTO_THRESHOLD` live items, IVF from there on (when faiss is installed). faiss structures are built
or extended lazily at the first search after a change, and persisted by :meth:`Index.save`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, IndexCorruptError, InputError
from ..experts.api import EmbedResult, as_items, check_on_error
from ..experts.modality import Modality, infer_modality
from ..io import decoding_version, versions
from . import storage
from .ann import Ann, check_options, faiss_available, import_faiss
from .exact import topk
from .folder import FileEntry, FolderReport, scan
from .scores import (
    Calibration,
    CandidateRefs,
    References,
    Scoring,
    candidates,
    corrected,
    parse_method,
    references,
    shipped_scores,
)

if TYPE_CHECKING:
    from ..spaces.base import Space

BACKENDS = ("auto", "exact", "faiss-flat", "faiss-ivf", "faiss-hnsw")
# "auto" switches from exact search to IVF at this many live items: exact search of 1M x 384 float32 rows
# takes ~0.1 s per query on 2 CPU cores (bench/search.py), still fine interactively; beyond, IVF.
AUTO_THRESHOLD = 1_000_000
AUTO_KIND = "ivf"
COMPACT_SHARE = 0.25
log = logging.getLogger("bind.index")
FORMAT = "bind-index"
MANIFEST = "manifest.json"
# Each slot's modality as a small code (its position here), in memory only: saved indexes name modalities
# ("modality" in records.jsonl), so codes never reach the disk and a new Modality cannot shift them.
_CODES = tuple(Modality)
_DTYPES = {"float32": torch.float32, "float16": torch.float16}
# Database-backed Index classes by store name; bind.index.stored registers "milvus" when bind.index is imported.
STORES: dict[str, type[Index]] = {}


@dataclasses.dataclass(frozen=True)
class Hit:
    """One search result: the item's id, its ranking ``score``, modality and metadata; ``cosine`` with the
    query, and ``relevance`` in [0, 1] where the (query modality, item modality) pair is calibrated.

    ``score`` is the hubness-corrected score (:mod:`bind.index.scores`), or the cosine with no correction.
    """

    id: str
    score: float
    modality: Modality
    metadata: dict[str, Any]
    cosine: float | None = None
    relevance: float | None = None


@dataclasses.dataclass
class Entry:
    """A stored item: id, modality, metadata and its (unit) vector in the space."""

    id: str
    modality: Modality
    metadata: dict[str, Any]
    vector: torch.Tensor


@dataclasses.dataclass
class AddResult:
    """What ``add(..., on_error="skip")`` returns, for one item or many: the ids added and the items that failed."""

    ids: list[str]
    failures: list[InputError]


def _parse_dtype(dtype: Any) -> torch.dtype:
    name = str(dtype).removeprefix("torch.").removeprefix("<class 'numpy.").removesuffix("'>")
    if name not in _DTYPES:
        raise ConfigError(f"index dtype must be float32 or float16, got {dtype!r}")
    return _DTYPES[name]


def _json_safe(value: dict[str, Any], item_id: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"metadata of {item_id!r} must be a dict, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"metadata of {item_id!r} must be JSON-serialisable: {exc}") from None


def _is_path(item: Any) -> bool:
    return isinstance(item, os.PathLike) or (isinstance(item, str) and len(item) < 4096 and os.path.isfile(item))


def _codes_of(value: str | Modality | Iterable[str | Modality]) -> set[int]:
    """The codes of a result filter: a modality or several (a bad name raises ConfigError)."""
    values = [value] if isinstance(value, (str, Modality)) else list(value)
    return {_CODES.index(Modality.parse(v)) for v in values}


def _refuse_modality(method: str, modality: Any, query_note: str) -> None:
    """``modality`` always names the input's modality; Index's result filter is ``result_modality``."""
    if modality is not None:
        raise ConfigError(f"Index.{method}(modality=...) was the result filter: use result_modality=...; "
                          f"{query_note}")


@versions.migration("index", 1)
def _index_from_version_1(manifest: dict[str, Any]) -> dict[str, Any]:
    """Version 1 manifests (and records, which name modalities) have version 2's layout: unchanged."""
    return manifest


@versions.migration("index", 2)
def _index_from_version_2(manifest: dict[str, Any]) -> dict[str, Any]:
    """Version 2 recorded no checksums: such an index loads unverified until its next save records them."""
    return {**manifest, "files": None}


@versions.migration("index", 3)
def _index_from_version_3(manifest: dict[str, Any]) -> dict[str, Any]:
    """Version 3 had no score settings: the default hubness correction, the own-items bank, no calibration."""
    return {**manifest, "scoring": Scoring().to_dict(), "banks": [], "calibration": {}}


class Index:
    """Items of any modality, embedded by one space, with exact or approximate top-k search.

    Example::

        index = bind.Index(space)
        index.add(["photos/cat.jpg", "a dog barking"], metadata=[{"src": "a"}, {"src": "b"}])
        index.search("a cat", k=5, result_modality="image")   # -> [Hit(id, score, modality, metadata), ...]
        index.save("my.index");  bind.Index.load("my.index")

    ``backend``: ``"auto"`` (exact below :data:`AUTO_THRESHOLD` items, then IVF), ``"exact"``,
    ``"faiss-flat"``, ``"faiss-ivf"`` or ``"faiss-hnsw"``. ``dtype``: float32 or float16 storage (float16
    halves memory; scores agree to ~1e-3). ``options``: backend parameters (:data:`bind.index.ann.DEFAULTS`:
    IVF ``nlist``/``nprobe``, HNSW ``M``/``ef_construction``/``ef_search``). Not thread-safe for writes.
    ``scoring``: the hubness correction searches apply by default (a :class:`Scoring` or a method name of
    :data:`bind.index.scores.METHODS`); ``calibration``: relevance maps per modality pair (default: the
    space's own, when it ships one for its identity). Both are saved with the index.

    ``store="milvus"`` with ``uri=`` (a ``.db`` file: embedded Milvus Lite; or a server, ``http://host:19530``)
    and ``collection=`` keeps the items in a vector database instead of this process's memory: see
    :class:`bind.index.stored.StoredIndex`.
    """

    def __new__(cls, *args: Any, store: str | None = None, **kwargs: Any) -> Index:
        if store is not None and cls is Index:
            if store not in STORES:
                raise ConfigError(f"unknown index store {store!r}; expected one of {', '.join(STORES) or 'none'}")
            return super().__new__(STORES[store])
        return super().__new__(cls)

    def __init__(self, space: Space, backend: str = "auto", dtype: Any = torch.float32, *,
                 options: dict[str, Any] | None = None, scoring: Scoring | str | None = None,
                 calibration: Calibration | None = None) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"unknown index backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        kind = AUTO_KIND if backend == "auto" else backend.removeprefix("faiss-") if backend != "exact" else None
        if kind is None and options:
            raise ConfigError(f"the exact backend takes no options, got {', '.join(sorted(options))}")
        if backend.startswith("faiss-"):
            import_faiss()
        self.space = space
        self.dim = int(space.dim)
        self.identity = space.identity  # computed once: a hash of every weight of the space
        self.backend = backend
        self.dtype = _parse_dtype(dtype)
        self.options = check_options(kind, dict(options or {})) if kind else {}
        self._vectors = np.empty((0, self.dim), np.float16 if self.dtype == torch.float16 else np.float32)
        self._alive = np.zeros(0, bool)
        self._codes = np.zeros(0, np.int8)
        self._ids: list[str | None] = []
        self._metadata: list[dict[str, Any] | None] = []
        self._sources: list[dict[str, Any] | None] = []
        self._slot: dict[str, int] = {}
        self._ann: Ann | None = None
        self._next_auto = 0
        self._warned_auto = False
        self.scoring = Scoring(scoring) if isinstance(scoring, str) else scoring or Scoring()
        shipped_calibration, self._shipped_banks = shipped_scores(space, self.identity)
        self.calibration = calibration if calibration is not None else shipped_calibration
        self._banks: dict[Modality, np.ndarray] = {}  # query banks set by the user, by query modality
        # per query modality: (references or None, slots covered, _kills and _bank_sets when computed)
        self._refs: dict[Modality, tuple[References | None, int, int, int]] = {}
        self._kills = 0
        self._bank_sets = 0

    # --- inspection ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._slot

    def __repr__(self) -> str:
        return (f"Index({len(self)} items, dim={self.dim}, backend={self.backend!r} "
                f"(searching with {self.active_backend}), dtype={str(self.dtype).removeprefix('torch.')})")

    @property
    def ids(self) -> list[str]:
        """The ids of the stored items, oldest first."""
        return [i for i in self._ids if i is not None]

    @property
    def active_backend(self) -> str:
        """What a search uses now: "exact" or a "faiss-..." backend (``"auto"`` decides by size)."""
        kind = self._ann_kind()
        return "exact" if kind is None else f"faiss-{kind}"

    def entry(self, item_id: str) -> Entry:
        """The stored item ``item_id`` (KeyError when absent)."""
        slot = self._find(item_id)
        vector = torch.from_numpy(np.array(self._vectors[slot], dtype=np.float32))
        return Entry(item_id, _CODES[self._codes[slot]], dict(self._metadata[slot] or {}), vector)

    def _find(self, item_id: str) -> int:
        try:
            return self._slot[item_id]
        except KeyError:
            raise KeyError(f"no item with id {item_id!r} in the index") from None

    # --- adding, removing, updating --------------------------------------------------------------------
    def add(self, items: Any, ids: str | Sequence[str] | None = None, modality: str | Modality | None = None,
            metadata: dict[str, Any] | Sequence[dict[str, Any]] | None = None, *,
            on_error: Literal["raise", "skip"] = "raise", batch_size: int = 32, progress: bool = False,
            num_workers: int | None = None, sample_rate: int | None = None) -> str | list[str] | AddResult:
        """Embed ``items`` (paths or in-memory items, of one or several modalities) and store them.

        ``items``: one item or a list (as for :func:`bind.embed`). ``ids``: one per item, new to the index
        (default: a file's path, else the next free number). ``modality``: the inputs' modality (inferred
        per item when None). ``metadata``: a dict per item (JSON-able); items given as file paths get
        ``metadata["path"]``. Returns the id (one item) or the ids (a list) added; with ``on_error="skip"``
        an :class:`AddResult` that also lists the items that failed (nothing is added for them). With
        ``on_error="raise"`` a bad item raises InputError and nothing is added. ``progress``/``num_workers``
        go to ``space.embed``.
        """
        check_on_error(on_error)
        items, single = as_items(items)
        item_ids = self._new_ids(items, ids, single)
        metas = self._metadata_list(items, item_ids, metadata, single)
        wanted = Modality.parse(modality) if modality is not None else None
        result = self.space.embed(items, wanted, batch_size=batch_size, on_error=on_error, progress=progress,
                                  num_workers=num_workers, sample_rate=sample_rate)
        if not isinstance(result, EmbedResult):  # on_error="raise" and every item embedded
            result = EmbedResult(result.reshape(len(items), self.dim), list(range(len(items))), [])
        modalities = [wanted or self._modality_of(items[i], sample_rate) for i in result.indices]
        kept = [item_ids[i] for i in result.indices]
        self._append(kept, result.embeddings, modalities, [metas[i] for i in result.indices])
        if on_error == "skip":
            return AddResult(kept, result.failures)
        return kept[0] if single else kept

    def add_vectors(self, vectors: Any, ids: Sequence[str], modality: str | Modality | Sequence[str | Modality],
                    metadata: Sequence[dict[str, Any]] | None = None) -> None:
        """Store precomputed space embeddings ``[N, dim]`` (e.g. merged per-rank shards); re-normalised."""
        matrix = self._query_matrix(vectors)
        ids = list(ids)
        if len(ids) != len(matrix):
            raise ConfigError(f"{len(matrix)} vectors but {len(ids)} ids")
        self._check_new(ids)
        mods = [modality] * len(ids) if isinstance(modality, (str, Modality)) else list(modality)
        if len(mods) != len(ids):
            raise ConfigError(f"{len(ids)} ids but {len(mods)} modalities")
        metas = [_json_safe(m, i) for m, i in zip(metadata, ids)] if metadata is not None else [{} for _ in ids]
        if len(metas) != len(ids):
            raise ConfigError(f"{len(ids)} ids but {len(metas)} metadata dicts")
        self._append(ids, matrix, [Modality.parse(m) for m in mods], metas)

    def remove(self, ids: str | Iterable[str]) -> None:
        """Remove items by id; an unknown id raises KeyError and nothing is removed."""
        ids = [ids] if isinstance(ids, str) else list(ids)
        present = set(self._present(ids))
        missing = [i for i in ids if i not in present]
        if missing:
            raise KeyError(f"no item with id {', '.join(map(repr, missing[:5]))} in the index")
        self._delete(ids)

    def _delete(self, ids: list[str]) -> None:
        """Drop stored items (every one of ``ids`` is stored)."""
        for item_id in ids:
            self._kill(self._slot[item_id])
        self._maybe_compact()

    def update(self, item_id: str, item: Any, modality: str | Modality | None = None,
               metadata: dict[str, Any] | None = None, *, sample_rate: int | None = None) -> None:
        """Re-embed ``item`` as ``item_id`` (which must exist); metadata is kept unless given.

        A bad item raises InputError and leaves the stored one untouched.
        """
        meta = _json_safe(metadata, item_id) if metadata is not None else self.entry(item_id).metadata
        if _is_path(item):
            meta = {**meta, "path": str(item)}
        wanted = Modality.parse(modality) if modality is not None else None
        vector = self.space.embed([item], wanted, sample_rate=sample_rate)
        self._append([item_id], vector, [wanted or self._modality_of(item, sample_rate)], [meta])

    def _modality_of(self, item: Any, sample_rate: int | None) -> Modality:
        return infer_modality(item, sample_rate)  # the rule Space.embed applied to the same item

    def _new_ids(self, items: list[Any], ids: str | Sequence[str] | None, single: bool) -> list[str]:
        if ids is None:  # the counter moves on only when the items are stored (_append)
            out, number = [], self._next_auto
            for item in items:  # every numeric id stored so far is below _next_auto
                if _is_path(item):
                    out.append(str(item))
                    continue
                out.append(str(number))
                number += 1
        else:
            out = [ids] if isinstance(ids, str) else list(ids)
            if single and len(out) != 1 or len(out) != len(items):
                raise ConfigError(f"{len(items)} items but {len(out)} ids")
        self._check_new(out)
        return out

    def _check_new(self, ids: list[str]) -> None:
        bad = [i for i in ids if not isinstance(i, str) or not i]
        if bad:
            raise ConfigError(f"ids must be non-empty strings, got {bad[0]!r}")
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ConfigError(f"id {dup!r} is given twice")
        present = self._present(ids)
        if present:
            raise ConfigError(f"id {present[0]!r} is already in the index; use index.update(id, item) to replace it")

    def _present(self, ids: list[str]) -> list[str]:
        """Those of ``ids`` that are stored."""
        return [i for i in ids if i in self._slot]

    def _metadata_list(self, items: list[Any], ids: list[str], metadata: Any, single: bool) -> list[dict[str, Any]]:
        if metadata is None:
            metas: list[dict[str, Any]] = [{} for _ in items]
        elif isinstance(metadata, dict):
            if not single and len(items) != 1:
                raise ConfigError("pass one metadata dict per item (a list) when adding several items")
            metas = [metadata]
        else:
            metas = list(metadata)
            if len(metas) != len(items):
                raise ConfigError(f"{len(items)} items but {len(metas)} metadata dicts")
        out = []
        for item, item_id, meta in zip(items, ids, metas):
            meta = _json_safe(meta, item_id)
            if _is_path(item):
                meta.setdefault("path", str(item))
            out.append(meta)
        return out

    # --- storage -----------------------------------------------------------------------------------------
    def _append(self, ids: list[str], vectors: Any, modalities: list[Modality], metadata: list[dict[str, Any]],
                sources: list[dict[str, Any] | None] | None = None) -> None:
        """Store rows (replacing items with the same ids); the vectors are l2-normalised here."""
        if not ids:
            return
        matrix = self._query_matrix(vectors)
        for item_id in ids:
            if item_id in self._slot:
                self._kill(self._slot[item_id])
        start, count = len(self._ids), len(ids)
        self._reserve(start + count)
        self._vectors[start : start + count] = matrix.numpy()
        self._alive[start : start + count] = True
        self._codes[start : start + count] = [_CODES.index(m) for m in modalities]
        self._ids.extend(ids)
        self._metadata.extend(metadata)
        self._sources.extend(sources or [None] * count)
        self._slot.update((item_id, start + i) for i, item_id in enumerate(ids))
        self._advance_auto(ids)
        self._maybe_compact()

    def _advance_auto(self, ids: list[str]) -> None:
        """Keep the next automatic id above every numeric id stored."""
        self._next_auto = max([self._next_auto] + [int(i) + 1 for i in ids if i.isascii() and i.isdigit()])

    def _reserve(self, rows: int) -> None:
        capacity = len(self._vectors)
        if rows <= capacity:
            return
        capacity = max(rows, int(capacity * 1.5), 1024)
        grown = np.empty((capacity, self.dim), self._vectors.dtype)
        grown[: len(self._ids)] = self._vectors[: len(self._ids)]
        self._vectors = grown
        for name, dtype in (("_alive", bool), ("_codes", np.int8)):
            array = np.zeros(capacity, dtype)
            array[: len(self._ids)] = getattr(self, name)[: len(self._ids)]
            setattr(self, name, array)

    def _kill(self, slot: int) -> None:
        del self._slot[self._ids[slot]]  # type: ignore[arg-type]
        self._alive[slot] = False
        self._ids[slot] = self._metadata[slot] = self._sources[slot] = None
        self._kills += 1

    def _maybe_compact(self) -> None:
        slots = len(self._ids)
        if slots - len(self._slot) <= COMPACT_SHARE * slots:
            return
        keep = np.flatnonzero(self._alive[:slots])
        self._vectors = self._vectors[keep]
        self._alive = np.ones(len(keep), bool)
        self._codes = self._codes[keep]
        self._ids = [self._ids[i] for i in keep]
        self._metadata = [self._metadata[i] for i in keep]
        self._sources = [self._sources[i] for i in keep]
        self._slot = {item_id: i for i, item_id in enumerate(self._ids)}  # type: ignore[misc]
        self._ann = None  # slot numbers changed: rebuilt at the next search
        self._kills += 1  # and the score references with it

    # --- search ------------------------------------------------------------------------------------------
    def search(self, query: Any = None, k: int = 10, *,
               result_modality: str | Modality | Iterable[str | Modality] | None = None,
               query_modality: str | Modality | None = None, compose: Sequence[tuple[Any, ...]] | None = None,
               correction: str | bool | None = None, min_score: float | None = None,
               batch_size: int = 32, sample_rate: int | None = None,
               modality: Any = None) -> list[Hit] | list[list[Hit]]:
        """The ``k`` stored items closest to a query, best first.

        ``query``: one item of any modality of the space (text, path, image, ...), a list of them (a batch:
        returns one list of hits per query), or raw vectors (a float tensor/array ``[dim]`` or ``[q, dim]``).
        ``query_modality``: the query's modality, for a query that could be two things (a 1-D audio array,
        bytes); it also makes an array an item to embed rather than a vector. ``compose``: instead of
        ``query``, weighted terms ``[(item, weight), ...]`` or ``(item, weight, modality)`` combined by
        ``space.compose`` into one query. ``result_modality``: only return items of this modality (or these
        modalities); still ``k`` hits when that many exist. ``correction``: the hubness correction of this
        search (a method of :data:`bind.index.scores.METHODS`, True, or False for plain cosines; default: the
        index's ``scoring``). ``min_score``: drop hits whose calibrated relevance is below it (ConfigError when
        a pair has no calibration). Hits are ranked by relevance where every pair of the search is calibrated,
        else by score. ``modality=`` is refused (ConfigError): it names an input's modality everywhere in
        bind, and here was once the result filter.
        """
        _refuse_modality("search", modality, "the query's own modality is query_modality=...")
        if not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        wanted = Modality.parse(query_modality) if query_modality is not None else None
        if compose is not None:
            if query is not None:
                raise ConfigError("pass a query or compose=[(item, weight), ...], not both")
            if wanted is not None:
                raise ConfigError("query_modality applies to query=...; give a compose term its modality as "
                                  "(item, weight, modality)")
            vectors, single = self.space.compose(compose, batch_size=batch_size, sample_rate=sample_rate)[None], True
            kinds: Modality | list[Modality] | None = None  # a blend of modalities: no one bank fits it
        elif query is None:
            raise ConfigError("search needs a query (an item, a list of items or vectors) or compose=...")
        elif wanted is None and self._vector_query(query):
            single = not isinstance(query, (list, tuple)) and np.ndim(query) == 1
            vectors, kinds = query, wanted
        else:
            items, single = as_items(query)
            vectors = self.space.embed(items, wanted, batch_size=batch_size, sample_rate=sample_rate)
            kinds = [wanted or self._modality_of(item, sample_rate) for item in items]
        hits = self.search_vectors(vectors, k, result_modality=result_modality, query_modality=kinds,
                                   correction=correction, min_score=min_score)
        return hits[0] if single else hits

    def _vector_query(self, query: Any) -> bool:
        def is_vector(x: Any) -> bool:
            return (isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim in (1, 2) and x.shape[-1] == self.dim
                    and (x.dtype.is_floating_point if isinstance(x, torch.Tensor) else x.dtype.kind == "f"))

        if isinstance(query, (list, tuple)):
            return bool(query) and all(is_vector(q) and q.ndim == 1 for q in query)
        return is_vector(query)

    def _query_matrix(self, vectors: Any) -> torch.Tensor:
        """Unit float32 rows ``[q, dim]`` from a tensor, array or list of vectors; bad rows raise."""
        if isinstance(vectors, (list, tuple)):
            vectors = torch.stack([torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v)
                                   for v in vectors]) if vectors else torch.empty(0, self.dim)
        matrix = torch.as_tensor(vectors).detach().to("cpu", torch.float32)
        matrix = matrix[None] if matrix.ndim == 1 else matrix
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ConfigError(f"vectors must be [{self.dim}] or [N, {self.dim}], got {tuple(matrix.shape)}")
        norms = matrix.norm(dim=1)
        bad = (~torch.isfinite(norms) | (norms < 1e-12)).nonzero()
        if len(bad):
            row = int(bad[0])
            raise InputError(matrix[row], "a vector with non-finite values or zero norm", row)
        return F.normalize(matrix, dim=1)

    def search_vectors(self, vectors: Any, k: int = 10, *,
                       result_modality: str | Modality | Iterable[str | Modality] | None = None,
                       query_modality: str | Modality | Sequence[str | Modality | None] | None = None,
                       correction: str | bool | None = None, min_score: float | None = None,
                       modality: Any = None) -> list[list[Hit]]:
        """Top-``k`` hits for each query vector (``[dim]`` or ``[q, dim]``, normalised here), only of
        ``result_modality`` (a modality or several) when given. ``query_modality`` (one, or one per vector)
        picks the query bank of the hubness correction; without it vectors are ranked by cosine.
        ``correction`` and ``min_score`` as in :meth:`search`; ``modality=`` is refused (ConfigError)."""
        _refuse_modality("search_vectors", modality, "query vectors have no modality; use query_modality=...")
        queries = self._query_matrix(vectors)
        method = parse_method(correction, self.scoring.method)
        kinds = self._query_kinds(query_modality, len(queries))
        slots = len(self._ids)
        allowed = None
        if result_modality is not None:
            allowed = self._alive[:slots] & np.isin(self._codes[:slots], list(_codes_of(result_modality)))
        elif len(self._slot) < slots:
            allowed = self._alive[:slots]
        ann = self._sync_ann()
        matrix = torch.from_numpy(self._vectors[:slots])
        mask = torch.from_numpy(allowed) if allowed is not None else None
        wanted_k = k
        if method != "none" and any(kind is not None for kind in kinds):
            k = candidates(k, len(self._slot) if allowed is None else int(allowed.sum()))
        if ann is None:
            scores, rows = topk(queries, matrix, k, mask)
            scores, rows = scores.numpy(), rows.numpy()
        else:
            want = min(k, slots if allowed is None else int(allowed.sum()))
            scores, rows = ann.search(queries.numpy(), want, allowed) if want else (
                np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64))
            short = np.flatnonzero((rows >= 0).sum(axis=1) < want)
            if len(short):  # a filter the ANN probes could not satisfy: exact search over the allowed rows
                exact_scores, exact_rows = topk(queries[short], matrix, want, mask)
                scores[short], rows[short] = exact_scores.numpy(), exact_rows.numpy()
        return [self._ranked(scores[i], rows[i], kinds[i], method, wanted_k, min_score) for i in range(len(queries))]

    def _query_kinds(self, value: Any, count: int) -> list[Modality | None]:
        if value is None or isinstance(value, (str, Modality)):
            return [None if value is None else Modality.parse(value)] * count
        kinds = [None if v is None else Modality.parse(v) for v in value]
        if len(kinds) != count:
            raise ConfigError(f"query_modality names {len(kinds)} modalities for {count} query vectors")
        return kinds

    def _ranked(self, cosines: np.ndarray, rows: np.ndarray, kind: Modality | None, method: str, k: int,
                min_score: float | None) -> list[Hit]:
        """One query's hits from its candidate slots ``rows`` (best cosine first; -1 pads)."""
        keep = rows >= 0
        cosines, rows = cosines[keep], rows[keep]
        found = [(self._ids[r], _CODES[self._codes[r]], self._metadata[r]) for r in rows]
        refs = self._references(kind) if kind is not None and method != "none" else None
        return self._finish(cosines, found, None if refs is None else refs.at(rows), kind, method, k, min_score)

    def _finish(self, cosines: np.ndarray, found: list[tuple[str | None, Modality, dict[str, Any] | None]],
                refs: CandidateRefs | None, kind: Modality | None, method: str, k: int,
                min_score: float | None) -> list[Hit]:
        """One query's hits: candidates ``found`` (id, modality, metadata; best cosine first) re-scored under
        ``method`` with their references ``refs`` (None: no correction), ranked, calibrated, cut to ``k``."""
        used = method if kind is not None and refs is not None else "none"
        scores = corrected(used, cosines, refs, self.scoring.k)
        hits = [Hit(item_id, float(s), modality, dict(metadata or {}), float(c),  # type: ignore[arg-type]
                    self.calibration.relevance(used, kind, modality, float(s)))
                for s, c, (item_id, modality, metadata) in zip(scores, cosines, found)]
        present = {hit.modality for hit in hits}
        calibrated = self.calibration.covers(used, kind, present)
        if min_score is not None and not calibrated:
            pairs = ", ".join(sorted(f"{kind.value if kind else 'vector'}->{m.value}" for m in present))
            raise ConfigError(f"min_score needs a calibrated relevance, and this search's pairs ({pairs}) under "
                              f"correction {used!r} have no calibration in this index")
        hits.sort(key=lambda hit: -(hit.relevance if calibrated else hit.score))  # type: ignore[operator]
        if min_score is not None:
            hits = [hit for hit in hits if hit.relevance >= min_score]  # type: ignore[operator]
        return hits[:k]

    # --- score references ----------------------------------------------------------------------------------
    def set_query_bank(self, items: Any, modality: str | Modality, *, batch_size: int = 32,
                       sample_rate: int | None = None) -> None:
        """Use ``items`` (items of ``modality``, or their ``[n, dim]`` space embeddings) as the query bank
        of the hubness correction for queries of ``modality``, instead of the index's own items of that
        modality: e.g. a log of real queries. Saved with the index."""
        kind = Modality.parse(modality)
        vectors = items if self._vector_query(items) and np.ndim(items) == 2 else self.space.embed(
            as_items(items)[0], kind, batch_size=batch_size, sample_rate=sample_rate)
        bank = self._query_matrix(vectors).numpy()
        if len(bank) < self.scoring.k:
            raise ConfigError(f"a query bank needs at least k = {self.scoring.k} items, got {len(bank)}")
        self._banks[kind] = bank
        self._bank_sets += 1

    def _references(self, kind: Modality) -> References | None:
        """Every slot's references against ``kind``'s bank, or None without a bank of at least k + 1 items.

        Kept between searches: appends that leave the bank as it is (a set or shipped bank, or items of
        other modalities) only compute the new slots; a removal or a new bank recomputes them all.
        """
        slots = len(self._ids)
        code = _CODES.index(kind)
        cached = self._refs.get(kind)
        if cached is not None and cached[2:] == (self._kills, self._bank_sets):
            refs, covered = cached[0], cached[1]
            fixed_bank = kind in self._banks or kind in self._shipped_banks
            if covered == slots:
                return refs
            if refs is not None and (fixed_bank or not (self._codes[covered:slots] == code).any()):
                bank, _ = self._bank(kind)
                new = references(self._vectors[covered:slots], self._alive[covered:slots], bank, None, self.scoring)
                refs = refs.extended(new, covered)
                self._refs[kind] = (refs, slots, self._kills, self._bank_sets)
                return refs
        bank, bank_slots = self._bank(kind)
        enough = len(bank) >= self.scoring.k + (bank_slots is not None)
        refs = references(self._vectors[:slots], self._alive[:slots], bank, bank_slots, self.scoring) if enough else None
        self._refs[kind] = (refs, slots, self._kills, self._bank_sets)
        return refs

    def _bank(self, kind: Modality) -> tuple[np.ndarray, np.ndarray | None]:
        """``kind``'s query bank: the one set, else the space's, else own live items (with their slots)."""
        if kind in self._banks or kind in self._shipped_banks:
            return self._banks.get(kind, self._shipped_banks.get(kind)), None
        slots = len(self._ids)
        bank_slots = np.flatnonzero(self._alive[:slots] & (self._codes[:slots] == _CODES.index(kind)))
        if len(bank_slots) > self.scoring.bank_size:
            bank_slots = bank_slots[np.linspace(0, len(bank_slots) - 1, self.scoring.bank_size).round().astype(int)]
        return np.asarray(self._vectors[bank_slots], np.float32), bank_slots

    def _ann_kind(self) -> str | None:
        if self.backend == "exact":
            return None
        if self.backend == "auto":
            if len(self) < AUTO_THRESHOLD:
                return None
            if not faiss_available():
                if not self._warned_auto:
                    warnings.warn(f"{len(self)} items: backend='auto' would use faiss IVF but faiss is not "
                                  f"installed (pip install faiss-cpu); searching exactly", RuntimeWarning,
                                  stacklevel=3)
                    self._warned_auto = True
                return None
            return AUTO_KIND
        return self.backend.removeprefix("faiss-")

    def _sync_ann(self) -> Ann | None:
        """The faiss structure covering every slot (built, extended or rebuilt as needed), or None."""
        kind = self._ann_kind()
        slots = len(self._ids)
        if kind is None or not self._slot:
            self._ann = None
            return None
        ann = self._ann
        if ann is not None and (ann.kind != kind or (kind == "ivf" and len(self) > 4 * ann.trained_on)):
            ann = None  # IVF lists trained on a quarter of today's rows: retrain
        if ann is None:
            ann = Ann.build(kind, self._vectors[:slots], self._alive[:slots], self.options)
        elif ann.count < slots:
            ann.add(self._vectors[ann.count : slots])
        self._ann = ann
        return ann

    # --- folders -----------------------------------------------------------------------------------------
    def add_folder(self, folder: str | os.PathLike, *, prefix: str = "", extensions: Iterable[str] | None = None,
                   recursive: bool = True, batch_size: int = 32, chunk_size: int = 256, progress: bool = True,
                   sample_rate: int | None = None, exclude: Iterable[str | os.PathLike] = ()) -> FolderReport:
        """Index the media files under ``folder`` incrementally; returns what changed and what failed.

        An item's id is ``prefix`` + the file's path relative to ``folder``. A file whose size and mtime
        are unchanged since the last run is skipped without reading it; a changed one is hashed (sha256)
        and re-embedded only when its content changed; a file whose content is already in the index
        (renamed, copied) reuses that embedding. Items of this folder whose files are gone are removed.
        A file embedded under an older decoding version (:data:`bind.io.DECODING_VERSIONS`) is re-embedded.
        Bad files (unreadable, corrupt, not regular files, or of a modality the space lacks) are skipped and
        reported. Saved bind indexes inside ``folder``, and the folders in ``exclude``, are not indexed.
        """
        from tqdm.auto import tqdm

        from ..experts.cache import content_hash

        root = Path(folder).expanduser().resolve()
        if not root.is_dir():
            raise ConfigError(f"cannot index {root}: not a folder")
        entries, ignored, unreadable = scan(root, extensions, recursive, [Path(p) for p in exclude])
        report = FolderReport(ignored=ignored, failures=unreadable)
        stored = self._sources_of([prefix + entry.relative for entry in entries])
        seen: set[str] = set()
        todo: list[tuple[FileEntry, str, dict[str, Any]]] = []
        touched: list[tuple[str, dict[str, Any]]] = []
        for entry in entries:
            item_id = prefix + entry.relative
            seen.add(item_id)
            if entry.modality not in self.space.modalities:
                report.failures.append(InputError(str(entry.path), f"this space has no {entry.modality.value} path "
                                       f"(it embeds {', '.join(sorted(m.value for m in self.space.modalities))})"))
                continue
            old, old_modality = stored.get(item_id, (None, None))
            decoding = decoding_version(entry.modality)
            current = old is not None and old.get("decoding", 1) == decoding  # else: re-embed under today's rules
            if current and old["root"] == str(root) and (old["mtime_ns"], old["size"]) == (entry.mtime_ns, entry.size):
                report.unchanged += 1
                continue
            try:
                digest = content_hash(entry.path, entry.modality)
            except InputError as exc:
                report.failures.append(exc)
                continue
            source = {"root": str(root), "prefix": prefix, "path": entry.relative, "mtime_ns": entry.mtime_ns,
                      "size": entry.size, "sha256": digest, "decoding": decoding}
            if current and old["sha256"] == digest and old_modality == entry.modality:
                touched.append((item_id, source))  # touched, same content
                report.unchanged += 1
                continue
            todo.append((entry, item_id, source))
        self._set_sources(touched)
        groups: dict[tuple[str, Modality], list[tuple[FileEntry, str, dict[str, Any]]]] = {}
        for task in todo:
            groups.setdefault((task[2]["sha256"], task[0].modality), []).append(task)
        known = self._vectors_by_content(set(groups))
        gone = [i for i in self._ids_from(str(root), prefix) if i not in seen]
        if gone:  # after taking the vectors a moved file reuses
            self.remove(gone)
            report.removed.extend(gone)
        self._store_files(groups, known, set(stored), report, batch_size=batch_size, chunk_size=chunk_size,
                          progress=progress, sample_rate=sample_rate, desc=f"index {root.name}", tqdm=tqdm)
        return report

    def _sources_of(self, ids: list[str]) -> dict[str, tuple[dict[str, Any] | None, Modality]]:
        """The file source record (None for items not added from a folder) and modality of each stored id."""
        return {i: (self._sources[s], _CODES[self._codes[s]]) for i in ids if (s := self._slot.get(i)) is not None}

    def _set_sources(self, sources: list[tuple[str, dict[str, Any]]]) -> None:
        """Record new source records (a touched file with the same content) for stored ids."""
        for item_id, source in sources:
            self._sources[self._slot[item_id]] = source

    def _vectors_by_content(self, keys: set[tuple[str, Modality]]) -> dict[tuple[str, Modality], torch.Tensor]:
        """Stored vectors of files with these (sha256, modality), embedded under today's decoding rules."""
        slots = {(src["sha256"], _CODES[self._codes[s]]): s for s in self._slot.values()
                 if (src := self._sources[s]) is not None
                 and src.get("decoding", 1) == decoding_version(_CODES[self._codes[s]])}
        return {key: torch.from_numpy(self._vectors[slots[key]].astype(np.float32)) for key in keys if key in slots}

    def _ids_from(self, root: str, prefix: str) -> list[str]:
        """The stored ids added from folder ``root`` with ``prefix``."""
        return [i for i, s in self._slot.items()
                if (src := self._sources[s]) is not None and src["root"] == root and src["prefix"] == prefix]

    def _store_files(self, groups: dict[tuple[str, Modality], list[tuple[FileEntry, str, dict[str, Any]]]],
                     known: dict[tuple[str, Modality], torch.Tensor], stored: set[str], report: FolderReport, *,
                     batch_size: int, chunk_size: int, progress: bool, sample_rate: int | None, desc: str,
                     tqdm: Any) -> None:
        """Reuse ``known`` embeddings (by content hash and modality); embed the other groups of files with the
        same content chunk by chunk, storing each chunk (in one write) as it is done. ``stored``: the ids
        stored before."""

        def store(done: list[tuple[list[tuple[FileEntry, str, dict[str, Any]]], torch.Tensor]]) -> None:
            tasks = [(task, vector) for group, vector in done for task in group]
            for (entry, item_id, source), _ in tasks:
                (report.updated if item_id in stored else report.added).append(item_id)
            if tasks:
                self._append([t[1] for t, _ in tasks], torch.stack([v for _, v in tasks]),
                             [t[0].modality for t, _ in tasks], [{"path": str(t[0].path)} for t, _ in tasks],
                             [t[2] for t, _ in tasks])

        pending: dict[Modality, list[list[tuple[FileEntry, str, dict[str, Any]]]]] = {}
        for key, tasks in groups.items():
            if key not in known:
                pending.setdefault(tasks[0][0].modality, []).append(tasks)
        store([(tasks, known[key]) for key, tasks in groups.items() if key in known])
        bar = tqdm(total=sum(map(len, pending.values())), desc=desc, unit="file", disable=not progress)
        try:
            for modality, task_groups in pending.items():
                for start in range(0, len(task_groups), chunk_size):
                    chunk = task_groups[start : start + chunk_size]
                    result = self.space.embed([g[0][0].path for g in chunk], modality, batch_size=batch_size,
                                              on_error="skip", sample_rate=sample_rate)
                    assert isinstance(result, EmbedResult)
                    store([(chunk[position], row) for row, position in zip(result.embeddings, result.indices)])
                    report.embedded += len(result.indices)
                    for failure in result.failures:
                        tasks = chunk[failure.index or 0]
                        report.failures.extend(InputError(str(t[0].path), failure.reason) for t in tasks)
                        stale = [t[1] for t in tasks if t[1] in stored]  # a file that went bad
                        if stale:
                            self.remove(stale)
                            report.removed.extend(stale)
                    bar.update(len(chunk))
        finally:
            bar.close()

    @classmethod
    def build_from_folder(cls, folder: str | os.PathLike, space: Space | None = None, *, out: str | os.PathLike | None = None,
                          backend: str = "auto", dtype: Any = torch.float32, options: dict[str, Any] | None = None,
                          wait: float = 0.0, store: str | None = None, uri: str | os.PathLike | None = None,
                          collection: str = "bind", **add_options: Any) -> tuple[Index, FolderReport]:
        """Index ``folder`` with ``space``; with ``out``, continue the index saved there (incremental; its
        backend settings are kept, and ``space`` may be left out to use the saved one) and save the result
        back. With ``store``/``uri``/``collection`` instead, build into (or continue) a database-backed index.
        ``add_options`` go to :meth:`add_folder`. Returns the index and this run's :class:`FolderReport`.

        With ``out``, the whole load-add-save holds ``out``'s writer lock: a second build into the same folder
        waits up to ``wait`` seconds, then raises IndexLockedError naming the process that holds it.
        """
        if store is not None:
            if out is not None or space is None:
                raise ConfigError("a store build takes a space and no out= (the database holds the index)")
            index = cls(space, backend, dtype, options=options, store=store, uri=uri, collection=collection)
            report = index.add_folder(folder, **add_options)
            index.save()
            return index, report
        if out is None:
            return cls._build(folder, space, None, backend, dtype, options, add_options)
        with storage.writer_lock(out, wait):
            return cls._build(folder, space, out, backend, dtype, options, add_options)

    @classmethod
    def _continue(cls, out: str | os.PathLike, space: Space | None) -> Index | None:
        """The index saved at ``out`` to continue, or None to start anew (none there, or it is damaged and a
        space is given to rebuild it with: every file is then embedded again)."""
        if not (Path(out).expanduser() / storage.POINTER).exists():
            return None
        try:
            return cls.load(out, space)
        except IndexCorruptError as exc:
            if space is None:
                raise IndexCorruptError(f"{exc}; pass a space (--space) to rebuild it") from None
            log.warning("%s; rebuilding it from scratch", exc)
            return None

    @classmethod
    def _build(cls, folder: str | os.PathLike, space: Space | None, out: str | os.PathLike | None, backend: str,
               dtype: Any, options: dict[str, Any] | None, add_options: dict[str, Any]) -> tuple[Index, FolderReport]:
        index = cls._continue(out, space) if out is not None else None
        if index is None:
            if space is None:
                raise ConfigError("building a new index needs a space (space=...)")
            index = cls(space, backend, dtype, options=options)
        if out is not None:
            add_options["exclude"] = [*add_options.get("exclude", ()), out]  # never index the index itself
        report = index.add_folder(folder, **add_options)
        if out is not None:
            index.save(out)
        return index, report

    # --- persistence -------------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the index (and a copy of its space) atomically; returns the version folder written.

        A crash mid-save leaves the previously saved index intact (:mod:`bind.index.storage`). The faiss
        structure the next search would use is built first and saved with it. The manifest records every
        file's size and sha256, checked by :meth:`load`.
        """
        from .. import __version__

        ann = self._sync_ann()
        slots = len(self._ids)
        manifest = {
            "format": FORMAT, "format_version": versions.FORMAT_VERSION, "bind_version": __version__,
            "space_identity": self.identity, "dim": self.dim, "dtype": str(self.dtype).removeprefix("torch."),
            "backend": self.backend, "options": self.options, "slots": slots, "count": len(self),
            "next_auto_id": self._next_auto,
            "ann": None if ann is None else {"kind": ann.kind, "options": ann.options, "trained_on": ann.trained_on},
            "scoring": self.scoring.to_dict(), "banks": sorted(m.value for m in self._banks),
            "calibration": self.calibration.to_dict(),
        }
        records = (None if item_id is None else {"id": item_id, "modality": _CODES[self._codes[i]].value,
                                                 "metadata": self._metadata[i], "source": self._sources[i]}
                   for i, item_id in enumerate(self._ids))

        def write(folder: Path) -> None:
            storage.write_array(folder / "vectors.npy", self._vectors[:slots])
            storage.write_lines(folder / "records.jsonl", records)
            if ann is not None:
                ann.write(folder / "ann.faiss")
            for kind, bank in self._banks.items():
                storage.write_array(folder / f"bank.{kind.value}.npy", bank)
            self.space.save(folder / "space")
            files = storage.checksums(folder, MANIFEST)  # written last, naming every other file
            storage.write_json(folder / MANIFEST, {**manifest, "files": files})

        return storage.save_version(directory, write)

    @classmethod
    def load(cls, directory: str | os.PathLike, space: Space | None = None, *, mmap: bool = False,
             verify: bool = True) -> Index:
        """Read an index written by :meth:`save`.

        ``space``: the space to embed queries with; it must be the one the index was built with (same
        identity), else ConfigError. Default: the copy of the space saved with the index.
        ``mmap``: map the vectors from disk (copy-on-write) instead of reading them into memory.
        Every file's size is checked against the manifest, and with ``verify`` (default) its sha256 and the
        finiteness of every stored vector too; a damaged file raises IndexCorruptError naming it.
        """
        folder = storage.live_version(directory)
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"index {directory} is damaged: {MANIFEST} unreadable ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ConfigError(f"{directory} is not a bind index (manifest.json names no format {FORMAT!r})")
        manifest = versions.upgrade("index", manifest, directory)
        if manifest.get("files"):
            storage.verify(folder, manifest["files"], verify, directory)
        stored = manifest["space_identity"]
        if space is None:
            from ..spaces.persist import load_space

            space = load_space(folder / "space")
            if space.identity != stored:
                raise ConfigError(f"index {directory}: its saved space now has identity {space.identity[:16]}..., "
                                  f"not the {stored[:16]}... it was built with (an expert card or weights "
                                  f"changed); rebuild the index")
        elif space.identity != stored:
            raise ConfigError(f"index {directory} was built with space {stored} and cannot be searched with "
                              f"space {space.identity}: embeddings of different spaces are not comparable; load "
                              f"it with the space it was built with (or without space=...), or rebuild it")
        index = cls(space, manifest["backend"], manifest["dtype"], options=manifest["options"],
                    scoring=Scoring.from_dict(manifest["scoring"]),
                    calibration=Calibration.from_dict(manifest["calibration"]))
        for name in manifest["banks"]:
            try:
                index._banks[Modality.parse(name)] = np.load(folder / f"bank.{name}.npy", allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                raise IndexCorruptError(f"index {directory}: bank.{name}.npy is damaged ({exc})") from None
        try:
            vectors = np.load(folder / "vectors.npy", mmap_mode="c" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise IndexCorruptError(f"index {directory}: vectors.npy is damaged ({exc})") from None
        records = storage.read_lines(folder / "records.jsonl")
        slots = manifest["slots"]
        if vectors.shape != (slots, index.dim) or vectors.dtype != index._vectors.dtype or len(records) != slots:
            raise IndexCorruptError(f"index {directory} is damaged: vectors {vectors.shape} {vectors.dtype}, "
                                    f"{len(records)} records, manifest says {slots} x {index.dim} {manifest['dtype']}")
        alive = np.array([r is not None for r in records], bool)
        if verify and not np.isfinite(vectors[alive]).all():
            raise IndexCorruptError(f"index {directory}: vectors.npy is damaged: it holds non-finite values")
        index._vectors = vectors
        index._alive = alive
        index._codes = np.array([_CODES.index(Modality.parse(r["modality"])) if r else 0 for r in records], np.int8)
        index._ids = [r["id"] if r else None for r in records]
        index._metadata = [r["metadata"] if r else None for r in records]
        index._sources = [r.get("source") if r else None for r in records]
        index._slot = {r["id"]: i for i, r in enumerate(records) if r is not None}
        index._next_auto = int(manifest.get("next_auto_id", 0))
        ann = manifest.get("ann")
        if ann is not None:
            index._ann = Ann.read(folder / "ann.faiss", ann["kind"], ann["options"], ann["trained_on"])
            if index._ann.count > slots:
                raise ConfigError(f"index {directory} is damaged: ann.faiss has {index._ann.count} rows, "
                                  f"more than the {slots} stored")
        return index
