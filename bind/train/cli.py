"""``bind train RECIPE.yaml [--trainer.max_epochs 5 ...]``: LightningCLI over AlignModule + PairedFeatures.

Constructor signatures are the config; command-line flags override the recipe; the resolved config is
saved next to the run's logs and inside the exported adapter. After fitting, the best checkpoint (by
``val/R@1``) is tested and exported as an adapter folder (config.json + model.safetensors + README card).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

from lightning.pytorch.cli import LightningCLI

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


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Fit, test the best checkpoint, export; returns the test metrics (empty without a test split)."""
    cli = BindCLI(AlignModule, PairedFeatures, run=False, args=list(argv) if argv is not None else None,
                  save_config_kwargs={"overwrite": True}, seed_everything_default=0)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    start = time.perf_counter()
    trainer.fit(model, datamodule=data, ckpt_path="last" if cli.config.resume else None)
    fit_seconds = time.perf_counter() - start
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    results = trainer.test(model, datamodule=data, ckpt_path=best, verbose=False) if "test" in data.splits else [{}]
    test_metrics = {k: float(v) for k, v in results[0].items()}
    export = cli.config.export
    if export.dir and trainer.is_global_zero:
        recipe = cli.parser.dump(cli.config, skip_none=False)
        folder = write_adapter(Path(export.dir), model, data, recipe=recipe, test_metrics=test_metrics,
                               best_val=float(checkpoint.best_model_score) if best else None,
                               fit_seconds=fit_seconds, epochs=trainer.current_epoch,
                               steps=trainer.global_step, data_licence=export.data_licence)
        print(f"exported adapter to {folder}")
    if trainer.is_global_zero:
        print(json.dumps({"test": test_metrics, "fit_seconds": round(fit_seconds, 1)}, indent=2))
    return test_metrics
