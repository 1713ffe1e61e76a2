"""Export a trained projector as an adapter folder with a model card that states what was measured."""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..experts.registry import get_card
from .datamodule import PairedFeatures
from .module import AlignModule


def write_adapter(folder: Path, model: AlignModule, data: PairedFeatures, *, recipe: str,
                  test_metrics: dict[str, float], best_val: float | None, fit_seconds: float, epochs: int,
                  steps: int, data_licence: str) -> Path:
    """Save ``model.projector`` to ``folder`` (config.json + model.safetensors + README.md)."""
    hp = data.hparams
    counts = {split: len(part.source) for split, part in data.splits.items()}
    meta: dict[str, Any] = {
        "source_encoder": hp.source_encoder, "target_encoder": hp.target_encoder,
        "test_source_encoder": hp.test_source_encoder, "dataset": dict(hp.dataset), "pairs": counts,
        "best_val_R@1": best_val, "test": test_metrics, "fit_seconds": round(fit_seconds, 1),
        "epochs": epochs, "steps": steps, "bind_version": __version__, "recipe": recipe,
    }
    return model.projector.save(folder, meta=meta, readme=_card(folder.name, model, meta, data_licence))


def _licence_line(name: str | None) -> str:
    return f"- `{name}`: {get_card(name).licence}" if name else ""


def _card(name: str, model: AlignModule, meta: dict[str, Any], data_licence: str) -> str:
    config = model.projector.config
    test = meta["test"]
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(test.items())) or "| (no test split) | |"
    experts = "\n".join(filter(None, (_licence_line(meta[k]) for k in
                                      ("source_encoder", "target_encoder", "test_source_encoder"))))
    return f"""# {name}

A `{config.type}` projector ({config.d_in} -> {config.d_out}) from the space of `{meta['source_encoder']}`
into the space of `{meta['target_encoder']}`, trained with bind {meta['bind_version']}.
Load it with `bind.load_projector("{name}")` (or the folder path). Outputs are unit-norm; compare with cosine.

## Data
Dataset: `{meta['dataset']}`; pairs per split: {meta['pairs']}. Training data licence: {data_licence}.
{"Test pairs embed their source with `" + meta['test_source_encoder'] + "` (a modality never seen in training)."
 if meta['test_source_encoder'] else ""}

## Results (measured by this run, on the test split, which no training step saw)
| metric | value |
|---|---|
{rows}

Best validation R@1 (mean of both directions): {meta['best_val_R@1']}. Training: {meta['epochs']} epochs,
{meta['steps']} steps, {meta['fit_seconds']} s on {platform.machine()} ({"CUDA" if torch.cuda.is_available() else "CPU"}).

## Licences
The adapter weights: Apache-2.0. The experts it connects keep their own licences:
{experts}

The full resolved recipe is stored in `config.json` under `meta.recipe`.
"""
