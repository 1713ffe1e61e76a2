"""Paired data: ``Pair`` rows, the ``PairManifest`` list, bad-row reports, generic CSV/JSONL manifests.

An item is a ``pathlib.Path`` (a media file) or a ``str`` (text, e.g. a caption). Loaders check every row
and either raise one ``ManifestError`` that lists the bad rows, or (``on_error="skip"``) leave them out
and attach a ``LoadReport`` saying which rows were skipped and why.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from ..errors import ConfigError, InputError
from ..experts.modality import Modality, extension_modality
from ..io.atomic import atomic_path

Item = Path | str
OnError = Literal["raise", "skip"]
SHOWN_PROBLEMS = 5


@dataclasses.dataclass
class Pair:
    """One training/evaluation pair; ``meta`` holds the split, labels, ids and any extra columns."""

    source: Item
    target: Item
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RowProblem:
    """Why one row was bad; ``where`` is e.g. "line 7", "images[3]" or a file path."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclasses.dataclass
class LoadReport:
    """What a loader read from ``source``: rows seen, pairs kept and the rows it skipped."""

    source: str
    rows: int
    pairs: int
    skipped: list[RowProblem]

    def __str__(self) -> str:
        text = f"{self.source}: {self.pairs} pairs from {self.rows} rows"
        if self.skipped:
            text += f"; skipped {len(self.skipped)}: " + _summary(self.skipped)
        return text


def _summary(problems: list[RowProblem]) -> str:
    shown = "; ".join(str(p) for p in problems[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    return shown + (f"; ... and {more} more" if more > 0 else "")


class ManifestError(InputError):
    """Bad rows in a data file; ``problems`` lists each one (where and why)."""

    def __init__(self, source: Any, problems: list[RowProblem]) -> None:
        self.problems = list(problems)
        super().__init__(source, f"{len(self.problems)} bad row(s): {_summary(self.problems)} "
                                 "(fix them, or pass on_error='skip' to leave them out)")

    def __reduce__(self) -> tuple:
        return type(self), (self.item, self.problems)


class RowError(Exception):
    """Raised by row checks inside a loader; becomes a RowProblem."""


@dataclasses.dataclass
class PairManifest:
    """A list of pairs plus what is known about them (modalities when uniform, class names, load report)."""

    pairs: list[Pair]
    source_modality: Modality | None = None
    target_modality: Modality | None = None
    classes: list[str] | None = None
    report: LoadReport | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.pairs)

    def __getitem__(self, index: int | slice) -> "Pair | PairManifest":
        if isinstance(index, slice):
            return dataclasses.replace(self, pairs=self.pairs[index])
        return self.pairs[index]

    def sources(self) -> list[Item]:
        """Every pair's source, in order."""
        return [p.source for p in self.pairs]

    def targets(self) -> list[Item]:
        """Every pair's target, in order."""
        return [p.target for p in self.pairs]

    def labels(self) -> list[int]:
        """Each pair's class index into ``classes`` (datasets with class labels only)."""
        if self.classes is None:
            raise ConfigError("this manifest has no class labels")
        return [p.meta["label"] for p in self.pairs]

    def splits(self) -> dict[str, int]:
        """Pairs per split name (pairs without a split are counted under None)."""
        counts: dict[Any, int] = {}
        for pair in self.pairs:
            counts[pair.meta.get("split")] = counts.get(pair.meta.get("split"), 0) + 1
        return counts

    def split(self, name: str) -> "PairManifest":
        """The pairs of one split."""
        return self.filter(lambda p: p.meta.get("split") == name)

    def filter(self, keep: Any) -> "PairManifest":
        """The pairs for which ``keep(pair)`` is true."""
        return dataclasses.replace(self, pairs=[p for p in self.pairs if keep(p)])

    @classmethod
    def concat(cls, manifests: Iterable["PairManifest"]) -> "PairManifest":
        """One manifest from several (e.g. the train/val/test CSVs of one dataset)."""
        manifests = list(manifests)
        if not manifests:
            raise ConfigError("concat needs at least one manifest")

        def common(values: list[Any]) -> Any:
            return values[0] if all(v == values[0] for v in values) else None

        classes = common([m.classes for m in manifests])
        if classes is None and any(m.classes is not None for m in manifests):
            raise ConfigError("cannot concatenate manifests with different class lists")
        return cls([p for m in manifests for p in m.pairs], common([m.source_modality for m in manifests]),
                   common([m.target_modality for m in manifests]), classes)


class Rows:
    """Collects pairs and row problems while a loader reads; ``finish`` raises or reports."""

    def __init__(self, source: Any, on_error: OnError) -> None:
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.source, self.on_error = source, on_error
        self.pairs: list[Pair] = []
        self.problems: list[RowProblem] = []
        self.rows = 0

    def problem(self, where: str, reason: str) -> None:
        self.problems.append(RowProblem(where, reason))

    def finish(self, **fields: Any) -> PairManifest:
        if self.problems and self.on_error == "raise":
            raise ManifestError(self.source, self.problems)
        report = LoadReport(str(self.source), self.rows, len(self.pairs), self.problems)
        return PairManifest(self.pairs, report=report, **fields)


def check_file(path: Path) -> Path:
    """``path`` if it is a non-empty file; RowError otherwise."""
    try:
        size = path.stat().st_size
    except OSError:
        raise RowError(f"file not found: {path}") from None
    if not path.is_file():
        raise RowError(f"not a file: {path}")
    if size == 0:
        raise RowError(f"empty file (0 bytes): {path}")
    return path


def check_text(value: Any, what: str = "caption") -> str:
    """A non-empty string; RowError for missing, non-string or blank values."""
    if value is None:
        raise RowError(f"missing {what}")
    if not isinstance(value, str):
        raise RowError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RowError(f"empty {what}")
    return value.strip()


def guess_modality(value: str) -> Modality:
    """A value naming a media file (known extension, no spaces or a path separator) is that file, else text."""
    modality = extension_modality(value) if len(value) < 4096 and "\n" not in value else None
    if modality is None or modality == Modality.TEXT:
        return Modality.TEXT
    return modality if (" " not in value or "/" in value or os.sep in value) else Modality.TEXT


def resolve_item(value: Any, modality: Modality | None, base: Path, what: str) -> tuple[Item, Modality]:
    """A manifest value as an item: text stays a string, files become existing absolute-or-base-relative Paths."""
    if value is None:
        raise RowError(f"missing column {what!r}")
    if not isinstance(value, str):
        raise RowError(f"{what} must be a string, got {type(value).__name__}")
    modality = modality or guess_modality(value)
    if modality == Modality.TEXT:
        return check_text(value, f"{what} text"), modality
    if not value.strip():
        raise RowError(f"empty {what} path")
    path = Path(value.strip()).expanduser()
    return check_file(Path(os.path.normpath(path if path.is_absolute() else base / path))), modality


def _modality_arg(value: Any, where: str) -> Modality | None:
    if value in (None, ""):
        return None
    try:
        return Modality.parse(value)
    except ValueError as exc:
        raise RowError(f"{where}: {exc}") from None


def csv_rows(path: Path, required: list[str], delimiter: str = ",") -> Iterator[tuple[str, dict[str, Any]]]:
    """(``line N``, row) per data row of a CSV file; a header without a required column raises at once."""
    if not path.is_file():
        raise InputError(str(path), "CSV file not found")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(path, [RowProblem("line 1", f"the header has no {missing} column "
                                                            f"(columns: {reader.fieldnames})")])
        start = reader.line_num + 1
        for row in reader:
            where, start = f"line {start}", reader.line_num + 1
            yield where, row


def _read_records(path: Path, rows: Rows) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) per data row of a CSV/TSV or JSONL file; unreadable rows become problems."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        for where, record in csv_rows(path, ["source", "target"], delimiter="\t" if suffix == ".tsv" else ","):
            if None in record:
                rows.rows += 1
                rows.problem(where, "more fields than the header has")
                continue
            yield where, record
    elif suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    rows.rows += 1
                    rows.problem(f"line {number}", f"not valid JSON ({exc.msg})")
                    continue
                if not isinstance(record, dict):
                    rows.rows += 1
                    rows.problem(f"line {number}", f"expected a JSON object, got {type(record).__name__}")
                    continue
                yield f"line {number}", record
    elif suffix == ".json":
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ManifestError(path, [RowProblem(f"line {exc.lineno}", f"not valid JSON ({exc.msg})")]) from None
        if not isinstance(records, list):
            raise ManifestError(path, [RowProblem("top level", "expected a JSON array of row objects, got "
                                                               f"{type(records).__name__}")])
        for number, record in enumerate(records):
            if not isinstance(record, dict):
                rows.rows += 1
                rows.problem(f"row {number}", f"expected a JSON object, got {type(record).__name__}")
                continue
            try:
                yield f"row {number}", _asset_row(record, path.parent) if "target" not in record else record
            except RowError as exc:
                rows.rows += 1
                rows.problem(f"row {number}", str(exc))
    else:
        raise ConfigError(f"{path}: a manifest must be .csv, .tsv, .jsonl or .json (got {suffix!r})")


def _asset_row(record: dict[str, Any], base: Path) -> dict[str, Any]:
    """A row of bind's asset manifest (``path``, ``modality``, ``caption``) as a pair: the item and its caption.

    A text item's source is the text of its file; the row's own ``source`` (where the file came from) is
    kept in meta as ``asset_source``."""
    if "path" not in record or "caption" not in record:
        raise RowError("a row needs 'source' and 'target' (or an asset row's 'path' and 'caption')")
    rest = {k: v for k, v in record.items() if k not in ("path", "caption", "modality", "source")}
    if "source" in record:
        rest["asset_source"] = record["source"]
    modality = _modality_arg(record.get("modality"), "modality")
    source: Any = record["path"]
    if modality == Modality.TEXT:
        if not isinstance(source, str):
            raise RowError(f"path must be a string, got {type(source).__name__}")
        try:
            source = check_file(base / source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RowError(f"cannot read {source}: {exc}") from None
    return {"source": source, "target": record["caption"],
            "source_modality": modality.value if modality else None, **rest}


def load_manifest(path: str | os.PathLike, *, source_modality: str | Modality | None = None,
                  target_modality: str | Modality | None = None, on_error: OnError = "raise") -> PairManifest:
    """Pairs from a CSV/TSV (header row), JSONL or JSON file with ``source`` and ``target`` columns/keys.

    A ``.json`` file holds an array of row objects; rows of bind's asset manifest (``assets/manifest.json``:
    ``path``, ``modality``, ``caption``) are read as the item (``source``) and its caption (``target``).

    Optional columns: ``split``, ``source_modality``, ``target_modality`` (per row; the arguments apply
    where a row gives none). Without a modality a value naming a media file (``.jpg``, ``.wav``, ...) is
    a file, anything else text. Relative paths resolve against the manifest's folder; every other column
    goes to ``Pair.meta``. Bad rows (missing file, empty text, missing column) raise one ManifestError
    listing their line numbers, or with ``on_error="skip"`` are left out and listed in ``.report``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(str(path), "manifest file not found")
    defaults = (Modality.parse(source_modality) if source_modality else None,
                Modality.parse(target_modality) if target_modality else None)
    rows = Rows(path, on_error)
    seen: tuple[set[Modality], set[Modality]] = (set(), set())
    for where, record in _read_records(path, rows):
        rows.rows += 1
        try:
            modalities = [_modality_arg(record.get(f"{side}_modality"), f"{side}_modality") or default
                          for side, default in zip(("source", "target"), defaults)]
            source, source_kind = resolve_item(record.get("source"), modalities[0], path.parent, "source")
            target, target_kind = resolve_item(record.get("target"), modalities[1], path.parent, "target")
        except RowError as exc:
            rows.problem(where, str(exc))
            continue
        meta = {k: v for k, v in record.items()
                if k not in ("source", "target", "source_modality", "target_modality")
                and not (k == "split" and v in (None, ""))}
        rows.pairs.append(Pair(source, target, meta))
        seen[0].add(source_kind)
        seen[1].add(target_kind)
    return rows.finish(source_modality=_only(seen[0]) if seen[0] else defaults[0],
                       target_modality=_only(seen[1]) if seen[1] else defaults[1])


def _only(values: set[Modality]) -> Modality | None:
    return next(iter(values)) if len(values) == 1 else None


def save_manifest(manifest: PairManifest, path: str | os.PathLike) -> None:
    """Write a manifest ``load_manifest`` reads back to the same pairs (CSV/TSV or JSONL, atomically).

    Paths inside the manifest's folder are written relative to it. Modality columns are written when
    the manifest's modality is known. In CSV every meta value becomes text.
    """
    path = Path(path).expanduser()
    base = path.parent.resolve()

    def value(item: Item) -> str:
        if isinstance(item, Path):
            resolved = item.resolve()
            return resolved.relative_to(base).as_posix() if resolved.is_relative_to(base) else str(resolved)
        return item

    records = []
    for pair in manifest.pairs:
        record: dict[str, Any] = {"source": value(pair.source), "target": value(pair.target)}
        if manifest.source_modality is not None:
            record["source_modality"] = manifest.source_modality.value
        if manifest.target_modality is not None:
            record["target_modality"] = manifest.target_modality.value
        records.append({**record, **pair.meta})
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix in (".csv", ".tsv"):
            columns = list(dict.fromkeys(["source", "target"] + [k for r in records for k in r]))
            with open(tmp, "w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, columns, delimiter="\t" if suffix == ".tsv" else ",")
                writer.writeheader()
                writer.writerows(records)
        elif suffix in (".jsonl", ".ndjson"):
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        else:
            raise ConfigError(f"{path}: a manifest must be .csv, .tsv or .jsonl (got {suffix!r})")


def folder_with_captions(folder: str | os.PathLike, *, caption_suffix: str = ".txt", recursive: bool = True,
                         on_error: OnError = "raise") -> PairManifest:
    """Every media file under ``folder`` with its sidecar caption file (``x.jpg`` + ``x.txt``).

    Each non-empty line of a caption file is one caption (one pair). A media file without a caption
    file, or with an empty one, is a bad row.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(str(folder), "folder not found")
    rows = Rows(folder, on_error)
    kinds: set[Modality] = set()
    for path in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        modality = extension_modality(path)
        if modality is None or modality == Modality.TEXT or not path.is_file():
            continue
        rows.rows += 1
        sidecar = path.with_suffix(caption_suffix)
        where = path.relative_to(folder).as_posix()
        try:
            check_file(path)
            if not sidecar.is_file():
                raise RowError(f"no caption file {sidecar.name}")
            captions = [line.strip() for line in sidecar.read_text(encoding="utf-8").splitlines() if line.strip()]
            if not captions:
                raise RowError(f"empty caption file {sidecar.name}")
        except (RowError, OSError, UnicodeDecodeError) as exc:
            rows.problem(where, str(exc))
            continue
        kinds.add(modality)
        rows.pairs.extend(Pair(path, caption, {"caption_index": i}) for i, caption in enumerate(captions))
    return rows.finish(source_modality=_only(kinds), target_modality=Modality.TEXT)
