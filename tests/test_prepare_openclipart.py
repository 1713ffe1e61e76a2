"""recipes/prepare_openclipart.py: SVG metadata parsing, caption cleaning, splits, the manifest it writes."""
from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
from PIL import Image

from bind.data import load_manifest

SPEC = importlib.util.spec_from_file_location(
    "prepare_openclipart", Path(__file__).resolve().parents[1] / "recipes" / "prepare_openclipart.py")
prep = importlib.util.module_from_spec(SPEC)  # type: ignore[arg-type]
sys.modules[SPEC.name] = prep  # dataclasses look their module up while the file runs
SPEC.loader.exec_module(prep)  # type: ignore[union-attr]


def svg(title: str, creator: str, keywords: list[str]) -> str:
    items = "".join(f"<rdf:li>{k}</rdf:li>" for k in keywords)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:cc="http://web.resource.org/cc/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <metadata><rdf:RDF><cc:Work rdf:about="">
    <dc:title>{title}</dc:title>
    <dc:description>A flask with the &amp;quot;required&amp;quot; bubbles.</dc:description>
    <dc:subject><rdf:Bag>{items}</rdf:Bag></dc:subject>
    <dc:publisher><cc:Agent rdf:about="http://www.openclipart.org/"><dc:title>Open Clip Art Library</dc:title>
    </cc:Agent></dc:publisher>
    <dc:creator><cc:Agent><dc:title>{creator}</dc:title></cc:Agent></dc:creator>
  </cc:Work></rdf:RDF></metadata>
  <rect width="10" height="10"/>
</svg>"""


def test_parse_metadata_reads_the_work_not_the_agents(tmp_path: Path) -> None:
    path = tmp_path / "flask.svg"
    path.write_text(svg("Chemistry Flask &amp;amp; Bubbles", "Matthew Wardrop", ["chemistry", "science", ""]))
    meta = prep.parse_metadata(path.read_text())
    assert meta.title == "Chemistry Flask & Bubbles"
    assert meta.creator == "Matthew Wardrop"
    assert meta.keywords == ["chemistry", "science"]


def test_parse_metadata_without_metadata_is_empty() -> None:
    assert prep.parse_metadata("<svg><rect/></svg>") == prep.Metadata()
    assert prep.parse_metadata("<svg><cc:Work><dc:title>broken</cc:Work></svg>") == prep.Metadata()


@pytest.mark.parametrize("title, creator, expected", [
    ("Magnifying Glass", "Olivier", "magnifying glass"),
    ("Matthew Wardrop", "Matthew Wardrop", ""),            # the title is the author
    ("Open Clip Art Library", "someone", ""),
    ("Part of the Flat Icon Collection (Wed Aug 25 23:29:46 2004)", "Danny Allen", ""),
    ("Lemon SVG theme", "Jose Hevia", ""),
    ("Clipart by Nicu Buculei - pear", "Nicu Buculei", "pear"),
    ("HASH(0x862bbb8)", "x", ""),
    ("Hotel Icon Racquetball 2", "x", "hotel racquetball"),  # numbers and junk words go
    ("42", "x", ""),
])
def test_clean_title(title: str, creator: str, expected: str) -> None:
    assert prep.clean_title(title, creator) == expected


def test_name_from_file_drops_numbers_and_the_truncated_author() -> None:
    assert prep.name_from_file("armadillo_architetto_fra_01", "Architetto Francesco Rollandin") == "armadillo"
    assert prep.name_from_file("gnome-fs-trash-empty", "Andy Fitzsimon") == "trash empty"
    assert prep.name_from_file("01_02", "x") == ""


def test_caption_uses_title_keywords_and_falls_back_to_the_file_name() -> None:
    meta = prep.Metadata(title="Chemistry Flask", keywords=["flask", "science", "hash", "Matthew", "lab"],
                         creator="Matthew Wardrop")
    assert prep.caption(meta, "flask_matthew_02", shared_title=False) == "a drawing of chemistry flask, science, lab"
    collection = prep.Metadata(title="Etiquette Icons", keywords=["computer"], creator="Andy Fitzsimon")
    assert prep.caption(collection, "printer_andy_01", shared_title=True) == "a drawing of printer, computer"
    assert prep.caption(prep.Metadata(title="Andy", creator="Andy"), "andy_01", shared_title=False) == ""


def test_split_is_deterministic_and_roughly_80_10_10() -> None:
    splits = [prep.split_of(f"caption {i}") for i in range(2000)]
    assert splits == [prep.split_of(f"caption {i}") for i in range(2000)]
    assert 0.75 < splits.count("train") / 2000 < 0.85
    assert 0.07 < splits.count("test") / 2000 < 0.13
    assert [prep.split_of(f"caption {i}", seed=1) for i in range(200)] != splits[:200]


def test_prepare_writes_a_manifest_bind_train_can_read(tmp_path: Path) -> None:
    root = tmp_path / "openclipart"
    for rel, title, colour in [("animals/cat_bob_01", "Cat", (255, 0, 0, 255)),
                               ("animals/kitten_bob_02", "Kitten", (255, 0, 0, 255)),  # same image: dropped
                               ("tools/hammer_01", "Hammer", (0, 0, 0, 0)),        # fully transparent
                               ("tools/saw_01", "Saw", (9, 9, 9, 0)),  # differs only under alpha 0: dropped
                               ("tools/bob_01", "Bob", (0, 255, 0, 255))]:        # title = author: no name
        (root / "png" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "svg" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGBA", (64, 32), colour).save(root / "png" / f"{rel}.png")
        (root / "svg" / f"{rel}.svg").write_text(svg(title, "Bob", ["tool" if "tools" in rel else "animal"]))
    out = tmp_path / "out"
    stats = prep.prepare(root, out, max_side=16)
    assert stats["pairs"] == 2
    assert stats["dropped"] == {"duplicate image": 2, "no usable title or file name": 1}
    with open(out / "pairs.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["target"] for r in rows} == {"a drawing of cat, animal", "a drawing of hammer, tool"}
    hammer = Image.open(out / "images" / "tools" / "hammer_01.png")
    assert hammer.mode == "RGB" and max(hammer.size) == 16
    assert hammer.getpixel((0, 0)) == (255, 255, 255)  # transparency composited onto white
    manifest = load_manifest(out / "pairs.csv")
    assert len(manifest) == 2 and all(p.source.is_file() for p in manifest)
    assert {p.meta["split"] for p in manifest} <= {"train", "val", "test"}


def test_prepare_caps_items_per_caption_and_keeps_val_test_captions_unique(tmp_path: Path) -> None:
    root = tmp_path / "openclipart"
    for folder in ("png/shapes", "svg/shapes"):
        (root / folder).mkdir(parents=True)
    for i in range(4):  # four different pictures, one caption
        Image.new("RGB", (32, 32), (60 * i, 0, 0)).save(root / "png" / "shapes" / f"star_{i}.png")
        (root / "svg" / "shapes" / f"star_{i}.svg").write_text(svg("Star", "Bob", ["shape"]))
    stats = prep.prepare(root, tmp_path / "out", max_per_caption=2)
    split = prep.split_of("a drawing of star, shape")
    assert stats["splits"] == {split: 2 if split == "train" else 1}
    assert stats["dropped"] == {"more items with the same caption": 2 if split == "train" else 3}
