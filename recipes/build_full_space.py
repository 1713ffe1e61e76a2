"""Build the full-quality space (ImageBind-like, CLIP as the anchor) from weights you downloaded; one command.

Every modality ends in the CLIP model's joint image-text space:

- text and image: CLIP's own text and image towers (the anchor, no adapter);
- audio: LAION-CLAP's audio tower, bound to CLIP through the caption bridge of ``recipes/clap_to_clip.yaml``
  (C-MCR / Ex-MCR: a projector trained on captions only, each through CLAP's and CLIP's text towers, then
  applied to CLAP audio embeddings). It is the only part that trains, on the audio-caption pairs you name
  (``--pairs``); their test split measures audio -> caption retrieval, which no training step saw. The CLAP
  space joins the CLIP space as a FreeBind combination bond whose text weight is ``--text-lam`` (0: text stays
  CLIP's exactly; ``space.with_weights(text=0.1)`` mixes projected CLAP text in at query time);
- video: CLIP over 8 evenly spaced frames (mean), with the sound track through the audio path mixed in with
  weight ``--video-audio-weight`` (``bind.SoundTrackFusion``; ``space.with_audio_weight(0)``: frames only);
- 3D: CLIP over 6 rendered depth views (PointCLIP-style, the ``pointviews`` expert), zero-shot.

The defaults (text lam 0, sound-track weight 0.25: frames carry most of a video, and the audio route is the
one that crosses a trained bridge) are fixed a priori, not tuned on any data.

    python recipes/build_full_space.py --out spaces/full \\
        --clip-model ViT-H-14 --clip-checkpoint /models/open_clip_pytorch_model.bin \\
        --clap-checkpoint /models/630k-audioset-best.pt --clap-text-model /models/roberta-base \\
        --pairs '{"format": "audiocaps", "csv_path": "/data/ac/audiocaps.csv", "audio_dir": "/data/ac/audio"}'

``--pairs`` is a manifest (CSV/JSONL: ``source`` an audio file, ``target`` its caption, optional ``split``) or
a dataset spec as in the recipes (``{"format": "audiocaps" | "clotho" | "manifest", ...}``). Anything after
``--`` goes to ``bind train`` (LightningCLI flags, e.g. ``-- --trainer.max_epochs 5 --trainer.accelerator gpu``).

Resumable: training runs under ``--work-dir`` (default: next to ``--out``, ``OUT.work``) with a ``last.ckpt``
every epoch; a second run continues it (``bind train --resume true``), or reuses its exported adapter when the
training finished. Expert features are extracted once into the feature cache (``--cache-dir``). The saved
space names the weight files by their absolute paths: keep them where they are.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bind.experts.cards import EncoderCard
from bind.experts.modality import Modality
from bind.experts.registry import get_card, register_encoder, unregister_encoder, weights_available
from bind.spaces import AnchorSpace, ExpertPath, Space, load_space
from bind.spaces.bonds import CombinationBond
from bind.spaces.fusion import SoundTrackFusion
from bind.spaces.projectors import Projector, load_projector

ROOT = Path(__file__).resolve().parent.parent
BRIDGE_RECIPE = ROOT / "recipes" / "clap_to_clip.yaml"
CLAP_FAMILIES = ("clap-htsat-tiny", "clap-htsat-fused", "clap-htsat-base")  # packaged cards: amodel, fusion
VIDEO_TEMPLATE = "video-clip-vit-b32-laion2b.video"  # frames through a CLIP image tower (its options: frames)
POINTS_TEMPLATE = "pointviews-clip-vit-b32-laion2b.points"  # depth views through a CLIP image tower
TEXT_LAM = 0.0  # text stays CLIP's (see the module docstring)
VIDEO_AUDIO_WEIGHT = 0.25  # fixed a priori (see the module docstring)
INPUTS_FILE = "bridge_inputs.json"  # what the work dir's training run was started with


def step(message: str) -> None:
    print(f"[build_full_space] {message}", flush=True)


def local_path(value: str, what: str) -> str:
    """``value`` as an absolute path (the saved space must find it from any working directory)."""
    path = Path(value).expanduser().resolve()
    if not path.exists():
        raise SystemExit(f"{what}: {value} does not exist")
    if "@" in str(path) or "#" in str(path):
        raise SystemExit(f"{what}: {path} holds '@' or '#', which open_clip names use as separators; move it")
    return str(path)


def clip_spec(model: str, checkpoint: str | None, tower: str) -> str:
    """The dynamic expert name of a CLIP tower: ``open_clip:MODEL[@CHECKPOINT]#TOWER``.

    ``model``: an open_clip model name (``ViT-H-14``) or ``local-dir:FOLDER`` (open_clip_config.json + weights);
    ``checkpoint``: a weights file for a model name, or an open_clip tag whose weights are in the HF cache.
    """
    if model.startswith("local-dir:"):
        if checkpoint:
            raise SystemExit("--clip-checkpoint: a local-dir: model carries its own weights; drop the checkpoint")
        model = "local-dir:" + local_path(model.removeprefix("local-dir:"), "--clip-model")
    elif checkpoint is None:
        raise SystemExit(f"--clip-model {model}: name its weights with --clip-checkpoint (a file or an open_clip tag)")
    elif Path(checkpoint).expanduser().exists():
        checkpoint = local_path(checkpoint, "--clip-checkpoint")
    return f"open_clip:{model}{'@' + checkpoint if checkpoint else ''}#{tower}"


def clap_cards(family: str, checkpoint: str, text_model: str | None) -> dict[Modality, EncoderCard]:
    """The packaged CLAP cards of ``family`` (architecture, preprocessing) reading your checkpoint and RoBERTa."""
    cards = {}
    for modality in (Modality.TEXT, Modality.AUDIO):
        card = get_card(f"{family}.{modality.value}")
        options = {**card.options, "checkpoint": local_path(checkpoint, "--clap-checkpoint")}
        if text_model:
            options["text_model"] = local_path(text_model, "--clap-text-model")
        cards[modality] = card.replace(name=f"{family}-local.{modality.value}", options=options,
                                       weights=f"local checkpoint {options['checkpoint']}")
    return cards


def wrapper_card(template: str, name: str, image: str, description: str) -> EncoderCard:
    """The packaged video / 3D card ``template`` (frames or depth views through a CLIP image tower), renamed
    ``name``, running the image expert ``image``."""
    card, inner = get_card(template), get_card(image)
    return card.replace(name=name, dim=inner.dim, model_id=image, options={**card.options, "image_encoder": image},
                        licence=f"that of its image expert, {image}", weights=f"none of its own: through {image}",
                        description=description)


def full_space(clip_text: str, clip_image: str, clap: dict[Modality, EncoderCard], projector: Projector,
               text_lam: float = TEXT_LAM, video_audio_weight: float = VIDEO_AUDIO_WEIGHT) -> Space:
    """CLIP text/image/video frames/3D views, bonded with CLAP (audio through ``projector``), sound tracks fused."""
    video = wrapper_card(VIDEO_TEMPLATE, "video-clip-local.video", clip_image,
                         f"The mean CLIP embedding of evenly spaced frames, through {clip_image}.")
    points = wrapper_card(POINTS_TEMPLATE, "pointviews-clip-local.points", clip_image,
                          f"PointCLIP-style: the mean CLIP embedding of rendered depth views, through {clip_image}.")
    clip = AnchorSpace({Modality.TEXT: clip_text, Modality.IMAGE: clip_image,
                        Modality.VIDEO: ExpertPath(video), Modality.POINTS: ExpertPath(points)})
    audio = CombinationBond(clip, AnchorSpace(clap), projector, lam=text_lam)
    return SoundTrackFusion(audio, audio_weight=video_audio_weight)


def dataset_spec(pairs: str) -> dict[str, object]:
    """``--pairs``: a JSON dataset spec, or the path of a manifest file."""
    if pairs.lstrip().startswith("{"):
        try:
            spec = json.loads(pairs)
        except ValueError as exc:
            raise SystemExit(f"--pairs: not valid JSON ({exc}): {pairs}") from None
        if not isinstance(spec, dict) or "format" not in spec:
            raise SystemExit(f"--pairs: a dataset spec needs a 'format', got {pairs}")
        return spec
    return {"format": "manifest", "path": local_path(pairs, "--pairs")}


def check_weights(names: Sequence[str | EncoderCard]) -> None:
    """Stop before any work when an expert's weights are not on this machine."""
    for name in names:
        card = name if isinstance(name, EncoderCard) else get_card(name)
        if not weights_available(card):
            raise SystemExit(f"the weights of {card.name} ({card.weights}) are not on this machine")


@contextlib.contextmanager
def registered(cards: Sequence[EncoderCard]) -> Iterator[None]:
    """``cards`` in the registry while ``bind train`` runs (its data module takes expert names)."""
    for card in cards:
        register_encoder(card, overwrite=True)
    try:
        yield
    finally:
        for card in cards:
            unregister_encoder(card.name)


def train_bridge(work: Path, clip_text: str, clap: dict[Modality, EncoderCard], dataset: dict[str, object],
                 cache_dir: Path, overrides: Sequence[str]) -> Path:
    """The CLAP -> CLIP caption bridge (``recipes/clap_to_clip.yaml``): trained, resumed, or reused; its folder."""
    from bind.train.cli import main as bind_train

    adapter, run = work / "adapter", work / "run"
    inputs = {"clip_text": clip_text, "clap": {m.value: c.to_dict() for m, c in clap.items()}, "dataset": dataset}
    record = work / INPUTS_FILE
    if record.is_file() and json.loads(record.read_text()) != inputs:
        raise SystemExit(f"{work} holds a training run of other weights or data ({record}); "
                         "pass another --work-dir or delete that folder")
    if (adapter / "config.json").is_file():
        step(f"reusing the trained caption bridge {adapter}")
        return adapter
    work.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(inputs, indent=1))
    resume = any(run.rglob("last*.ckpt")) if run.is_dir() else False
    step(f"{'resuming' if resume else 'training'} the CLAP -> CLIP caption bridge ({BRIDGE_RECIPE.name}) in {run}")
    args = ["--config", str(BRIDGE_RECIPE), "--data.dataset", json.dumps(dataset),
            "--data.source_encoder", clap[Modality.TEXT].name, "--data.test_source_encoder", clap[Modality.AUDIO].name,
            "--data.target_encoder", clip_text, "--data.cache_dir", str(cache_dir),
            "--trainer.default_root_dir", str(run), "--export.dir", str(adapter), "--resume", str(resume).lower(),
            "--export.data_licence", "see the terms of the data set given as --pairs", *overrides]
    with registered(list(clap.values())):
        bind_train(args)
    return adapter


def weight(value: str) -> float:
    """A command-line weight in [0, 1]."""
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"a weight in [0, 1], got {value}")
    return number


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     epilog="Arguments after -- go to bind train (LightningCLI flags).")
    parser.add_argument("--out", type=Path, required=True, help="the space folder to write")
    parser.add_argument("--clip-model", required=True, help="open_clip model name (ViT-H-14) or local-dir:FOLDER")
    parser.add_argument("--clip-checkpoint", help="CLIP weights file (the architecture's default preprocessing) or "
                        "an open_clip tag whose weights are in the HF cache")
    parser.add_argument("--clap-checkpoint", required=True, help="LAION-CLAP checkpoint (.pt)")
    parser.add_argument("--clap-text-model", help="local roberta-base folder (default: the Hugging Face cache)")
    parser.add_argument("--clap-family", choices=CLAP_FAMILIES, default=CLAP_FAMILIES[0],
                        help="the checkpoint's architecture (630k-*-best.pt: tiny; *-fusion-*: fused; music_*: base)")
    parser.add_argument("--pairs", required=True, help="audio-caption pairs: a manifest file or a JSON dataset spec")
    parser.add_argument("--work-dir", type=Path, help="training runs and the adapter (default: OUT.work)")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/bind/features").expanduser(),
                        help="feature cache (default ~/.cache/bind/features)")
    parser.add_argument("--text-lam", type=weight, default=TEXT_LAM, help="weight of projected CLAP text in text")
    parser.add_argument("--video-audio-weight", type=weight, default=VIDEO_AUDIO_WEIGHT,
                        help="weight of a video's sound track against its frames")
    parser.add_argument("train_overrides", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> Space:
    """Train the caption bridge (or resume / reuse it), compose the space, save it and check it loads back."""
    args = parse_args(argv)
    start = time.perf_counter()
    out = args.out.expanduser().resolve()
    work = (args.work_dir or out.with_name(out.name + ".work")).expanduser().resolve()
    clip_text, clip_image = (clip_spec(args.clip_model, args.clip_checkpoint, tower) for tower in ("text", "image"))
    clap = clap_cards(args.clap_family, args.clap_checkpoint, args.clap_text_model)
    step("[1/3] checking the weights")
    check_weights([clip_text, clip_image, *clap.values()])
    step("[2/3] the caption bridge")
    adapter = train_bridge(work, clip_text, clap, dataset_spec(args.pairs), args.cache_dir.expanduser(),
                           args.train_overrides)
    step("[3/3] composing and saving the space")
    space = full_space(clip_text, clip_image, clap, load_projector(adapter), args.text_lam, args.video_audio_weight)
    space.save(out)
    loaded = load_space(out)
    if loaded.identity != space.identity:
        raise SystemExit(f"{out}: the saved space does not load back identically")
    print(loaded)
    test = load_projector(adapter).meta.get("test", {})
    step(f"caption bridge, audio -> caption on its test split: {json.dumps(test)}")
    step(f"saved {out} (identity {loaded.identity[:16]}) in {time.perf_counter() - start:.0f} s; "
         f"open it with bind.load_space({str(out)!r})")
    return space


if __name__ == "__main__":
    main(sys.argv[1:])
