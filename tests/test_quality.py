"""Real-quality smoke checks with the packaged experts (no training): the label bridge and the demo."""
from __future__ import annotations

import pytest

import bind
from bind.apps.demo import caption_demo
from bind.assets import load_manifest
from bind.spaces.bridges import LabelBridge


@pytest.fixture(scope="module")
def bridge(effnet_logits, minilm) -> LabelBridge:
    return LabelBridge.for_classifier(effnet_logits, minilm)


def _asset(concept: str, modality: bind.Modality):
    return next(e for e in load_manifest() if e.concept == concept and e.modality == modality)


@pytest.mark.parametrize("concept, right, wrong", [
    ("cat", "a cat", "a truck"),
    ("strawberry", "a strawberry", "a guitar"),
    ("guitar", "a guitar", "a coffee cup"),
])
def test_image_is_closer_to_its_caption_through_the_label_bridge(bridge, effnet_logits, minilm, concept, right, wrong):
    image = _asset(concept, bind.Modality.IMAGE).path
    z = bridge(bind.embed([image], encoder=effnet_logits, normalize=False))[0]
    a, b = bind.embed([right, wrong], encoder=minilm)
    assert z @ a > z @ b + 0.05


def test_demo_ranks_image_captions(capsys):
    scores = caption_demo(top_k=2)
    out = capsys.readouterr().out
    assert "cat.jpg" in out and "== audio (8 items) ==\n  unavailable: no path in this space" in out
    hits, total = scores[bind.Modality.IMAGE]
    assert total == 12 and hits >= 8, f"offline label bridge found {hits}/12 image captions"
    assert scores[bind.Modality.VIDEO][0] >= 2
