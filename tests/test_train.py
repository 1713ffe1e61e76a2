"""Training for real: AlignModule learns, `bind train` runs under DDP (2 CPU processes, gloo), resumes after a
SIGKILL from its last checkpoint, exports the best checkpoint, saves its resolved config, obeys overrides."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import safetensors.torch
import torch
import yaml
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

import bind
from bind.apps.cli import main
from bind.eval.metrics import paired_retrieval
from bind.train.module import AlignModule

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "timm_to_clip.yaml"  # the tiny runs below use the shipped recipe's callbacks
WORDS = ["a dog", "a red car", "rain", "a bell", "two cats", "an old clock", "a guitar", "the sea", "a bird",
         "a train", "wind", "a drum", "a lamp", "snow", "a boat", "a tree"]


def trainer(**options) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **options)


@pytest.fixture
def one_thread():
    """Tiny matrices: one thread is fastest, and spares the CPUs other tests share."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_align_module_learns_a_linear_relation(one_thread):
    """Anchors are a fixed random linear map of the sources (+ noise): R@1 on held-out pairs must go from
    near chance (1/128) to most pairs retrieved."""
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(32, 16, generator=g)
    source = torch.randn(640, 32, generator=g)
    anchor = source @ weight + 0.05 * torch.randn(640, 16, generator=g)
    train = DataLoader(TensorDataset(source[:512], anchor[:512]), batch_size=64, shuffle=True, drop_last=True)
    val = DataLoader(TensorDataset(source[512:], anchor[512:]), batch_size=128)
    L.seed_everything(0)
    model = AlignModule(32, 16, projector={"type": "mlp", "hidden": 64}, lr=3e-3)
    run = trainer(max_epochs=20)  # 8 steps an epoch: 160 steps
    before = run.validate(model, val, verbose=False)[0]["val/R@1"]
    run.fit(model, train)
    after = run.validate(model, val, verbose=False)[0]["val/R@1"]
    assert before < 0.2
    assert after > 0.7, (before, after)


def test_validation_scores_items_sharing_a_caption_as_one_class(one_thread):
    """40 items, 5 per caption: a perfect projector gets val/R@1 1.0 (any item of the caption is a hit),
    where row-to-row pairing counts the tied copies as misses."""
    captions = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    anchor = captions.repeat_interleave(5, dim=0)
    model = AlignModule(16, 16, projector={"type": "linear"})
    with torch.no_grad():
        model.projector.net.weight.copy_(torch.eye(16))
        model.projector.net.bias.zero_()
    val = DataLoader(TensorDataset(anchor, anchor), batch_size=16)
    metrics = trainer().validate(model, val, verbose=False)[0]
    assert metrics["val/R@1"] == 1.0 and metrics["val/a2b/R@5"] == 1.0 and metrics["val/b2a/mean_rank"] == 1.0
    unit = torch.nn.functional.normalize(anchor, dim=-1)
    assert paired_retrieval(unit, unit)["a2b/R@1"] == 0.0  # each row ties with its 4 copies: rank 5


# --- `bind train` on a miniature image-caption dataset, tiny random-weight experts -------------------------

@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """16 PNG-caption pairs (10 train, 3 val, 3 test) as a generic CSV manifest."""
    folder = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    splits = ["train"] * 10 + ["val"] * 3 + ["test"] * 3
    rows = []
    for i, (word, split) in enumerate(zip(WORDS, splits)):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
        rows.append({"source": f"img{i}.png", "target": f"{word} ({i})", "split": split})
    with open(folder / "pairs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["source", "target", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return folder / "pairs.csv"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("features")


def recipe_args(pairs: Path, cache_dir: Path, root: Path, *extra: str) -> list[str]:
    """``bind train`` arguments: the shipped recipe on the miniature data with tiny experts, small and quiet."""
    return [str(RECIPE), "--data.dataset", json.dumps({"format": "manifest", "path": str(pairs)}),
            "--data.tiny_experts", "true", "--data.cache_dir", str(cache_dir), "--data.batch_size", "5",
            "--model.projector", '{"type": "mlp", "hidden": 32}', "--trainer.accelerator", "cpu",
            "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--export.dir", str(root / "adapter"), *extra]


def bind_train(args: list[str], **options) -> subprocess.Popen:
    """``python -m bind.cli train ...`` in a subprocess (as a user runs it)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bind.apps.cli", "train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **options)


def saved_epoch(checkpoint: Path) -> int:
    """The epoch a checkpoint file holds, or -1 while there is none (checkpoints are renamed into place)."""
    try:
        return torch.load(checkpoint, map_location="cpu", weights_only=False)["epoch"]
    except (FileNotFoundError, EOFError, RuntimeError):
        return -1


def projector_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    return {key.removeprefix("projector."): value for key, value in state.items() if key.startswith("projector.")}


@pytest.mark.slow
def test_ddp_two_cpu_processes(pairs, cache_dir, tmp_path):
    """The recipe runs unchanged under Lightning's DDP launcher, which re-runs `python -m bind.cli` per rank."""
    process = bind_train(recipe_args(pairs, cache_dir, tmp_path, "--trainer.max_epochs", "2",
                                     "--trainer.devices", "2", "--trainer.strategy", "ddp"))
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in output
    projector = bind.load_projector(tmp_path / "adapter")
    assert (projector.config.d_in, projector.config.d_out) == (768, 512)
    assert projector.meta["epochs"] == 2 and projector.meta["steps"] == 2  # 10 pairs, 5 a batch, 2 ranks
    assert set(projector.meta["test"]) >= {"test/R@1", "test/a2b/R@5", "test/b2a/mean_rank"}
    best = next((tmp_path / "lightning_logs").rglob("epoch=*.ckpt"))
    assert all(torch.equal(projector.state_dict()[k], v) for k, v in projector_weights(best).items())


@pytest.mark.slow
def test_resume_after_sigkill(pairs, cache_dir, tmp_path):
    """Kill training mid-run; `--resume true` continues from last.ckpt's epoch and step, not from 0."""
    logger = json.dumps({"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path)}})
    checkpoints = [callback for callback in yaml.safe_load(RECIPE.read_text())["trainer"]["callbacks"]
                   if callback["class_path"].endswith("ModelCheckpoint")]  # the recipe's, without early stopping
    args = recipe_args(pairs, cache_dir, tmp_path, "--trainer.logger", logger, "--data.batch_size", "10",
                       "--trainer.callbacks", json.dumps(checkpoints))
    process = bind_train([*args, "--trainer.max_epochs", "100000"])
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    try:
        while saved_epoch(last) < 3:
            assert process.poll() is None, process.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "no last.ckpt after 240 s"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    saved = torch.load(last, weights_only=False)
    epoch, step = saved["epoch"], saved["global_step"]
    assert step == epoch + 1  # one step an epoch (10 training pairs, batch 10)

    resumed = bind_train([*args, "--trainer.max_epochs", str(epoch + 4), "--resume", "true"])
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output[-3000:]
    assert f"Restored all states from the checkpoint at {last}" in output
    with open(tmp_path / "lightning_logs" / "version_1" / "metrics.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("val/R@1")]
    assert sorted(int(row["epoch"]) for row in rows) == [epoch + 1, epoch + 2, epoch + 3]
    assert sorted(int(row["step"]) for row in rows) == [step, step + 1, step + 2]  # logged at global_step - 1
    assert torch.load(last, weights_only=False)["global_step"] == epoch + 4  # checkpoints kept going there
    meta = bind.load_projector(tmp_path / "adapter").meta
    assert (meta["epochs"], meta["steps"]) == (epoch + 4, epoch + 4)


@pytest.fixture(scope="module")
def finished(pairs, cache_dir, tmp_path_factory) -> Path:
    """One in-process `bind train` run to early stopping, with a command-line projector override."""
    root = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["bind"])  # LightningCLI parses only the given arguments
        code = main(["train", *recipe_args(pairs, cache_dir, root, "--trainer.max_epochs", "300",
                                           "--model.projector", '{"type": "linear"}', "--model.lr", "0.01")])
    assert code == 0
    return root


def test_early_stopping_exports_the_best_checkpoint(finished):
    projector = bind.load_projector(finished / "adapter")
    assert projector.meta["epochs"] < 300  # EarlyStopping on val/R@1 ended the run
    checkpoints = finished / "lightning_logs" / "version_0" / "checkpoints"
    best = next(checkpoints.glob("epoch=*.ckpt"))
    exported = safetensors.torch.load_file(str(finished / "adapter" / "model.safetensors"))
    best_weights, last_weights = projector_weights(best), projector_weights(checkpoints / "last.ckpt")
    assert exported.keys() == best_weights.keys()
    assert all(torch.equal(exported[k], best_weights[k]) for k in exported)
    assert not all(torch.equal(exported[k], last_weights[k]) for k in exported)  # trained on after the best
    state = torch.load(best, weights_only=False)
    score = next(v["best_model_score"] for k, v in state["callbacks"].items() 
                 if k.startswith("ModelCheckpoint") and "'monitor': 'val/R@1'" in k)
    assert projector.meta["best_val_R@1"] == pytest.approx(float(score))


def test_resolved_config_is_saved_and_overrides_apply(finished):
    logged = yaml.safe_load((finished / "lightning_logs" / "version_0" / "config.yaml").read_text())
    exported = json.loads((finished / "adapter" / "config.json").read_text())
    recipe = yaml.safe_load(exported["meta"]["recipe"])
    for config in (logged, recipe):
        assert config["model"]["projector"] == {"type": "linear"}
        assert config["model"]["lr"] == 0.01
        assert config["data"]["source_encoder"] == "timm-convnext-tiny-in22k.image"
        assert config["trainer"]["max_epochs"] == 300
    assert exported["type"] == "linear" and (exported["d_in"], exported["d_out"]) == (768, 512)
