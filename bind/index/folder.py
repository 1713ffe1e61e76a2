"""Finding the media files of a folder, and the report of one incremental folder build."""
from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError
from ..experts.modality import EXTENSIONS, Modality
from .storage import POINTER


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One media file: where it is, its id in the index, its modality, and its stat signature."""

    path: Path
    relative: str
    modality: Modality
    mtime_ns: int
    size: int


@dataclasses.dataclass
class FolderReport:
    """What one ``add_folder`` run did. ``failures`` name each bad file and why it was skipped."""

    added: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)
    unchanged: int = 0
    embedded: int = 0  # files that went through the space (the rest reused an embedding by content hash)
    failures: list[InputError] = dataclasses.field(default_factory=list)
    ignored: list[str] = dataclasses.field(default_factory=list)  # files with no media extension

    def __str__(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.updated)} updated", f"{len(self.removed)} removed",
                 f"{self.unchanged} unchanged", f"{self.embedded} embedded", f"{len(self.failures)} failed",
                 f"{len(self.ignored)} ignored"]
        lines = [", ".join(parts)]
        lines += [f"  skipped {failure.item}: {failure.reason}" for failure in self.failures]
        return "\n".join(lines)


def scan(root: Path, extensions: Iterable[str] | None, recursive: bool,
         exclude: Iterable[Path] = ()) -> tuple[list[FileEntry], list[str], list[InputError]]:
    """The media files under ``root`` (sorted, hidden names skipped), the files ignored for their extension,
    and the entries that are not regular files (FIFOs, sockets, devices: never opened, so never a hang).

    ``extensions``: the suffixes to index (e.g. ``[".jpg", ".wav"]``); default every suffix bind knows
    (:data:`bind.experts.modality.EXTENSIONS`). Symbolic links to files are followed, to folders not.
    Saved bind indexes (a folder with a ``CURRENT`` pointer) and the folders in ``exclude`` (e.g. where
    this build saves its index) are never indexed.
    """
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions} if extensions else None
    skipped = {Path(p).expanduser().resolve() for p in exclude}
    entries: list[FileEntry] = []
    ignored: list[str] = []
    unreadable: list[InputError] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _left_out(Path(folder) / d, skipped)) \
            if recursive else []
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            suffix = path.suffix.lower()
            if suffix not in EXTENSIONS or (wanted is not None and suffix not in wanted):
                ignored.append(relative)
                continue
            try:
                info = path.stat()
            except OSError as exc:  # a dangling link, a link loop, or a file deleted during the scan
                unreadable.append(InputError(str(path), f"cannot be read: {exc.strerror or exc}"))
                continue
            if not stat.S_ISREG(info.st_mode):
                unreadable.append(InputError(str(path), "not a regular file (a FIFO, socket or device); skipped"))
                continue
            entries.append(FileEntry(path, relative, EXTENSIONS[suffix], info.st_mtime_ns, info.st_size))
    return entries, ignored, unreadable


def _left_out(folder: Path, skipped: set[Path]) -> bool:
    """A folder that is a saved bind index, or one of ``skipped``."""
    return (folder / POINTER).is_file() or folder.resolve() in skipped
