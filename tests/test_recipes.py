"""Every shipped recipe (recipes/*.yaml) is smoke-run end to end: tiny random-weight experts, a miniature
dataset of real files of the recipe's modalities, fast_dev_run, and an exported adapter that loads."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch
import trimesh
import yaml
from PIL import Image

import bind
from bind.apps.cli import main

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
SPLITS = ["train"] * 8 + ["val"] * 2 + ["test"] * 2
WORDS = ["a dog", "a red car", "rain", "a bell", "two cats", "an old clock", "a guitar", "the sea", "a bird",
         "a train", "wind", "a drum"]


def write_image(path: Path, i: int) -> Path:
    rng = np.random.default_rng(i)
    Image.fromarray(rng.integers(0, 256, (24 + 2 * i, 32, 3), dtype=np.uint8)).save(path)
    return path


def write_audio(path: Path, i: int) -> Path:
    rate = 16000
    tone = 0.3 * np.sin(2 * np.pi * (220 + 60 * i) * np.arange(rate // 2) / rate)
    sf.write(path, tone.astype(np.float32), rate)
    return path


def write_video(path: Path, i: int) -> Path:
    """Six 32x32 frames and a half-second sound track (so an expert that fuses audio gets one)."""
    rate = 16000
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        sound = container.add_stream("aac", rate=rate, layout="mono")
        for frame in range(6):
            image = np.full((32, 32, 3), (20 * i + 30 * frame) % 256, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
        tone = 0.3 * np.sin(2 * np.pi * (220 + 60 * i) * np.arange(rate // 2) / rate)
        chunk = av.AudioFrame.from_ndarray(tone.astype(np.float32)[None], format="fltp", layout="mono")
        chunk.sample_rate = rate
        container.mux(sound.encode(chunk))
        container.mux(sound.encode())
    return path


def write_shape(path: Path, i: int) -> Path:
    """Boxes (.off) and spheres (.ply) of different proportions."""
    mesh = trimesh.creation.box(extents=(1, 1 + i / 4, 2)) if i % 2 else trimesh.creation.icosphere(1, 1 + i / 8)
    mesh.export(path.with_suffix(".off" if i % 2 else ".ply"))
    return path.with_suffix(".off" if i % 2 else ".ply")


WRITERS = {bind.Modality.IMAGE: (write_image, ".png"), bind.Modality.AUDIO: (write_audio, ".wav"),
           bind.Modality.VIDEO: (write_video, ".mp4"), bind.Modality.POINTS: (write_shape, ".off")}


def column_modalities(data: dict) -> dict[str, bind.Modality]:
    """The modality of the manifest's source and target columns: whatever the recipe's experts read there."""
    readers = [(data.get("source_field", "source"), data["source_encoder"]),
               (data.get("target_field", "target"), data["target_encoder"])]
    if data.get("test_source_encoder"):
        readers.append(("source", data["test_source_encoder"]))
    found: dict[str, set[bind.Modality]] = {"source": set(), "target": set()}
    for column, encoder in readers:
        found[column].add(bind.get_card(encoder).modality)
    assert all(len(kinds) <= 1 for kinds in found.values()), f"one column read as two modalities: {found}"
    return {column: kinds.pop() if kinds else bind.Modality.TEXT for column, kinds in found.items()}


def item(modality: bind.Modality, folder: Path, name: str, i: int) -> str:
    if modality == bind.Modality.TEXT:
        return f"{WORDS[i]} ({name} {i})"
    writer, suffix = WRITERS[modality]
    return writer(folder / f"{name}{i}{suffix}", i).name


def miniature_manifest(folder: Path, modalities: dict[str, bind.Modality]) -> Path:
    """12 pairs (8 train, 2 val, 2 test) of real files, as a generic CSV manifest."""
    folder.mkdir()
    rows = [{"source": item(modalities["source"], folder, "source", i),
             "target": item(modalities["target"], folder, "target", i), "split": split}
            for i, split in enumerate(SPLITS)]
    path = folder / "pairs.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["source", "target", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_there_are_recipes():
    names = {path.stem for path in RECIPES}
    assert {"clap_to_clip", "timm_to_clip", "points_to_clip", "video_to_clip"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.stem)
def test_recipe_header_says_what_data_and_how_to_run(recipe):
    lines = recipe.read_text().splitlines()
    header = lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))]
    assert len(header) >= 3, "start with comment lines saying what data the recipe expects and how to run it"
    assert any(f"bind train recipes/{recipe.name}" in line for line in header)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.stem)
def test_recipe_smoke_run(recipe, tmp_path, monkeypatch):
    """fast_dev_run (no checkpoints): a projector recipe must still test and export its adapter."""
    config = yaml.safe_load(recipe.read_text())
    monkeypatch.setattr(sys, "argv", ["bind"])  # LightningCLI parses only the given arguments
    args = ["train", str(recipe), "--trainer.fast_dev_run", "true", "--trainer.accelerator", "cpu",
            "--trainer.default_root_dir", str(tmp_path / "run")]
    if "class_path" in config["data"]:  # a recipe with its own data module (e.g. a synthetic task)
        assert main(args) == 0
        return
    data = config["data"]
    pairs = miniature_manifest(tmp_path / "data", column_modalities(data))
    adapter = tmp_path / "adapter"
    code = main([*args, "--data.dataset", json.dumps({"format": "manifest", "path": str(pairs)}),
                 "--data.tiny_experts", "true", "--data.cache_dir", str(tmp_path / "cache"),
                 "--export.dir", str(adapter)])
    assert code == 0
    projector = bind.load_projector(adapter)
    d_in, d_out = bind.get_card(data["source_encoder"]).dim, bind.get_card(data["target_encoder"]).dim
    assert (projector.config.type, projector.config.d_in, projector.config.d_out) == (
        config["model"]["projector"]["type"], d_in, d_out)
    out = projector(torch.randn(3, d_in))
    assert out.shape == (3, d_out) and torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)
    meta = projector.meta
    assert (meta["source_encoder"], meta["target_encoder"]) == (data["source_encoder"], data["target_encoder"])
    assert meta["test_source_encoder"] == data.get("test_source_encoder")
    assert meta["pairs"] == {"train": 8, "val": 2, "test": 2}
    assert 0.0 <= meta["test"]["test/R@1"] <= 1.0  # the test split ran (through test_source_encoder if set)
    assert yaml.safe_load(meta["recipe"])["data"]["source_encoder"] == data["source_encoder"]
    assert (adapter / "README.md").read_text().startswith(f"# {adapter.name}")
