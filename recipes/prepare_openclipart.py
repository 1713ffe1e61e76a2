"""Turn Debian's public-domain Open Clip Art packages into an image-caption manifest for ``bind train``.

Needs the two Debian packages (public domain, Open Clip Art Library 0.18)::

    apt-get install openclipart-png openclipart-svg
    pip install -e .                      # bind importable (the venv of this checkout)
    python recipes/prepare_openclipart.py --out data/openclipart   # about 2 min; reruns reuse the images
    bind train recipes/image_to_minilm_offline.yaml

For every ``/usr/share/openclipart/png/<category>/.../NAME.png`` the matching ``svg/.../NAME.svg`` holds RDF
metadata: ``<dc:title>``, ``<rdf:li>`` keywords and the author (``<dc:description>`` is mostly empty
and unused). The caption is
``"a drawing of {name}, {keyword}, {keyword}"`` where ``name`` is the cleaned title, or the cleaned file
name when the title is unusable (empty, the author's name, a collection title such as "Lemon SVG theme"
shared by many files). Items without any usable name are dropped; identical images (after compositing) are kept once; at most
``--max-per-caption`` training items share a caption (1,375 star shapes are all titled "gramastar") and
in val/test every caption is unique, so retrieval there has exactly one right answer.
Transparent PNGs are composited onto white (``bind.io.image.on_white``, as bind's image loader does) and
shrunk to at most ``--max-side`` pixels; the copies go to ``OUT/images/``. The split (80/10/10) is a
seeded hash of the caption, so items sharing a caption never straddle train and test. Open Clip Art items
that bind's own ``assets/`` use are left out, so the assets stay an unseen check. Outputs, written
atomically: ``OUT/pairs.csv`` (source, target, split, ...) and ``OUT/stats.json``.
"""
from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import hashlib
import html
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from xml.etree import ElementTree

from PIL import Image

from bind.io.atomic import atomic_path
from bind.io.image import on_white

ROOT = Path("/usr/share/openclipart")
NS = {"dc": "http://purl.org/dc/elements/1.1/", "cc": "http://web.resource.org/cc/",
      "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#"}
# a title shared by this many files names a collection ("Etiquette Icons"), not the picture
SHARED_TITLE = 8
JUNK_TITLE = re.compile(r"collection|theme|icon ?set|cliparts?\b|^icons?$|submission|sibmission|^hash\(|"
                        r"^untitled|^drawing|^image$|^svg$|^clip ?art$|^no title", re.IGNORECASE)
JUNK_WORDS = {"svg", "png", "icon", "icons", "clipart", "clip", "art", "gnome", "fs", "stock", "md", "hash",
              "theme", "the", "and", "of", "by", "copy", "new", "version", "final", "edit", "bw", "aj", "jh"}
JUNK_KEYWORDS = {"", "hash", "icons", "icon", "theme", "clip art", "clipart", "svg", "media", "image", "unsorted",
                 "special", "signs and symbols", "public domain", "openclipart", "drawing", "illustration",
                 "inkscape", "remix", "lemon theme icon", "mapsym", "etiquette"}
SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))


@dataclasses.dataclass
class Metadata:
    """What an SVG's RDF block says about the picture."""

    title: str = ""
    keywords: list[str] = dataclasses.field(default_factory=list)
    creator: str = ""


def _text(element: ElementTree.Element | None) -> str:
    """Element text with HTML entities resolved (openclipart double-escapes some: ``&amp;quot;``)."""
    if element is None or element.text is None:
        return ""
    return " ".join(html.unescape(html.unescape(element.text)).split())


def parse_metadata(svg_text: str) -> Metadata:
    """The title, keywords and author of the ``cc:Work`` in an SVG's ``<metadata>``."""
    match = re.search(r"<cc:Work\b.*?</cc:Work>", svg_text, re.DOTALL)
    if not match:
        return Metadata()
    namespaces = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items())
    try:
        work = ElementTree.fromstring(f"<root {namespaces}>{match.group(0)}</root>").find("cc:Work", NS)
    except ElementTree.ParseError:
        return Metadata()
    assert work is not None
    return Metadata(title=_text(work.find("dc:title", NS)),
                    keywords=[_text(li) for li in work.findall("dc:subject/rdf:Bag/rdf:li", NS) if _text(li)],
                    creator=_text(work.find("dc:creator/cc:Agent/dc:title", NS)))


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+", text.lower())


def _author_words(creator: str) -> set[str]:
    return {w for w in _words(creator) if len(w) >= 3}


def _is_author_fragment(word: str, authors: set[str]) -> bool:
    """File names end in a truncated author name ("..._architetto_franc_01")."""
    return any(author.startswith(word) or word.startswith(author) for author in authors if len(word) >= 3) \
        or word in authors


def clean_title(title: str, creator: str = "") -> str:
    """A lower-case picture name from a title, or "" when the title names the author or a collection."""
    title = re.sub(r"^clipart by [^-]*-\s*", "", title.strip(), flags=re.IGNORECASE)
    if not title or JUNK_TITLE.search(title):
        return ""
    words = _words(title)
    if not words or " ".join(words) == " ".join(_words(creator)) or title.lower() == "open clip art library":
        return ""
    words = [w for w in words if w not in JUNK_WORDS or w in ("the", "and", "of")]
    while words and words[-1] in ("the", "and", "of", "by"):
        words.pop()
    return " ".join(words) if any(len(w) >= 2 for w in words) else ""


def name_from_file(stem: str, creator: str = "") -> str:
    """A picture name from a file name: no numbers, no author fragment, no single letters or junk words."""
    authors = _author_words(creator)
    words = [w for w in _words(stem.replace("-", " ")) if len(w) >= 2 and w not in JUNK_WORDS
             and not _is_author_fragment(w, authors)]
    return " ".join(words)


def clean_keywords(keywords: Iterable[str], name: str, creator: str = "", limit: int = 2) -> list[str]:
    """Up to ``limit`` distinct keywords that add something to ``name`` (never the author's name)."""
    seen = set(name.split())
    authors = _author_words(creator)
    out: list[str] = []
    for keyword in keywords:
        keyword = " ".join(_words(keyword.replace("_", " ")))
        if keyword in JUNK_KEYWORDS or not keyword or set(keyword.split()) <= seen \
                or any(word in authors for word in keyword.split()):
            continue
        out.append(keyword)
        seen.update(keyword.split())
        if len(out) == limit:
            break
    return out


def caption(meta: Metadata, stem: str, shared_title: bool) -> str:
    """The caption of one picture, or "" when nothing usable names it."""
    name = "" if shared_title else clean_title(meta.title, meta.creator)
    name = name or name_from_file(stem, meta.creator)
    if not name:
        return ""
    return ", ".join([f"a drawing of {name}", *clean_keywords(meta.keywords, name, meta.creator)])


def split_of(key: str, seed: int = 0) -> str:
    """A deterministic split from a seeded hash of ``key``."""
    point = int(hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()[:12], 16) / 16**12
    total = 0.0
    for name, fraction in SPLITS:
        total += fraction
        if point < total:
            return name
    return SPLITS[-1][0]


def composite_on_white(source: Path, target: Path, max_side: int, min_side: int) -> None:
    """Write ``source`` as an RGB PNG on white, at most ``max_side`` pixels.

    Raises ValueError for images under ``min_side`` pixels and PIL's DecompressionBombError for images
    too large to decode safely (a few hundred megapixels)."""
    with Image.open(source) as image:
        if min(image.size) < min_side:
            raise ValueError(f"smaller than {min_side} px")
        image.draft("RGBA", (max_side, max_side))
        image.load()
        rgba = image.convert("RGBA")
    rgba.thumbnail((max_side, max_side), Image.LANCZOS)
    with atomic_path(target) as tmp:
        on_white(rgba).save(tmp, format="PNG")


def asset_sources() -> set[str]:
    """Open Clip Art SVG paths (relative to svg/) that bind's assets/ are made from."""
    try:
        from bind.assets import load_manifest
        entries = load_manifest()
    except (ImportError, FileNotFoundError, OSError):
        return set()
    return {m.group(1) for e in entries for m in [re.search(r"openclipart-svg: (\S+?\.svg)", e.source)] if m}


def prepare(root: Path, out: Path, max_side: int = 512, max_per_caption: int = 3, min_side: int = 16,
            seed: int = 0) -> dict[str, object]:
    """Write ``out/pairs.csv``, ``out/images/`` and ``out/stats.json``; returns the stats."""
    pngs = sorted((root / "png").rglob("*.png"))
    if not pngs:
        raise SystemExit(f"no PNGs under {root / 'png'}: apt-get install openclipart-png openclipart-svg")
    excluded = asset_sources()
    drops: collections.Counter[str] = collections.Counter()
    items = []
    for png in pngs:
        rel = png.relative_to(root / "png").with_suffix(".svg")
        svg = root / "svg" / rel
        if rel.as_posix() in excluded:
            drops["used by bind assets"] += 1
            continue
        meta = parse_metadata(svg.read_text(encoding="utf-8", errors="replace")) if svg.is_file() else Metadata()
        items.append((png, rel, meta))
    title_counts = collections.Counter(m.title.lower() for _, _, m in items)
    rows, seen_images, per_caption = [], set(), collections.Counter()
    for png, rel, meta in items:
        text = caption(meta, png.stem, shared_title=title_counts[meta.title.lower()] >= SHARED_TITLE)
        if not text:
            drops["no usable title or file name"] += 1
            continue
        split = split_of(text, seed)
        if per_caption[text] >= (max_per_caption if split == "train" else 1):
            drops["more items with the same caption"] += 1
            continue
        target = out / "images" / rel.with_suffix(".png")
        if not target.is_file():
            try:
                composite_on_white(png, target, max_side, min_side)
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
                drops[f"unusable PNG ({type(exc).__name__})"] += 1
                print(f"skipping {png}: {exc}", file=sys.stderr)
                continue
        digest = hashlib.sha256(target.read_bytes()).hexdigest()  # what the expert sees, after compositing
        if digest in seen_images:
            drops["duplicate image"] += 1
            continue
        seen_images.add(digest)
        per_caption[text] += 1
        rows.append({"source": target.relative_to(out).as_posix(), "target": text, "split": split,
                     "source_modality": "image", "target_modality": "text", "svg": rel.as_posix()})
    with atomic_path(out / "pairs.csv") as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    stats = {"pngs": len(pngs), "pairs": len(rows), "dropped": dict(drops),
             "splits": dict(collections.Counter(r["split"] for r in rows)),
             "distinct_captions": len(per_caption), "max_side": max_side, "seed": seed}
    with atomic_path(out / "stats.json") as tmp:
        tmp.write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="where the Debian packages put png/ and svg/")
    parser.add_argument("--out", type=Path, default=Path("data/openclipart"))
    parser.add_argument("--max-side", type=int, default=512, help="shrink larger images to this many pixels")
    parser.add_argument("--max-per-caption", type=int, default=3, help="in train; val/test keep one")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split hash")
    args = parser.parse_args(argv)
    stats = prepare(args.root, args.out, max_side=args.max_side, max_per_caption=args.max_per_caption,
                    seed=args.seed)
    print(json.dumps(stats, indent=2))
    print(f"wrote {args.out / 'pairs.csv'}")


if __name__ == "__main__":
    main()
