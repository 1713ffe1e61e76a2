"""Evaluation harness: zero-shot classification and any-to-any retrieval of a Space on local datasets.

Two task kinds, one similarity rule (the cosine of the space's unit vectors):

- **zero-shot classification** (:func:`zero_shot`): each class name is put into prompt templates, the
  template embeddings are averaged (and re-normalised) into one class vector, and an item is right at k
  when its class is among the k most similar classes: ``top-1``, ``top-5``.
- **retrieval** (:func:`retrieval`): both sides of a paired dataset are deduplicated (one clip with five
  captions is one candidate); a query's relevant candidates are everything it is paired with. Both
  directions report ``R@1/5/10`` (a query counts when any relevant candidate is in the top k), ``mAP`` and
  ``NDCG@10`` (which use every relevant candidate, for corpora where several are relevant).

Ties are ranked pessimistically: a relevant candidate comes after every irrelevant one with the same
score. :data:`TASKS` maps a task name to a function
``(space, root, *, split=None, file=None, templates=None, batch_size=32) -> EvalResult``;
:func:`evaluate` runs one by name and :func:`result_record` / :func:`write_result` make the JSON record.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..data import audiocaps, clotho, esc50, karpathy, load_manifest, modelnet40, msrvtt
from ..data.manifest import Item, PairManifest
from ..errors import ConfigError, InputError
from ..experts.api import EmbedResult
from ..experts.modality import Modality
from ..io.atomic import atomic_path
from ..spaces.base import Space
from ..spaces.persist import load_space
from .metrics import ranks_of_targets, recall_at

RETRIEVAL_KS = (1, 5, 10)
CLASSIFICATION_KS = (1, 5)
NDCG_K = 10
TEMPLATES: dict[str, list[str]] = {
    "audio": ["the sound of {}.", "a recording of {}.", "{}"],
    "points": ["a 3D model of a {}.", "a point cloud of a {}.", "a {}."],
    "image": ["a photo of a {}.", "a picture of a {}.", "a {}."],
    "video": ["a video of {}.", "a clip of {}.", "{}"],
    "text": ["{}"],
}


@dataclasses.dataclass
class EvalResult:
    """What one task measured: ``metrics`` (name -> value) on ``counts`` items, ``skipped`` unreadable ones."""

    task: str
    root: str
    split: str | None
    counts: dict[str, int]
    metrics: dict[str, float]
    skipped: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- ranking metrics ---------------------------------------------------------------------------------------

def _relevance(shape: tuple[int, int], relevant: Sequence[Sequence[int]]) -> torch.Tensor:
    mask = torch.zeros(shape, dtype=torch.bool)
    for q, found in enumerate(relevant):
        if not found:
            raise ValueError(f"query {q} has no relevant candidate")
        mask[q, list(found)] = True
    return mask


def _ranked_relevance(similarity: torch.Tensor, relevant: Sequence[Sequence[int]]) -> torch.Tensor:
    """``[Q, C]`` relevance (bool) in each query's ranked order; ties put relevant candidates last."""
    mask = _relevance(tuple(similarity.shape), relevant)
    # irrelevant first, then a stable sort by similarity: among equal scores the relevant ones come last
    first = torch.argsort(mask.to(torch.int8), dim=1, stable=True)
    order = torch.argsort(similarity.gather(1, first), dim=1, descending=True, stable=True)
    return mask.gather(1, first.gather(1, order))


def mean_average_precision(similarity: torch.Tensor, relevant: Sequence[Sequence[int]]) -> float:
    """mAP: the mean over queries of the precision at each relevant candidate's rank, averaged."""
    hits = _ranked_relevance(similarity, relevant).float()
    precision = hits.cumsum(dim=1) / torch.arange(1, hits.shape[1] + 1)
    return float(((precision * hits).sum(dim=1) / hits.sum(dim=1)).mean())


def ndcg_at(similarity: torch.Tensor, relevant: Sequence[Sequence[int]], k: int = NDCG_K) -> float:
    """NDCG@k with binary relevance: ``sum 1/log2(rank+1)`` over relevant hits in the top k, over its ideal."""
    hits = _ranked_relevance(similarity, relevant).float()[:, :k]
    discount = 1.0 / torch.log2(torch.arange(2, hits.shape[1] + 2, dtype=torch.float))
    ideal = torch.tensor([float(discount[: min(len(r), k)].sum()) for r in relevant])
    return float(((hits * discount).sum(dim=1) / ideal).mean())


def ranking_metrics(similarity: torch.Tensor, relevant: Sequence[Sequence[int]],
                    ks: Sequence[int] = RETRIEVAL_KS) -> dict[str, float]:
    """R@k (any relevant in the top k), mean/median rank of the first relevant, mAP and NDCG@10.

    The first relevant rank comes from the same pessimistic order as mAP: relevant candidates tied with each
    other at the top still put one at rank 1 (``ranks_of_targets`` would count them against each other).
    """
    first = _ranked_relevance(similarity, relevant).to(torch.int8).argmax(dim=1) + 1
    out = recall_at(first, ks)
    out["mAP"] = mean_average_precision(similarity, relevant)
    out[f"NDCG@{NDCG_K}"] = ndcg_at(similarity, relevant)
    return out


# --- embedding with skipped items --------------------------------------------------------------------------

def _embed(space: Space, items: list[Item], modality: Modality | None, batch_size: int,
           skipped: list[str]) -> tuple[torch.Tensor, list[int]]:
    """Unit rows of the items the space could read and their positions; the others go to ``skipped``."""
    result = space.embed(items, modality, batch_size=batch_size, on_error="skip")
    assert isinstance(result, EmbedResult)
    skipped.extend(str(failure) for failure in result.failures)
    return result.embeddings, result.indices


def _key(item: Item) -> str:
    return f"file:{os.path.abspath(item)}" if isinstance(item, Path) else f"text:{item}"


def _unique(items: list[Item]) -> tuple[list[Item], list[int]]:
    """The distinct items (first-seen order) and each input's index among them."""
    where: dict[str, int] = {}
    unique: list[Item] = []
    index = []
    for item in items:
        key = _key(item)
        if key not in where:
            where[key] = len(unique)
            unique.append(item)
        index.append(where[key])
    return unique, index


def _side_name(manifest_modality: Modality | None, fallback: str) -> str:
    return manifest_modality.value if manifest_modality is not None else fallback


# --- the two task kinds ------------------------------------------------------------------------------------

def retrieval(space: Space, manifest: PairManifest, *, batch_size: int = 32) -> tuple[dict[str, float],
                                                                                      dict[str, int], list[str]]:
    """Both retrieval directions over the deduplicated sources and targets of a paired manifest.

    Returns (metrics keyed ``"<a>2<b>/R@1"``..., counts, skipped items). Pairs with an unreadable side are
    left out; an item left with no readable partner is not a query.
    """
    if not manifest.pairs:
        raise ConfigError("retrieval needs at least one pair (is the split empty?)")
    skipped: list[str] = []
    sources, source_of = _unique(manifest.sources())
    targets, target_of = _unique(manifest.targets())
    a, a_kept = _embed(space, sources, manifest.source_modality, batch_size, skipped)
    b, b_kept = _embed(space, targets, manifest.target_modality, batch_size, skipped)
    a_row = {i: row for row, i in enumerate(a_kept)}
    b_row = {i: row for row, i in enumerate(b_kept)}
    links = {(a_row[s], b_row[t]) for s, t in zip(source_of, target_of) if s in a_row and t in b_row}
    if not links:
        raise ConfigError("no pair has both sides readable; see the skipped items")
    forward: dict[int, set[int]] = {}
    backward: dict[int, set[int]] = {}
    for s, t in links:
        forward.setdefault(s, set()).add(t)
        backward.setdefault(t, set()).add(s)
    similarity = Space.similarity(a, b)
    name_a = _side_name(manifest.source_modality, "source")
    name_b = _side_name(manifest.target_modality, "target")
    metrics: dict[str, float] = {}
    for name, sim, relevant in ((f"{name_a}2{name_b}", similarity, forward),
                                (f"{name_b}2{name_a}", similarity.T, backward)):
        queries = sorted(relevant)
        found = ranking_metrics(sim[queries], [sorted(relevant[q]) for q in queries])
        metrics.update({f"{name}/{k}": v for k, v in found.items()})
    counts = {"pairs": len(links), "sources": len(a_kept), "targets": len(b_kept)}
    return metrics, counts, skipped


def class_embeddings(space: Space, classes: Sequence[str], templates: Sequence[str], *,
                     batch_size: int = 32) -> torch.Tensor:
    """``[len(classes), dim]``: each class's template embeddings averaged, then re-normalised."""
    if not templates or any("{}" not in t for t in templates):
        raise ConfigError(f"templates must be a non-empty list of strings with a '{{}}', got {list(templates)!r}")
    texts = [t.format(c) for c in classes for t in templates]
    vectors = space.embed(texts, "text", batch_size=batch_size)
    assert isinstance(vectors, torch.Tensor)
    mean = vectors.view(len(classes), len(templates), -1).mean(dim=1)
    return torch.nn.functional.normalize(mean, dim=-1)


def zero_shot(space: Space, items: list[Item], labels: Sequence[int], classes: Sequence[str],
              templates: Sequence[str], *, modality: Modality | None = None, ks: Sequence[int] = CLASSIFICATION_KS,
              batch_size: int = 32) -> tuple[dict[str, float], dict[str, int], list[str]]:
    """Top-k accuracy of nearest-class-prompt classification (k up to the number of classes).

    Returns (metrics ``{"top-1": ..., "top-5": ...}``, counts, skipped items).
    """
    if not items:
        raise ConfigError("zero-shot classification needs at least one item (is the split empty?)")
    skipped: list[str] = []
    vectors, kept = _embed(space, items, modality, batch_size, skipped)
    if not kept:
        raise ConfigError("no item could be read; see the skipped items")
    names = [c.replace("_", " ") for c in classes]
    similarity = Space.similarity(vectors, class_embeddings(space, names, templates, batch_size=batch_size))
    ranks = ranks_of_targets(similarity, torch.tensor([labels[i] for i in kept]))
    metrics = {f"top-{k}": float((ranks <= k).float().mean()) for k in ks if k <= len(classes)}
    return metrics, {"items": len(kept), "classes": len(classes)}, skipped


# --- tasks on local datasets -------------------------------------------------------------------------------

def _first_dir(*candidates: Path) -> Path:
    found = next((c for c in candidates if c.is_dir()), None)
    if found is None:
        raise InputError(str(candidates[0]), "folder not found; looked for " + ", ".join(map(str, candidates)))
    return found


def _only_split(manifest: PairManifest, split: str | None) -> PairManifest:
    """The pairs of ``split`` when the data has splits (all of them when it has none)."""
    if split is None or not any("split" in p.meta for p in manifest.pairs):
        return manifest
    chosen = manifest.split(split)
    if not chosen.pairs:
        raise ConfigError(f"no pairs in split {split!r}; the data has {sorted(map(str, manifest.splits()))}")
    return chosen


def _classify(space: Space, task: str, root: Path, split: str | None, manifest: PairManifest,
              templates: Sequence[str] | None, batch_size: int) -> EvalResult:
    assert manifest.classes is not None
    modality = manifest.source_modality
    templates = templates or TEMPLATES[modality.value if modality else "text"]
    metrics, counts, skipped = zero_shot(space, manifest.sources(), manifest.labels(), manifest.classes,
                                         templates, modality=modality, batch_size=batch_size)
    return EvalResult(task, str(root), split, counts, metrics, skipped)


def _retrieve(space: Space, task: str, root: Path, split: str | None, manifest: PairManifest,
              batch_size: int) -> EvalResult:
    metrics, counts, skipped = retrieval(space, manifest, batch_size=batch_size)
    return EvalResult(task, str(root), split, counts, metrics, skipped)


def esc50_task(space: Space, root: Path, *, split: str | None = None, file: str | None = None,
               templates: Sequence[str] | None = None, batch_size: int = 32) -> EvalResult:
    """ESC-50 zero-shot (``root/meta/esc50.csv``, ``root/audio``): all 2000 clips, or ``split="fold3"``."""
    manifest = esc50(root)
    if split is not None:
        if not (split.startswith("fold") and split[4:].isdigit()):
            raise ConfigError(f"ESC-50 splits are its folds: fold1 ... fold5, got {split!r}")
        manifest = manifest.filter(lambda p: p.meta["fold"] == int(split[4:]))
    return _classify(space, "esc50", root, split, manifest, templates, batch_size)


def modelnet40_task(space: Space, root: Path, *, split: str | None = None, file: str | None = None,
                    templates: Sequence[str] | None = None, batch_size: int = 32) -> EvalResult:
    """ModelNet40/10 zero-shot (``root/<class>/<train|test>/*.off``), the test split by default."""
    split = split or "test"
    return _classify(space, "modelnet40", root, split, _only_split(modelnet40(root), split), templates, batch_size)


def audiocaps_task(space: Space, root: Path, *, split: str | None = None, file: str | None = None,
                   templates: Sequence[str] | None = None, batch_size: int = 32) -> EvalResult:
    """AudioCaps retrieval: ``root/<split>.csv`` (or ``file``) and clips in ``root/audio/<split>`` or ``root/audio``."""
    split = split or "test"
    csv_path = root / (file or f"{split}.csv")
    audio = _first_dir(root / "audio" / split, root / "audio", root / split)
    return _retrieve(space, "audiocaps", root, split, audiocaps(csv_path, audio, split=split), batch_size)


_CLOTHO_NAMES = {"train": "development", "val": "validation", "test": "evaluation"}


def clotho_task(space: Space, root: Path, *, split: str | None = None, file: str | None = None,
                templates: Sequence[str] | None = None, batch_size: int = 32) -> EvalResult:
    """Clotho retrieval: ``root/clotho_captions_<evaluation|validation|development>.csv`` and the audio in
    ``root/<evaluation|...>`` (as Clotho's archives unpack) or ``root/audio/<...>``; the test split by default."""
    split = split or "test"
    name = _CLOTHO_NAMES.get(split, split)
    csv_path = root / (file or f"clotho_captions_{name}.csv")
    audio = _first_dir(root / name, root / "audio" / name, root / f"clotho_audio_{name}")
    return _retrieve(space, "clotho", root, split, clotho(csv_path, audio, split=split), batch_size)


def msrvtt_task(space: Space, root: Path, *, split: str | None = None, file: str | None = None,
                templates: Sequence[str] | None = None, batch_size: int = 32) -> EvalResult:
    """MSR-VTT retrieval: ``root/test_videodatainfo.json`` (test) or ``train_val_videodatainfo.json`` (or
    ``file``) with ``root/videos/all``, ``root/videos`` or ``root/TestVideo`` holding ``video<N>.mp4``."""
    split = split or "test"
    json_path = root / (file or ("test_videodatainfo.json" if split == "test" else "train_val_videodatainfo.json"))
    videos = _first_dir(root / "videos" / "all", root / "videos", root / "TestVideo")
    return _retrieve(space, "msrvtt", root, split, _only_split(msrvtt(json_path, videos), split), batch_size)


def _karpathy_task(task: str, default_json: str, image_folders: Callable[[Path], tuple[Path, ...]]) -> Callable:
    def run(space: Space, root: Path, *, split: str | None = None, file: str | None = None,
            templates: Sequence[str] | None = None, batch_size: int = 32) -> EvalResult:
        split = split or "test"
        manifest = karpathy(root / (file or default_json), _first_dir(*image_folders(root)))
        return _retrieve(space, task, root, split, _only_split(manifest, split), batch_size)

    run.__doc__ = (f"{task} retrieval from Karpathy's ``root/{default_json}`` (or ``file``) and its images "
                   f"({', '.join(str(p) for p in image_folders(Path('root')))}); the test split by default.")
    return run


flickr30k_task = _karpathy_task("flickr30k", "dataset_flickr30k.json",
                                lambda root: (root / "flickr30k-images", root / "images", root))
coco_task = _karpathy_task("coco", "dataset_coco.json", lambda root: (root / "images", root))


def manifest_task(space: Space, root: Path, *, split: str | None = None, file: str | None = None,
                  templates: Sequence[str] | None = None, batch_size: int = 32) -> EvalResult:
    """Retrieval on a generic manifest (``root`` is the CSV/TSV/JSONL/JSON file, or a folder with ``file``).

    Sources and targets may be of any (and mixed) modalities; rows sharing an item make several candidates
    relevant to one query. With ``split`` only that split (when the manifest has a split column).
    """
    path = root / file if file else root
    return _retrieve(space, "manifest", root, split, _only_split(load_manifest(path), split), batch_size)


def manifest_classes_task(space: Space, root: Path, *, split: str | None = None, file: str | None = None,
                          templates: Sequence[str] | None = None, batch_size: int = 32) -> EvalResult:
    """Zero-shot classification on a generic manifest: each row's class is its ``label`` column (else its
    target text); the classes are the distinct names, sorted."""
    path = root / file if file else root
    manifest = _only_split(load_manifest(path), split)
    names = [str(p.meta.get("label") or p.target) for p in manifest.pairs]
    classes = sorted(set(names))
    labelled = PairManifest([dataclasses.replace(p, meta={**p.meta, "label": classes.index(n)})
                             for p, n in zip(manifest.pairs, names)],
                            manifest.source_modality, manifest.target_modality, classes)
    return _classify(space, "manifest-classes", root, split, labelled, templates, batch_size)


TASKS: dict[str, Callable[..., EvalResult]] = {
    "esc50": esc50_task,
    "modelnet40": modelnet40_task,
    "audiocaps": audiocaps_task,
    "clotho": clotho_task,
    "msrvtt": msrvtt_task,
    "flickr30k": flickr30k_task,
    "coco": coco_task,
    "manifest": manifest_task,
    "manifest-classes": manifest_classes_task,
}


def evaluate(space: Space | str | os.PathLike, task: str, root: str | os.PathLike, *, split: str | None = None,
             file: str | None = None, templates: Sequence[str] | None = None, batch_size: int = 32) -> EvalResult:
    """Run the task named ``task`` (a key of :data:`TASKS`) on the data at ``root`` with ``space``
    (a Space, a space folder or a packaged space name)."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    space = space if isinstance(space, Space) else load_space(space)
    return TASKS[task](space, Path(root).expanduser(), split=split, file=file, templates=templates,
                       batch_size=batch_size)


# --- the result record -------------------------------------------------------------------------------------

def versions() -> dict[str, str]:
    from .. import __version__

    return {"bind": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform()}


def result_record(space: Space, result: EvalResult, space_name: str | None = None) -> dict[str, Any]:
    """The JSON record of one run: the space (name, identity, repr), the data, the metrics and versions."""
    return {
        "space": {"name": space_name, "identity": space.identity, "repr": repr(space)},
        "data": {"task": result.task, "root": result.root, "split": result.split, "counts": result.counts,
                 "skipped": result.skipped},
        "metrics": result.metrics,
        "versions": versions(),
    }


def write_result(path: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write the record as JSON, atomically (a crash leaves any previous file intact)."""
    path = Path(path).expanduser()
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def format_table(result: EvalResult) -> str:
    """The metrics as aligned ``name  value`` lines under a one-line summary of the data."""
    counts = ", ".join(f"{v} {k}" for k, v in result.counts.items())
    lines = [f"{result.task} ({result.split or 'all'}) on {result.root}: {counts}"]
    if result.skipped:
        lines.append(f"skipped {len(result.skipped)} unreadable item(s): {result.skipped[0]}"
                     + (" ..." if len(result.skipped) > 1 else ""))
    width = max(len(k) for k in result.metrics)
    for name, value in result.metrics.items():
        shown = f"{value:.2f}" if "rank" in name else f"{100 * value:.2f}"
        lines.append(f"  {name.ljust(width)}  {shown}")
    lines.append("  (ranks as ranks; everything else in %)")
    return "\n".join(lines)


__all__ = [
    "TASKS",
    "EvalResult",
    "class_embeddings",
    "evaluate",
    "format_table",
    "mean_average_precision",
    "ndcg_at",
    "ranking_metrics",
    "result_record",
    "retrieval",
    "versions",
    "write_result",
    "zero_shot",
]
