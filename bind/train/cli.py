"""``bind train RECIPE.yaml [--trainer.max_epochs 5 ...]``: LightningCLI over AlignModule + PairedFeatures.

Constructor signatures are the config; command-line flags override the recipe; the resolved config is
saved next to the run's logs and inside the exported adapter. After fitting, the best checkpoint (by
``val/R@1``) is tested and exported as an adapter folder (config.json + model.safetensors + README card).
"""
from __future__ import annotations

import importlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import yaml
from lightning.pytorch.cli import LightningCLI

from ..errors import ConfigError
from .datamodule import PairedFeatures
from .model_card import write_adapter
from .module import AlignModule


class BindCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments("data.source_dim", "model.d_in", apply_on="instantiate")
        parser.link_arguments("data.target_dim", "model.d_out", apply_on="instantiate")
        parser.add_argument("--export.dir", type=str | None, default=None,
                            help="write the trained adapter here (e.g. projectors/NAME); none: don't export")
        parser.add_argument("--export.data_licence", type=str, default="see the data set's own terms",
                            help="licence of the training data, stated on the model card")
        parser.add_argument("--resume", type=bool, default=False,
                            help="continue from the last checkpoint of this run (after a kill)")


def _resume_checkpoint(trainer: Any) -> str:
    """The newest ``last.ckpt`` under the run's root, in any logger version; checkpoints keep going there.

    Each run gets a new logger version folder, so Lightning's ``ckpt_path="last"`` (which looks only in this
    run's folder) would silently start from scratch. Pointing the checkpoint callbacks at the old folder
    also restores their best-so-far score, so the best checkpoint is still chosen over the whole run.
    """
    found = sorted(Path(trainer.default_root_dir).rglob("last*.ckpt"), key=lambda path: path.stat().st_mtime)
    if not found:
        raise ConfigError(f"--resume: no last.ckpt under {trainer.default_root_dir} "
                          "(a ModelCheckpoint with save_last=True writes one)")
    for callback in trainer.checkpoint_callbacks:
        if callback.dirpath is None:
            callback.dirpath = str(found[-1].parent)
    return str(found[-1])


# a recipe whose ``model.class_path`` names one of these classes is run by that module's own entry point
ENTRY_POINTS = {"bind.train.router.RouterModule": "bind.train.router:main"}


def _model_class_path(argv: Sequence[str]) -> str | None:
    """The ``model.class_path`` of the recipe given with ``--config`` (None when it names none)."""
    args = list(argv)
    flag = next((i for i, arg in enumerate(args) if arg in ("--config", "-c")), None)
    if flag is None or flag + 1 >= len(args):
        return None
    try:
        recipe = yaml.safe_load(Path(args[flag + 1]).read_text())
    except (OSError, yaml.YAMLError):
        return None  # LightningCLI reports the unreadable recipe
    model = recipe.get("model") if isinstance(recipe, dict) else None
    return model.get("class_path") if isinstance(model, dict) else None


def _best_val(checkpoint: Any) -> float | None:
    """The best validation R@1, when the checkpoint callback chose by it (a recipe may keep the last epoch)."""
    if checkpoint.monitor != "val/R@1" or checkpoint.best_model_score is None:
        return None
    return float(checkpoint.best_model_score)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Fit, test the best checkpoint, export; returns the test metrics (empty without a test split).

    Recipes whose model is one of :data:`ENTRY_POINTS` (e.g. routers) are handed to that trainer."""
    entry = ENTRY_POINTS.get(_model_class_path(argv) or "") if argv is not None else None
    if entry is not None:
        module, _, name = entry.partition(":")
        return getattr(importlib.import_module(module), name)(list(argv))  # type: ignore[arg-type]
    cli = BindCLI(AlignModule, PairedFeatures, run=False, args=list(argv) if argv is not None else None,
                  save_config_kwargs={"overwrite": True}, seed_everything_default=0)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    start = time.perf_counter()
    trainer.fit(model, datamodule=data, ckpt_path=_resume_checkpoint(trainer) if cli.config.resume else None)
    fit_seconds = time.perf_counter() - start
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    results = trainer.test(model, datamodule=data, ckpt_path=best, verbose=False) if "test" in data.splits else [{}]
    test_metrics = {k: float(v) for k, v in results[0].items()}
    export = cli.config.export
    if export.dir and trainer.is_global_zero:
        recipe = cli.parser.dump(cli.config, skip_none=False)
        folder = write_adapter(Path(export.dir), model, data, recipe=recipe, test_metrics=test_metrics,
                               best_val=_best_val(checkpoint) if best else None,
                               fit_seconds=fit_seconds, epochs=trainer.current_epoch,
                               steps=trainer.global_step, data_licence=export.data_licence)
        print(f"exported adapter to {folder}")
    if trainer.is_global_zero:
        print(json.dumps({"test": test_metrics, "fit_seconds": round(fit_seconds, 1)}, indent=2))
    return test_metrics


def train_variant(recipe: str | Path, folder: str | Path, overrides: Sequence[str] = ()) -> tuple[Any, dict[str, Any]]:
    """Fit ``recipe`` (+ overrides) into a fresh ``folder`` as ``bind train`` does; return the exported
    projector and the run's facts (wall time, epochs, steps, best validation R@1, parameters, test metrics)."""
    from ..spaces.projectors import load_projector

    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    test = main(["--config", str(recipe), "--trainer.default_root_dir", str(folder),
                 "--export.dir", str(folder / "adapter"), *overrides])
    projector = load_projector(folder / "adapter")
    meta = projector.meta
    return projector, {"run_seconds": round(time.perf_counter() - start, 1), "fit_seconds": meta["fit_seconds"],
                       "epochs": meta["epochs"], "steps": meta["steps"], "best_val_R@1": meta["best_val_R@1"],
                       "params": sum(p.numel() for p in projector.parameters()), "bind_train_test": test,
                       "adapter": str(folder / "adapter")}
