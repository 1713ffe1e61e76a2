"""Loaders for the public paired datasets users keep locally, each returning a PairManifest.

Every loader checks that each file exists and each caption is non-empty; bad rows raise one
ManifestError listing them (``on_error="raise"``) or are skipped and listed in ``manifest.report``.
Splits go to ``pair.meta["split"]`` as "train" / "val" / "test"; class datasets set ``manifest.classes``
and ``pair.meta["label"]`` (an index into it). Nothing is downloaded: point the loaders at your copies.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..experts.modality import EXTENSIONS, Modality
from .manifest import OnError, Pair, PairManifest, RowError, Rows, check_file, check_text, csv_rows

AUDIO_SUFFIXES = tuple(sorted(s for s, m in EXTENSIONS.items() if m == Modality.AUDIO))
_SPLIT_WORDS = {"train": "train", "development": "train", "val": "val", "valid": "val", "validation": "val",
                "validate": "val", "test": "test", "evaluation": "test"}


def _folder(path: str | os.PathLike, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise InputError(str(path), f"{what} folder not found")
    return path


def _field(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        raise RowError(f"missing {key!r}")
    return str(value).strip()


def _split_from_name(name: str) -> str | None:
    """A standard split named in a file name ("train.csv", "clotho_captions_evaluation.csv"), or None."""
    words = name.lower().replace("-", "_").split("_")
    found = {_SPLIT_WORDS[w] for w in words if w in _SPLIT_WORDS}
    return found.pop() if len(found) == 1 else None


def _load_json(path: str | os.PathLike) -> tuple[Path, Any]:
    path = Path(path).expanduser()
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(path), "JSON file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(str(path), f"not a readable JSON file: {exc}") from None


def _list_in(data: Any, key: str, path: Path) -> list[Any]:
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise InputError(str(path), f"expected a JSON object with a {key!r} list")
    return data[key]


def audiocaps(csv_path: str | os.PathLike, audio_dir: str | os.PathLike, *, split: str | None = None,
              on_error: OnError = "raise") -> PairManifest:
    """AudioCaps: a CSV with ``audiocap_id,youtube_id,start_time,caption`` (its train/val/test.csv).

    Expected layout: the clips as audio files (wav/flac/ogg/mp3/...) directly in ``audio_dir``, each
    named by its ``audiocap_id`` (``91139.wav``), its ``youtube_id`` (``r1nicOVtvkQ.wav``) or the AudioSet
    style ``Y<youtube_id>`` (``Yr1nicOVtvkQ.wav``); tried in that order. ``split`` defaults to the one in
    the CSV's name (``train.csv`` -> "train", ``val.csv`` -> "val", ``test.csv`` -> "test").
    """
    csv_path, folder = Path(csv_path).expanduser(), _folder(audio_dir, "audio")
    split = split or _split_from_name(csv_path.stem)
    files = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES}
    rows = Rows(csv_path, on_error)
    for where, row in csv_rows(csv_path, ["audiocap_id", "youtube_id", "start_time", "caption"]):
        rows.rows += 1
        try:
            audiocap_id, youtube_id = _field(row, "audiocap_id"), _field(row, "youtube_id")
            caption = check_text(row.get("caption"))
            names = [audiocap_id, youtube_id, f"Y{youtube_id}"]
            path = next((files[n] for n in names if n in files), None)
            if path is None:
                raise RowError(f"no audio file named {audiocap_id}, {youtube_id} or Y{youtube_id} in {folder}")
            check_file(path)
        except RowError as exc:
            rows.problem(where, str(exc))
            continue
        meta = {"audiocap_id": audiocap_id, "youtube_id": youtube_id, "start_time": _field(row, "start_time")}
        rows.pairs.append(Pair(path, caption, {**meta, **({"split": split} if split else {})}))
    return rows.finish(source_modality=Modality.AUDIO, target_modality=Modality.TEXT)


def clotho(csv_path: str | os.PathLike, audio_dir: str | os.PathLike, *, split: str | None = None,
           on_error: OnError = "raise") -> PairManifest:
    """Clotho: a captions CSV ``file_name,caption_1..caption_5``; audio files ``audio_dir/<file_name>``.

    One pair per caption (``meta["caption_index"]`` 0-4). ``split`` defaults to the CSV's name:
    ``clotho_captions_development.csv`` -> "train", ``..._validation`` -> "val", ``..._evaluation`` -> "test".
    """
    csv_path, folder = Path(csv_path).expanduser(), _folder(audio_dir, "audio")
    split = split or _split_from_name(csv_path.stem)
    rows = Rows(csv_path, on_error)
    columns: list[str] = []
    for where, row in csv_rows(csv_path, ["file_name", "caption_1"]):
        columns = columns or sorted((c for c in row if c and c.startswith("caption_")), key=lambda c: int(c[8:]))
        rows.rows += 1
        try:
            path = check_file(folder / _field(row, "file_name"))
        except RowError as exc:
            rows.problem(where, str(exc))
            continue
        for index, column in enumerate(columns):
            try:
                caption = check_text(row.get(column), column)
            except RowError as exc:
                rows.problem(where, str(exc))
                continue
            meta = {"file_name": path.name, "caption_index": index, **({"split": split} if split else {})}
            rows.pairs.append(Pair(path, caption, meta))
    return rows.finish(source_modality=Modality.AUDIO, target_modality=Modality.TEXT)


def esc50(root: str | os.PathLike, *, test_fold: int | None = None, on_error: OnError = "raise") -> PairManifest:
    """ESC-50: ``root/meta/esc50.csv`` (filename,fold,target,category,...) and ``root/audio/<filename>``.

    Pairs are (clip, class name with spaces, e.g. "crackling fire"); ``classes`` is ordered by the
    ``target`` column, so ``meta["label"]`` equals it on the full dataset. ``meta["fold"]`` keeps the
    fold (1-5); with ``test_fold`` that fold's split is "test" and the others' "train".
    """
    root = _folder(root, "ESC-50")
    csv_path, audio = root / "meta" / "esc50.csv", root / "audio"
    rows = Rows(csv_path, on_error)
    parsed: list[tuple[Path, int, int, str, dict[str, Any]]] = []
    names: dict[int, str] = {}
    for where, row in csv_rows(csv_path, ["filename", "fold", "target", "category"]):
        rows.rows += 1
        try:
            try:
                fold, target = int(_field(row, "fold")), int(_field(row, "target"))
            except ValueError:
                raise RowError("fold and target must be integers, "
                               f"got {row.get('fold')!r}, {row.get('target')!r}") from None
            category = check_text(row.get("category"), "category")
            if names.setdefault(target, category) != category:
                raise RowError(f"target {target} is {category!r} here but {names[target]!r} before")
            path = check_file(audio / _field(row, "filename"))
        except RowError as exc:
            rows.problem(where, str(exc))
            continue
        extra = {"esc10": row["esc10"].strip().lower() == "true"} if row.get("esc10") else {}
        parsed.append((path, fold, target, category, extra))
    order = sorted(names)
    classes = [names[t] for t in order]
    label = {t: i for i, t in enumerate(order)}
    for path, fold, target, category, extra in parsed:
        meta: dict[str, Any] = {"fold": fold, "label": label[target], "category": category, **extra}
        if test_fold is not None:
            meta["split"] = "test" if fold == test_fold else "train"
        rows.pairs.append(Pair(path, category.replace("_", " "), meta))
    return rows.finish(source_modality=Modality.AUDIO, target_modality=Modality.TEXT, classes=classes)


def karpathy(json_path: str | os.PathLike, image_dir: str | os.PathLike, *, restval: str = "train",
             on_error: OnError = "raise") -> PairManifest:
    """COCO captions or Flickr30k (or Flickr8k) from Karpathy's ``dataset_<name>.json``.

    Each ``images[i]`` gives ``filename``, optional ``filepath`` (COCO: ``train2014``/``val2014``),
    ``split`` and ``sentences[].raw``; the image is ``image_dir/<filepath>/<filename>`` (COCO: the folder
    holding train2014/ and val2014/) or ``image_dir/<filename>`` (Flickr30k: flickr30k-images/). One pair
    per sentence. The "restval" split becomes ``restval`` ("train", the usual choice, by default).
    """
    json_path, data = _load_json(json_path)
    folder = _folder(image_dir, "image")
    rows = Rows(json_path, on_error)
    for index, entry in enumerate(_list_in(data, "images", json_path)):
        rows.rows += 1
        where = f"images[{index}]"
        try:
            if not isinstance(entry, dict):
                raise RowError(f"expected an object, got {type(entry).__name__}")
            filename, sentences = _field(entry, "filename"), entry.get("sentences")
            if not isinstance(sentences, list) or not sentences:
                raise RowError("missing or empty 'sentences'")
            path = check_file(folder / (entry.get("filepath") or "") / filename)
        except RowError as exc:
            rows.problem(where, str(exc))
            continue
        split = entry.get("split")
        split = restval if split == "restval" else _SPLIT_WORDS.get(split, split)
        image_id = entry.get("cocoid", entry.get("imgid"))
        for number, sentence in enumerate(sentences):
            try:
                caption = check_text(sentence.get("raw") if isinstance(sentence, dict) else None, "sentence 'raw'")
            except RowError as exc:
                rows.problem(f"{where}.sentences[{number}]", str(exc))
                continue
            meta = {"image_id": image_id, "caption_index": number, **({"split": split} if split else {})}
            rows.pairs.append(Pair(path, caption, meta))
    return rows.finish(source_modality=Modality.IMAGE, target_modality=Modality.TEXT)


def msrvtt(json_path: str | os.PathLike, video_dir: str | os.PathLike, *, on_error: OnError = "raise") -> PairManifest:
    """MSR-VTT from its ``train_val_videodatainfo.json`` / ``test_videodatainfo.json``.

    ``videos[]`` give ``video_id`` ("video0") and ``split`` (train/validate/test -> train/val/test);
    the top-level ``sentences[]`` give ``caption`` and the ``video_id`` they describe. Video files are
    ``video_dir/<video_id>.mp4``. One pair per sentence.
    """
    json_path, data = _load_json(json_path)
    folder = _folder(video_dir, "video")
    rows = Rows(json_path, on_error)
    videos: dict[str, tuple[Path, str | None]] = {}
    bad_videos: set[str] = set()
    for index, entry in enumerate(_list_in(data, "videos", json_path)):
        video_id = None
        try:
            if not isinstance(entry, dict):
                raise RowError(f"expected an object, got {type(entry).__name__}")
            video_id = _field(entry, "video_id")
            split = entry.get("split")
            videos[video_id] = (check_file(folder / f"{video_id}.mp4"), _SPLIT_WORDS.get(split, split))
        except RowError as exc:
            rows.problem(f"videos[{index}]", str(exc))
            if video_id is not None:
                bad_videos.add(video_id)
    for index, sentence in enumerate(_list_in(data, "sentences", json_path)):
        rows.rows += 1
        try:
            if not isinstance(sentence, dict):
                raise RowError(f"expected an object, got {type(sentence).__name__}")
            video_id, caption = _field(sentence, "video_id"), check_text(sentence.get("caption"))
            if video_id not in videos:
                if video_id in bad_videos:
                    continue  # its video's problem is already listed
                raise RowError(f"video_id {video_id!r} is not in 'videos'")
        except RowError as exc:
            rows.problem(f"sentences[{index}]", str(exc))
            continue
        path, split = videos[video_id]
        meta = {"video_id": video_id, "sen_id": sentence.get("sen_id", index), **({"split": split} if split else {})}
        rows.pairs.append(Pair(path, caption, meta))
    return rows.finish(source_modality=Modality.VIDEO, target_modality=Modality.TEXT)


def modelnet40(root: str | os.PathLike, *, on_error: OnError = "raise") -> PairManifest:
    """ModelNet40 (or ModelNet10) folders: ``root/<class>/<train|test>/*.off``.

    Pairs are (mesh, class name with spaces, e.g. "night stand"); ``classes`` are the class folder
    names, sorted; ``meta["label"]`` indexes them and ``meta["split"]`` is the train/test folder.
    """
    root = _folder(root, "ModelNet")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and any((p / s).is_dir() for s in ("train", "test")))
    rows = Rows(root, on_error)
    for label, name in enumerate(classes):
        for split in ("train", "test"):
            for path in sorted((root / name / split).glob("*.off")):
                rows.rows += 1
                try:
                    check_file(path)
                except RowError as exc:
                    rows.problem(path.relative_to(root).as_posix(), str(exc))
                    continue
                rows.pairs.append(Pair(path, name.replace("_", " "), {"label": label, "split": split}))
    if not classes:
        raise InputError(str(root), "no class folders with train/ or test/ inside (expected <class>/train/*.off)")
    return rows.finish(source_modality=Modality.POINTS, target_modality=Modality.TEXT, classes=classes)

