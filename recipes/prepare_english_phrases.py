"""English text-to-text pairs for binding a second text expert (e.g. multilingual-e5) to MiniLM, offline.

Both sides of each pair are the same English phrase: ``bind train recipes/e5_to_minilm_english.yaml``
embeds ``source`` with the new expert and ``target`` with the anchor, so the projector learns the map
between the two text spaces from English alone (no translations, no images). Sources, all readable offline:

- WordNet/ImageNet-21k synset lemmas and glosses bundled with timm (``timm/data/_info/``;
  WordNet licence, a BSD-style permissive licence): each synset's lemma line ("tabby, tabby cat"), half of
  them (by a seeded hash) as a caption template ("a photo of a tabby", "a drawing of a tabby"), and its gloss;
- Open Clip Art titles (``<dc:title>`` of Debian's ``openclipart-svg``; public domain), when installed.

Phrases are cleaned (whitespace, length 2..300 characters), deduplicated case-insensitively and sorted.
Every phrase of the validation set (``--exclude``, the ``en`` field of a JSONL file, by default
``recipes/data/multilingual_captions.jsonl``) is left out, after lower-casing and dropping punctuation,
so the evaluation never sees a training phrase. The split (``--val``/``--test`` fractions) is a seeded
hash of the phrase. Writes ``OUT/pairs.csv`` (source, target, split, origin) and ``OUT/stats.json``
atomically; the same inputs always give byte-identical files.

    python recipes/prepare_english_phrases.py --out data/english_phrases [--max-pairs 14000]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Iterable, Iterator

from bind.io.atomic import atomic_path

OPENCLIPART_SVG = Path("/usr/share/openclipart/svg")
TEMPLATES = ("a photo of a {}", "a drawing of a {}")
TITLE = re.compile(rb"<dc:title>\s*([^<]{2,200}?)\s*</dc:title>", re.S)
JUNK_TITLE = re.compile(r"^(untitled|drawing|image|svg|clip ?art|no title)\b|^hash\(|\.svg$", re.I)
MIN_CHARS, MAX_CHARS = 2, 300


def _hash(text: str, seed: int) -> float:
    """A stable number in [0, 1) for ``text``."""
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def key(text: str) -> str:
    """What two phrases must share to count as the same (case, punctuation and spacing ignored)."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def timm_info() -> Path:
    import timm

    return Path(timm.__file__).parent / "data" / "_info"


def _tsv(path: Path) -> dict[str, str]:
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        synset, _, text = line.partition("\t")
        if text.strip():
            rows[synset] = clean(text)
    return rows


def wordnet_phrases(info: Path, seed: int) -> Iterator[tuple[str, str]]:
    """(phrase, origin) from the synset lemma and gloss files shipped in timm."""
    lemmas = _tsv(info / "imagenet_synset_to_lemma.txt")
    glosses = _tsv(info / "imagenet_synset_to_definition.txt")
    for synset in sorted(lemmas):
        line = lemmas[synset]
        pick = _hash(synset, seed)
        if pick < 0.5:
            yield line, "wordnet-lemmas"
        else:
            template = TEMPLATES[int(pick * 4) % 2]
            yield template.format(line.split(",")[0].strip()), "wordnet-lemma-template"
    for synset in sorted(glosses):
        yield glosses[synset], "wordnet-gloss"


def openclipart_titles(root: Path) -> Iterator[tuple[str, str]]:
    """(title, origin) from the RDF metadata of the Open Clip Art SVGs (nothing when not installed)."""
    for path in sorted(root.rglob("*.svg")) if root.is_dir() else []:
        with path.open("rb") as handle:
            found = TITLE.search(handle.read(65536))
        if found:
            title = clean(found.group(1).decode("utf-8", "replace").replace("_", " "))
            if not JUNK_TITLE.search(title) and re.search(r"[A-Za-z]{3}", title):
                yield title, "openclipart-title"


def validation_phrases(path: Path) -> set[str]:
    """The keys of the English captions of a validation JSONL file (records without ``en`` are skipped)."""
    keys = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.strip() else {}
        if record.get("en"):
            keys.add(key(record["en"]))
    return keys


def build(sources: Iterable[tuple[str, str]], excluded: set[str], val: float, test: float,
          seed: int, max_pairs: int | None = None) -> tuple[list[dict[str, str]], dict[str, object]]:
    """Deduplicated, filtered, split rows (sorted by phrase) and the counts behind them; with
    ``max_pairs``, the phrases with the smallest seeded hashes (a uniform sample of every source)."""
    seen: dict[str, tuple[str, str]] = {}
    dropped = {"length": 0, "duplicate": 0, "validation": 0}
    for phrase, origin in sources:
        k = key(phrase)
        if not MIN_CHARS <= len(phrase) <= MAX_CHARS or not k:
            dropped["length"] += 1
        elif k in excluded:
            dropped["validation"] += 1
        elif k in seen:
            dropped["duplicate"] += 1
        else:
            seen[k] = (phrase, origin)
    kept = sorted(seen.values())
    if max_pairs is not None and len(kept) > max_pairs:
        dropped["sampled_out"] = len(kept) - max_pairs
        kept = sorted(sorted(kept, key=lambda row: _hash(key(row[0]), seed + 2))[:max_pairs])
    rows = []
    for phrase, origin in kept:
        pick = _hash(key(phrase), seed + 1)
        split = "test" if pick < test else "val" if pick < test + val else "train"
        rows.append({"source": phrase, "target": phrase, "split": split, "origin": origin})
    stats: dict[str, object] = {"pairs": len(rows), "dropped": dropped}
    for field in ("split", "origin"):
        counts: dict[str, int] = {}
        for row in rows:
            counts[row[field]] = counts.get(row[field], 0) + 1
        stats[field] = dict(sorted(counts.items()))
    return rows, stats


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/english_phrases"))
    parser.add_argument("--exclude", type=Path, default=Path(__file__).parent / "data" / "multilingual_captions.jsonl",
                        help="JSONL validation set whose 'en' phrases must not be trained on")
    parser.add_argument("--openclipart", type=Path, default=OPENCLIPART_SVG)
    parser.add_argument("--val", type=float, default=0.05)
    parser.add_argument("--test", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-pairs", type=int, default=None,
                        help="keep a seeded uniform sample of this many phrases (all: ~45.7k)")
    args = parser.parse_args(argv)
    excluded = validation_phrases(args.exclude)
    sources = [*wordnet_phrases(timm_info(), args.seed), *openclipart_titles(args.openclipart)]
    rows, stats = build(sources, excluded, args.val, args.test, args.seed, args.max_pairs)
    stats["excluded_validation_phrases"] = len(excluded)
    with atomic_path(args.out / "pairs.csv") as tmp:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["source", "target", "split", "origin"])
            writer.writeheader()
            writer.writerows(rows)
    with atomic_path(args.out / "stats.json") as tmp:
        tmp.write_text(json.dumps(stats, indent=2) + "\n")
    print(json.dumps(stats), file=sys.stderr)
    return stats


if __name__ == "__main__":
    main()
