"""Any-to-any retrieval: :class:`Index` stores items of every modality of a space and searches them.

- :mod:`bind.index.core` — the Index (add/remove/update, search, folders, save/load)
- :mod:`bind.index.exact` — exact chunked top-k search
- :mod:`bind.index.ann` — faiss flat / IVF / HNSW backends
- :mod:`bind.index.storage` — crash-safe versioned index folders
- :mod:`bind.index.folder` — scanning media folders, the report of a folder build
- :mod:`bind.index.stored` — the Index kept in a vector database (``Index(space, store="milvus", uri=...)``)
- :mod:`bind.index.milvus` — the Milvus engine under it (embedded Milvus Lite or a server)
"""
from .core import AUTO_THRESHOLD, BACKENDS, STORES, AddResult, Entry, Hit, Index
from .folder import FolderReport
from .stored import StoredIndex

__all__ = ["AUTO_THRESHOLD", "BACKENDS", "STORES", "AddResult", "Entry", "FolderReport", "Hit", "Index",
           "StoredIndex"]
