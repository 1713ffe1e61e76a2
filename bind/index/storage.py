"""Crash-safe index folders: every save writes a complete new version, then flips a pointer.

Layout::

    <dir>/CURRENT          the name of the live version folder (one line)
    <dir>/v-<time>-<rand>/ manifest.json, vectors.npy, records.jsonl, ann.faiss (optional), space/

A save writes and fsyncs a new version folder next to the live one, then replaces ``CURRENT`` with one
atomic rename, then deletes the other version folders. A crash at any point before the rename leaves
``CURRENT`` naming the previous, complete version (the half-written folder is deleted by the next save);
a crash after it leaves the new version live. Readers only ever follow ``CURRENT``.

Writers take ``<dir>/.writer.lock`` (:func:`writer_lock`, an advisory ``flock``) for a whole
read-modify-write, so two builds into one folder never lose each other's items: the second waits or fails
naming the holder. The kernel drops the lock of a killed process, so a stale lock never blocks; its leftover
holder note is reported.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, IndexCorruptError, IndexLockedError
from ..io.atomic import atomic_path

POINTER = "CURRENT"
PREFIX = "v-"
LOCK_FILE = ".writer.lock"
_HELD: dict[str, int] = {}  # lock files this process holds, with their nesting depth
log = logging.getLogger("bind.index")


@contextlib.contextmanager
def writer_lock(directory: str | os.PathLike, wait: float = 0.0) -> Iterator[None]:
    """Hold the writer lock of index folder ``directory`` (created if missing) for the ``with`` block.

    Another holder: wait up to ``wait`` seconds (saying so once), then IndexLockedError naming it (pid, host,
    command, since when). Re-entrant within a process. Advisory: it orders bind's writers; on network file
    systems without ``flock`` support it cannot.
    """
    root = Path(directory).expanduser()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"cannot write an index to {root}: it exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    key = str(path.resolve())
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, root, path, wait)
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
            os.ftruncate(fd, 0)  # a clean release leaves no holder note
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _acquire(fd: int, root: Path, path: Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _holder(path)
            if time.monotonic() >= deadline:
                raise IndexLockedError(f"index {root} is being written by {holder}; wait for it to finish "
                                       f"(bind index build --wait SECONDS) and run again") from None
            if not told:
                log.warning("waiting up to %.0f s for %s to finish writing %s", wait, holder, root)
                told = True
            time.sleep(0.2)
    stale = _holder(path, default="")
    if stale:
        log.warning("index %s: an earlier writer (%s) stopped without finishing; its lock was released and any "
                    "half-written version is discarded", root, stale)
    note = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv)[:200]}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(note).encode(), 0)


def _holder(path: Path, default: str = "another process") -> str:
    """The holder note of a lock file, readable ("pid 123 on host, since ..., running ...")."""
    try:
        note = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return default
    if not isinstance(note, dict):
        return default
    return f"pid {note.get('pid')} on {note.get('host')} (since {note.get('since')}, running {note.get('command')!r})"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            with open(Path(folder) / name, "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(Path(folder))


def write_array(path: Path, array: np.ndarray) -> None:
    """An ``.npy`` file, flushed to disk."""
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_lines(path: Path, rows: Iterable[Any]) -> None:
    """One compact JSON value per line."""
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, separators=(",", ":")) + "\n")


def read_lines(path: Path) -> list[Any]:
    """One JSON value per line; IndexCorruptError naming the file and line when one is unreadable."""
    rows = []
    with open(path, encoding="utf-8", errors="strict") as handle:
        try:
            for line in handle:
                rows.append(json.loads(line))
        except (ValueError, UnicodeDecodeError) as exc:
            raise IndexCorruptError(f"{path} is damaged: line {len(rows) + 1} is not JSON ({exc})") from None
    return rows


def checksums(folder: Path, manifest: str) -> dict[str, dict[str, Any]]:
    """``{relative path: {"size", "sha256"}}`` of every file under a version folder but its ``manifest``."""
    return {path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": _sha256(path)}
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != manifest}


def verify(folder: Path, files: dict[str, dict[str, Any]], full: bool, where: object) -> None:
    """Every recorded file is there with its size (and, with ``full``, its sha256); else IndexCorruptError."""
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise IndexCorruptError(f"index {where}: {name} is missing")
        size = path.stat().st_size
        if size != expected["size"]:
            raise IndexCorruptError(f"index {where}: {name} is damaged: {size} bytes, {expected['size']} written")
        if full and _sha256(path) != expected["sha256"]:
            raise IndexCorruptError(f"index {where}: {name} is damaged: its content does not match the sha256 "
                                    f"recorded when it was written")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_version(directory: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Run ``write(folder)`` into a fresh version folder of ``directory`` and make it the live one (under
    the writer lock)."""
    root = Path(directory).expanduser()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"cannot save an index to {root}: it exists and is not a folder")
    with writer_lock(root):
        return _save_version(root, write)


def _save_version(root: Path, write: Callable[[Path], None]) -> Path:
    pointer = root / POINTER
    if not pointer.exists() and any(not _ours(p.name) and p.name != LOCK_FILE for p in root.iterdir()):
        raise ConfigError(f"refusing to save an index into {root}: the folder has other files and is not a "
                          f"bind index (no {POINTER} file); choose an empty or new folder")
    live = _live_name(root)
    _remove_versions(root, keep=live)  # leftovers of an earlier crashed save
    folder = root / f"{PREFIX}{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    try:
        write(folder)
        _fsync_tree(folder)
        _fsync_dir(root)
        with atomic_path(pointer) as tmp:
            tmp.write_text(folder.name + "\n")
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    _remove_versions(root, keep=folder.name)
    return folder


def live_version(directory: str | os.PathLike) -> Path:
    """The folder ``CURRENT`` names; a clear error when ``directory`` holds no saved index."""
    root = Path(directory).expanduser()
    name = _live_name(root)
    if name is None:
        raise ConfigError(f"no bind index at {root} (no {POINTER} file); save one with index.save(dir)")
    folder = root / name
    if not folder.is_dir():
        raise ConfigError(f"index {root} is damaged: {POINTER} names {name!r}, which is missing")
    return folder


def _live_name(root: Path) -> str | None:
    try:
        name = (root / POINTER).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not name.startswith(PREFIX) or "/" in name or os.sep in name:
        raise ConfigError(f"index {root} is damaged: {POINTER} holds {name!r}, not a version folder name")
    return name


def _ours(name: str) -> bool:
    """A version folder or a pointer temporary file (a crashed save may leave either)."""
    return name.startswith((PREFIX, f".{POINTER}."))


def _remove_versions(root: Path, keep: str | None) -> None:
    for path in root.iterdir():
        if _ours(path.name) and path.name != keep:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
