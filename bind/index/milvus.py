"""The Milvus engine under a database-backed :class:`bind.Index` (``store="milvus"``).

One bind index is two collections reached through ``pymilvus.MilvusClient(uri)``:

- ``<collection>``: one row per item. ``key`` (primary: the sha256 of the item id, so any id string is safe
  in Milvus expressions), ``id``, ``vector`` (the space's unit vector; inner product = cosine), ``modality``,
  ``folder`` (a hash of the folder root and id prefix an item was added from, else ""), ``sha256`` (its file's
  content hash, else ""), and JSON ``metadata``, ``source`` (the file record of incremental folder builds) and
  ``refs`` (the item's hubness references per query modality, :mod:`bind.index.scores`).
- ``<collection>_bind``: the index settings (space identity, format version, scoring, calibration, the next
  automatic id) as one JSON row, and the query banks set with ``Index.set_query_bank``, one row per vector.

``uri`` is a local file (Milvus Lite: Milvus's own engine embedded in this process, one process at a time,
``pip install 'bind[store]'``) or a server/cluster address (``http://host:19530``, Zilliz Cloud; ``token``).
"""
from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import ConfigError, IndexCorruptError, IndexLockedError

SETTINGS_KEY = "settings"
ID_BYTES = 65535
GET_CHUNK = 1000  # ids per get/delete call (keeps expressions short)
INSERT_CHUNK = 2000
# The vector index a new collection gets: exact FLAT in Milvus Lite (whose AUTOINDEX fails to read vectors
# back from an empty collection), the server's AUTOINDEX on a server.
EMBEDDED_INDEX = {"index_type": "FLAT", "params": {}}
SERVER_INDEX = {"index_type": "AUTOINDEX", "params": {}}
SEARCH_LIMIT = 16384  # Milvus's largest top-k
_EMBEDDED_OPEN: dict[str, int] = {}  # open MilvusStores per Milvus Lite file in this process


def key_of(item_id: str) -> str:
    """The primary key of ``item_id``: its sha256 (hex)."""
    return hashlib.sha256(item_id.encode("utf-8", "surrogatepass")).hexdigest()


def folder_key(root: str, prefix: str) -> str:
    """The ``folder`` field of items added from ``root`` with id ``prefix``."""
    return hashlib.sha256(f"{root}\0{prefix}".encode("utf-8", "surrogatepass")).hexdigest()


def _quoted(values: list[str]) -> str:
    """A Milvus list literal of hex/ascii-word strings (keys, hashes, modality names: nothing to escape)."""
    if any(not v.replace("_", "").replace(":", "").isalnum() or not v.isascii() for v in values):
        raise ValueError(f"not a safe Milvus literal: {values[:3]}")
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def is_embedded(uri: str) -> bool:
    """Whether ``uri`` names a Milvus Lite file rather than a server."""
    return "://" not in uri


def default_index(uri: str) -> dict[str, Any]:
    return dict(EMBEDDED_INDEX if is_embedded(uri) else SERVER_INDEX)


def _import_pymilvus() -> Any:
    try:
        with warnings.catch_warnings():  # milvus-lite imports pkg_resources
            warnings.simplefilter("ignore")
            import pymilvus
            if hasattr(pymilvus, "MilvusClient"):
                import milvus_lite  # noqa: F401  (embedded mode)
    except ImportError as exc:
        raise ConfigError(f"the Milvus store needs pymilvus and milvus-lite: pip install 'bind[store]' "
                          f"({exc})") from None
    return pymilvus


class MilvusStore:
    """An index's two collections on a Milvus at ``uri`` (see the module docstring)."""

    def __init__(self, uri: str | os.PathLike, collection: str = "bind", *, token: str | None = None) -> None:
        pymilvus = _import_pymilvus()
        # Milvus Lite's iterators warn on every batch that they fall back to client-side timestamps
        logging.getLogger("pymilvus").setLevel(logging.ERROR)
        self.uri = str(uri)
        if not collection.replace("_", "").isalnum() or not collection[0].isalpha():
            raise ConfigError(f"a Milvus collection name is letters, digits and _, starting with a letter; "
                              f"got {collection!r}")
        self.collection, self.meta = collection, f"{collection}_bind"
        if is_embedded(self.uri):
            self.uri = os.path.abspath(os.path.expanduser(self.uri))
            if not self.uri.endswith(".db"):
                raise ConfigError(f"an embedded Milvus store is a .db file, got {self.uri}")
            os.makedirs(os.path.dirname(self.uri), exist_ok=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.client = pymilvus.MilvusClient(self.uri, token=token or "")
        except pymilvus.exceptions.MilvusException as exc:
            if is_embedded(self.uri):
                raise IndexLockedError(f"cannot open the Milvus Lite store {self.uri}: another process has it open "
                                       f"(Milvus Lite serves one process; use a Milvus server for several) "
                                       f"[{exc}]") from None
            raise ConfigError(f"cannot reach the Milvus store at {self.uri}: {exc}") from None
        self._types = pymilvus.DataType
        self._open = True
        if is_embedded(self.uri):
            _EMBEDDED_OPEN[self.uri] = _EMBEDDED_OPEN.get(self.uri, 0) + 1

    # --- collections ---------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return bool(self.client.has_collection(self.collection))

    def create(self, dim: int, index: dict[str, Any]) -> None:
        """Create both collections (items indexed with ``index``: ``index_type``, ``params``)."""
        types = self._types
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("key", types.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("id", types.VARCHAR, max_length=ID_BYTES)
        schema.add_field("vector", types.FLOAT_VECTOR, dim=dim)
        schema.add_field("modality", types.VARCHAR, max_length=32)
        schema.add_field("folder", types.VARCHAR, max_length=64)
        schema.add_field("sha256", types.VARCHAR, max_length=64)
        for name in ("metadata", "source", "refs"):
            schema.add_field(name, types.JSON)
        params = self.client.prepare_index_params()
        params.add_index("vector", index_type=index["index_type"], metric_type="IP", params=index.get("params", {}))
        meta = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        meta.add_field("key", types.VARCHAR, is_primary=True, max_length=64)
        meta.add_field("vector", types.FLOAT_VECTOR, dim=dim)
        meta.add_field("value", types.JSON)
        meta_params = self.client.prepare_index_params()
        meta_params.add_index("vector", index_type="FLAT", metric_type="IP")
        self.client.create_collection(self.meta, schema=meta, index_params=meta_params, consistency_level="Strong")
        self.client.create_collection(self.collection, schema=schema, index_params=params, consistency_level="Strong")

    def index_type(self) -> str:
        return str(self.client.describe_index(self.collection, "vector").get("index_type", "?"))

    # --- settings and banks ------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any] | None:
        if not self.client.has_collection(self.meta):
            return None
        rows = self.client.get(self.meta, ids=[SETTINGS_KEY], output_fields=["value"])
        return dict(rows[0]["value"]) if rows else None

    def write_settings(self, settings: dict[str, Any], dim: int) -> None:
        self.client.upsert(self.meta, [{"key": SETTINGS_KEY, "vector": np.zeros(dim, np.float32), "value": settings}])

    def banks(self, sizes: dict[str, int]) -> dict[str, np.ndarray]:
        """The stored query banks (name -> rows), each ``[rows, dim]``."""
        out = {}
        for name, count in sizes.items():
            keys = [f"bank:{_safe(name)}:{i}" for i in range(count)]
            rows = {r["key"]: r["vector"] for s in range(0, count, GET_CHUNK)
                    for r in self.client.get(self.meta, ids=keys[s : s + GET_CHUNK], output_fields=["vector"])}
            if len(rows) != count or any(v is None for v in rows.values()):
                raise IndexCorruptError(f"{self.uri}: query bank {name!r} has {len(rows)} of its {count} rows")
            out[name] = np.array([rows[key] for key in keys], np.float32)
        return out

    def write_bank(self, name: str, bank: np.ndarray) -> None:
        """Replace the query bank ``name`` by the rows of ``bank``."""
        self.client.delete(self.meta, filter=f'key like "bank:{_safe(name)}:%"')
        rows = [{"key": f"bank:{_safe(name)}:{i}", "vector": row, "value": {"bank": name, "row": i}}
                for i, row in enumerate(np.asarray(bank, np.float32))]
        for start in range(0, len(rows), INSERT_CHUNK):
            self.client.insert(self.meta, rows[start : start + INSERT_CHUNK])

    # --- items ---------------------------------------------------------------------------------------------
    def count(self) -> int:
        return int(self.client.query(self.collection, filter="", output_fields=["count(*)"])[0]["count(*)"])

    def upsert(self, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), INSERT_CHUNK):
            self.client.upsert(self.collection, rows[start : start + INSERT_CHUNK])

    def delete(self, ids: list[str]) -> None:
        for start in range(0, len(ids), GET_CHUNK):
            self.client.delete(self.collection, ids=[key_of(i) for i in ids[start : start + GET_CHUNK]])

    def get(self, ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        """The stored rows of those ``ids`` that exist, by id."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), GET_CHUNK):
            keys = [key_of(i) for i in ids[start : start + GET_CHUNK]]
            for row in self.client.get(self.collection, ids=keys, output_fields=["id", *fields]):
                out[row["id"]] = row
        return out

    def query(self, filter: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        """Every row matching ``filter`` (a Milvus expression; "" for all), in batches under the hood."""
        iterator = self.client.query_iterator(self.collection, batch_size=GET_CHUNK, filter=filter,
                                              output_fields=["id", *fields])
        try:
            while batch := iterator.next():
                yield from batch
        finally:
            iterator.close()

    def where(self, field: str, values: list[str]) -> str:
        """The expression ``field in [values]`` for hashes, keys or modality names."""
        return f"{field} in {_quoted(values)}"

    def search(self, vectors: np.ndarray, limit: int, filter: str, fields: list[str],
               params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        """For each query row, up to ``limit`` items by inner product (best first): their fields and
        ``distance`` (the cosine)."""
        results = self.client.search(self.collection, data=list(np.asarray(vectors, np.float32)),
                                     limit=min(limit, SEARCH_LIMIT), filter=filter,
                                     output_fields=["id", *fields], search_params={"params": params})
        return [[{**hit["entity"], "distance": hit["distance"]} for hit in hits] for hits in results]

    def flush(self) -> None:
        """Seal what was written (Milvus Lite reopened in the same process reads only sealed rows whole)."""
        self.client.flush(self.collection)
        self.client.flush(self.meta)

    def close(self) -> None:
        """Flush and disconnect; the last store of a Milvus Lite file in this process stops its server, which
        frees the file for other processes."""
        if not self._open:
            return
        self.flush()
        self.client.close()
        self._open = False
        if is_embedded(self.uri):
            _EMBEDDED_OPEN[self.uri] -= 1
            if not _EMBEDDED_OPEN[self.uri]:
                del _EMBEDDED_OPEN[self.uri]
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.uri)


def _safe(name: str) -> str:
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise ValueError(f"not a safe bank name: {name!r}")
    return name

