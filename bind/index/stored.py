"""A :class:`bind.Index` whose items live in a vector database: ``bind.Index(space, store="milvus", uri=...)``.

The items (vectors, ids, modalities, metadata, file records) live in Milvus (:mod:`bind.index.milvus`), so the
index needs no memory of its own beyond one search's candidates and can outgrow the machine on a Milvus
server. Everything else is :class:`~bind.index.Index`'s: adding items and folders (incremental, ids stable
across add, remove and update), the result-modality filter (as a Milvus filter expression), the space
identity check, and the score correction and calibration of :mod:`bind.index.scores`, applied by
over-fetching candidates from Milvus and re-ranking them here.

Differences from the in-memory index:

- writes go to the database as they happen; :meth:`StoredIndex.save` only records the settings (scoring,
  calibration) after they were changed by hand;
- hubness references are computed when an item is stored, against the query banks fixed at that time (the
  space's shipped banks, or one set with :meth:`~bind.index.Index.set_query_bank`, which recomputes every
  item's). A query modality without such a bank is ranked by cosine: a store does not use its own items as a
  bank, since each insert would change every item's reference;
- ``ids`` come in the database's order, not oldest first.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import ConfigError, IndexCorruptError
from ..experts.modality import Modality
from ..io import decoding_version, versions
from .core import _CODES, FORMAT, STORES, Entry, Hit, Index, _codes_of, _refuse_modality
from .milvus import SEARCH_LIMIT, MilvusStore, default_index, folder_key, key_of
from .scores import Calibration, CandidateRefs, Scoring, candidates, parse_method, references

if TYPE_CHECKING:
    from ..spaces.base import Space

_ROW_FIELDS = ["vector", "modality", "folder", "sha256", "metadata", "source", "refs"]


class StoredIndex(Index):
    """An :class:`~bind.index.Index` kept in Milvus at ``uri``, in ``collection`` (see the module docstring).

    Opening an existing collection checks that it holds a bind index of the same space (ConfigError
    otherwise) and continues it; a new one is created. ``options``: the Milvus vector index
    (``index_type``, ``params``; default: exact FLAT in Milvus Lite, the server's AUTOINDEX on a server) and
    ``search_params`` for searches. ``token``: a server's credentials.
    """

    def __init__(self, space: Space, backend: str = "auto", dtype: Any = torch.float32, *,
                 options: dict[str, Any] | None = None, scoring: Scoring | str | None = None,
                 calibration: Calibration | None = None, store: str = "milvus", uri: str | os.PathLike | None = None,
                 collection: str = "bind", token: str | None = None) -> None:
        if store not in STORES:
            raise ConfigError(f"unknown index store {store!r}; expected one of {', '.join(STORES)}")
        if uri is None:
            raise ConfigError("a store needs uri=...: a .db file (embedded Milvus Lite) or a server, "
                              "e.g. http://localhost:19530")
        if backend != "auto":
            raise ConfigError(f"backend={backend!r} names an in-memory search; a store is searched by its engine "
                              f"(options={{'index_type': ..., 'params': ...}})")
        if str(dtype).removeprefix("torch.") != "float32":
            raise ConfigError(f"a store keeps float32 vectors, got dtype {dtype!r}")
        unknown = set(options or {}) - {"index_type", "params", "search_params"}
        if unknown:
            raise ConfigError(f"unknown store options {', '.join(sorted(unknown))}; expected index_type, params, "
                              f"search_params")
        super().__init__(space, "exact", scoring=scoring, calibration=calibration)
        self.backend = store
        self.store = MilvusStore(uri, collection, token=token)
        self.location = f"{self.store.uri} (collection {collection})"
        settings = self.store.settings()
        options = dict(options or {})
        if settings is None:
            if self.store.exists():
                raise IndexCorruptError(f"{self.location} holds items but no bind settings")
            chosen = {k: options[k] for k in ("index_type", "params") if k in options}
            index = {**default_index(self.store.uri), **chosen}
            self.store.create(self.dim, index)
            self.options = {"index": index, "search_params": options.get("search_params", {})}
            self._write_settings()
        else:
            self._open(settings, options, scoring, calibration)
        self._hubs: dict[Modality, tuple[int, set[str]]] = {}
        self._writes = 0

    def _open(self, settings: dict[str, Any], options: dict[str, Any], scoring: Any, calibration: Any) -> None:
        if settings.get("format") != FORMAT:
            raise ConfigError(f"{self.location} is not a bind index (its settings name no format {FORMAT!r})")
        settings = versions.upgrade("index", settings, self.location)
        if settings["space_identity"] != self.identity:
            raise ConfigError(f"{self.location} was built with space {settings['space_identity']} and cannot be "
                              f"searched with space {self.identity}: embeddings of different spaces are not comparable; "
                              f"open it with the space it was built with, or use another collection")
        stored = Scoring.from_dict(settings["scoring"])
        if scoring is not None and self.scoring != stored:
            raise ConfigError(f"{self.location} scores with {stored}; its items' references were computed for it, so "
                              f"it cannot switch to {self.scoring}")
        if {"index_type", "params"} & set(options):
            raise ConfigError(f"{self.location} exists: its vector index ({settings['options']['index']}) is fixed")
        self.scoring = stored
        if calibration is None:
            self.calibration = Calibration.from_dict(settings["calibration"])
        self.options = {**settings["options"], **({"search_params": options["search_params"]}
                                                   if "search_params" in options else {})}
        self._next_auto = int(settings["next_auto_id"])
        self._banks = {Modality.parse(name): bank for name, bank in self.store.banks(settings["banks"]).items()}

    def _write_settings(self) -> None:
        from .. import __version__

        self.store.write_settings({
            "format": FORMAT, "format_version": versions.FORMAT_VERSION, "bind_version": __version__,
            "space_identity": self.identity, "dim": self.dim, "options": self.options,
            "next_auto_id": self._next_auto, "scoring": self.scoring.to_dict(),
            "banks": {m.value: len(bank) for m, bank in sorted(self._banks.items())},
            "calibration": self.calibration.to_dict(),
        }, self.dim)

    def save(self, directory: str | os.PathLike | None = None) -> None:  # type: ignore[override]
        """Record the settings (scoring, calibration, banks) in the database; items are stored as they change."""
        if directory is not None:
            raise ConfigError(f"a store index lives in its database ({self.location}); save() takes no folder")
        self._write_settings()
        self.store.flush()

    def close(self) -> None:
        """Flush and disconnect (an embedded store's file is then free for another process)."""
        self.store.close()

    # --- inspection ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.store.count()

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and bool(self._present([item_id]))

    @property
    def ids(self) -> list[str]:
        """The ids of the stored items, in the database's order."""
        return [row["id"] for row in self.store.query("", [])]

    @property
    def active_backend(self) -> str:
        return f"milvus {self.store.index_type()}"

    def entry(self, item_id: str) -> Entry:
        row = self.store.get([item_id], ["vector", "modality", "metadata"]).get(item_id)
        if row is None:
            raise KeyError(f"no item with id {item_id!r} in the index")
        return Entry(item_id, Modality.parse(row["modality"]), dict(row["metadata"]),
                     torch.tensor(row["vector"], dtype=torch.float32))

    # --- storage -----------------------------------------------------------------------------------------
    def _present(self, ids: list[str]) -> list[str]:
        found = self.store.get(ids, [])
        return [i for i in ids if i in found]

    def _append(self, ids: list[str], vectors: Any, modalities: list[Modality], metadata: list[dict[str, Any]],
                sources: list[dict[str, Any] | None] | None = None) -> None:
        if not ids:
            return
        matrix = self._query_matrix(vectors).numpy()
        refs = {kind.value: references(matrix, np.ones(len(matrix), bool), bank, None, self.scoring)
                for kind, bank in self._fixed_banks().items()}
        rows = []
        for i, (item_id, modality, meta) in enumerate(zip(ids, modalities, metadata)):
            source = sources[i] if sources else None
            rows.append({"key": key_of(item_id), "id": item_id, "vector": matrix[i], "modality": modality.value,
                         "folder": folder_key(source["root"], source["prefix"]) if source else "",
                         "sha256": source["sha256"] if source else "", "metadata": meta, "source": source or {},
                         "refs": {kind: [float(r.csls[i]), float(r.softmax[i])] for kind, r in refs.items()}})
        self.store.upsert(rows)
        self._writes += 1
        before = self._next_auto
        self._advance_auto(ids)
        if self._next_auto != before:
            self._write_settings()

    def _delete(self, ids: list[str]) -> None:
        self.store.delete(ids)
        self._writes += 1

    def _sources_of(self, ids: list[str]) -> dict[str, tuple[dict[str, Any] | None, Modality]]:
        return {i: (row["source"] or None, Modality.parse(row["modality"]))
                for i, row in self.store.get(ids, ["source", "modality"]).items()}

    def _set_sources(self, sources: list[tuple[str, dict[str, Any]]]) -> None:
        rows = self.store.get([item_id for item_id, _ in sources], _ROW_FIELDS)
        for item_id, source in sources:
            rows[item_id].update(source=source, folder=folder_key(source["root"], source["prefix"]),
                                 sha256=source["sha256"])
        self.store.upsert([{**row, "key": key_of(item_id)} for item_id, row in rows.items()])

    def _vectors_by_content(self, keys: set[tuple[str, Modality]]) -> dict[tuple[str, Modality], torch.Tensor]:
        out: dict[tuple[str, Modality], torch.Tensor] = {}
        for modality in {m for _, m in keys}:
            digests = sorted(d for d, m in keys if m == modality)
            where = f'{self.store.where("sha256", digests)} and modality == "{modality.value}"'
            for row in self.store.query(where, ["vector", "sha256", "source"]):
                if row["source"].get("decoding", 1) == decoding_version(modality):
                    out[(row["sha256"], modality)] = torch.tensor(row["vector"], dtype=torch.float32)
        return out

    def _ids_from(self, root: str, prefix: str) -> list[str]:
        return [row["id"] for row in self.store.query(f'folder == "{folder_key(root, prefix)}"', [])]

    # --- search ------------------------------------------------------------------------------------------
    def search_vectors(self, vectors: Any, k: int = 10, *, result_modality: Any = None, query_modality: Any = None,
                       correction: str | bool | None = None, min_score: float | None = None,
                       modality: Any = None) -> list[list[Hit]]:
        """As :meth:`Index.search_vectors`: Milvus returns the best candidates by cosine (filtered by modality
        in the engine), which are re-scored and calibrated here."""
        _refuse_modality("search_vectors", modality, "query vectors have no modality; use query_modality=...")
        queries = self._query_matrix(vectors)
        method = parse_method(correction, self.scoring.method)
        kinds = self._query_kinds(query_modality, len(queries))
        where = "" if result_modality is None else self.store.where(
            "modality", sorted(_CODES[c].value for c in _codes_of(result_modality)))
        correcting = method != "none" and any(kind is not None for kind in kinds)
        limit = candidates(k, SEARCH_LIMIT) if correcting else k
        results = self.store.search(queries.numpy(), limit, where, ["modality", "metadata", "refs"],
                                    self.options["search_params"])
        hits = []
        for kind, rows in zip(kinds, results):
            cosines = np.array([row["distance"] for row in rows], np.float32)
            found = [(row["id"], Modality.parse(row["modality"]), row["metadata"]) for row in rows]
            refs = self._candidate_refs(kind, rows, method) if kind is not None and method != "none" else None
            hits.append(self._finish(cosines, found, refs, kind, method, k, min_score))
        return hits

    def _candidate_refs(self, kind: Modality, rows: list[dict[str, Any]], method: str) -> CandidateRefs | None:
        """The stored references of a query's candidates against ``kind``'s bank (None when not all have one)."""
        values = [row["refs"].get(kind.value) for row in rows]
        if any(v is None for v in values):
            return None
        pairs = np.array(values, np.float32).reshape(len(rows), 2)
        hubs = self._hub_ids(kind) if method == "qb_norm" else set()
        return CandidateRefs(pairs[:, 0], pairs[:, 1], np.array([row["id"] in hubs for row in rows], bool))

    def _hub_ids(self, kind: Modality) -> set[str]:
        """The ids that are some bank query's nearest item (qb_norm's hubs), kept until the next write."""
        cached = self._hubs.get(kind)
        if cached is None or cached[0] != self._writes:
            bank = self._fixed_banks()[kind]
            nearest = self.store.search(bank, 1, "", [], self.options["search_params"])
            cached = (self._writes, {rows[0]["id"] for rows in nearest if rows})
            self._hubs[kind] = cached
        return cached[1]

    # --- query banks ---------------------------------------------------------------------------------------
    def _fixed_banks(self) -> dict[Modality, np.ndarray]:
        return {**self._shipped_banks, **self._banks}

    def set_query_bank(self, items: Any, modality: str | Modality, *, batch_size: int = 32,
                       sample_rate: int | None = None) -> None:
        """As :meth:`Index.set_query_bank`; the bank is stored in the database and every item's references
        against it are recomputed (one pass over the collection)."""
        super().set_query_bank(items, modality, batch_size=batch_size, sample_rate=sample_rate)
        kind = Modality.parse(modality)
        self.store.write_bank(kind.value, self._banks[kind])
        self._write_settings()
        batch: list[dict[str, Any]] = []
        for row in self.store.query("", _ROW_FIELDS):
            batch.append(row)
            if len(batch) == 2000:
                self._restamp(batch, kind)
                batch = []
        self._restamp(batch, kind)
        self._writes += 1

    def _restamp(self, rows: list[dict[str, Any]], kind: Modality) -> None:
        if not rows:
            return
        vectors = np.array([row["vector"] for row in rows], np.float32)
        refs = references(vectors, np.ones(len(rows), bool), self._banks[kind], None, self.scoring)
        for i, row in enumerate(rows):
            row["refs"] = {**row["refs"], kind.value: [float(refs.csls[i]), float(refs.softmax[i])]}
        self.store.upsert([{**row, "key": key_of(row["id"])} for row in rows])


STORES["milvus"] = StoredIndex
