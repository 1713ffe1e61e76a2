"""recipes/build_full_space.py end to end, offline: random-weight checkpoints saved in open_clip's and
laion_clap's own formats (a 1-layer CLIP as a ``local-dir:`` folder, an HTSAT-tiny CLAP checkpoint with a
1-layer RoBERTa folder), a generated audio-caption set, two training epochs, then ``bind.load_space``."""
from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

import bind
from bind.experts.backends.laion_clap import _roberta_from, _tiny_tokenizer, laion

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("build_full_space", ROOT / "recipes" / "build_full_space.py")
recipe = importlib.util.module_from_spec(SPEC)  # type: ignore[arg-type]
SPEC.loader.exec_module(recipe)  # type: ignore[union-attr]

CLIP_DIM = 32
ITEMS = ["a dog barking", ROOT / "assets/images/dog.png", ROOT / "assets/audio/dog_speech.wav",
         ROOT / "assets/video/alarm_clock_ticking.mp4", ROOT / "assets/points/cube.stl"]
CAPTIONS = ["a low hum", "a high whistle", "a dog barks twice", "rain on a roof", "a bell rings", "a car passes",
            "birds sing", "a door slams", "wind in the trees", "a clock ticks"]
SPLITS = ["train"] * 6 + ["val"] * 2 + ["test"] * 2


def tiny_clip(folder: Path) -> Path:
    """A 1-layer CLIP saved as an open_clip ``local-dir:`` folder (open_clip_config.json + safetensors)."""
    model_cfg = {"embed_dim": CLIP_DIM,
                 "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    torch.manual_seed(0)
    model = open_clip.CLIP(embed_dim=CLIP_DIM, vision_cfg=open_clip.CLIPVisionCfg(**model_cfg["vision_cfg"]),
                           text_cfg=open_clip.CLIPTextCfg(**model_cfg["text_cfg"]))
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def tiny_roberta(folder: Path) -> Path:
    """A 1-layer, 768-wide random RoBERTa in roberta-base's folder layout, its tokenizer trained offline."""
    from transformers import RobertaConfig, RobertaModel

    tokenizer = _tiny_tokenizer()
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                           intermediate_size=64, max_position_embeddings=130, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(1)
    RobertaModel(config).save_pretrained(folder)
    tokenizer.backend_tokenizer.model.save(str(folder))  # vocab.json and merges.txt
    return folder


def clap_checkpoint(path: Path, roberta: Path) -> Path:
    """A random HTSAT-tiny CLAP, built by laion_clap itself and saved as its released checkpoints are."""
    torch.manual_seed(2)
    with _roberta_from(str(roberta)):
        model, _ = laion().create_model("HTSAT-tiny", "roberta", precision="fp32", device=torch.device("cpu"),
                                        enable_fusion=False, fusion_type="None")
    state = {**model.state_dict(),  # released checkpoints keep this buffer; laion_clap's loader drops it
             "text_branch.embeddings.position_ids": torch.arange(130)[None]}
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return path


def audio_captions(folder: Path) -> Path:
    """Ten one-second sine waves with captions, as a generic manifest with a split column."""
    folder.mkdir()
    rate = 16000
    rows = []
    for i, (caption, split) in enumerate(zip(CAPTIONS, SPLITS)):
        wave = 0.3 * np.sin(2 * np.pi * (200 + 150 * i) * np.arange(rate) / rate)
        sf.write(folder / f"clip{i}.wav", wave.astype(np.float32), rate)
        rows.append({"source": f"clip{i}.wav", "target": caption, "split": split})
    with open(folder / "pairs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["source", "target", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return folder / "pairs.csv"


@pytest.mark.slow
def test_full_space_builds_from_local_weights_and_loads_back(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["build_full_space.py"])  # LightningCLI parses only the given arguments
    roberta = tiny_roberta(tmp_path / "roberta-base")
    out = tmp_path / "full"
    args = ["--out", str(out), "--clip-model", f"local-dir:{tiny_clip(tmp_path / 'clip')}",
            "--clap-checkpoint", str(clap_checkpoint(tmp_path / "clap.pt", roberta)),
            "--clap-text-model", str(roberta), "--pairs", str(audio_captions(tmp_path / "pairs")),
            "--cache-dir", str(tmp_path / "cache"),
            "--", "--trainer.max_epochs", "2", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"]
    built = recipe.main(args)
    assert (out / "space.json").is_file() and (tmp_path / "full.work" / "adapter" / "config.json").is_file()
    assert bind.load_projector(tmp_path / "full.work" / "adapter").meta["steps"] == 2

    loaded = bind.load_space(out)
    assert isinstance(loaded, bind.SoundTrackFusion) and loaded.identity == built.identity
    assert loaded.modalities == frozenset(bind.Modality) and loaded.dim == CLIP_DIM
    vectors = loaded.embed(ITEMS)
    assert vectors.shape == (len(ITEMS), CLIP_DIM) and torch.isfinite(vectors).all()
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(len(ITEMS)))
    torch.testing.assert_close(vectors, built.embed(ITEMS), atol=1e-5, rtol=0)
    frames_only = loaded.with_audio_weight(0).embed(ITEMS[3])
    assert torch.nn.functional.cosine_similarity(frames_only, vectors[3], dim=0) < 0.9999  # the sound track counts

    again = recipe.main(args)  # a second run reuses the trained bridge: the same space
    assert again.identity == built.identity
    other = tmp_path / "other.csv"
    other.write_text((tmp_path / "pairs" / "pairs.csv").read_text())
    with pytest.raises(SystemExit, match="other weights or data"):
        recipe.main([*args[:args.index("--pairs") + 1], str(other), *args[args.index("--pairs") + 2:]])
