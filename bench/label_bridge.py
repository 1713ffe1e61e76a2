"""Label-bridge prompts, measured: one template or CLIP's prompt ensemble, first lemma or all lemmas.

The zero-training image path of lite maps EfficientNet-Lite0's top-10 ImageNet probabilities onto MiniLM
embeddings of its class names in a template. Four variants run side by side in one run:

- template: ``"a photo of a {}."`` (lite's) or the 7-template ensemble of CLIP's ImageNet notebook
  ("itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.", "a {} in a video
  game.", "art of the {}.", "a photo of the small {}."), taken as published, not tuned here;
- label: the first lemma of each ImageNet class ("tabby") or all its lemmas ("tabby, tabby cat").

Printed: image->caption and caption->image R@1 on the Open Clip Art val and test splits
(``recipes/prepare_openclipart.py --out DATA``) and the assets' image->caption concept hits. These are
drawings: the choice for photos needs the photo validation set of issue 13, which does not exist yet.

    python bench/label_bridge.py --data data/openclipart
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import bind  # noqa: E402
from bind.apps.demo import caption_demo  # noqa: E402
from bind.experts.modality import Modality  # noqa: E402
from bind.spaces import AnchorSpace, ExpertPath  # noqa: E402
from bind.spaces.bridges import LabelBridge  # noqa: E402

CLASSIFIER, TEXT = "efficientnet-lite0.imagenet-logits", "minilm-l6.text"
LITE = ("a photo of a {}.",)
CLIP_ENSEMBLE = ("itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
                 "a {} in a video game.", "art of the {}.", "a photo of the small {}.")


def lemmas(first: bool) -> list[str]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [info.index_to_description(i) for i in range(info.num_classes())]
    return [name.split(",")[0].strip() for name in names] if first else names


def main() -> None:
    from image_experts import recall, split  # bench/image_experts.py: the same R@1 and data reader

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    text = bind.create_encoder(TEXT)
    print(f"{'template':14}{'label':14}{'val i->t':>10}{'val t->i':>10}{'test i->t':>10}{'test t->i':>10}{'assets':>8}")
    for template_name, templates in (("photo", LITE), ("CLIP x7", CLIP_ENSEMBLE)):
        for label_name, first in (("first lemma", True), ("all lemmas", False)):
            bridge = LabelBridge.from_labels(lemmas(first), text, template=templates)
            space = AnchorSpace({Modality.TEXT: TEXT, Modality.IMAGE: ExpertPath(CLASSIFIER, bridge, "none")})
            cells = []
            for part in ("val", "test"):
                cells += recall(space, *split(args.data, part))
            with contextlib.redirect_stdout(io.StringIO()):
                hits, count = caption_demo(space=space)[Modality.IMAGE]
            print(f"{template_name:14}{label_name:14}" + "".join(f"{c:10.3f}" for c in cells) + f"{hits:>5}/{count}")


if __name__ == "__main__":
    main()
