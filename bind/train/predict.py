"""Embedding a corpus for an index on Lightning's predict loop: DDP across devices and nodes, per-rank shards.

:func:`embed_corpus` runs ``space.embed`` over the items on every rank (Lightning gives each rank its part
of the item list), and a :class:`ShardWriter` stores each batch as a shard as soon as it is done:
``shard-<first position>-rank<r>.safetensors`` (the vectors) and ``.json`` (positions, ids, modality, metadata,
failures), each written atomically, the JSON last, so a shard is complete when its JSON exists.
:func:`merge_shards` builds one :class:`~bind.index.Index` from the shards, in input order.

The output folder also holds ``corpus.json``: a fingerprint of the items, ids and space. Re-running on the
same folder with the same corpus resumes: positions already in a shard are not embedded again. A folder
holding shards of another corpus is refused.

Scripts that call :func:`embed_corpus` with ``strategy="ddp"`` are re-run by Lightning on every rank, so
build the items (and the space) the same way on every rank; only global rank 0 gets the merged index.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import safetensors.torch
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from ..errors import ConfigError, InputError
from ..experts.api import EmbedResult, as_items
from ..experts.modality import Modality, infer_modality
from ..index import FolderReport, Index
from ..index.core import _is_path
from ..io.atomic import atomic_path
from ..spaces.base import Space
from ..spaces.persist import load_space

CORPUS_FILE = "corpus.json"
FORMAT = "bind-embed-shards"
FORMAT_VERSION = 1


class CorpusEmbedder(L.LightningModule):
    """Embeds batches of item positions through ``space`` (loaded from a folder on each rank when a path).

    ``predict_step`` returns the positions embedded, their vectors and modalities, and the failures.
    """

    def __init__(self, space: Space | str | os.PathLike, items: Sequence[Any], modality: str | Modality | None = None,
                 *, batch_size: int = 32, sample_rate: int | None = None) -> None:
        super().__init__()
        self.space = space if isinstance(space, Space) else load_space(space)
        self.items = items
        self.modality = Modality.parse(modality) if modality is not None else None
        self.embed_batch_size, self.sample_rate = batch_size, sample_rate

    def predict_step(self, positions: list[int], batch_idx: int = 0) -> dict[str, Any]:
        items = [self.items[p] for p in positions]
        space = self.space.to(self.device)  # this rank's device (the experts; adapters stay on the CPU)
        result = space.embed(items, self.modality, batch_size=self.embed_batch_size, on_error="skip",
                             sample_rate=self.sample_rate)
        assert isinstance(result, EmbedResult)
        return {
            "positions": [positions[i] for i in result.indices],
            "vectors": result.embeddings,
            "modalities": [(self.modality or infer_modality(items[i], self.sample_rate)).value for i in result.indices],
            "failures": [{"position": positions[f.index or 0], "item": _describe(f.item), "reason": f.reason}
                         for f in result.failures],
        }


class StoreSink:
    """Streams complete shards into a database-backed index (:class:`bind.index.stored.StoredIndex`), so no
    merged copy of the corpus is ever held in memory.

    With a server every rank inserts its own shards as it writes them; an embedded store (one process only)
    is written by global rank 0 alone, which inserts every rank's complete shards as it finds them. A shard
    inserted gets a ``.stored`` marker; a resumed run inserts only the shards without one. Inserts are
    upserts by id, so a shard inserted twice (a crash before its marker) changes nothing.
    """

    def __init__(self, space: Space, folder: Path, fingerprint: str, store: str, uri: str, collection: str) -> None:
        from ..index.milvus import is_embedded

        self.space, self.folder, self.fingerprint = space, folder, fingerprint
        self.where = {"store": store, "uri": uri, "collection": collection}
        self.embedded = is_embedded(uri)
        self._index: Index | None = None
        self._seen: set[Path] = set()

    @property
    def index(self) -> Index:
        if self._index is None:  # opened in the rank that writes, on first use
            self._index = Index(self.space, **self.where)
        return self._index

    def shard_written(self, rank: int, path: Path) -> None:
        """Called by a rank after it wrote the shard ``path``."""
        if not self.embedded:
            self._insert(path)
        elif rank == 0:
            self.drain()

    def drain(self) -> None:
        """Insert every complete shard without a marker."""
        for path in sorted(self.folder.glob("shard-*.json")):
            if path not in self._seen and not path.with_suffix(".stored").exists():
                self._insert(path)
            self._seen.add(path)

    def _insert(self, path: Path) -> None:
        shard = json.loads(path.read_text(encoding="utf-8"))
        if shard.get("fingerprint") != self.fingerprint:
            raise ConfigError(f"{path} belongs to another corpus; the folder {self.folder} is mixed up")
        vectors = safetensors.torch.load_file(str(path.with_suffix(".safetensors")))["vectors"]
        self.index._append(shard["ids"], vectors, [Modality.parse(m) for m in shard["modalities"]], shard["metadata"])
        with atomic_path(path.with_suffix(".stored")) as tmp:
            tmp.write_text("", encoding="utf-8")


class ShardWriter(BasePredictionWriter):
    """Writes each predicted batch as one shard under ``folder`` (atomically, JSON last), as it goes, and hands
    it to ``sink`` when the index lives in a database."""

    def __init__(self, folder: str | os.PathLike, fingerprint: str, ids: Sequence[str],
                 metadata: Sequence[dict[str, Any]], sink: StoreSink | None = None) -> None:
        super().__init__(write_interval="batch")
        self.folder, self.fingerprint = Path(folder), fingerprint
        self.ids, self.metadata, self.sink = ids, metadata, sink

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: dict[str, Any],
                           batch_indices: Sequence[int] | None, batch: list[int], batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        # unique: a batch's first position is in no earlier shard (done positions are never batched again)
        stem = self.folder / f"shard-{min(batch):010d}-rank{trainer.global_rank}"
        positions = prediction["positions"]
        with atomic_path(stem.with_suffix(".safetensors")) as tmp:
            safetensors.torch.save_file({"vectors": prediction["vectors"].contiguous()}, str(tmp))
        record = {"format": FORMAT, "format_version": FORMAT_VERSION, "fingerprint": self.fingerprint,
                  "rank": trainer.global_rank, "batch": list(batch), "positions": positions,
                  "ids": [self.ids[p] for p in positions], "modalities": prediction["modalities"],
                  "metadata": [self.metadata[p] for p in positions], "failures": prediction["failures"]}
        with atomic_path(stem.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(record), encoding="utf-8")
        if self.sink is not None:
            self.sink.shard_written(trainer.global_rank, stem.with_suffix(".json"))

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.strategy.barrier("bind-shards-written")  # every rank's shards are on disk before the merge


def _as_list(batch: list[int]) -> list[int]:
    return [int(p) for p in batch]


def embed_corpus(items: Any, space: Space | str | os.PathLike, out_dir: str | os.PathLike, *,
                 ids: Sequence[str] | None = None, modality: str | Modality | None = None,
                 metadata: Sequence[dict[str, Any]] | None = None, batch_size: int = 32,
                 items_per_step: int | None = None, accelerator: str = "cpu", devices: int | str = 1,
                 num_nodes: int = 1, strategy: str = "auto", backend: str = "auto", dtype: Any = torch.float32,
                 sample_rate: int | None = None, progress: bool = False, store: str | None = None,
                 uri: str | None = None, collection: str = "bind") -> tuple[Index, FolderReport] | None:
    """Embed ``items`` with ``space`` on Lightning's predict loop, writing shards to ``out_dir``; merge them.

    ``space``: a Space, a saved space folder or a packaged space name (each rank loads it). ``ids``: one per
    item (default: a file's path, else its position). ``items_per_step``: items handed to ``space.embed``
    per predict step, i.e. per shard (default ``4 * batch_size``). ``accelerator``/``devices``/``num_nodes``/
    ``strategy``: Lightning's Trainer arguments (e.g. ``devices=2, strategy="ddp"``). Bad items are skipped
    and reported. Returns, on global rank 0, the merged index (``backend``/``dtype`` as for
    :class:`~bind.index.Index`) and a report (``added``, ``embedded``, ``failures``); ``None`` on other ranks.
    With ``store``/``uri``/``collection`` the shards stream into that database-backed index instead
    (:class:`StoreSink`), which rank 0 returns.
    """
    items = as_items(items)[0]
    space_obj = space if isinstance(space, Space) else load_space(space)
    ids = _default_ids(items) if ids is None else [str(i) for i in ids]
    if len(ids) != len(items) or len(set(ids)) != len(ids):
        raise ConfigError(f"embed_corpus needs one distinct id per item: {len(items)} items, {len(set(ids))} distinct ids")
    metas = [dict(m) for m in metadata] if metadata is not None else [{} for _ in items]
    if len(metas) != len(items):
        raise ConfigError(f"{len(items)} items but {len(metas)} metadata dicts")
    for item, meta in zip(items, metas):
        if _is_path(item):
            meta.setdefault("path", str(item))
    wanted = Modality.parse(modality) if modality is not None else None
    folder = Path(out_dir).expanduser()
    fingerprint = _fingerprint(items, ids, wanted, space_obj.identity)
    _claim(folder, fingerprint, len(items), space_obj.identity)
    done = {p for shard in _read_shards(folder, fingerprint) for p in shard["batch"]}
    todo = [p for p in range(len(items)) if p not in done]
    step = items_per_step or 4 * batch_size
    sink = StoreSink(space_obj, folder, fingerprint, store, str(uri), collection) if store is not None else None
    trainer = L.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
                        logger=False, enable_checkpointing=False, enable_model_summary=False,
                        enable_progress_bar=progress, callbacks=[ShardWriter(folder, fingerprint, ids, metas, sink)])
    if todo:
        loader = DataLoader(todo, batch_size=step, shuffle=False, collate_fn=_as_list)
        module = CorpusEmbedder(space_obj, items, wanted, batch_size=batch_size, sample_rate=sample_rate)
        trainer.predict(module, dataloaders=loader, return_predictions=False)
    if not trainer.is_global_zero:
        return None
    if sink is not None:
        sink.drain()  # after the barrier: every rank's shards are complete
        sink.index.save()
        return sink.index, _report(folder, fingerprint)[1]
    return merge_shards(folder, space_obj, backend=backend, dtype=dtype)


def merge_shards(folder: str | os.PathLike, space: Space | str | os.PathLike, *, backend: str = "auto",
                 dtype: Any = torch.float32) -> tuple[Index, FolderReport]:
    """One index from the shards under ``folder``, in input order; an item found in several shards (a
    sampler that pads ranks with repeats) is stored once. ``space``: the one the shards were embedded with
    (checked by identity). Returns the index and a report whose ``added`` lists the ids in order and whose
    ``failures`` name each bad item."""
    folder = Path(folder).expanduser()
    corpus = _read_corpus(folder)
    if corpus is None:
        raise ConfigError(f"{folder} holds no embedded corpus ({CORPUS_FILE} missing)")
    space = space if isinstance(space, Space) else load_space(space)
    if space.identity != corpus["space_identity"]:
        raise ConfigError(f"the shards under {folder} were embedded with space {corpus['space_identity'][:16]}..., "
                          f"not with this space ({space.identity[:16]}...)")
    order, report = _report(folder, corpus["fingerprint"])
    rows: dict[int, tuple[str, str, dict[str, Any], torch.Tensor]] = {}
    for shard in _read_shards(folder, corpus["fingerprint"]):
        vectors = safetensors.torch.load_file(str(shard["path"].with_suffix(".safetensors")))["vectors"]
        for row, position in enumerate(shard["positions"]):
            rows.setdefault(position, (shard["ids"][row], shard["modalities"][row], shard["metadata"][row], vectors[row]))
    index = Index(space, backend, dtype)
    if order:
        index.add_vectors(torch.stack([rows[p][3] for p in order]), [rows[p][0] for p in order],
                          [rows[p][1] for p in order], [rows[p][2] for p in order])
    return index, report


def _report(folder: Path, fingerprint: str) -> tuple[list[int], FolderReport]:
    """The positions embedded (in order) and the report of the corpus's shards: ``added`` ids in order,
    ``failures`` naming each bad item. ConfigError when the shards do not cover the corpus."""
    ids: dict[int, str] = {}
    failures: dict[int, InputError] = {}
    for shard in _read_shards(folder, fingerprint):
        for row, position in enumerate(shard["positions"]):
            ids.setdefault(position, shard["ids"][row])
        for failure in shard["failures"]:
            failures.setdefault(failure["position"], InputError(failure["item"], failure["reason"], failure["position"]))
    count = json.loads((folder / CORPUS_FILE).read_text(encoding="utf-8"))["count"]
    missing = count - len(ids) - len(failures.keys() - ids.keys())
    if missing:
        raise ConfigError(f"the shards under {folder} cover {count - missing} of {count} items; "
                          "run embed_corpus again on this folder to embed the rest")
    order = sorted(ids)
    return order, FolderReport(added=[ids[p] for p in order], embedded=len(order),
                               failures=[failures[p] for p in sorted(failures) if p not in ids])


# --- the shard folder ----------------------------------------------------------------------------------------
def _claim(folder: Path, fingerprint: str, count: int, identity: str) -> None:
    """Write ``corpus.json`` (or check that the folder is this corpus's: resuming)."""
    corpus = _read_corpus(folder)
    if corpus is not None and corpus["fingerprint"] != fingerprint:
        raise ConfigError(f"{folder} holds shards of another corpus or space; use an empty folder (or delete it)")
    if corpus is None:
        if folder.exists() and any(folder.iterdir()):
            raise ConfigError(f"cannot write shards to {folder}: it is not empty and holds no {CORPUS_FILE}")
        record = {"format": FORMAT, "format_version": FORMAT_VERSION, "fingerprint": fingerprint,
                  "count": count, "space_identity": identity}
        with atomic_path(folder / CORPUS_FILE) as tmp:  # every rank writes the same content
            tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _read_corpus(folder: Path) -> dict[str, Any] | None:
    path = folder / CORPUS_FILE
    if not path.is_file():
        return None
    try:
        corpus = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable: {exc}") from None
    if corpus.get("format") != FORMAT or corpus.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{path} is not a {FORMAT} v{FORMAT_VERSION} file")
    return corpus


def _read_shards(folder: Path, fingerprint: str) -> list[dict[str, Any]]:
    """The complete shards of the corpus ``fingerprint`` (a shard is complete once its JSON is written)."""
    shards = []
    for path in sorted(folder.glob("shard-*.json")):
        shard = json.loads(path.read_text(encoding="utf-8"))
        if shard.get("fingerprint") != fingerprint:
            raise ConfigError(f"{path} belongs to another corpus; the folder {folder} is mixed up")
        shards.append({**shard, "path": path})
    return shards


def _default_ids(items: list[Any]) -> list[str]:
    return [str(item) if _is_path(item) else str(position) for position, item in enumerate(items)]


def _fingerprint(items: list[Any], ids: list[str], modality: Modality | None, identity: str) -> str:
    """A hash of the items (their paths or contents), ids, modality and space: what a resumed run must match."""
    digest = hashlib.sha256(json.dumps([identity, modality.value if modality else None, ids]).encode())
    for item in items:
        digest.update(_item_bytes(item))
    return digest.hexdigest()


def _item_bytes(item: Any) -> bytes:
    if isinstance(item, (str, os.PathLike)):
        return os.fsencode(item) + b"\0"
    if isinstance(item, bytes):
        return hashlib.sha256(item).digest()
    if isinstance(item, (np.ndarray, torch.Tensor)):
        array = np.ascontiguousarray(item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item)
        return f"{array.dtype}{array.shape}".encode() + hashlib.sha256(array.tobytes()).digest()
    if hasattr(item, "tobytes") and hasattr(item, "size"):  # a PIL image
        return f"{item.mode}{item.size}".encode() + hashlib.sha256(item.tobytes()).digest()
    return hashlib.sha256(pickle.dumps(item)).digest()


def _describe(item: Any) -> str:
    """A short JSON-able name for an item in a failure record."""
    if isinstance(item, (str, os.PathLike)):
        return str(item)[:200]
    shape = getattr(item, "shape", None)
    return f"{type(item).__name__}{'' if shape is None else tuple(shape)}"
