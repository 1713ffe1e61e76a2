"""A feature cache: frozen expert outputs computed once, stored on disk, reused by every later run.

Layout under ``root``::

    <expert name>/<fingerprint>/fingerprint.json   what the fingerprint covers (for people)
    <expert name>/<fingerprint>/index.sqlite       key -> (shard, row); shard -> sha256, rows
    <expert name>/<fingerprint>/shards/*.safetensors   one tensor "features" [rows, dim] each

The fingerprint hashes the expert's card (backend, model id, tag, dim, ``preprocess``, ``options``),
a signature of its weights (so a random-weight test instance never shares entries with the real expert),
``bind.__version__`` and the decoding version of its modality (:data:`bind.io.DECODING_VERSIONS`): changing any of them starts a fresh folder. An item's key is the sha256 of its
content (file bytes for paths and bytes, UTF-8 for text, bytes+shape+dtype for arrays).

Crash safety: a shard is written to a temporary file and renamed into place, and only then is it added
to the index, in one sqlite transaction. A kill at any point leaves a consistent cache; the next run
recomputes only what no committed shard holds. Every shard is checked against its recorded sha256 when
read; a mismatch (corrupt or truncated file) drops the shard's entries with a warning and they are
recomputed. Raw (un-normalised) features are stored; callers normalise.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import sqlite3
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch

from ..errors import ConfigError, InputError
from ..io.atomic import atomic_path
from .api import check_on_error, embed, resolve
from .cards import EncoderCard
from .encoder import Encoder
from .modality import Modality
from .runner import EmbedResult, Wanted

_CHUNK = 1 << 20


@dataclasses.dataclass
class CacheStats:
    """Counts since this FeatureCache was created: items served from disk, items computed, shards dropped."""

    hits: int = 0
    misses: int = 0
    corrupt_shards: int = 0


def content_hash(item: Any, modality: Modality, sample_rate: int | None = None) -> str:
    """The sha256 of an item's content; raises InputError for files that cannot be read.

    Strings are text for a text expert and file paths otherwise (as in ``bind.embed``).
    """
    from PIL import Image

    from ..io.audio import Waveform

    digest = hashlib.sha256()
    if isinstance(item, str) and modality == Modality.TEXT:
        digest.update(b"text\0" + item.encode("utf-8"))
    elif isinstance(item, (str, os.PathLike)):
        digest.update(b"bytes\0")
        try:
            with open(item, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
        except IsADirectoryError:
            raise InputError(item, "is a directory, not a file") from None
        except OSError as exc:
            raise InputError(item, f"cannot read file: {exc.strerror or exc}") from None
    elif isinstance(item, (bytes, bytearray, memoryview)):
        digest.update(b"bytes\0" + bytes(item))
    elif isinstance(item, Image.Image):
        digest.update(f"image\0{item.mode}\0{item.size}\0".encode() + item.tobytes())
    elif isinstance(item, Waveform):
        _hash_array(digest, np.asarray(item.samples), f"waveform {item.sample_rate}")
    elif isinstance(item, (np.ndarray, torch.Tensor)):
        array = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item
        _hash_array(digest, array, f"array {sample_rate}")
    else:
        raise InputError(item, f"cannot cache an input of type {type(item).__name__}")
    return digest.hexdigest()


def _hash_array(digest: Any, array: np.ndarray, tag: str) -> None:
    array = np.ascontiguousarray(array)
    digest.update(f"{tag}\0{array.shape}\0{array.dtype.str}\0".encode())
    digest.update(array.tobytes())


def expert_fingerprint(card: EncoderCard, encoder: Encoder) -> dict[str, Any]:
    """What identifies an expert's outputs: card fields that change features, a weights signature, version."""
    from .. import __version__
    from ..io import decoding_version

    return {
        "name": card.name, "backend": card.backend, "model_id": card.model_id, "pretrained": card.pretrained,
        "dim": card.dim, "preprocess": card.preprocess, "options": card.options,
        "weights": _weights_signature(encoder), "bind_version": __version__,
        "decoding": decoding_version(card.modality),
    }


def _weights_signature(encoder: Encoder) -> str:
    """A cheap hash of every weight's name, shape, dtype and up to 32 evenly spaced values."""
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in sorted(encoder.state_dict().items()):
            digest.update(f"{name}\0{tuple(tensor.shape)}\0{tensor.dtype}\0".encode())
            flat = tensor.detach().reshape(-1)
            if flat.numel():
                sample = flat[:: max(1, flat.numel() // 32)][:32]
                digest.update(sample.cpu().double().numpy().tobytes())
    return digest.hexdigest()


def _fingerprint_id(fingerprint: dict[str, Any]) -> str:
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _folder_name(expert: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", expert)


class _Store:
    """One expert fingerprint's folder: the sqlite index and its shards."""

    def __init__(self, folder: Path, fingerprint: dict[str, Any]) -> None:
        self.folder, self.shards = folder, folder / "shards"
        self.shards.mkdir(parents=True, exist_ok=True)
        card = folder / "fingerprint.json"
        if not card.exists():
            with atomic_path(card) as tmp:
                tmp.write_text(json.dumps(fingerprint, indent=2, sort_keys=True, default=str))
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS shards (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, "
                       "rows INTEGER NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, shard TEXT NOT NULL, "
                       "row INTEGER NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS entries_shard ON entries (shard)")

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection (never shared across forked DataLoader workers); one transaction."""
        db = sqlite3.connect(self.folder / "index.sqlite", timeout=120)
        try:
            with db:
                yield db
        finally:
            db.close()

    def lookup(self, keys: Sequence[str]) -> dict[str, tuple[str, int]]:
        found: dict[str, tuple[str, int]] = {}
        unique = list(dict.fromkeys(keys))
        with self._db() as db:
            for start in range(0, len(unique), 500):
                part = unique[start : start + 500]
                query = f"SELECT key, shard, row FROM entries WHERE key IN ({','.join('?' * len(part))})"
                found.update((key, (shard, row)) for key, shard, row in db.execute(query, part))
        return found

    def read(self, shard: str) -> torch.Tensor | None:
        """A shard's features, or None (with a warning, entries dropped) when it fails its checksum."""
        from safetensors.torch import load

        path = self.shards / shard
        with self._db() as db:
            row = db.execute("SELECT sha256 FROM shards WHERE name = ?", (shard,)).fetchone()
        reason = None
        try:
            data = path.read_bytes()
        except OSError as exc:
            reason = f"cannot be read ({exc.strerror or exc})"
        else:
            if row is None or hashlib.sha256(data).hexdigest() != row[0]:
                reason = "does not match its recorded sha256 (corrupt or truncated)"
            else:
                try:
                    return load(data)["features"]
                except Exception as exc:  # a checksummed file that safetensors rejects: written by a bug
                    reason = f"cannot be decoded ({exc})"
        warnings.warn(f"feature cache shard {path} {reason}; its entries are dropped and will be recomputed",
                      RuntimeWarning, stacklevel=4)
        self.drop(shard)
        return None

    def drop(self, shard: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM entries WHERE shard = ?", (shard,))
            db.execute("DELETE FROM shards WHERE name = ?", (shard,))
        with contextlib.suppress(FileNotFoundError):
            (self.shards / shard).unlink()

    def write(self, keys: Sequence[str], features: torch.Tensor) -> None:
        """Write one shard atomically, then index it (a kill in between leaves an unindexed file only)."""
        from safetensors.torch import save

        data = save({"features": features.contiguous()})
        name = f"{uuid.uuid4().hex}.safetensors"
        with atomic_path(self.shards / name) as tmp, open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with self._db() as db:
            db.execute("INSERT INTO shards VALUES (?, ?, ?)", (name, hashlib.sha256(data).hexdigest(), len(keys)))
            db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)",
                           [(key, name, row) for row, key in enumerate(keys)])


class FeatureCache:
    """Frozen expert features on disk, so re-training never re-encodes a file.

    Example::

        cache = FeatureCache("~/.cache/bind/features")
        feats = cache.embed(image_paths, "efficientnet-lite0.image")   # computed once, then read back
    """

    def __init__(self, root: str | os.PathLike, flush_every: int = 1024) -> None:
        if flush_every < 1:
            raise ConfigError(f"flush_every must be at least 1, got {flush_every}")
        self.root = Path(root).expanduser()
        self.flush_every = flush_every
        self._stats = CacheStats()

    def stats(self) -> CacheStats:
        """Hits, misses and dropped corrupt shards counted by this instance."""
        return dataclasses.replace(self._stats)

    def clear(self, expert: str | Encoder | None = None) -> None:
        """Delete the cached features of one expert (every fingerprint of it), or of all experts."""
        if expert is None:
            targets = [p for p in self.root.iterdir() if p.is_dir()] if self.root.is_dir() else []
        else:
            targets = [self.root / _folder_name(expert.name if isinstance(expert, Encoder) else expert)]
        for target in targets:
            shutil.rmtree(target, ignore_errors=True)

    def folder(self, encoder: str | EncoderCard | Encoder, device: str = "cpu") -> Path:
        """Where an expert's features are kept: ``root/<name>/<fingerprint>``."""
        expert = resolve(encoder, None, device)
        return self.root / _folder_name(expert.card.name) / _fingerprint_id(expert_fingerprint(expert.card, expert.encoder))

    def embed(self, items: Sequence[Any], encoder: str | EncoderCard | Encoder, *, batch_size: int = 32, progress: bool = False,
              on_error: Literal["raise", "skip"] = "raise", sample_rate: int | None = None,
              num_workers: int | None = None, device: str = "cpu") -> torch.Tensor | EmbedResult:
        """Raw features ``[N, dim]`` of ``items`` in input order: hits read from disk, misses computed.

        Misses go through ``bind.embed(..., normalize=False)`` and are written every ``flush_every``
        items (and on an interrupt), so an extraction stopped halfway resumes where it stopped.
        With ``on_error="skip"`` returns an EmbedResult (good rows, their positions, failures).
        ``progress=True`` shows a progress bar over the misses (off by default, as in :func:`bind.embed`).
        """
        check_on_error(on_error)
        expert = resolve(encoder, None, device)
        fingerprint = expert_fingerprint(expert.card, expert.encoder)
        store = _Store(self.root / _folder_name(expert.card.name) / _fingerprint_id(fingerprint), fingerprint)
        items = list(items)
        keys: list[str | None] = []
        failures: list[InputError] = []
        for index, item in enumerate(items):
            try:
                keys.append(content_hash(item, expert.card.modality, sample_rate))
            except InputError as exc:
                if on_error == "raise":
                    raise exc.at(index) from None
                keys.append(None)
                failures.append(exc.at(index))
        rows = self._read_hits(store, [k for k in keys if k is not None])
        first: dict[str, int] = {}
        for index, key in enumerate(keys):
            if key is not None and key not in rows:
                first.setdefault(key, index)
        self._stats.hits += sum(1 for k in keys if k is not None and k in rows)
        self._stats.misses += len(first)
        if first:
            computed, bad = self._compute(store, items, first, expert, batch_size=batch_size, progress=progress,
                                          on_error=on_error, sample_rate=sample_rate, num_workers=num_workers,
                                          device=device)
            rows.update(computed)
            failures.extend(bad)
            failed = {keys[err.index]: err for err in bad if err.index is not None}
            failures.extend(failed[key].at(i) for i, key in enumerate(keys)  # repeats of a failed item
                            if key in failed and first[key] != i)
        kept = [i for i, key in enumerate(keys) if key is not None and key in rows]
        features = torch.stack([rows[keys[i]] for i in kept]) if kept else torch.empty(0, expert.card.dim)
        if on_error == "skip":
            return EmbedResult(features, kept, sorted(failures, key=lambda e: e.index or 0))
        return features

    def _read_hits(self, store: _Store, keys: list[str]) -> dict[str, torch.Tensor]:
        by_shard: dict[str, list[tuple[str, int]]] = {}
        for key, (shard, row) in store.lookup(keys).items():
            by_shard.setdefault(shard, []).append((key, row))
        rows: dict[str, torch.Tensor] = {}
        for shard, entries in by_shard.items():
            features = store.read(shard)
            if features is None:
                self._stats.corrupt_shards += 1
                continue
            for key, row in entries:
                rows[key] = features[row]
        return rows

    def _compute(self, store: _Store, items: list[Any], first: dict[str, int], expert: Wanted, *,
                 on_error: str, progress: bool,
                 **embed_options: Any) -> tuple[dict[str, torch.Tensor], list[InputError]]:
        """Embed each missing key's first item in chunks; flush a shard every ``flush_every`` rows."""
        from tqdm.auto import tqdm

        pending = list(first.items())
        chunk = max(1, min(self.flush_every, 8 * embed_options["batch_size"]))
        done: dict[str, torch.Tensor] = {}
        buffer: list[tuple[str, torch.Tensor]] = []
        failures: list[InputError] = []

        def flush(size: int) -> None:
            while len(buffer) >= size and buffer:
                part, buffer[:] = buffer[:size], buffer[size:]
                store.write([k for k, _ in part], torch.stack([f for _, f in part]))

        bar = tqdm(total=len(pending), desc=f"cache {expert.card.name}", unit="item", disable=not progress)
        try:
            for start in range(0, len(pending), chunk):
                part = pending[start : start + chunk]
                result = embed([items[i] for _, i in part], expert, normalize=False, on_error="skip",
                               progress=False, **embed_options)
                for row, position in zip(result.embeddings, result.indices):
                    key = part[position][0]
                    done[key] = row
                    buffer.append((key, row))
                failures.extend(err.at(part[err.index or 0][1]) for err in result.failures)
                flush(self.flush_every)
                bar.update(len(part))
                if failures and on_error == "raise":
                    raise failures[0]
        finally:  # an interrupt or a bad item still keeps what was computed
            bar.close()
            flush(len(buffer))
        return done, failures
