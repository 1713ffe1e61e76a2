"""One module per wrapped library; each defines an Encoder subclass named in ``bind.registry``.

Backend contract (beyond ``bind.Encoder``):
- ``__init__(card, pretrained=True)``: real weights, or the same architecture with random weights;
  raises WeightsUnavailableError when real weights cannot be had (no silent fallback).
- ``weights_available(card) -> bool`` (classmethod): can real weights load here without a network?
- ``tiny(card) -> Encoder`` (classmethod): a tiny random-weight instance with the card's dim and
  preprocessing contract, built offline, used by the registry-driven tests.
- optional ``card_from_spec(spec) -> EncoderCard`` (classmethod): cards for ``"backend:spec"`` names.
"""
