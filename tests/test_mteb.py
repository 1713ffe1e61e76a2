"""The MTEB adapter (the optional extra bind[mteb]): bind's packaged lite space runs two tiny local MTEB tasks
through MTEB's own evaluation, offline, and ``bind eval --task mteb:<Task> --format mteb`` writes MTEB's result
JSON. Each task's score is checked against the same space with its output rows shuffled (the same vectors,
the pairing lost), so a broken adapter that returns misordered or meaningless rows fails.

Tasks: ten questions, each answered by one of twenty short passages (MTEB ``Retrieval``, text to text), and
the twelve images of ``assets/images`` found by a short caption (MTEB ``Any2AnyRetrieval``, text to image).
"""
from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

if sys.version_info < (3, 11):
    pytest.skip("mteb needs Python >= 3.11", allow_module_level=True)

import mteb  # noqa: E402
from datasets import Dataset  # noqa: E402
from mteb.abstasks.retrieval import AbsTaskRetrieval  # noqa: E402
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData  # noqa: E402
from mteb.abstasks.task_metadata import TaskMetadata  # noqa: E402
from PIL import Image  # noqa: E402

import bind  # noqa: E402
from bind.apps.cli import main  # noqa: E402
from bind.errors import ConfigError  # noqa: E402
from bind.eval.mteb import BindEncoder, eval_result, get_task, mteb_licence, run_task  # noqa: E402

IMAGES = Path(__file__).resolve().parents[1] / "assets" / "images"

QA = [
    ("How do I bake a loaf of bread at home?",
     "Mix flour, water, yeast and salt, knead the dough, let it rise, then bake it in a hot oven."),
    ("What causes the seasons on Earth?",
     "The tilt of the planet's axis changes how directly sunlight reaches each hemisphere over the year."),
    ("How can I fix a flat bicycle tyre?",
     "Take the wheel off, find the puncture in the inner tube, patch it and pump the tyre back up."),
    ("Why do cats purr?", "Felines make a low rumbling sound when they are content, or to soothe themselves."),
    ("How does a vaccine protect you?",
     "It trains the immune system to recognise a pathogen, so the body fights off a later infection."),
    ("What is the capital of Japan?", "Tokyo is the largest city of Japan and the seat of its government."),
    ("How do I brew espresso?", "Force hot water at high pressure through finely ground, tightly packed coffee."),
    ("Why is the sky blue?", "Air molecules scatter the short blue wavelengths of sunlight more than the red ones."),
    ("How do I tune a guitar?", "Turn each string's peg until its pitch matches the reference note: E A D G B E."),
    ("What do penguins eat?", "These flightless seabirds feed on fish, krill and squid they catch underwater."),
]
DISTRACTORS = [
    "The stock market closed higher on Friday after strong earnings reports.",
    "Volcanic eruptions release ash and sulfur dioxide into the atmosphere.",
    "A chess opening fights for the centre of the board early in the game.",
    "Marathon runners train for months to build their endurance.",
    "The library extended its opening hours during exam week.",
    "Electric cars use lithium-ion batteries to power their motors.",
    "Rainforests are home to more than half of the world's plant and animal species.",
    "Satellites circle the planet at thousands of kilometres per hour.",
    "Knitting a scarf takes patience and a pair of needles.",
    "The museum's new exhibit shows ancient Roman coins.",
]
CAPTIONS = {
    "airplane": "an airplane", "alarm_clock": "an alarm clock", "astronaut": "an astronaut in a space suit",
    "bicycle": "a bicycle", "car": "a car", "cat": "a cat", "coffee": "a cup of coffee", "dog": "a dog",
    "guitar": "a guitar", "penguin": "a penguin", "rocket": "a rocket", "strawberry": "a strawberry",
}
TASK_ARGS: dict[str, Any] = {
    "description": "A tiny local task of bind's tests.", "reference": "https://github.com/embeddings-benchmark/mteb",
    "dataset": {"path": "bind/tests", "revision": "1"}, "eval_splits": ["test"], "eval_langs": ["eng-Latn"],
    "main_score": "ndcg_at_10", "date": ("2024-01-01", "2024-01-01"), "dialect": [], "domains": [],
    "task_subtypes": [], "license": "apache-2.0", "annotations_creators": "expert-annotated",
    "sample_creation": "created", "bibtex_citation": "",
}


class TinyTextRetrieval(AbsTaskRetrieval):
    metadata = TaskMetadata(name="BindTinyTextRetrieval", type="Retrieval", category="t2t", modalities=["text"],
                            **TASK_ARGS)

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        passages = [answer for _, answer in QA] + DISTRACTORS
        self.dataset = {"default": {"test": RetrievalSplitData(
            queries=Dataset.from_dict({"id": [f"q{i}" for i in range(len(QA))], "text": [q for q, _ in QA]}),
            corpus=Dataset.from_dict({"id": [f"d{i}" for i in range(len(passages))], "text": passages,
                                      "title": [""] * len(passages)}),
            relevant_docs={f"q{i}": {f"d{i}": 1} for i in range(len(QA))},
            top_ranked=None)}}
        self.data_loaded = True


class TinyImageRetrieval(AbsTaskRetrieval):
    metadata = TaskMetadata(name="BindTinyImageRetrieval", type="Any2AnyRetrieval", category="t2i",
                            modalities=["text", "image"], **TASK_ARGS)

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        names = sorted(CAPTIONS)
        images = [Image.open(next(IMAGES.glob(f"{name}.*"))).convert("RGB") for name in names]
        self.dataset = {"default": {"test": RetrievalSplitData(
            queries=Dataset.from_dict({"id": [f"q{i}" for i in range(len(names))],
                                       "text": [f"a photo of {CAPTIONS[n]}" for n in names]}),
            corpus=Dataset.from_dict({"id": [f"d{i}" for i in range(len(names))], "image": images}),
            relevant_docs={f"q{i}": {f"d{i}": 1} for i in range(len(names))},
            top_ranked=None)}}
        self.data_loaded = True


class ShuffledEncoder(BindEncoder):
    """The same space with each encode call's rows permuted (queries and corpus each their own way): its
    vectors, not its pairing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(0)

    def encode(self, inputs: Any, **kwargs: Any) -> np.ndarray:
        rows = super().encode(inputs, **kwargs)
        return rows[self.rng.permutation(len(rows))]


@pytest.fixture(scope="module")
def lite() -> bind.Space:
    return bind.load_space("lite")


def main_score(result: mteb.TaskResult) -> float:
    (scores,) = result.scores["test"]
    return float(scores["main_score"])


@pytest.mark.parametrize("task_class, least", [(TinyTextRetrieval, 0.9), (TinyImageRetrieval, 0.5)])
def test_lite_runs_a_tiny_mteb_task_and_writes_its_result_json(lite, tmp_path, task_class, least):
    model = BindEncoder(lite, name="lite")
    result, path = run_task(model, task_class(), tmp_path)
    name = task_class.metadata.name
    assert path == tmp_path / "results" / "bind__lite" / lite.identity / f"{name}.json"
    # MTEB's own schema, read back by MTEB without its pre-1.11 fallbacks
    again = mteb.TaskResult.from_disk(path, load_historic_data=False)
    assert again.task_name == name and again.mteb_version == mteb.__version__
    (scores,) = again.scores["test"]
    assert scores["hf_subset"] == "default" and scores["languages"] == ["eng-Latn"]
    assert scores["main_score"] == scores["ndcg_at_10"]
    score = main_score(result)
    assert math.isfinite(score) and least <= score <= 1.0
    assert abs(scores["main_score"] - score) < 1e-6
    meta = json.loads((path.parent / "model_meta.json").read_text())
    assert meta["name"] == "bind/lite" and meta["revision"] == lite.identity and meta["embed_dim"] == lite.dim
    assert meta["similarity_fn_name"] == "cosine" and set(meta["modalities"]) == {"text", "image"}
    assert meta["license"] == "multiple"  # MiniLM is Apache-2.0, multilingual E5 MIT
    # the same vectors with the pairing lost score far lower
    shuffled, _ = run_task(ShuffledEncoder(lite, name="lite-shuffled"), task_class())
    print(f"{name}: lite {score:.4f}, shuffled rows {main_score(shuffled):.4f}")
    assert main_score(shuffled) < score - 0.3


def test_encode_follows_mteb_s_protocol(lite):
    model = BindEncoder(lite, name="lite")
    assert isinstance(model, mteb.EncoderProtocol)
    task = TinyImageRetrieval()
    task.load_data()
    split = task.dataset["default"]["test"]
    texts = split["queries"]["text"][:3]
    images = split["corpus"]["image"][:3]
    loader = [{"text": texts[:2], "image": images[:2]}, {"text": texts[2:], "image": images[2:]}]
    rows = model.encode(loader, task_metadata=task.metadata, hf_split="test", hf_subset="default")
    assert rows.dtype == np.float32 and rows.shape == (3, lite.dim)
    # a row with a text and an image: the normalised sum of their unit embeddings
    total = lite.embed(texts, "text") + lite.embed(images, "image")
    np.testing.assert_allclose(rows, (total / total.norm(dim=-1, keepdim=True)).numpy(), atol=1e-5)
    np.testing.assert_allclose(model.similarity(rows, rows).diagonal(), 1.0, atol=1e-5)
    with pytest.raises(ConfigError, match="not audio"):
        model.encode([{"audio": [np.zeros(10)]}], task_metadata=task.metadata, hf_split="test", hf_subset="default")


def test_mteb_licence_ids():
    assert mteb_licence(["Apache-2.0 (TensorFlow TPU checkpoints)", "Apache-2.0 (that of its image expert)"]) \
        == "apache-2.0"
    assert mteb_licence(["CC BY-NC-SA 4.0 (BirdNET V2.4 model): NON-COMMERCIAL"]) == "cc-by-nc-sa-4.0"
    assert mteb_licence(["Apache-2.0", "MIT (intfloat/multilingual-e5-small)"]) == "multiple"
    assert mteb_licence(["a licence of its own"]) == "not specified"


def test_get_task_names_mteb_s_task_or_says_why(lite):
    assert get_task("mteb:STS12").metadata.name == "STS12"
    with pytest.raises(ConfigError, match="MTEB has no task 'mteb:STS121'.*STS12"):
        get_task("mteb:STS121")
    with pytest.raises(ConfigError, match="has splits"):
        get_task(TinyTextRetrieval(), split="dev")
    result, _ = run_task(BindEncoder(lite, name="lite"), TinyTextRetrieval())
    found = eval_result(result, TinyTextRetrieval())
    assert found.task == "mteb:BindTinyTextRetrieval" and found.split == "test"
    assert list(found.metrics) == ["test/default/ndcg_at_10"]


def test_bind_eval_format_mteb(monkeypatch, tmp_path, capsys, lite):
    # MTEB's task registry is a fixed table: the tiny task joins it for this test
    registry = importlib.import_module("mteb.get_tasks")._TASKS_REGISTRY
    monkeypatch.setitem(registry, "BindTinyTextRetrieval", TinyTextRetrieval)
    out = tmp_path / "mteb-results"
    assert main(["eval", "--space", "lite", "--task", "mteb:BindTinyTextRetrieval", "--format", "mteb",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    path = out / "results" / "bind__lite" / lite.identity / "BindTinyTextRetrieval.json"
    assert f"wrote {path}" in captured.err
    assert "test/default/ndcg_at_10" in captured.out
    written = json.loads(path.read_text())
    assert written["task_name"] == "BindTinyTextRetrieval" and written["scores"]["test"][0]["main_score"] > 0.9
    # --format bind: bind's record of the same run, main scores only
    record = tmp_path / "record.json"
    assert main(["eval", "--space", "lite", "--task", "mteb:BindTinyTextRetrieval", "--out", str(record)]) == 0
    data = json.loads(record.read_text())
    assert data["space"]["identity"] == lite.identity
    assert data["metrics"]["test/default/ndcg_at_10"] == pytest.approx(written["scores"]["test"][0]["main_score"],
                                                                         abs=1e-6)
    capsys.readouterr()
    for argv, message in [
        (["--task", "esc50", "--root", str(tmp_path), "--format", "mteb"], "only MTEB's own tasks"),
        (["--task", "mteb:BindTinyTextRetrieval", "--root", str(tmp_path)], "--root: not used by MTEB tasks"),
        (["--task", "esc50"], "--root is required"),
        (["--task", "mteb:NoSuchTask"], "MTEB has no task"),
    ]:
        assert main(["eval", "--space", "lite", *argv]) == 2
        assert message in capsys.readouterr().err


def test_bind_imports_without_mteb():
    code = ("import sys; sys.modules['mteb'] = None\n"
            "import bind.eval.mteb, bind.apps.cli\n"
            "from bind.errors import ConfigError\n"
            "try:\n    bind.eval.mteb.BindEncoder('lite')\n"
            "except ConfigError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert "pip install 'bind[mteb]'" in done.stdout
