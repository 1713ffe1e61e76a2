"""The offline demo: an any-to-any index of assets/ searched by text, image, sound, video or 3D queries.

The demo searches with the packaged offline default space ``lite`` (spaces/README.md): MiniLM text bonded
with multilingual e5; images, video frames and 3D depth views through EfficientNet-Lite0, bonded from the
zero-training label bridge (:func:`bind.spaces.presets.bridge_space`) and the trained adapter; audio through BirdNET's label bridge
when the optional extra ``bind[birdnet]`` is installed (without it, audio files are reported as not indexed
and audio queries get a clear message saying how to add it).

The index is cached under ``$BIND_CACHE/demo`` (default ``~/.cache/bind/demo``); a second start reuses it
and re-embeds only new or changed files (``Index.build_from_folder`` is incremental).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ..assets import AssetEntry, assets_dir, load_manifest
from ..errors import ConfigError
from ..experts.modality import Modality
from ..index import FolderReport, Hit, Index
from ..spaces import Space, load_space
from ..spaces.presets import bridge_space

CACHE_ENV = "BIND_CACHE"
DEFAULT_SPACE = "lite"
NO_AUDIO = ("audio search needs the optional BirdNET extra: pip install 'bind[birdnet]' (model licence CC BY-NC-SA "
            "4.0, non-commercial); with CLAP weights in the local cache, CLAP is the full-quality audio path")
# (query, what it is) for `bind demo --no-serve`; paths are relative to assets/
EXAMPLES: tuple[tuple[str, str], ...] = (("a cat", "text"), ("a guitar", "text"), ("a rocket launch", "text"),
                                         ("images/cat.jpg", "image"))


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """The demo's cache folder: ``root/demo``, else ``$BIND_CACHE/demo``, else ``~/.cache/bind/demo``."""
    base = root or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "bind"
    return Path(base).expanduser() / "demo"


def demo_index(cache: Path, *, rebuild: bool = False, progress: bool = True) -> tuple[Index, FolderReport]:
    """The index of assets/ in the demo space, continued from ``cache/index`` when it is there."""
    space = load_space(DEFAULT_SPACE)
    out = cache / "index"
    if rebuild and out.exists():
        shutil.rmtree(out)
    try:
        return Index.build_from_folder(assets_dir(), space, out=out, backend="exact", progress=progress)
    except ConfigError:  # saved with another space (an expert changed): start over
        shutil.rmtree(out)
        return Index.build_from_folder(assets_dir(), space, out=out, backend="exact", progress=progress)


def captions() -> dict[str, AssetEntry]:
    """The manifest entry of every asset, by absolute file path (an index item's ``metadata["path"]``)."""
    return {str(entry.path): entry for entry in load_manifest()}


@dataclass(frozen=True)
class Row:
    """One ranked result, ready to print or show."""

    rank: int
    score: float
    modality: Modality
    id: str
    path: str
    caption: str
    cosine: float | None = None
    relevance: float | None = None


def rows(hits: list[Hit], by_path: dict[str, AssetEntry]) -> list[Row]:
    """Ranked rows with each item's manifest caption (or its path when it has none)."""
    out = []
    for rank, hit in enumerate(hits, 1):
        path = str(hit.metadata.get("path", ""))
        entry = by_path.get(path)
        out.append(Row(rank, hit.score, hit.modality, hit.id, path, entry.caption if entry else path, hit.cosine,
                       hit.relevance))
    return out


def format_rows(table: list[Row]) -> str:
    """A readable table: rank, relevance (- where uncalibrated), score, cosine, modality, id, caption."""
    lines = [f"  {'#':>2}  {'rel':>4}  {'score':>6}  {'cosine':>6}  {'modality':<8}  {'id':<28}  caption"]
    lines += [f"  {r.rank:>2}  {'-' if r.relevance is None else f'{r.relevance:.2f}':>4}  {r.score:6.3f}  "
              f"{r.cosine if r.cosine is not None else r.score:6.3f}  {r.modality.value:<8}  {r.id:<28}  {r.caption}"
              for r in table]
    return "\n".join(lines)


def run_examples(index: Index, k: int = 5) -> dict[str, list[Row]]:
    """Print the top ``k`` of every example query; return the rows per query."""
    by_path = captions()
    results = {}
    for query, kind in EXAMPLES:
        item = assets_dir() / query if kind != "text" else query
        hits = index.search(item, k=k)
        assert isinstance(hits, list)
        results[query] = table = rows(hits, by_path)  # type: ignore[arg-type]
        print(f"\nquery ({kind}): {query!r}\n{format_rows(table)}")
    return results


def caption_demo(top_k: int = 3, space: Space | None = None) -> dict[Modality, tuple[int, int]]:
    """Print the ``top_k`` closest captions of every non-text asset; return (hits@1, items) per modality.

    A hit is a top-1 caption that belongs to an asset of the same concept (e.g. any cat caption for a cat).
    """
    space = space or bridge_space()
    entries = load_manifest()
    names = sorted({entry.caption for entry in entries})
    concepts = {entry.caption: entry.concept for entry in entries}
    caption_vectors = space.embed(names, Modality.TEXT)
    scores: dict[Modality, tuple[int, int]] = {}
    for modality in (Modality.IMAGE, Modality.VIDEO, Modality.POINTS, Modality.AUDIO):
        items = [e for e in entries if e.modality == modality]
        if not items:
            continue
        print(f"\n== {modality.value} ({len(items)} items) ==")
        if modality not in space.modalities:
            print("  unavailable: no path in this space")
            continue
        result = space.embed([e.path for e in items], modality, on_error="skip")
        for failure in result.failures:  # type: ignore[union-attr]
            print(f"  skipped {failure}")
        similarity = result.embeddings @ caption_vectors.T  # type: ignore[union-attr]
        hits = 0
        for row, index in enumerate(result.indices):  # type: ignore[union-attr]
            entry = items[index]
            best = torch.topk(similarity[row], min(top_k, len(names)))
            ranked = [names[i] for i in best.indices.tolist()]
            hit = concepts[ranked[0]] == entry.concept
            hits += hit
            shown = ", ".join(f"{c!r} {s:.2f}" for c, s in zip(ranked, best.values.tolist()))
            print(f"  {'ok ' if hit else '   '}{entry.path.name:<28} true: {entry.caption!r}\n       closest: {shown}")
        scores[modality] = (hits, len(items))
        print(f"  top-1 caption about the same concept: {hits}/{len(items)}")
    return scores
