"""sentence-transformers: any model name or local path as a text expert (MiniLM ships offline)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from ...errors import WeightsUnavailableError
from ...io.text import TextPreprocessor
from ..cards import EncoderCard
from ..encoder import Encoder
from .locate import package_installed, packaged_path


def _model_source(card: EncoderCard) -> str:
    """A local path (from the package named in ``options.package_path``) or the card's model id."""
    locator = card.options.get("package_path")
    return str(packaged_path(locator)) if locator else card.model_id


class SentenceTransformerEncoder(Encoder):
    """Text through a SentenceTransformer; inputs longer than its ``max_seq_length`` tokens are truncated."""

    def __init__(self, card: EncoderCard, pretrained: bool = True, model: Any = None) -> None:
        super().__init__(card)
        from sentence_transformers import SentenceTransformer

        if model is None:
            source = _model_source(card)
            if not pretrained:
                model = _random_init(source)
            else:
                try:
                    model = SentenceTransformer(source, device="cpu")
                except OSError as exc:
                    raise WeightsUnavailableError(
                        f"cannot load sentence-transformers model {source!r} for {card.name!r}: {exc}") from None
        if "max_seq_length" in card.preprocess:
            model.max_seq_length = int(card.preprocess["max_seq_length"])
        self.model = model
        dim = model.get_embedding_dimension()
        if dim != card.dim:
            raise WeightsUnavailableError(f"{card.name!r}: the model gives {dim}-d embeddings, card says {card.dim}")
        self.prefix = card.preprocess.get("prefix", "")

    @classmethod
    def weights_available(cls, card: EncoderCard) -> bool:
        locator = card.options.get("package_path")
        if locator:
            return package_installed(locator)
        return Path(card.model_id).is_dir()

    @classmethod
    def card_from_spec(cls, spec: str) -> EncoderCard:
        """``sentence_transformers:NAME_OR_PATH``; the dimension is read from the model's config."""
        from sentence_transformers import SentenceTransformer

        try:
            dim = SentenceTransformer(spec, device="cpu").get_embedding_dimension()
        except OSError as exc:
            raise WeightsUnavailableError(f"cannot load sentence-transformers model {spec!r}: {exc}") from None
        return EncoderCard(name=f"sentence_transformers.{spec}", modality="text", dim=int(dim),
                           backend="sentence_transformers", model_id=spec, licence="see the model's card",
                           weights=spec)

    @classmethod
    def tiny(cls, card: EncoderCard) -> "SentenceTransformerEncoder":
        """A 1-layer random BERT + mean pooling + dense to ``card.dim``, built offline."""
        from sentence_transformers import SentenceTransformer, models
        from transformers import BertConfig, BertModel, BertTokenizerFast

        folder = Path(tempfile.mkdtemp(prefix="bind-tiny-st-"))
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(97, 123)] + ["##" + chr(c) for c in range(97, 123)]
        (folder / "vocab.txt").write_text("\n".join(vocab))
        BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
        torch.manual_seed(0)
        BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=64)).save_pretrained(folder)
        word = models.Transformer(str(folder), max_seq_length=32)
        pooling = models.Pooling(32, pooling_mode="mean")
        dense = models.Dense(32, card.dim)
        return cls(card, model=SentenceTransformer(modules=[word, pooling, dense], device="cpu"))

    def preprocessor(self) -> TextPreprocessor:
        return TextPreprocessor()

    def collate(self, samples: Sequence[str]) -> dict[str, Any]:
        return self.model.preprocess([self.prefix + s for s in samples])

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        features = {k: self.to_input(v) if isinstance(v, torch.Tensor) and not v.is_floating_point() else v
                    for k, v in batch.items()}
        return self.model(features)["sentence_embedding"]


def _random_init(source: str) -> Any:
    """The model's architecture from its local config, with freshly initialised weights."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(source, device="cpu")
    for module in model.modules():
        if hasattr(module, "reset_parameters") and module is not model:
            module.reset_parameters()
    return model
