"""The ``bind`` command line: listing, embedding to files, errors with exit codes."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from bind.apps.cli import main


def test_encoders_table_and_json(capsys):
    assert main(["encoders", "--modality", "text"]) == 0
    table = capsys.readouterr().out
    assert "minilm-l6.text" in table and "efficientnet" not in table and "licence" in table
    assert main(["encoders", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    row = next(r for r in rows if r["name"] == "efficientnet-lite0.image")
    assert row["offline"] is True and row["dim"] == 1280 and row["modality"] == "image"


def test_embed_texts_to_npy_and_safetensors(tmp_path, capsys):
    out = tmp_path / "v.npy"
    assert main(["embed", "a cat", "a dog", "--modality", "text", "--out", str(out), "--quiet"]) == 0
    vectors = np.load(out)
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    out = tmp_path / "v.safetensors"
    assert main(["embed", "a cat", "--encoder", "minilm-l6.text", "--out", str(out), "--quiet"]) == 0
    assert load_file(out)["embeddings"].shape == (1, 384)
    assert main(["embed", "a cat", "--modality", "text", "--quiet"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["input"] == "a cat" and len(line["embedding"]) == 384


def test_embed_mixed_modalities_into_a_space(tmp_path, capsys):
    from safetensors import safe_open

    from bind.assets import assets_dir

    image = str(assets_dir() / "images" / "cat.jpg")
    out = tmp_path / "omni.safetensors"
    assert main(["embed", "a cat", image, "--space", "lite", "--out", str(out), "--quiet"]) == 0
    with safe_open(str(out), framework="pt") as handle:
        vectors, meta = handle.get_tensor("embeddings"), handle.metadata()
    assert vectors.shape == (2, 384) and float(vectors[0] @ vectors[1]) > 0.3
    assert json.loads(meta["inputs"]) == ["a cat", image] and meta["encoder"].startswith("space lite (identity ")
    with pytest.raises(SystemExit):
        main(["embed", "a cat", "--space", "lite", "--encoder", "minilm-l6.text"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_embed_files_skipping_bad_ones(tmp_path, capsys):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    out = tmp_path / "images.npy"
    assert main(["embed", str(good), str(bad), "--skip-bad", "--out", str(out), "--quiet"]) == 0
    assert np.load(out).shape == (1, 1280)
    assert json.loads((tmp_path / "images.inputs.json").read_text())["inputs"] == [str(good)]  # rows -> inputs
    assert "skipped: item 1" in capsys.readouterr().err
    assert main(["embed", str(good), str(bad), "--quiet"]) == 2
    assert "bad.png" in capsys.readouterr().err
    assert not (tmp_path / "never.npy").exists()
    assert main(["embed", "a", "--modality", "text", "--out", str(tmp_path / "x.csv"), "--quiet"]) == 2


@pytest.mark.parametrize("command", ["encoders", "embed", "demo", "train"])
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "usage: bind" in capsys.readouterr().out


def test_python_dash_m_bind_runs_the_command_line() -> None:
    """``python -m bind`` reaches the CLI where bash's own ``bind`` builtin shadows the command."""
    done = subprocess.run([sys.executable, "-m", "bind", "encoders", "--modality", "text", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "minilm-l6.text" in {row["name"] for row in json.loads(done.stdout)}
