"""LAION-CLAP (laion-clap 1.1.7): the HTSAT audio tower or the RoBERTa text tower, each projected to 512-d.

Only the card's tower is kept. The model is built from laion_clap's own config and classes
(``clap_module.create_model``), its checkpoint loaded as laion_clap's hook does, and audio prepared with
its ``get_audio_features``. Pitfalls handled here (measured): ``import laion_clap`` loads three hub
tokenizers at import time and retries the hub for >10 min without a network, so it is imported with the
hub forced offline; offline, ``RobertaTokenizer.from_pretrained`` returns a 5-token tokenizer without
an error, so the tokenizer is checked against the text tower's vocabulary before use.
``options.text_model`` names a local roberta-base folder (config.json, vocab.json, merges.txt, weights) that
laion_clap's hard-coded ``RobertaModel.from_pretrained("roberta-base")`` and the tokenizer read instead of
the hub cache.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import threading
import types
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, WeightsUnavailableError
from ...io.audio import MIN_SECONDS, AudioPreprocessor
from ...io.text import TextPreprocessor
from ..cards import EncoderCard
from ..encoder import Encoder, collate_segments, pool_segments
from ..modality import Modality
from .locate import hub_offline

DOWNLOAD_URL = "https://huggingface.co/lukewys/laion_clap/resolve/main/"  # laion_clap.hook's source
# released checkpoints (laion_clap README) -> (audio model, feature fusion)
RELEASED_CHECKPOINTS: dict[str, tuple[str, bool]] = {
    "630k-best.pt": ("HTSAT-tiny", False),
    "630k-audioset-best.pt": ("HTSAT-tiny", False),
    "630k-fusion-best.pt": ("HTSAT-tiny", True),
    "630k-audioset-fusion-best.pt": ("HTSAT-tiny", True),
    "music_audioset_epoch_15_esc_90.14.pt": ("HTSAT-base", False),
    "music_speech_epoch_15_esc_89.25.pt": ("HTSAT-base", False),
    "music_speech_audioset_epoch_15_esc_89.98.pt": ("HTSAT-base", False),
}
TEXT_MODEL = "roberta-base"  # laion_clap hard-codes this hub id for the text tower and its tokenizer
_ROBERTA_FILES = (("config.json",), ("vocab.json",), ("merges.txt",), ("model.safetensors", "pytorch_model.bin"))
JOINT_DIM = 512  # CLAP's joint embedding size (``joint_embed_shape``)
FUSION_TYPE = "aff_2d"  # what laion_clap's hook uses for fused models
_PATCH_LOCK = threading.Lock()  # one redirected RobertaModel.from_pretrained at a time


@contextlib.contextmanager
def _hub_forced_offline() -> Iterator[None]:
    """HF_HUB_OFFLINE on, in the environment and in huggingface_hub's already-read constant."""
    import huggingface_hub.constants as hub_constants

    saved_env, saved_flag = os.environ.get("HF_HUB_OFFLINE"), hub_constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = saved_flag
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


@functools.lru_cache(maxsize=1)
def laion() -> types.SimpleNamespace:
    """laion_clap's pieces, imported once with the hub forced offline (see the module docstring).

    laion_clap puts its folder on sys.path, so ``clap_module`` and ``training`` are top-level names.
    """
    with _hub_forced_offline(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import laion_clap  # noqa: F401 - registers clap_module/training on sys.path
        from clap_module import create_model
        from clap_module.factory import load_state_dict
        from clap_module.htsat import HTSAT_Swin_Transformer
        from clap_module.model import CLAPAudioCfp
        from laion_clap.training.data import get_audio_features
    return types.SimpleNamespace(create_model=create_model, load_state_dict=load_state_dict,
                                 HTSAT=HTSAT_Swin_Transformer, AudioCfg=CLAPAudioCfp,
                                 get_audio_features=get_audio_features)


def _package_dir() -> Path | None:
    """Where laion_clap's hook downloads released checkpoints (its package folder), without importing it."""
    spec = importlib.util.find_spec("laion_clap")
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


def _local_checkpoint(name: str) -> Path | None:
    path = Path(name).expanduser()
    if path.is_file():
        return path
    package = _package_dir()
    if name in RELEASED_CHECKPOINTS and package is not None and (package / name).is_file():
        return package / name
    return None


def _roberta_cached(folder: str | None = None) -> bool:
    """Whether roberta-base's config, tokenizer and weights are in ``folder`` (when given) or the HF cache."""
    if folder is not None:
        return all(any((Path(folder) / f).is_file() for f in options) for options in _ROBERTA_FILES)
    from huggingface_hub import try_to_load_from_cache

    return all(any(isinstance(try_to_load_from_cache(TEXT_MODEL, f), str) for f in options)
               for options in _ROBERTA_FILES)


def _text_model(card: EncoderCard) -> str | None:
    """``options.text_model``: a local folder holding roberta-base (``save_pretrained`` or a copy of its hub
    repo: config.json, vocab.json, merges.txt and the weights), used instead of the HF cache."""
    value = card.options.get("text_model")
    return os.path.expanduser(str(value)) if value else None


@contextlib.contextmanager
def _roberta_from(folder: str | None) -> Iterator[None]:
    """laion_clap hard-codes ``RobertaModel.from_pretrained("roberta-base")``; inside this block that name
    reads ``folder`` instead (nothing changes without a folder)."""
    if folder is None:
        yield
        return
    from transformers import RobertaModel

    load = RobertaModel.from_pretrained  # transformers' own loader (inherited, bound to RobertaModel)

    def local(cls: type, name: str, *args: Any, **kwargs: Any) -> Any:
        return load(folder if name == TEXT_MODEL else name, *args, **kwargs)

    with _PATCH_LOCK:
        RobertaModel.from_pretrained = classmethod(local)  # type: ignore[method-assign]
        try:
            yield
        finally:
            del RobertaModel.from_pretrained  # back to the inherited loader


def _checkpoint(card: EncoderCard) -> Path:
    """The card's checkpoint: a local path, a released one already downloaded, or downloaded now."""
    name = card.options.get("checkpoint")
    if not name:
        raise ConfigError(f"{card.name!r}: options.checkpoint must name a checkpoint path or a released checkpoint")
    local = _local_checkpoint(name)
    if local is not None:
        return local
    package = _package_dir()
    if name not in RELEASED_CHECKPOINTS or package is None:
        raise WeightsUnavailableError(f"{card.name!r}: CLAP checkpoint {name!r} not found (not a file, and not "
                                      f"one of the released checkpoints {', '.join(RELEASED_CHECKPOINTS)})")
    if hub_offline():
        raise WeightsUnavailableError(
            f"{card.name!r}: CLAP checkpoint {name} is not downloaded and the hub is offline; fetch "
            f"{DOWNLOAD_URL}{name} to {package / name} or pass checkpoint='/path/to/{name}'")
    import wget

    try:
        return Path(wget.download(DOWNLOAD_URL + name, str(package)))
    except OSError as exc:
        raise WeightsUnavailableError(f"{card.name!r}: cannot download {DOWNLOAD_URL}{name}: {exc}") from None


def audio_config(card: EncoderCard) -> dict[str, Any]:
    """laion_clap's audio config of the card's ``amodel`` (48 kHz, 480000-sample clips, 64 mel bins, ...).

    The card's ``preprocess.sample_rate`` / ``preprocess.seconds`` document it and must agree with it.
    """
    import json

    amodel = card.options.get("amodel", "HTSAT-tiny")
    package = _package_dir()
    if package is None:
        raise WeightsUnavailableError("laion_clap is not installed (pip install laion-clap)")
    path = package / "clap_module" / "model_configs" / f"{amodel}.json"
    if not path.is_file():
        raise ConfigError(f"{card.name!r}: laion_clap has no audio model {amodel!r}")
    cfg = json.loads(path.read_text())["audio_cfg"]
    seconds = cfg["clip_samples"] / cfg["sample_rate"]
    documented = (card.preprocess.get("sample_rate", cfg["sample_rate"]), card.preprocess.get("seconds", seconds))
    if documented != (cfg["sample_rate"], seconds):
        raise ConfigError(f"{card.name!r}: {amodel} takes {seconds:g} s windows at {cfg['sample_rate']} Hz; "
                          f"the card's preprocess says otherwise")
    return cfg


def _tiny_tokenizer() -> Any:
    """A byte-level BPE tokenizer with RoBERTa's special tokens, trained offline on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    corpus = ["a dog barks in the distance", "rain falls on a tin roof", "a man speaks over music",
              "birds sing at dawn", "a car engine starts and idles", "glass breaks on the floor"]
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", tokenizer.token_to_id("</s>")),
                                                            ("<s>", tokenizer.token_to_id("<s>")))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")


def _projection(width: int) -> nn.Sequential:
    """CLAP's projection head (``audio_projection`` / ``text_projection``): Linear-ReLU-Linear to 512."""
    return nn.Sequential(nn.Linear(width, JOINT_DIM), nn.ReLU(), nn.Linear(JOINT_DIM, JOINT_DIM))


class ClapEncoder(Encoder):
    """A LAION-CLAP tower; ``card.options``: ``amodel`` (HTSAT-tiny/HTSAT-base), ``enable_fusion``, ``checkpoint``
    (a path or a released checkpoint name, downloaded by laion_clap's URL into its package folder).

    Audio: decoded, mixed to mono, resampled to 48 kHz, quantised to 16 bit as laion_clap does, cut into
    10 s windows by ``bind.io.audio.split_windows`` (shorter clips repeat-padded, at most
    ``preprocess.max_windows`` windows, evenly spread over long clips); each window's embedding is
    l2-normalised and the windows are averaged. Fused checkpoints get laion_clap's fusion features of each
    window. Text: RoBERTa tokens, truncated to CLAP's 77-token limit (``preprocess.max_tokens``).
    """

    def __init__(self, card: EncoderCard, pretrained: bool = True,
                 towers: tuple[nn.Module, nn.Module, Any] | None = None) -> None:
        super().__init__(card)
        if card.modality not in (Modality.AUDIO, Modality.TEXT):
            raise ConfigError(f"{card.name!r}: CLAP embeds audio or text, not {card.modality.value}")
        if card.dim != JOINT_DIM:
            raise ConfigError(f"{card.name!r}: CLAP embeddings are {JOINT_DIM}-d, the card says {card.dim}")
        self.amodel = card.options.get("amodel", "HTSAT-tiny")
        self.enable_fusion = bool(card.options.get("enable_fusion", False))
        self.audio_cfg = audio_config(card)
        self.max_windows = int(card.preprocess.get("max_windows", 8))
        self.max_tokens = int(card.preprocess.get("max_tokens", 77))
        released = RELEASED_CHECKPOINTS.get(card.options.get("checkpoint", ""))
        if released and released != (self.amodel, self.enable_fusion):
            raise ConfigError(f"{card.name!r}: checkpoint {card.options['checkpoint']} is {released[0]} with "
                              f"enable_fusion={released[1]}, the card says {self.amodel} / {self.enable_fusion}")
        branch, projection, tokenizer = towers if towers is not None else self._load(pretrained)
        self.branch, self.projection, self.tokenizer = branch, projection, tokenizer

    def _load(self, pretrained: bool) -> tuple[nn.Module, nn.Module, Any]:
        """The real model, reduced to the card's tower. Without ``pretrained`` it keeps laion_clap's own
        initialisation (random HTSAT and projections; the text tower starts from roberta-base)."""
        card = self.card
        checkpoint = _checkpoint(card) if pretrained else None
        folder = _text_model(card)
        if folder is not None and not _roberta_cached(folder):
            raise WeightsUnavailableError(f"{card.name!r}: options.text_model {folder} does not hold roberta-base "
                                          f"(config.json, vocab.json, merges.txt and model.safetensors or "
                                          f"pytorch_model.bin)")
        if folder is None and hub_offline() and not _roberta_cached():
            raise WeightsUnavailableError(
                f"{card.name!r}: laion_clap builds its text tower with RobertaModel.from_pretrained({TEXT_MODEL!r}) "
                f"and tokenizes with its tokenizer, which are not in the local Hugging Face cache (offline); "
                f"options.text_model can name a local roberta-base folder")
        lib = laion()
        try:
            with _roberta_from(folder):
                model, _ = lib.create_model(self.amodel, "roberta", precision="fp32", device=torch.device("cpu"),
                                            enable_fusion=self.enable_fusion,
                                            fusion_type=FUSION_TYPE if self.enable_fusion else "None")
        except OSError as exc:
            raise WeightsUnavailableError(f"{card.name!r}: cannot load {TEXT_MODEL} for CLAP's text tower: {exc}") from None
        if checkpoint is not None:
            try:
                model.load_state_dict(lib.load_state_dict(str(checkpoint), skip_params=True))
            except (RuntimeError, KeyError) as exc:
                raise ConfigError(f"{card.name!r}: checkpoint {checkpoint} does not fit {self.amodel} "
                                  f"(enable_fusion={self.enable_fusion}): {exc}") from None
        if self.modality == Modality.AUDIO:
            return model.audio_branch, model.audio_projection, None
        tokenizer = self._roberta_tokenizer(model.text_branch.embeddings.word_embeddings.num_embeddings)
        return model.text_branch, model.text_projection, tokenizer

    def _roberta_tokenizer(self, vocab_size: int) -> Any:
        from transformers import RobertaTokenizer

        try:
            tokenizer = RobertaTokenizer.from_pretrained(_text_model(self.card) or TEXT_MODEL)
        except OSError as exc:
            raise WeightsUnavailableError(f"{self.card.name!r}: cannot load the {TEXT_MODEL} tokenizer: {exc}") from None
        if len(tokenizer) != vocab_size:
            raise WeightsUnavailableError(
                f"{self.card.name!r}: the {TEXT_MODEL} tokenizer came back with {len(tokenizer)} tokens, the text "
                f"tower has {vocab_size}; refusing to run a broken tokenizer (is it fully in the HF cache?)")
        return tokenizer

    @classmethod
    def weights_available(cls, card: EncoderCard) -> bool:
        """The checkpoint is a local file (or already downloaded) and roberta-base is in ``options.text_model``
        or the HF cache."""
        name = card.options.get("checkpoint")
        return bool(name) and _local_checkpoint(name) is not None and _roberta_cached(_text_model(card))

    @classmethod
    def tiny(cls, card: EncoderCard) -> "ClapEncoder":
        """Random small towers with the card's contract (48 kHz, 10 s windows, 77 tokens, 512-d), offline.

        Audio: laion_clap's HTSAT Swin transformer at width 8, one block per stage (CLAP's constructor
        hard-codes HTSAT's size per model name, so the tower is built directly), with CLAP's projection
        head. Text: a 1-layer RoBERTa and a byte-level BPE tokenizer trained on six sentences.
        """
        torch.manual_seed(0)
        if card.modality == Modality.AUDIO:
            fusion = bool(card.options.get("enable_fusion", False))
            lib = laion()
            branch = lib.HTSAT(spec_size=256, patch_size=4, patch_stride=(4, 4), num_classes=8, embed_dim=8,
                               depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=8,
                               config=lib.AudioCfg(**{**audio_config(card), "class_num": 8}), enable_fusion=fusion,
                               fusion_type=FUSION_TYPE if fusion else "None")
            return cls(card, towers=(branch, _projection(branch.num_features), None))
        from transformers import RobertaConfig, RobertaModel

        tokenizer = _tiny_tokenizer()
        config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=80, pad_token_id=tokenizer.pad_token_id,
                               bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                               initializer_range=0.5)  # wide init: a 1-layer tower still tells texts apart
        return cls(card, towers=(RobertaModel(config), _projection(config.hidden_size), tokenizer))

    def preprocessor(self) -> AudioPreprocessor | TextPreprocessor:
        if self.modality == Modality.AUDIO:
            rate = self.audio_cfg["sample_rate"]
            return AudioPreprocessor(rate, self.audio_cfg["clip_samples"] / rate, self.max_windows,
                                     float(self.card.preprocess.get("min_seconds", MIN_SECONDS)))
        return TextPreprocessor()

    def collate(self, samples: Sequence[Any]) -> Any:
        if self.modality == Modality.AUDIO:
            return collate_segments(samples)
        return self.tokenizer(list(samples), padding=True, truncation=True, max_length=self.max_tokens,
                              return_tensors="pt")

    def forward(self, batch: Any) -> torch.Tensor:
        if self.modality == Modality.TEXT:  # CLAP.encode_text, roberta branch
            pooled = self.branch(input_ids=self.to_input(batch["input_ids"]),
                                 attention_mask=self.to_input(batch["attention_mask"]))["pooler_output"]
            return self.projection(pooled)
        windows, counts = batch
        features = self.branch(self._audio_features(windows), mixup_lambda=None, device=self.device)["embedding"]
        return pool_segments(F.normalize(self.projection(features), dim=-1), counts)  # CLAP.get_audio_embedding

    def _audio_features(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        """laion_clap's per-clip input dict ("waveform", and "mel_fusion"/"longer" when fused), batched."""
        windows = self.to_input(windows)
        windows = (windows.clamp(-1, 1) * 32767.0).to(torch.int16).to(windows.dtype) / 32767.0  # int16 round trip
        truncating = "fusion" if self.enable_fusion else "rand_trunc"
        per_window = [laion().get_audio_features({}, w, self.audio_cfg["clip_samples"], truncating, "repeatpad",
                                                 self.audio_cfg) for w in windows]
        return {key: torch.stack([d[key] for d in per_window]) for key in per_window[0]}
