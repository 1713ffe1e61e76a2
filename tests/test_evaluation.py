"""Evaluation harness: ranking metrics, zero-shot classification and retrieval on miniature copies of each
dataset format, checked against hand-computed values; and ``bind eval`` writing its JSON record.

The space is built from "concept" experts whose outputs are known: six concepts (dog, rain, bell, car,
bird, fire) are the six axes. Text counts the concept words it contains (a word starting with a concept:
"bells" -> bell); an image or a video is the axis of its grey level (40 * (axis + 1)); a mesh the axis of
its size (a tetrahedron of edge axis + 1); an audio clip is a tone of 200 + 100 * axis Hz and embeds to
``axis + 0.5 * next axis``, so clips have graded similarities. Each test states its similarities and the
ranks they give.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch
import trimesh
from conftest import write_csv
from PIL import Image

import bind
from bind.apps.cli import main
from bind.eval.evaluation import (
    TASKS,
    class_embeddings,
    evaluate,
    mean_average_precision,
    ndcg_at,
    ranking_metrics,
)
from bind.io.audio import load_audio
from bind.io.image import load_image
from bind.io.video import read_frames
from bind.spaces import AnchorSpace

CONCEPTS = ["dog", "rain", "bell", "car", "bird", "fire"]
DIM = len(CONCEPTS)
C = 1 / math.sqrt(1.25)  # the norm factor of an audio embedding axis + 0.5 * next axis
L3, L4, L5 = math.log2(3), 2.0, math.log2(5)  # NDCG discounts of ranks 2, 3, 4


def one_hot(axis: int) -> np.ndarray:
    vector = np.zeros(DIM, np.float32)
    vector[axis] = 1
    return vector


def text_vector(item: Any) -> np.ndarray:
    words = re.findall(r"[a-z]+", str(item).lower())
    return np.array([sum(w.startswith(c) for w in words) for c in CONCEPTS], np.float32)


def audio_vector(item: Any) -> np.ndarray:
    wave = load_audio(item)
    spectrum = np.abs(np.fft.rfft(wave.samples[0]))
    peak = np.argmax(spectrum) * wave.sample_rate / len(wave.samples[0])
    axis = round(peak / 100) - 2
    return one_hot(axis) + 0.5 * one_hot((axis + 1) % DIM)


def image_vector(item: Any) -> np.ndarray:
    return one_hot(round(np.asarray(load_image(item)).mean() / 40) - 1)


def video_vector(item: Any) -> np.ndarray:
    return one_hot(round(read_frames(item, count=2).mean() / 40) - 1)


def points_vector(item: Any) -> np.ndarray:
    return one_hot(round(float(trimesh.load(str(item), force="mesh").vertices.max())) - 1)


READERS = {"text": text_vector, "audio": audio_vector, "image": image_vector, "video": video_vector,
           "points": points_vector}


class ConceptEncoder(bind.Encoder):
    """A fixed expert: an item -> its concept vector (the reader of its modality)."""

    def __init__(self, card: bind.EncoderCard, pretrained: bool = True) -> None:
        super().__init__(card)

    def preprocessor(self):
        return READERS[self.card.modality.value]

    def collate(self, samples):
        return torch.tensor(np.stack(samples))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


@pytest.fixture(scope="module")
def space():
    names = {}
    for modality in READERS:
        names[modality] = f"concept.{modality}"
        bind.register_encoder({"name": names[modality], "modality": modality, "dim": DIM, "backend": "test_concept",
                               "model_id": "concepts", "licence": "MIT", "weights": "none (fixed rules in the tests)"},
                              backend=ConceptEncoder, overwrite=True)
    yield AnchorSpace(names)
    for name in names.values():
        bind.unregister_encoder(name)


# --- miniature media --------------------------------------------------------------------------------------

def tone(path: Path, axis: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000) / 16000
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * (200 + 100 * axis) * t)).astype(np.float32), 16000)
    return path


def picture(path: Path, axis: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), 40 * (axis + 1), np.uint8)).save(path)
    return path


def movie(path: Path, axis: int) -> Path:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for _ in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 40 * (axis + 1), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def mesh(path: Path, axis: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    s = axis + 1
    path.write_text(f"OFF\n4 4 0\n0 0 0\n{s} 0 0\n0 {s} 0\n0 0 {s}\n3 0 1 2\n3 0 1 3\n3 0 2 3\n3 1 2 3\n")
    return path


def axis(name: str) -> int:
    return CONCEPTS.index(name)


def check(metrics: dict[str, float], expected: dict[str, float]) -> None:
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-5), key


# --- the metrics on their own -----------------------------------------------------------------------------

def test_ranking_metrics_by_hand():
    similarity = torch.tensor([[0.9, 0.8, 0.1], [0.2, 0.5, 0.5]])
    relevant = [[1], [1, 2]]
    # query 0: its one relevant candidate is 2nd -> AP 1/2, NDCG 1/log2(3); query 1: both relevant on top
    assert mean_average_precision(similarity, relevant) == pytest.approx((0.5 + 1) / 2)
    assert ndcg_at(similarity, relevant) == pytest.approx((1 / L3 + 1) / 2)
    check(ranking_metrics(similarity, relevant), {"R@1": 0.5, "R@5": 1.0, "mean_rank": 1.5})


def test_ties_rank_relevant_candidates_last():
    similarity = torch.tensor([[0.5, 0.5, 0.5]])
    check(ranking_metrics(similarity, [[0]]), {"R@1": 0.0, "mAP": 1 / 3, "NDCG@10": 1 / L4, "mean_rank": 3})
    # NDCG@k ignores hits past k; its ideal counts at most k relevant candidates
    assert ndcg_at(torch.tensor([[0.9, 0.8, 0.1]]), [[2]], k=2) == 0.0
    assert ndcg_at(torch.tensor([[0.9, 0.8, 0.1]]), [[0, 1, 2]], k=2) == pytest.approx(1.0)


def test_class_embeddings_average_the_templates(space):
    vectors = class_embeddings(space, ["car", "dog"], ["a {}", "a {} and a bell"])
    car = one_hot(axis("car")) + (one_hot(axis("car")) + one_hot(axis("bell"))) / math.sqrt(2)
    assert torch.allclose(vectors[0], torch.tensor(car / np.linalg.norm(car)), atol=1e-6)
    with pytest.raises(bind.ConfigError, match="templates"):
        class_embeddings(space, ["car"], ["no placeholder"])


# --- zero-shot classification -----------------------------------------------------------------------------

ESC_CLASSES = ["dog", "rain", "church_bells", "car_horn", "chirping_birds", "crackling_fire"]


def esc50_root(root: Path) -> Path:
    # clip k is class k; clips 0-3 sound like their class, clip 4 (birds) sounds like a car horn, whose
    # embedding leaks half into birds (rank 2: a top-5 hit), clip 5 (fire) sounds like rain (fire: 0, rank 6)
    tones = [0, 1, 2, 3, 3, 1]
    rows = []
    for k, (name, sound) in enumerate(zip(ESC_CLASSES, tones)):
        tone(root / "audio" / f"{k + 1}-100-A-{k}.wav", sound)
        rows.append([f"{k + 1}-100-A-{k}.wav", 1 if k < 3 else 2, k, name, "False", 100, "A"])
    write_csv(root / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file", "take"],
              rows)
    return root


def test_esc50_zero_shot(space, tmp_path):
    root = esc50_root(tmp_path / "ESC-50-master")
    result = evaluate(space, "esc50", root)
    assert result.counts == {"items": 6, "classes": 6} and result.skipped == []
    check(result.metrics, {"top-1": 4 / 6, "top-5": 5 / 6})
    fold2 = evaluate(space, "esc50", root, split="fold2")  # clips 3 (right), 4 (2nd), 5 (last)
    assert fold2.counts["items"] == 3
    check(fold2.metrics, {"top-1": 1 / 3, "top-5": 2 / 3})
    with pytest.raises(bind.ConfigError, match="fold1"):
        evaluate(space, "esc50", root, split="test")


def test_modelnet40_zero_shot_on_the_test_split(space, tmp_path):
    root = tmp_path / "ModelNet40"
    mesh(root / "bird" / "test" / "bird_0001.off", axis("bird"))
    mesh(root / "car" / "test" / "car_0001.off", axis("dog"))  # a car shaped like a dog: wrong
    mesh(root / "dog" / "test" / "dog_0001.off", axis("dog"))
    mesh(root / "dog" / "train" / "dog_0002.off", axis("car"))  # train split: not evaluated
    result = evaluate(space, "modelnet40", root)
    assert result.split == "test" and result.counts == {"items": 3, "classes": 3}
    assert result.metrics == pytest.approx({"top-1": 2 / 3})  # top-5 needs at least five classes


def test_manifest_with_labels_zero_shot_and_templates(space, tmp_path):
    picture(tmp_path / "dog.png", axis("dog"))
    mesh(tmp_path / "car.off", axis("car"))
    tone(tmp_path / "rain.wav", axis("rain"))  # labelled bird: similarity 0 to every class, rank 3
    lines = [{"source": "dog.png", "target": "photo", "label": "dog"},
             {"source": "car.off", "target": "model", "label": "car"},
             {"source": "rain.wav", "target": "clip", "label": "bird"}]
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = evaluate(space, "manifest-classes", path, templates=["a {}"])
    assert result.counts == {"items": 3, "classes": 3}
    assert result.metrics == pytest.approx({"top-1": 2 / 3})


# --- retrieval --------------------------------------------------------------------------------------------

def test_audiocaps_retrieval(space, tmp_path):
    root = tmp_path / "audiocaps"
    for clip, sound in (("101", "dog"), ("102", "rain"), ("103", "bell")):
        tone(root / "audio" / "test" / f"{clip}.wav", axis(sound))
    write_csv(root / "test.csv", ["audiocap_id", "youtube_id", "start_time", "caption"],
              [["101", "yA", 0, "a dog barks"], ["101", "yA", 0, "a dog and a car"], ["102", "yB", 0, "rain falls"],
               ["103", "yC", 0, "rain and a bell"]])
    result = evaluate(space, "audiocaps", root)
    assert result.counts == {"pairs": 4, "sources": 3, "targets": 4}
    # audio x text: A = C(dog + .5 rain), B = C(rain + .5 bell), C = C(bell + .5 car)
    #   A: .894 .632 .447 .316   B: 0 0 .894 .949   C: 0 .316 0 .632
    # audio2text: A's captions are 1st and 2nd; B's caption is 2nd (after C's); C's is 1st
    check(result.metrics, {"audio2text/R@1": 2 / 3, "audio2text/R@5": 1.0, "audio2text/mAP": (1 + 0.5 + 1) / 3,
                           "audio2text/NDCG@10": (1 + 1 / L3 + 1) / 3})
    # text2audio: "rain and a bell" puts B (.949) before C (.632); the other captions find theirs first
    check(result.metrics, {"text2audio/R@1": 3 / 4, "text2audio/R@10": 1.0, "text2audio/mAP": (3 + 0.5) / 4,
                           "text2audio/NDCG@10": (3 + 1 / L3) / 4, "text2audio/mean_rank": 5 / 4})


def test_clotho_retrieval_with_several_captions_and_ties(space, tmp_path):
    root = tmp_path / "clotho"
    tone(root / "evaluation" / "dog.wav", axis("dog"))
    tone(root / "evaluation" / "bird.wav", axis("bird"))
    write_csv(root / "clotho_captions_evaluation.csv", ["file_name", "caption_1", "caption_2"],
              [["dog.wav", "a dog barks", "a bird sings"], ["bird.wav", "birds chirp", "a bird and a dog"]])
    result = evaluate(space, "clotho", root)
    assert result.counts == {"pairs": 4, "sources": 2, "targets": 4}
    # A = C(dog + .5 rain): .894 0 0 .632 -> its captions rank 1 and 4 ("a bird sings" after the tied "birds chirp")
    # B = C(bird + .5 fire): 0 .894 .894 .632 -> its captions rank 2 (after the tied "a bird sings") and 3
    check(result.metrics, {"audio2text/R@1": 0.5, "audio2text/mAP": ((1 + 2 / 4) / 2 + (1 / 2 + 2 / 3) / 2) / 2,
                           "audio2text/NDCG@10": ((1 + 1 / L5) + (1 / L3 + 1 / L4)) / (1 + 1 / L3) / 2})
    # text2audio: "a bird sings" finds B first (A: rank 2); "a bird and a dog" ties A and B (.632): rank 2
    check(result.metrics, {"text2audio/R@1": 0.5, "text2audio/R@5": 1.0, "text2audio/mAP": (1 + .5 + 1 + .5) / 4})


def test_msrvtt_retrieval_on_the_test_split(space, tmp_path):
    root = tmp_path / "msrvtt"
    for name, concept in (("video0", "car"), ("video1", "fire"), ("video2", "dog")):
        movie(root / "videos" / "all" / f"{name}.mp4", axis(concept))
    data = {"videos": [{"video_id": "video0", "split": "test"}, {"video_id": "video1", "split": "test"},
                       {"video_id": "video2", "split": "train"}],
            "sentences": [{"video_id": "video0", "caption": "a car drives", "sen_id": 0},
                          {"video_id": "video1", "caption": "a fire burns", "sen_id": 1},
                          {"video_id": "video1", "caption": "fire near a car", "sen_id": 2},
                          {"video_id": "video2", "caption": "a dog", "sen_id": 3}]}
    (root / "test_videodatainfo.json").write_text(json.dumps(data))
    result = evaluate(space, "msrvtt", root)
    assert result.counts == {"pairs": 3, "sources": 2, "targets": 3}
    # every video ranks its captions first; "fire near a car" ties both videos (.707): rank 2
    check(result.metrics, {"video2text/R@1": 1.0, "video2text/mAP": 1.0, "video2text/NDCG@10": 1.0,
                           "text2video/R@1": 2 / 3, "text2video/mAP": (1 + 1 + .5) / 3})


@pytest.mark.parametrize("task", ["flickr30k", "coco"])
def test_karpathy_retrieval(space, tmp_path, task):
    root = tmp_path / task
    folder, filepath = (root / "flickr30k-images", None) if task == "flickr30k" else (root / "val2014", "val2014")
    images = []
    for name, concept, split, sentences in (("1.jpg", "bird", "test", ["a bird", "a bird in the rain"]),
                                            ("2.jpg", "rain", "test", ["heavy rain", "a bird"]),
                                            ("3.jpg", "dog", "train", ["a dog"])):
        picture(folder / name, axis(concept))
        images.append({"filename": name, "split": split, "imgid": len(images),
                       "sentences": [{"raw": s} for s in sentences],
                       **({"filepath": filepath} if filepath else {})})
    (root / f"dataset_{task}.json").write_text(json.dumps({"images": images, "dataset": task}))
    result = evaluate(space, task, root)
    assert result.counts == {"pairs": 4, "sources": 2, "targets": 3}  # "a bird" is one candidate for both images
    # the captions "a bird", "a bird in the rain", "heavy rain"; image 1: 1 .707 0, image 2: 0 .707 1
    # image 1 finds both of its captions first; image 2 ranks "heavy rain" 1st and "a bird" 3rd
    check(result.metrics, {"image2text/R@1": 1.0, "image2text/mAP": (1 + (1 + 2 / 3) / 2) / 2,
                           "image2text/NDCG@10": (1 + (1 + 1 / L4) / (1 + 1 / L3)) / 2})
    # text2image: "a bird" is relevant to both images (1st), "a bird in the rain" ties them (rank 2)
    check(result.metrics, {"text2image/R@1": 2 / 3, "text2image/mAP": (1 + 0.5 + 1) / 3,
                           "text2image/NDCG@10": (1 + 1 / L3 + 1) / 3})


def test_generic_manifest_over_a_mixed_corpus(space, tmp_path):
    picture(tmp_path / "dog.png", axis("dog"))
    tone(tmp_path / "dog.wav", axis("dog"))
    tone(tmp_path / "rain.wav", axis("rain"))
    mesh(tmp_path / "car.off", axis("car"))
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wave file")
    rows = [["dog.png", "a dog"], ["dog.wav", "a dog"], ["rain.wav", "rain"], ["car.off", "a car"],
            ["rain.wav", "a dog in the rain"], ["broken.wav", "a bell"]]
    path = write_csv(tmp_path / "pairs.csv", ["source", "target"], rows)
    result = evaluate(space, "manifest", path)
    assert result.counts == {"pairs": 5, "sources": 4, "targets": 5}
    assert len(result.skipped) == 1 and "broken.wav" in result.skipped[0]
    # sources: dog.png = dog, dog.wav = C(dog + .5 rain), rain.wav = C(rain + .5 bell), car.off = car
    # text2source: "a dog" has two relevant items (1st, 2nd); "a dog in the rain" (dog.wav .949, dog.png .707,
    # rain.wav .632) finds its clip 3rd; "a bell" has no readable partner, so it is no query
    check(result.metrics, {"text2source/R@1": 3 / 4, "text2source/R@5": 1.0, "text2source/mAP": (3 + 1 / 3) / 4,
                           "text2source/NDCG@10": (3 + 1 / L4) / 4})
    # source2text: dog.wav ranks "a dog in the rain" (.949) over "a dog" (.894)
    check(result.metrics, {"source2text/R@1": 3 / 4, "source2text/mAP": (3 + 0.5) / 4,
                           "source2text/NDCG@10": (3 + 1 / L3) / 4})


def test_bad_tasks_and_empty_splits(space, tmp_path):
    with pytest.raises(bind.ConfigError, match="unknown task 'nope'; tasks: esc50"):
        evaluate(space, "nope", tmp_path)
    with pytest.raises(bind.InputError, match="folder not found"):
        evaluate(space, "audiocaps", tmp_path)
    picture(tmp_path / "a.png", 0)
    write_csv(tmp_path / "m.csv", ["source", "target", "split"], [["a.png", "a dog", "train"]])
    with pytest.raises(bind.ConfigError, match="no pairs in split 'test'"):
        evaluate(space, "manifest", tmp_path / "m.csv", split="test")
    assert set(TASKS) >= {"esc50", "modelnet40", "audiocaps", "clotho", "msrvtt", "flickr30k", "coco", "manifest"}


# --- the command line -------------------------------------------------------------------------------------

def test_bind_eval_writes_the_result_record(space, tmp_path, capsys):
    root = esc50_root(tmp_path / "esc50")
    folder = space.save(tmp_path / "space")
    out = tmp_path / "results" / "esc50.json"
    assert main(["eval", "--space", str(folder), "--task", "esc50", "--root", str(root), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "esc50 (all)" in table and "top-1" in table and "66.67" in table
    record = json.loads(out.read_text())
    assert record["space"]["identity"] == space.identity and "AnchorSpace(dim=6)" in record["space"]["repr"]
    assert record["data"]["task"] == "esc50" and record["data"]["counts"] == {"items": 6, "classes": 6}
    assert record["metrics"] == pytest.approx({"top-1": 4 / 6, "top-5": 5 / 6})
    assert set(record["versions"]) == {"bind", "torch", "python", "platform"}
    assert [p.name for p in out.parent.iterdir()] == ["esc50.json"]  # no temporary file left behind

    assert main(["eval", "--space", str(folder), "--task", "esc50", "--root", str(root), "--json",
                 "--template", "{}"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["top-1"] == pytest.approx(4 / 6)
    assert main(["eval", "--space", str(folder), "--task", "nope", "--root", str(root)]) == 2
    assert "unknown task" in capsys.readouterr().err
