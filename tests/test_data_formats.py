"""Paired-data loaders on miniature copies of each format: counts, captions, labels, splits, bad rows."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import write_csv
from PIL import Image

from bind import Modality
from bind.data import (
    ManifestError,
    Pair,
    PairManifest,
    assign_splits,
    audiocaps,
    clotho,
    esc50,
    folder_with_captions,
    karpathy,
    load_manifest,
    modelnet40,
    msrvtt,
    save_manifest,
)


def wav(path: Path, seconds: float = 0.1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    soundfile.write(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return path


def image(path: Path, value: int = 0) -> Path:
    """An 8x8 image in the format its extension names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
    return path


def off(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("OFF\n4 1 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n")
    return path


def mp4(path: Path) -> Path:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for value in (0, 120):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), value, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


# --- generic manifests ----------------------------------------------------------------------------

def test_csv_manifest_resolves_paths_and_keeps_extra_columns(tmp_path):
    image(tmp_path / "img" / "a.png")
    absolute = image(tmp_path / "elsewhere" / "b.png", 50)
    path = write_csv(tmp_path / "data" / "pairs.csv", ["source", "target", "split", "licence"],
                     [["../img/a.png", "a black square", "train", "CC0"], [str(absolute), "a grey square", "", "PD"]])
    manifest = load_manifest(path)
    assert len(manifest) == 2 and manifest.source_modality == Modality.IMAGE
    assert manifest.target_modality == Modality.TEXT
    assert manifest[0].source == tmp_path / "img" / "a.png" and manifest[0].source.is_file()
    assert manifest[1].source == absolute
    assert manifest.targets() == ["a black square", "a grey square"]
    assert manifest[0].meta == {"split": "train", "licence": "CC0"} and manifest[1].meta == {"licence": "PD"}
    assert manifest.report.rows == 2 and manifest.report.skipped == []


def test_jsonl_manifest_with_modalities_and_text_to_text_pairs(tmp_path):
    wav(tmp_path / "dog.wav")
    lines = [{"source": "dog.wav", "target": "a dog barks", "split": "val", "id": 7},
             {"source": "a cat", "target": "un chat", "source_modality": "text", "target_modality": "text"}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    manifest = load_manifest(path)
    assert [type(s) for s in manifest.sources()] == [type(tmp_path), str]
    assert manifest.source_modality is None  # audio and text rows: mixed
    assert manifest[0].meta == {"split": "val", "id": 7}
    text_only = load_manifest(path, source_modality="text", target_modality="text", on_error="skip")
    assert text_only.sources() == ["dog.wav", "a cat"] and text_only.source_modality == Modality.TEXT


def test_json_manifest_rows_and_the_asset_manifest(tmp_path):
    wav(tmp_path / "dog.wav")
    rows = [{"source": "dog.wav", "target": "a dog barks"}, {"source": "a cat", "target": "un chat"}, 3,
            {"path": "gone.png", "caption": "missing"}]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(rows))
    manifest = load_manifest(path, on_error="skip")
    assert manifest.sources() == [tmp_path / "dog.wav", "a cat"] and manifest.targets() == ["a dog barks", "un chat"]
    assert [p.where for p in manifest.report.skipped] == ["row 2", "row 3"]
    assets = load_manifest(Path(__file__).parents[1] / "assets" / "manifest.json")
    entries = json.loads((Path(__file__).parents[1] / "assets" / "manifest.json").read_text())
    assert len(assets) == len(entries) and assets.target_modality == Modality.TEXT
    cat = next(p for p in assets if p.meta["id"] == "image/cat")
    assert cat.source.name == "cat.jpg" and cat.target == "a photo of a tabby cat" and "asset_source" in cat.meta
    assert all(isinstance(p.source, str) for p in assets if p.meta["id"].startswith("text/"))
    path.write_text('{"source": "a", "target": "b"}')
    with pytest.raises(ManifestError, match="JSON array"):
        load_manifest(path)


def test_manifest_bad_rows_are_listed_by_line(tmp_path):
    image(tmp_path / "ok.png")
    path = tmp_path / "pairs.csv"
    path.write_text("source,target\nok.png,fine\nmissing.png,gone\nok.png,\"  \"\nok.png\n\"ok.png\",\"multi\nline\"\n"
                    "ok.png,x,extra\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert "4 bad row(s)" in message and "pairs.csv" in message
    for expected in ("line 3: file not found", "line 4: empty target text", "line 5: missing column 'target'",
                     "line 8: more fields"):
        assert expected in message
    assert [p.where for p in info.value.problems] == ["line 3", "line 4", "line 5", "line 8"]
    skipped = load_manifest(path, on_error="skip")
    assert skipped.targets() == ["fine", "multi\nline"]
    assert skipped.report.rows == 6 and skipped.report.pairs == 2 and len(skipped.report.skipped) == 4
    assert "skipped 4" in str(skipped.report)


def test_many_bad_rows_show_the_first_few_and_a_count(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"source": f"gone{i}.png", "target": "x"}) + "\n" for i in range(9))
                    + "{not json\n[1, 2]\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert len(info.value.problems) == 11 and "and 6 more" in str(info.value)
    assert str(info.value.problems[9]).startswith("line 10: not valid JSON")
    assert "expected a JSON object" in info.value.problems[10].reason


def test_manifest_header_without_a_required_column_always_raises(tmp_path):
    path = write_csv(tmp_path / "pairs.csv", ["source", "caption"], [["a", "b"]])
    with pytest.raises(ManifestError, match="no \\['target'\\] column"):
        load_manifest(path, on_error="skip")
    with pytest.raises(ValueError, match=".csv, .tsv, .jsonl or .json"):
        load_manifest(path.rename(tmp_path / "pairs.txt"))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_save_then_load_gives_the_same_pairs(tmp_path, suffix):
    image(tmp_path / "data" / "a.png")
    outside = image(tmp_path / "other" / "b.png")
    original = load_manifest(write_csv(tmp_path / "data" / "in.csv", ["source", "target", "split", "note"],
                                       [["a.png", "one, with a comma", "train", "x"],
                                        [str(outside), "two", "test", "y"]]))
    save_manifest(original, tmp_path / "data" / f"out{suffix}")
    text = (tmp_path / "data" / f"out{suffix}").read_text()
    assert "a.png" in text and str(tmp_path / "data") not in text  # relative inside the folder
    again = load_manifest(tmp_path / "data" / f"out{suffix}")
    assert [(p.source.resolve(), p.target, p.meta) for p in again] == \
        [(p.source.resolve(), p.target, p.meta) for p in original]
    assert (again.source_modality, again.target_modality) == (Modality.IMAGE, Modality.TEXT)


def test_folder_with_sidecar_captions(tmp_path):
    image(tmp_path / "x.png")
    (tmp_path / "x.txt").write_text("a black square\n\nthe colour of night\n")
    wav(tmp_path / "sub" / "beep.wav")
    (tmp_path / "sub" / "beep.txt").write_text("a short beep")
    image(tmp_path / "lonely.png")
    image(tmp_path / "blank.png")
    (tmp_path / "blank.txt").write_text("  \n")
    (tmp_path / "notes.txt").write_text("not a caption of anything")
    with pytest.raises(ManifestError) as info:
        folder_with_captions(tmp_path)
    assert [str(p) for p in info.value.problems] == ["blank.png: empty caption file blank.txt",
                                                     "lonely.png: no caption file lonely.txt"]
    manifest = folder_with_captions(tmp_path, on_error="skip")
    assert [(p.source.name, p.target) for p in manifest] == [
        ("beep.wav", "a short beep"), ("x.png", "a black square"), ("x.png", "the colour of night")]
    assert manifest.source_modality is None and len(manifest.report.skipped) == 2
    assert len(folder_with_captions(tmp_path, recursive=False, on_error="skip")) == 2


# --- public formats -------------------------------------------------------------------------------

def test_audiocaps(tmp_path):
    audio = tmp_path / "audio"
    wav(audio / "101.wav")
    wav(audio / "abcDEF_1234.flac")
    wav(audio / "Yzzz-yyy.wav")
    rows = [[101, "unused_ytid", 0, "a dog barks"], [102, "abcDEF_1234", 30, "rain falls"],
            [103, "zzz-yyy", 10, "an engine idles"], [104, "nothere", 0, "silence"], [105, "abcDEF_1234", 30, ""]]
    path = write_csv(tmp_path / "val.csv", ["audiocap_id", "youtube_id", "start_time", "caption"], rows)
    with pytest.raises(ManifestError) as info:
        audiocaps(path, audio)
    assert [p.where for p in info.value.problems] == ["line 5", "line 6"]
    assert "no audio file named 104, nothere or Ynothere" in str(info.value)
    manifest = audiocaps(path, audio, on_error="skip")
    assert [p.source.name for p in manifest] == ["101.wav", "abcDEF_1234.flac", "Yzzz-yyy.wav"]
    assert manifest.targets() == ["a dog barks", "rain falls", "an engine idles"]
    assert manifest.splits() == {"val": 3} and manifest[1].meta["start_time"] == "30"
    assert audiocaps(path, audio, split="test", on_error="skip").splits() == {"test": 3}
    no_caption = write_csv(tmp_path / "train.csv", ["audiocap_id", "youtube_id", "start_time"], [[101, "x", 0]])
    with pytest.raises(ManifestError, match="line 1: the header has no \\['caption'\\] column"):
        audiocaps(no_caption, audio, on_error="skip")


def test_clotho_gives_one_pair_per_caption(tmp_path):
    audio = tmp_path / "evaluation"
    wav(audio / "rain on roof.wav")
    wav(audio / "birds.wav")
    captions = [f"caption {i}" for i in range(1, 6)]
    path = write_csv(tmp_path / "clotho_captions_evaluation.csv", ["file_name"] + [f"caption_{i}" for i in range(1, 6)],
                     [["rain on roof.wav", *captions], ["birds.wav", "birds sing", "", *captions[2:]],
                      ["missing.wav", *captions]])
    with pytest.raises(ManifestError) as info:
        clotho(path, audio)
    assert str(info.value.problems[0]) == "line 3: empty caption_2"
    assert info.value.problems[1].where == "line 4" and "file not found" in info.value.problems[1].reason
    manifest = clotho(path, audio, on_error="skip")
    assert len(manifest) == 9 and manifest.splits() == {"test": 9}
    assert [p.meta["caption_index"] for p in manifest][5:] == [0, 2, 3, 4]
    assert manifest[5].target == "birds sing"
    assert _split_of(tmp_path, "clotho_captions_development.csv", audio) == "train"


def _split_of(tmp_path: Path, name: str, audio: Path) -> str:
    path = write_csv(tmp_path / name, ["file_name", "caption_1"], [["birds.wav", "birds"]])
    return clotho(path, audio)[0].meta["split"]


def test_esc50_classes_labels_and_folds(tmp_path):
    root = tmp_path / "ESC-50-master"
    header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    rows = [["1-100-A-0.wav", 1, 0, "dog", "True", 100, "A"], ["2-101-A-10.wav", 2, 10, "rain", "True", 101, "A"],
            ["5-102-A-12.wav", 5, 12, "crackling_fire", "False", 102, "A"],
            ["5-103-A-0.wav", 5, 0, "dog", "True", 103, "A"]]
    for row in rows:
        wav(root / "audio" / row[0])
    write_csv(root / "meta" / "esc50.csv", header, rows)
    manifest = esc50(root)
    assert manifest.classes == ["dog", "rain", "crackling_fire"]
    assert manifest.labels() == [0, 1, 2, 0] and manifest.targets()[2] == "crackling fire"
    assert [p.meta["fold"] for p in manifest] == [1, 2, 5, 5] and manifest.splits() == {None: 4}
    assert manifest[0].meta["esc10"] is True and manifest.source_modality == Modality.AUDIO
    assert esc50(root, test_fold=5).splits() == {"train": 2, "test": 2}
    write_csv(root / "meta" / "esc50.csv", header, rows + [["gone.wav", 1, 0, "dog", "True", 1, "A"],
                                                           ["1-1-A-0.wav", "one", 0, "dog", "True", 1, "A"],
                                                           ["1-2-A-0.wav", 1, 0, "cat", "True", 1, "A"]])
    with pytest.raises(ManifestError) as info:
        esc50(root)
    reasons = [str(p) for p in info.value.problems]
    assert reasons[0].startswith("line 6: file not found") and "must be integers" in reasons[1]
    assert "target 0 is 'cat' here but 'dog' before" in reasons[2]


@pytest.mark.parametrize("dataset", ["coco", "flickr30k"])
def test_karpathy_json(tmp_path, dataset):
    images = tmp_path / "images"
    entries = []
    for i, split in enumerate(["train", "val", "test", "restval"]):
        folder = "val2014" if dataset == "coco" else ""
        name = f"img{i}.jpg"
        image(images / folder / name, 40 * i)
        entry = {"filename": name, "split": split, "imgid": i,
                 "sentences": [{"raw": f"image {i} caption {j}", "tokens": []} for j in range(2)]}
        if dataset == "coco":
            entry |= {"filepath": folder, "cocoid": 1000 + i}
        entries.append(entry)
    entries.append({"filename": "missing.jpg", "split": "train", "sentences": [{"raw": "gone"}]})
    entries.append({"filename": "img0.jpg", "split": "train", "filepath": entries[0].get("filepath", ""),
                    "sentences": [{"raw": ""}, {"raw": "kept"}]})
    entries.append({"split": "train", "sentences": [{"raw": "no file name"}]})
    path = tmp_path / f"dataset_{dataset}.json"
    path.write_text(json.dumps({"images": entries, "dataset": dataset}))
    with pytest.raises(ManifestError) as info:
        karpathy(path, images)
    assert [p.where for p in info.value.problems] == ["images[4]", "images[5].sentences[0]", "images[6]"]
    manifest = karpathy(path, images, on_error="skip")
    assert len(manifest) == 9 and manifest.splits() == {"train": 5, "val": 2, "test": 2}
    assert manifest[2].target == "image 1 caption 0" and manifest[2].source.is_file()
    assert manifest[0].meta["image_id"] == (1000 if dataset == "coco" else 0)
    assert karpathy(path, images, restval="restval", on_error="skip").splits()["restval"] == 2


def test_msrvtt_json(tmp_path):
    videos = tmp_path / "TrainValVideo"
    mp4(videos / "video0.mp4")
    mp4(videos / "video1.mp4")
    data = {"videos": [{"video_id": "video0", "split": "train", "id": 0},
                       {"video_id": "video1", "split": "validate", "id": 1},
                       {"video_id": "video2", "split": "test", "id": 2}],
            "sentences": [{"caption": "a man cooks", "video_id": "video0", "sen_id": 0},
                          {"caption": "someone is cooking", "video_id": "video0", "sen_id": 1},
                          {"caption": "a cat jumps", "video_id": "video1", "sen_id": 2},
                          {"caption": "never shown", "video_id": "video2", "sen_id": 3},
                          {"caption": "orphan", "video_id": "video9", "sen_id": 4},
                          {"caption": " ", "video_id": "video1", "sen_id": 5}]}
    path = tmp_path / "train_val_videodatainfo.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError) as info:
        msrvtt(path, videos)
    assert [p.where for p in info.value.problems] == ["videos[2]", "sentences[4]", "sentences[5]"]
    assert "video2.mp4" in info.value.problems[0].reason and "'video9' is not in 'videos'" in str(info.value)
    manifest = msrvtt(path, videos, on_error="skip")
    assert manifest.targets() == ["a man cooks", "someone is cooking", "a cat jumps"]
    assert manifest.splits() == {"train": 2, "val": 1} and manifest.source_modality == Modality.VIDEO
    assert manifest[2].source == videos / "video1.mp4" and manifest[2].meta["sen_id"] == 2


def test_modelnet40_folders(tmp_path):
    root = tmp_path / "ModelNet40"
    for name in ("airplane", "night_stand"):
        for split, count in (("train", 2), ("test", 1)):
            for i in range(count):
                off(root / name / split / f"{name}_{split}_{i}.off")
    (root / "README.txt").write_text("not a class")
    (root / "night_stand" / "test" / "broken.off").write_text("")
    with pytest.raises(ManifestError, match="night_stand/test/broken.off: empty file"):
        modelnet40(root)
    manifest = modelnet40(root, on_error="skip")
    assert manifest.classes == ["airplane", "night_stand"] and len(manifest) == 6
    assert manifest.labels() == [0, 0, 0, 1, 1, 1] and manifest.targets()[3] == "night stand"
    assert manifest.splits() == {"train": 4, "test": 2} and manifest.source_modality == Modality.POINTS
    assert manifest.report.rows == 7 and len(manifest.report.skipped) == 1


# --- splits and manifest helpers ------------------------------------------------------------------

def _captioned_images(folder: Path, count: int) -> PairManifest:
    rows = []
    for i in range(count):
        image(folder / f"{i:03d}.png", i)
        rows += [[f"{i:03d}.png", f"image {i} caption {j}"] for j in range(3)]
    return load_manifest(write_csv(folder / "pairs.csv", ["source", "target"], rows))


def test_assign_splits_is_deterministic_disjoint_and_location_independent(tmp_path):
    manifest = _captioned_images(tmp_path / "a", 40)
    first, again = assign_splits(manifest, seed=3), assign_splits(manifest, seed=3)
    assert [p.meta["split"] for p in first] == [p.meta["split"] for p in again]
    assert [p.meta["split"] for p in assign_splits(manifest, seed=4)] != [p.meta["split"] for p in first]
    items = {name: {p.source for p in first.split(name)} for name in ("train", "val", "test")}
    assert sorted(len(v) for v in items.values()) == [4, 4, 32]
    assert not (items["train"] & items["val"] or items["train"] & items["test"] or items["val"] & items["test"])
    assert all(p.meta["split"] == first[3 * (i // 3)].meta["split"] for i, p in enumerate(first))
    assert "split" not in manifest[0].meta  # the input is left as it was
    shutil.copytree(tmp_path / "a", tmp_path / "moved" / "b")
    moved = assign_splits(load_manifest(tmp_path / "moved" / "b" / "pairs.csv"), seed=3)
    assert [p.meta["split"] for p in moved] == [p.meta["split"] for p in first]
    texts = PairManifest([Pair(f"text {i}", "t") for i in range(10)])
    assert assign_splits(texts, {"train": 0.5, "test": 0.5}).splits() == {"train": 5, "test": 5}
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(manifest, {"train": 0.8, "test": 0.1})


def test_manifest_helpers(tmp_path):
    manifest = _captioned_images(tmp_path, 3)
    both = PairManifest.concat([manifest[:3], manifest[3:]])
    assert both.sources() == manifest.sources() and both.source_modality == Modality.IMAGE
    assert len(manifest.filter(lambda p: p.target.endswith("0"))) == 3
    with pytest.raises(ValueError, match="no class labels"):
        manifest.labels()
