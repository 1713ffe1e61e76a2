"""The multilingual combination bond, measured: multilingual-e5-small bonded to the offline MiniLM space.

Base space: MiniLM-L6 text anchor, images through EfficientNet-Lite0 ImageNet logits and the zero-training
label bridge. Bonded space: ``CombinationBond(base, e5-small-multilingual.text, projector, lam)`` on text,
with the projector trained on English phrases only (``recipes/e5_to_minilm_english.yaml``). Validation:
the hand-written English/German/Spanish/French captions of bind's sample assets
(``recipes/data/multilingual_captions.jsonl``), none of which is in the training phrases.

Table 1, one row per ``lam`` (0 = MiniLM alone):
- ``xx->en``: a caption in language xx retrieves its English caption among all English captions (R@1);
- ``en->img`` / ``xx->img``: a caption of an item whose concept has a sample image retrieves that image
  among the sample images (R@1); ``img->en``: an image retrieves an English caption of its concept.
Table 2 (gap correction, GR-CLIP): one mixed candidate set holding the sample images and the English
captions of the items of other concepts; how often a caption's top hit is the image of its concept, with
the space as is and after ``space.calibrate`` (text mean from held-out training-set phrases, image mean
from Open Clip Art pictures when ``data/openclipart/images`` exists, else from the sample images).
Table 3 (English, better powered): the held-out test split of ``recipes/image_to_minilm_offline`` (the
Open Clip Art pairs of ``data/openclipart/pairs.csv``, one unique caption per image), in a space whose
images go through EfficientNet-Lite0 features and the shipped adapter ``efficientnet-lite0_to_minilm-l6``;
English caption -> image and image -> caption R@1/R@5 for each ``lam``. The bond acts on text only, so the
images are embedded once. Skipped, with a message, when the manifest is missing (it is built by
``recipes/prepare_openclipart.py`` from Debian packages).

    python bench/multilingual_bond.py [--projector projectors/e5-small_to_minilm-l6] [--lams 0,0.25,0.5,0.75,1]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from bind.assets import load_manifest  # noqa: E402
from bind.eval.metrics import ranks_of_targets  # noqa: E402
from bind.spaces import AnchorSpace, ExpertPath, Space  # noqa: E402
from bind.spaces.bonds import CombinationBond  # noqa: E402
from bind.spaces.projectors import load_projector  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LANGS = ("de", "es", "fr")


def load_captions(path: Path) -> list[dict[str, str]]:
    """The caption records (the header record, which has no ``id``, is skipped)."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if "id" in r]


def r_at_1(queries: torch.Tensor, candidates: torch.Tensor, targets: list[list[int]]) -> float:
    ranks = ranks_of_targets(Space.similarity(queries, candidates), targets)
    return float((ranks == 1).float().mean())


def base_space() -> AnchorSpace:
    return AnchorSpace({"text": "minilm-l6.text",
                        "image": ExpertPath.label_bridge("efficientnet-lite0.imagenet-logits", "minilm-l6.text")})


def retrieval_row(space: Space, captions: list[dict[str, str]], images: dict[str, Path]) -> dict[str, float]:
    concepts = list(images)
    image_vectors = space.embed([images[c] for c in concepts], "image")
    text = {lang: space.embed([r[lang] for r in captions], "text") for lang in ("en", *LANGS)}
    same = [[i] for i in range(len(captions))]
    with_image = [i for i, r in enumerate(captions) if r["concept"] in images]
    to_image = [[concepts.index(captions[i]["concept"])] for i in with_image]
    row = {f"{lang}->en": r_at_1(text[lang], text["en"], same) for lang in LANGS}
    row["mean->en"] = sum(row[f"{lang}->en"] for lang in LANGS) / len(LANGS)
    row["en->img"] = r_at_1(text["en"][with_image], image_vectors, to_image)
    row["img->en"] = r_at_1(image_vectors, text["en"],
                            [[i for i, r in enumerate(captions) if r["concept"] == c] for c in concepts])
    for lang in LANGS:
        row[f"{lang}->img"] = r_at_1(text[lang][with_image], image_vectors, to_image)
    row["mean->img"] = sum(row[f"{lang}->img"] for lang in LANGS) / len(LANGS)
    return row


def clipart_space(adapter: str) -> AnchorSpace:
    return AnchorSpace({"text": "minilm-l6.text",
                        "image": ExpertPath("efficientnet-lite0.image", load_projector(adapter))})


def clipart_test_pairs(manifest: Path) -> list[tuple[Path, str]]:
    """The (image, caption) pairs of the manifest's test split; image paths are relative to the manifest."""
    with manifest.open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "test"]
    return [(manifest.parent / r["source"], r["target"]) for r in rows]


def english_rows(base: Space, expert: Space, projector: str, lams: list[float],
                 pairs: list[tuple[Path, str]]) -> list[dict[str, float]]:
    """Caption <-> image R@1/R@5 on ``pairs`` (caption i belongs to image i) for each bond weight."""
    image_vectors = base.embed([image for image, _ in pairs], "image")
    probe = CombinationBond(base, expert, projector, lam=1.0).embed([image for image, _ in pairs[:4]], "image")
    if not torch.equal(probe, image_vectors[:4]):
        raise SystemExit("the combination bond changed image embeddings; table 3 assumes it acts on text only")
    same = torch.arange(len(pairs))
    rows = []
    for lam in lams:
        text = CombinationBond(base, expert, projector, lam=lam).embed([caption for _, caption in pairs], "text")
        to_image = ranks_of_targets(Space.similarity(text, image_vectors), same)
        to_text = ranks_of_targets(Space.similarity(image_vectors, text), same)
        rows.append({"lam": lam,
                     "en->img R@1": float((to_image == 1).float().mean()),
                     "en->img R@5": float((to_image <= 5).float().mean()),
                     "img->en R@1": float((to_text == 1).float().mean()),
                     "img->en R@5": float((to_text <= 5).float().mean())})
    return rows


def english_bar(rows: list[dict[str, float]], tolerance: float = 0.01) -> list[str]:
    """For each bonded row: does R@1 (both directions) stay within ``tolerance`` below the lam=0 row?"""
    base = next((r for r in rows if r["lam"] == 0), None)
    if base is None:
        return ["(no lam=0 row: the English bar cannot be checked)"]
    lines = []
    for row in rows:
        if row is base:
            continue
        drops = {k: base[k] - row[k] for k in ("en->img R@1", "img->en R@1")}
        verdict = "holds" if all(d <= tolerance + 1e-9 for d in drops.values()) else "FAILS"
        lines.append(f"lam={row['lam']:g}: {verdict} (" + ", ".join(
            f"{k} {-d * 100:+.1f} points" for k, d in drops.items()) + ")")
    return lines


def mixed_top_hit(space: Space, captions: list[dict[str, str]], images: dict[str, Path], lang: str) -> float:
    """Candidates: the images, then the English captions of items of other concepts than the query's."""
    concepts = list(images)
    image_vectors = space.embed([images[c] for c in concepts], "image")
    english = space.embed([r["en"] for r in captions], "text")
    hits = 0
    queried = [r for r in captions if r["concept"] in images]
    queries = space.embed([r[lang] for r in queried], "text")
    for query, record in zip(queries, queried):
        others = [i for i, r in enumerate(captions) if r["concept"] != record["concept"]]
        candidates = torch.cat([image_vectors, english[others]])
        hits += int(Space.similarity(query[None], candidates)[0].argmax()) == concepts.index(record["concept"])
    return hits / len(queried)


def calibration_samples(phrases_csv: Path, n: int, seed: int) -> tuple[list[str], list[Path], str]:
    with phrases_csv.open(encoding="utf-8") as handle:
        held_out = sorted(row["target"] for row in csv.DictReader(handle) if row["split"] == "test")
    rng = random.Random(seed)
    text = rng.sample(held_out, min(n, len(held_out)))
    clipart = sorted((ROOT / "data" / "openclipart" / "images").rglob("*.png"))
    if clipart:
        return text, rng.sample(clipart, min(n, len(clipart))), f"{min(n, len(clipart))} Open Clip Art images"
    pictures = [e.path for e in load_manifest() if e.modality.value == "image"]
    return text, pictures, f"the {len(pictures)} sample images (no other pictures found)"


def fmt_table(rows: list[dict[str, float]], first: str) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(str(row[k]) if k == first else f"{row[k]:.3f}" for k in keys) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projector", default=str(ROOT / "projectors" / "e5-small_to_minilm-l6"))
    parser.add_argument("--captions", type=Path, default=ROOT / "recipes" / "data" / "multilingual_captions.jsonl")
    parser.add_argument("--lams", default="0,0.25,0.5,0.75,1")
    parser.add_argument("--gap-lam", type=float, default=0.75, help="the bond weight of table 2's bonded space")
    parser.add_argument("--phrases", type=Path, default=ROOT / "data" / "english_phrases" / "pairs.csv")
    parser.add_argument("--calibration-size", type=int, default=300)
    parser.add_argument("--clipart", type=Path, default=ROOT / "data" / "openclipart" / "pairs.csv",
                        help="table 3's manifest (its split == 'test' rows are used)")
    parser.add_argument("--image-adapter", default="efficientnet-lite0_to_minilm-l6",
                        help="table 3's image adapter (a folder or a packaged projector name)")
    args = parser.parse_args()
    torch.manual_seed(0)

    captions = load_captions(args.captions)
    images = {e.concept: e.path for e in load_manifest() if e.modality.value == "image"}
    manifest = {e.id: e.caption for e in load_manifest()}
    stale = [r["id"] for r in captions if manifest.get(r["id"]) != r["en"]]
    if stale:
        raise SystemExit(f"{args.captions}: English captions differ from assets/manifest.json for {stale}")
    base = base_space()
    expert = AnchorSpace.from_expert("e5-small-multilingual.text")
    print(f"{len(captions)} captions x {1 + len(LANGS)} languages; {len(images)} images; "
          f"{sum(r['concept'] in images for r in captions)} captions have an image of their concept")
    print(f"projector: {args.projector}\n")

    lams = [float(v) for v in args.lams.split(",")]
    rows = []
    for lam in lams:
        space = CombinationBond(base, expert, args.projector, lam=lam)
        rows.append({"lam": lam, **retrieval_row(space, captions, images)})
    print("Table 1: R@1, MiniLM alone (lam=0) vs bonded with multilingual-e5 (text lam)")
    print(fmt_table(rows, "lam"))

    text, pictures, picture_source = calibration_samples(args.phrases, args.calibration_size, seed=0)
    gap_rows = []
    for name, space in (("MiniLM + label bridge (lam=0)", base),
                        (f"bonded, lam={args.gap_lam:g}",
                         CombinationBond(base, expert, args.projector, lam=args.gap_lam))):
        corrected = space.calibrate({"text": text, "image": pictures})
        for label, which in (("off", space), ("on", corrected)):
            row: dict = {"space": f"{name}, correction {label}"}
            for lang in ("en", *LANGS):
                row[f"{lang} top hit"] = mixed_top_hit(which, captions, images, lang)
            gap_rows.append(row)
    print(f"\nTable 2: mixed candidates ({len(images)} images + English captions of other concepts); fraction of "
          f"caption queries whose top hit is the right image. Calibration: {len(text)} held-out training "
          f"phrases, {picture_source}")
    print(fmt_table(gap_rows, "space"))

    if not args.clipart.is_file():
        print(f"\nTable 3 skipped: {args.clipart} is missing (build it with recipes/prepare_openclipart.py, "
              "which needs the Debian packages openclipart-png and openclipart-svg)")
        return
    pairs = clipart_test_pairs(args.clipart)
    english = english_rows(clipart_space(args.image_adapter), expert, args.projector, lams, pairs)
    print(f"\nTable 3: English caption <-> image on the {len(pairs)} held-out test pairs of {args.clipart.name} "
          f"(images: efficientnet-lite0.image -> {args.image_adapter}); MiniLM alone (lam=0) vs bonded")
    print(fmt_table(english, "lam"))
    print("English bar (R@1 at most 1 point below lam=0, both directions):")
    print("\n".join(english_bar(english)))


if __name__ == "__main__":
    main()
