"""recipes/prepare_photos.py without the network: QML/JS data, credits READMEs, captions, splits and the writing
of photo and sound manifests on tiny files made here; the Qt reader (qt_resources.py) only where PySide6 is found."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from bind.data.manifest import load_manifest

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
sys.path.insert(0, str(RECIPES))
try:
    import prepare_photos as prep
finally:
    sys.path.remove(str(RECIPES))

BOARD = '''/* GCompris
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
import QtQuick 2.12
import GCompris 1.0 as GCompris

QtObject {
    property string backgroundImage: "qrc:/gcompris/src/activities/explore_world_animals/resource/map.svg"
    property var tab : [
        {
            "image": "qrc:/gcompris/src/activities/explore_world_animals/resource/animals/question.svg",
            "title": qsTr("Jaguar"),
            "text": qsTr("The jaguar's bite is the \\"strongest\\" of all felines, {even} a tortoise shell!"),
            "audio": GCompris.ApplicationInfo.getAudioFilePath("qrc:/x/jaguar.$CA"),
            "image2": "qrc:/gcompris/src/activities/explore_world_animals/resource/animals/jaguar.webp",
            "text2": qsTr("Jaguar"),
            "x": 0.32,
            "y": 0.575
        },
        // a comment with "quotes" and { braces }
        {
            "title": qsTr("Owl"),
            "options": [qsTr("one"), qsTr("two")],
            "image2": "qrc:/gcompris/src/activities/explore_world_animals/resource/animals/owl.webp",
            "levels": [{"question": qsTr("How old?"), "answer": "3"}],
            "text": qsTr("Owls hoot.")
        }
    ]
}
'''
DETAILS = '''import QtQuick 2.12
QtObject {
   property string instruction: qsTr("Panorama of Château de Chenonceau, Indre-et-Loire, France.")
   property var levels: [
      {"pixmapfile" : "image/Chenonceau_background.webp", "type" : "SHAPE_BACKGROUND_IMAGE"},
      {"pixmapfile" : "image/Chenonceau_0.webp", "x" : "0.56", "dropAreaSize" : "8"}
   ]
}
'''
PAINTING = DETAILS.replace("Panorama of Château de Chenonceau, Indre-et-Loire, France.",
                           "Vincent van Gogh, The Night Café - 1888").replace("Chenonceau", "Cafe")
README = '''Copyright: Timothee Giet, 2018
License: CC-BY-SA 4.0
Files:
question.svg

Copyright: Frieda Bredesen
License: CC0-1.0
Source: https://commons.wikimedia.org/wiki/File:Two_Jaguar_Sisters.jpg
Files:
jaguar.webp

Copyright:
  Copyright 2011 NASA
  Copyright 2018 Timothée Giet
License: Public Domain
Comment: original source at https://en.wikipedia.org/wiki/File:Mercury_Globe.jpg
Files:
  mercury.webp

Copyright: 2000, 2008 Bruno Coudoin and others
License: CC-BY 4.0
EilanDonanCastle_0.webp
EilanDonanCastle_background.webp
Comment: based on a photo by Guillaume Piolle, license CC-BY 3.0

Copyright: Xavi Gaya
License: GPLv2+
Files: windmill6.webp

Copyright: Someone
License: Public Domain
Files:
screDriver.webp

water_fill.wav: inchadney https://www.freesound.org/people/inchadney/sounds/34681/
	This work is licensed under the Attribution License.
door_open.wav: lolamadeus https://www.freesound.org/people/lolamadeus/sounds/161228/
	This work is licensed under the Creative Commons 0 License.
'''


def test_qml_records_keep_each_objects_own_strings():
    records = prep.qml_records(BOARD)
    jaguar = next(r for r in records if r.get("title") == prep.Text("Jaguar", True))
    assert jaguar["text"] == prep.Text('The jaguar\'s bite is the "strongest" of all felines, {even} a tortoise shell!',
                                       True)
    assert jaguar["image2"].text.endswith("animals/jaguar.webp") and not jaguar["image2"].translatable
    assert jaguar["audio"].text == "qrc:/x/jaguar.$CA"  # the string inside the call
    owl = next(r for r in records if r.get("title") == prep.Text("Owl", True))
    assert owl["text"].text == "Owls hoot." and "options" not in owl and "levels" not in owl
    assert {"question": prep.Text("How old?", True), "answer": prep.Text("3", False)} in records
    assert prep.qml_properties(DETAILS) == {
        "instruction": "Panorama of Château de Chenonceau, Indre-et-Loire, France."}
    assert prep.resource_path("qrc:/gcompris/src/a.webp") == "gcompris/src/a.webp"


def test_described_photos_and_captions(tmp_path):
    board = tmp_path / "explore_world_animals" / prep.ACT / "explore_world_animals/resource/board/board1.qml"
    board.parent.mkdir(parents=True)
    board.write_text(BOARD, encoding="utf-8")
    found = prep.described_photos(tmp_path, "explore_world_animals")
    assert [(Path(p).name, title, context) for p, title, _, context, _ in found] == [
        ("jaguar.webp", "Jaguar", "board1"), ("owl.webp", "Owl", "board1")]
    details = tmp_path / "details" / prep.ACT / "details/resource/board"
    details.mkdir(parents=True)
    (details / "board1_0.qml").write_text(DETAILS, encoding="utf-8")
    (details / "board2_0.qml").write_text(PAINTING, encoding="utf-8")  # a painting, not a photo
    found = prep.described_photos(tmp_path, "details")
    assert [(p, context) for p, _, _, context, _ in found] == [
        (prep.ACT + "details/resource/image/Chenonceau_background.webp", "board1_0")]

    assert prep.english_caption("explore_world_animals", "animals", "Owl") == "a photo of an owl"
    assert prep.english_caption("explore_farm_animals", "animals", "Horse") == "a photo of a horse"
    assert prep.english_caption("explore_monuments", "wonders", "Taj Mahal, India") == \
        "a photo of Taj Mahal, one of the New Seven Wonders of the World"
    assert prep.english_caption("explore_monuments", "wonders", "The Great Wall of China").startswith(
        "a photo of the Great Wall of China, ")
    assert prep.english_caption("explore_monuments", "india", "Golden Temple") == \
        "a photo of Golden Temple, a monument in India"
    assert prep.english_caption("solar_system", "resource", "Sun") == "a photo of the Sun"
    assert prep.english_caption("solar_system", "resource", "Mars") == "a photo of the planet Mars"
    assert prep.english_caption("details", "image", found and "Panorama of Château de Chenonceau, France.") == \
        "a photo of a panorama of Château de Chenonceau, France"
    assert prep.object_key("The Great Wall of China") == "great wall of china"
    assert prep.object_key("Château de Chambord") == "chateau de chambord"
    assert prep.object_key("Taj Mahal, India") == "taj mahal"


def test_credits_readme_blocks_and_licences(tmp_path):
    credits = prep.parse_credits(README)
    jaguar = prep.find_credit(credits, "jaguar.webp")
    assert (jaguar.author, jaguar.licence, jaguar.source) == (
        "Frieda Bredesen", "CC0-1.0", "https://commons.wikimedia.org/wiki/File:Two_Jaguar_Sisters.jpg")
    mercury = prep.find_credit(credits, "sub/mercury.webp")  # matched by file name from a deeper path
    assert mercury.author == "Copyright 2011 NASA, Copyright 2018 Timothée Giet"
    assert mercury.comment.startswith("original source at https://")
    castle = prep.find_credit(credits, "EilanDonanCastle_background.webp")  # bare file lines, no Files:
    assert castle.licence == "CC-BY 4.0" and "Guillaume Piolle" in castle.comment
    assert prep.find_credit(credits, "windmill6.webp").licence == "GPLv2+"
    assert prep.find_credit(credits, "screwDriver.webp").author == "Someone"  # README_ALIASES: the misspelt name
    water = prep.find_credit(credits, "water_fill.wav")
    assert water.author == "inchadney" and water.source.endswith("/34681/")
    assert prep.normalise_licence(water.licence).startswith("CC-BY (freesound")
    assert prep.normalise_licence(prep.find_credit(credits, "door_open.wav").licence) == "CC0-1.0"
    assert prep.find_credit(credits, "nothing.webp") is None
    assert [prep.normalise_licence(t) for t in ("CC-BY-SA 4.0", "Public Domain", "GPLv2+", "GPLv3", "CC-BY 2.0",
                                                "CC0-1.0")] == [
        "CC-BY-SA-4.0", "public-domain", "GPL-2.0-or-later", "GPL-3.0", "CC-BY-2.0", "CC0-1.0"]

    folder = tmp_path / "explore_world_animals" / prep.ACT / "explore_world_animals/resource"
    (folder / "animals").mkdir(parents=True)
    (folder / "README").write_text(README, encoding="utf-8")
    path = prep.ACT + "explore_world_animals/resource/animals/jaguar.webp"
    credit = prep.credit_for(tmp_path, "explore_world_animals", path, "GPL-3.0-or-later")
    assert credit["licence"] == "CC0-1.0" and credit["licence_from"].endswith("explore_world_animals/resource/README")
    unknown = prep.credit_for(tmp_path, "explore_world_animals", path.replace("jaguar", "koala"), "GPL-3.0-or-later")
    assert unknown["licence"] == "GPL-3.0-or-later" and "debian/copyright" in unknown["licence_from"]


def test_ifct_names_and_captions():
    assert prep.ifct_name("Brinjal-10") == "brinjal"
    assert prep.ifct_name("Brinjal - all varieties") == "brinjal"
    assert prep.ifct_name("Chillies, green-2") == "chillies, green"
    assert prep.ifct_caption("Rice, raw, brown", "Cereals and Millets") == (
        "a photo of rice, raw, brown, a cereal", "rice")
    assert prep.ifct_caption("Bael fruit", "Fruits") == ("a photo of bael fruit", "bael fruit")  # no "a fruit" twice
    assert prep.ifct_caption("Goat, shoulder, meat", "Animal Meat") == ("a photo of a white goat in the grass", "goat")
    assert prep.ifct_caption("Poultry, chicken, liver", "Poultry")[1] == "chicken"
    assert prep.ifct_caption("Egg, duck, whole, boiled", "Egg and Egg Products") == (
        "a photo of duck eggs in a bowl", "egg")
    assert prep.ifct_caption("Pranel", "Marine Fish", "Gerres sp.") == ("a photo of pranel (Gerres sp.), a sea fish",
                                                                        "pranel")


def test_hand_captions_are_well_formed():
    for key, (tail, obj) in prep.HAND_CAPTIONS.items():
        assert key.endswith(".webp") and key.split("/")[0] in ("tools", "renewable", "others", "fishes", "monuments",
                                                              "erase", "music"), key
        assert tail and tail == tail.strip() and not tail.endswith("."), key
        assert obj == obj.lower() and obj == obj.strip(), key


def test_split_by_object_is_balanced_deterministic_and_never_shares_an_object():
    objects = [f"object{i % 37}" for i in range(200)] + ["big"] * 30
    assignment = prep.split_by_object(objects, seed=0)
    assert assignment == prep.split_by_object(list(reversed(objects)), seed=0)
    assert set(assignment) == set(objects) and set(assignment.values()) == {"val", "test"}
    counts = {split: sum(assignment[o] == split for o in objects) for split in ("val", "test")}
    assert abs(counts["val"] - counts["test"]) <= 30
    assert prep.split_by_object(objects, seed=1) != assignment


def photo(tmp_path: Path, name: str, seed: int, caption: str, obj: str, source: str = "") -> prep.Photo:
    """A 64x48 photo of random 8x6 blocks: photos of different seeds differ in their difference hash."""
    file = tmp_path / "in" / name
    file.parent.mkdir(exist_ok=True)
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(blocks).resize((64, 48), Image.NEAREST).save(file)
    return prep.Photo(file=file, caption=caption, object=obj, collection="gcompris/toy", package_path=f"toy.rcc!{name}",
                      origin="toy 1.0", licence="CC0-1.0", credit_source=source)


def test_write_photos_dedupes_splits_and_writes_manifests(tmp_path):
    photos = [photo(tmp_path, f"p{i}.png", i, f"a photo of thing {i}", f"thing {i % 6}",
                    source=f"https://example.org/{i}") for i in range(12)]
    photos[0].translations = {"caption_de": "ein Foto: Ding 0", "description_de": "Ein Ding."}
    photos[0].description = "A thing."
    same_bytes = tmp_path / "in" / "copy.png"
    shutil.copyfile(photos[1].file, same_bytes)
    photos.append(prep.Photo(file=same_bytes, caption="a copy", object="copy", collection="gcompris/toy",
                             package_path="toy.rcc!copy.png", origin="toy 1.0"))
    with Image.open(photos[2].file) as image:  # the same photo, larger: a near-identical copy
        image.resize((128, 96), Image.BILINEAR).save(tmp_path / "in" / "bigger.png")
    photos.append(prep.Photo(file=tmp_path / "in" / "bigger.png", caption="a bigger copy", object="bigger",
                             collection="gcompris/toy", package_path="toy.rcc!bigger.png", origin="toy 1.0"))
    photos.append(photo(tmp_path, "other.png", 100, "another", "other", source="https://example.org/3"))
    photos.append(photo(tmp_path, "twin.png", 101, "a photo of thing 7", "thing 1"))  # caption of #7
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    photos.append(prep.Photo(file=tmp_path / "in" / "broken.png", caption="broken", object="broken",
                             collection="gcompris/toy", package_path="toy.rcc!broken.png", origin="toy 1.0"))

    stats = prep.write_photos(photos, tmp_path / "out", max_side=32, seed=0)
    assert stats["dropped"] == {"the same file as an earlier photo": 1,
                                "the same credited source photo as an earlier one": 1,
                                "a near-identical copy of an earlier photo": 1,
                                "unreadable (UnidentifiedImageError)": 1,
                                "the same caption as an earlier photo of its split": 1}
    rows = list(csv.DictReader(open(tmp_path / "out" / "pairs.csv", encoding="utf-8")))
    assert len(rows) == stats["photos"] == 12 and tuple(rows[0]) == prep.COLUMNS
    for split in ("val", "test"):
        captions = [r["target"] for r in rows if r["split"] == split]
        assert len(captions) == len(set(captions))
    objects = {}
    for row in rows:
        assert objects.setdefault(row["object"], row["split"]) == row["split"]
    assert {r["split"] for r in rows} == {"val", "test"}
    manifest = load_manifest(tmp_path / "out" / "pairs.csv")
    assert len(manifest) == 12 and manifest.source_modality.value == "image"
    with Image.open(manifest.pairs[0].source) as image:
        assert max(image.size) == 32 and image.mode == "RGB"
    assert sorted(p.name for p in (tmp_path / "out" / "images").rglob("*.jpg")) == sorted(
        Path(r["source"]).name for r in rows)
    german = load_manifest(tmp_path / "out" / "pairs_de.csv")
    assert german.targets() == ["ein Foto: Ding 0"] and german.pairs[0].meta["description"] == "Ein Ding."
    assert not (tmp_path / "out" / "pairs_fr.csv").exists()
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["captions_per_language"] == {
        "en": 12, "de": 1, "es": 0, "fr": 0}

    again = prep.write_photos(photos, tmp_path / "again", max_side=32, seed=0)  # deterministic
    assert again["splits"] == stats["splits"]
    assert (tmp_path / "again" / "pairs.csv").read_text() == (tmp_path / "out" / "pairs.csv").read_text()


def test_write_sounds_checks_and_splits_by_label(tmp_path):
    rate = 16000
    clips = []
    for i, (label, seconds) in enumerate([("a cow", 1.0), ("a cow", 1.5), ("a bell", 0.8), ("rain", 2.0),
                                          ("a click", 0.1), ("a dog", 1.2)]):
        file = tmp_path / f"c{i}.wav"
        t = np.arange(int(rate * seconds)) / rate
        sf.write(file, (0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32), rate)
        clips.append({"file": file, "label": label, "collection": "gcompris/toy", "package_path": f"toy.rcc!c{i}.wav",
                      "origin": "toy 1.0", "licence": "CC0-1.0", "author": "", "credit_source": "", "licence_from": ""})
    shutil.copyfile(tmp_path / "c0.wav", tmp_path / "same.wav")
    clips.append({**clips[0], "file": tmp_path / "same.wav", "package_path": "toy.rcc!same.wav"})
    stats = prep.write_sounds(clips, tmp_path / "out", 0.3, 30.0, seed=0)
    assert stats["clips"] == 5 and stats["labels"] == 4 and len(stats["skipped"]) == 2
    manifest = load_manifest(tmp_path / "out" / "pairs.csv")
    assert manifest.source_modality.value == "audio"
    assert sorted(manifest.targets()) == ["the sound of a bell", "the sound of a cow", "the sound of a cow",
                                          "the sound of a dog", "the sound of rain"]
    split_of = {}
    for pair in manifest:
        assert split_of.setdefault(pair.meta["label"], pair.meta["split"]) == pair.meta["split"]
    assert set(split_of.values()) == {"val", "test"}


def test_sound_table_rows_are_well_formed():
    for bundle, pattern, label in prep.SOUNDS:
        assert pattern.startswith(prep.ACT) and label == label.strip() and not label.startswith("the ")


def test_package_file_says_how_to_get_a_missing_package(tmp_path):
    with pytest.raises(SystemExit, match="apt-get download gcompris-qt-data"):
        prep.package_file(tmp_path, prep.GCOMPRIS, download=False)
    (tmp_path / "gcompris-qt-data_3.1-2_all.deb").write_bytes(b"x")
    assert prep.package_file(tmp_path, prep.GCOMPRIS, download=False).name == "gcompris-qt-data_3.1-2_all.deb"


QT_PYTHON = prep.find_qt_python(create=False)


@pytest.mark.skipif(QT_PYTHON is None, reason="no Python with PySide6 here (the recipe makes one when run)")
def test_qt_reader_extracts_bundles_and_translates(tmp_path):
    bin_dir = Path(QT_PYTHON).parent
    rcc_tool, lrelease = bin_dir / "pyside6-rcc", bin_dir / "pyside6-lrelease"
    if not rcc_tool.exists() or not lrelease.exists():
        pytest.skip("pyside6-rcc or pyside6-lrelease missing")
    source = tmp_path / "src"
    board = source / prep.ACT / "explore_world_animals/resource/board/board1.qml"
    board.parent.mkdir(parents=True)
    board.write_text(BOARD, encoding="utf-8")
    (source / prep.ACT / "explore_world_animals/resource/animals").mkdir()
    image = source / prep.ACT / "explore_world_animals/resource/animals/jaguar.webp"
    Image.new("RGB", (8, 8), (200, 120, 0)).save(image, format="WEBP")
    files = [board, image]
    (source / "res.qrc").write_text("<RCC><qresource prefix=\"/\">" + "".join(
        f"<file>{f.relative_to(source).as_posix()}</file>" for f in files) + "</qresource></RCC>")
    subprocess.run([str(rcc_tool), "--binary", "-o", str(tmp_path / "explore_world_animals.rcc"), "res.qrc"],
                   cwd=source, check=True)
    assert prep.run_qt(QT_PYTHON, "extract", str(tmp_path / "tree"),
                       str(tmp_path / "explore_world_animals.rcc")).strip() == "2"
    tree = tmp_path / "tree"
    assert (tree / "explore_world_animals" / board.relative_to(source)).read_text(encoding="utf-8") == BOARD
    assert (tree / "explore_world_animals" / image.relative_to(source)).read_bytes() == image.read_bytes()

    (tmp_path / "gcompris_de.ts").write_text(
        '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE TS><TS version="2.1" language="de"><context>'
        '<name>board1</name><message><source>Jaguar</source><translation>Der Jaguar</translation></message>'
        '<message><source>Owls hoot.</source><translation>Eulen rufen.</translation></message></context></TS>',
        encoding="utf-8")
    subprocess.run([str(lrelease), str(tmp_path / "gcompris_de.ts"), "-qm", str(tmp_path / "gcompris_de.qm")],
                   check=True, capture_output=True)
    photos = []
    for path, title, text, context, _ in prep.described_photos(tree, "explore_world_animals"):
        photos.append(prep.Photo(file=tree / "explore_world_animals" / path, caption=title, object=title.lower(),
                                 collection="gcompris/toy", package_path=path, origin="toy", name=title,
                                 description=text, strings={"name": (context, title), "description": (context, text)}))
    prep.translate_photos(photos, QT_PYTHON, tmp_path)
    assert photos[0].translations == {"caption_de": "ein Foto: Der Jaguar"}
    assert photos[1].translations == {"description_de": "Eulen rufen."}
