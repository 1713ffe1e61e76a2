"""Run a bind :class:`~bind.spaces.base.Space` as a model in MTEB (the optional extra: ``pip install 'bind[mteb]'``).

:class:`BindEncoder` implements MTEB 2.x's encoder protocol (``encode`` of a DataLoader of batches,
``similarity``, ``mteb_model_meta``) for text and image inputs; a row carrying both (MTEB's ``it2t``-style
tasks) is the re-normalised sum of its two unit embeddings (MTEB's CLIP wrappers add the two as well).
:func:`run_task` runs one MTEB task through ``mteb.evaluate`` and, given a folder, writes MTEB's own result
files there (``<out>/results/bind__<name>/<identity>/<Task>.json`` and ``model_meta.json``).
:func:`eval_result` turns MTEB's result into bind's :class:`~bind.eval.evaluation.EvalResult` (main scores only)
for printing and for bind's record. ``mteb`` is imported only when one of these runs.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputError
from ..experts.modality import Modality
from ..spaces.base import Space
from ..spaces.persist import load_space
from .evaluation import EvalResult

if TYPE_CHECKING:
    from mteb import AbsTask, TaskResult

MTEB_PREFIX = "mteb:"
# MTEB batch keys this adapter embeds; MTEB's audio and video batches need its own decoders (torchcodec)
MTEB_MODALITIES = (Modality.TEXT, Modality.IMAGE)


def require_mteb() -> ModuleType:
    """The ``mteb`` package, or a ConfigError saying how to install it."""
    try:
        import mteb
    except ImportError as exc:
        raise ConfigError(f"MTEB evaluation needs the optional mteb package (Python >= 3.11): "
                          f"pip install 'bind[mteb]' ({exc})") from exc
    return mteb


def mteb_licence(licences: Iterable[str]) -> str:
    """One MTEB licence id for the experts' licence texts: their common id ("apache-2.0"), "multiple" when
    they differ, "not specified" when one is not an id MTEB knows (its ``Licenses`` list)."""
    from typing import get_args

    from mteb.types import Licenses

    known = set(get_args(Licenses))
    # "Apache-2.0 (model card ...)" -> "apache-2.0"; "CC BY-NC-SA 4.0 (BirdNET ...)" -> "cc-by-nc-sa-4.0"
    ids = {text.split(" (")[0].split(":")[0].strip().lower().replace(" ", "-") for text in licences}
    if not ids or not ids <= known:
        return "not specified"
    return ids.pop() if len(ids) == 1 else "multiple"


class BindEncoder:
    """MTEB's encoder protocol over a bind space: float32 unit rows, cosine similarity.

    ``space`` is a Space, a space folder or a packaged space name; ``name`` becomes MTEB's model name
    ``bind/<name>`` (default: the folder's or packaged name) and the space's identity its revision, so
    MTEB's result folder tells spaces apart by content.
    """

    def __init__(self, space: Space | str | os.PathLike, *, name: str | None = None,
                 device: str | None = None) -> None:
        require_mteb()
        from mteb.models import ModelMeta

        if not isinstance(space, Space):
            name = name or Path(space).name
            space = load_space(space)
        self.space = space.to(device) if device else space
        modalities = [m for m in MTEB_MODALITIES if m in self.space.modalities]
        if not modalities:
            raise ConfigError(f"MTEB runs text and image tasks; this space embeds "
                              f"{', '.join(sorted(m.value for m in self.space.modalities))}")
        cards = [card for m in modalities for card in self.space.expert_cards(m)]
        self.mteb_model_meta = ModelMeta(
            loader=None, name=f"bind/{name or self.space.kind or 'space'}", revision=self.space.identity,
            release_date=None, languages=None, n_parameters=None, memory_usage_mb=None, max_tokens=None,
            embed_dim=self.space.dim, license=mteb_licence(card.licence for card in cards), open_weights=None,
            public_training_code=None, public_training_data=None, framework=["PyTorch"],
            similarity_fn_name="cosine", use_instructions=False,
            training_datasets=None, modalities=[m.value for m in modalities])

    def encode(self, inputs: Any, *, task_metadata: Any, hf_split: str, hf_subset: str,
               prompt_type: Any = None, **kwargs: Any) -> np.ndarray:
        """``[N, dim]`` float32 unit rows for the N rows of MTEB's DataLoader, in order."""
        columns: dict[Modality, list[Any]] = {}
        for batch in inputs:
            unsupported = sorted({"audio", "video"} & set(batch))
            if unsupported:
                raise ConfigError(f"task {task_metadata.name}: bind's MTEB adapter embeds text and images, "
                                  f"not {', '.join(unsupported)}")
            for modality in MTEB_MODALITIES:
                if modality.value in batch:
                    columns.setdefault(modality, []).extend(batch[modality.value])
        if not columns:
            raise ConfigError(f"task {task_metadata.name}: no text or image column in MTEB's batches")
        total = sum(self.space.embed(items, modality, batch_size=kwargs.get("batch_size", 32),
                                     progress=bool(kwargs.get("show_progress_bar", False)))
                    for modality, items in columns.items())
        assert isinstance(total, torch.Tensor)
        return F.normalize(total, dim=-1).numpy().astype(np.float32)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
        """``[N, M]`` cosines, MTEB's own function."""
        from mteb.similarity_functions import cos_sim

        return cos_sim(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
        """``[N]`` cosines of row pairs, MTEB's own function."""
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(embeddings1, embeddings2)


def get_task(task: str | AbsTask, split: str | None = None) -> AbsTask:
    """MTEB's task of that name (with or without the ``mteb:`` prefix), only ``split`` when given."""
    mteb = require_mteb()
    if isinstance(task, str):
        try:
            task = mteb.get_task(task.removeprefix(MTEB_PREFIX))
        except KeyError as exc:
            raise ConfigError(f"MTEB has no task {task!r}: {exc.args[0]}") from None
    if split is not None:
        if split not in task.metadata.eval_splits:
            raise ConfigError(f"MTEB task {task.metadata.name} has splits {task.metadata.eval_splits}, not {split!r}")
        task = task.filter_eval_splits([split])
    return task


def run_task(model: BindEncoder, task: AbsTask, out: str | os.PathLike | None = None, *,
             batch_size: int = 32) -> tuple[TaskResult, Path | None]:
    """Run ``task`` with MTEB's own evaluation; with ``out``, MTEB writes its result JSON under that folder
    (always re-run, never read back). Returns MTEB's TaskResult and the JSON's path (None without ``out``).
    Data this call loads is unloaded again."""
    mteb = require_mteb()
    loaded_here = not task.data_loaded
    if loaded_here:
        try:
            task.load_data()
        except OSError as exc:  # datasets' ConnectionError (offline) and DatasetNotFoundError
            raise InputError(str(task.metadata.dataset.get("path")),
                             f"MTEB could not load the data of task {task.metadata.name} ({exc}); fetch it once "
                             "online into the Hugging Face cache (HF_HOME)") from exc
    cache = mteb.ResultCache(Path(out).expanduser()) if out is not None else None
    try:
        found = mteb.evaluate(model, task, cache=cache, overwrite_strategy="always", co2_tracker=False,
                              encode_kwargs={"batch_size": batch_size}, show_progress_bar=False)
    finally:
        if loaded_here:
            task.unload_data()
    (result,) = found.task_results
    path = None
    if cache is not None:
        path = cache.get_task_result_path(task.metadata.name, model.mteb_model_meta)
    return result, path


def eval_result(result: TaskResult, task: AbsTask) -> EvalResult:
    """bind's view of MTEB's result: each split's and subset's main score as ``<split>/<subset>/<name>``."""
    main = task.metadata.main_score
    metrics = {f"{split}/{scores['hf_subset']}/{main}": float(scores["main_score"])
               for split, rows in result.scores.items() for scores in rows}
    splits = list(result.scores)
    subsets = {scores["hf_subset"] for rows in result.scores.values() for scores in rows}
    return EvalResult(f"{MTEB_PREFIX}{task.metadata.name}", str(task.metadata.dataset.get("path", "")),
                      splits[0] if len(splits) == 1 else None, {"subsets": len(subsets)}, metrics)


__all__ = ["MTEB_PREFIX", "BindEncoder", "eval_result", "get_task", "mteb_licence", "require_mteb", "run_task"]
