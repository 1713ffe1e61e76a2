"""Registry-driven: every registered expert is built (real weights when here, else its tiny random-weight
instance) and checked on the same contract: shape, unit norm, determinism, order, single == batch."""
from __future__ import annotations

import time

import pytest
import torch
from conftest import make_expert, sample_inputs

import bind

CARDS = [bind.get_card(row.name) for row in bind.list_encoders()]


@pytest.fixture(scope="module", params=CARDS, ids=[card.name for card in CARDS])
def expert(request) -> bind.Encoder:
    return make_expert(request.param)


def test_contract(expert):
    card = expert.card
    items = sample_inputs(card.modality, 3)
    kwargs = {"sample_rate": 16000} if card.modality == bind.Modality.AUDIO else {}
    batch = bind.embed(items, encoder=expert, batch_size=2, **kwargs)
    assert batch.shape == (3, card.dim) and batch.dtype == torch.float32
    assert torch.isfinite(batch).all()
    assert torch.allclose(batch.norm(dim=1), torch.ones(3), atol=1e-4)
    again = bind.embed(items, encoder=expert, batch_size=3, **kwargs)
    assert torch.allclose(batch, again, atol=1e-4), "deterministic and independent of batching"
    alone = torch.stack([bind.embed(item, encoder=expert, **kwargs) for item in items])
    assert alone.shape == (3, card.dim) and torch.allclose(alone, batch, atol=1e-4), "order kept, one == many"
    assert not torch.allclose(batch[0], batch[1], atol=1e-3), "different inputs, different embeddings"


def test_frozen(expert):
    assert not expert.training
    assert all(not p.requires_grad for p in expert.parameters())


def test_card_is_complete(expert):
    card = expert.card
    assert card.licence.strip() and card.weights.strip() and card.description.strip()
    assert expert.dim == card.dim and expert.modality == card.modality


OFFLINE_MISSING = [card for card in CARDS if not bind.weights_available(card)]


@pytest.mark.parametrize("card", OFFLINE_MISSING, ids=[card.name for card in OFFLINE_MISSING])
def test_missing_weights_raise_quickly_instead_of_falling_back(card):
    start = time.monotonic()
    with pytest.raises(bind.WeightsUnavailableError):
        bind.create_encoder(card)
    assert time.monotonic() - start < 20
