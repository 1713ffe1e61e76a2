"""FeatureCache: hits equal fresh features, resume after an interrupt or a hard kill, corrupt shards, invalidation."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import torch

import bind
from bind.experts.cache import FeatureCache, content_hash
from bind.io.text import TextPreprocessor

CARD = bind.EncoderCard(name="counting.text", modality="text", dim=8, backend="counting_text", model_id="none",
                        licence="MIT", weights="none: features are a seeded function of the text",
                        preprocess={"lowercase": False})
TEXTS = [f"sentence number {i}" for i in range(20)]


class CountingText(bind.Encoder):
    """A tiny text expert whose features are a seeded function of the text; counts the items it encodes.

    ``interrupt_after`` raises KeyboardInterrupt on the batch after that many; ``exit_after`` ends the
    process on the spot (os._exit: no cleanup runs, like a kill).
    """

    def __init__(self, card: bind.EncoderCard = CARD, pretrained: bool = True, *, scale: float = 1.0,
                 interrupt_after: int | None = None, exit_after: int | None = None) -> None:
        super().__init__(card)
        self.register_buffer("scale", torch.tensor(scale))
        self.interrupt_after, self.exit_after = interrupt_after, exit_after
        self.batches = self.items = 0

    def preprocessor(self) -> TextPreprocessor:
        return TextPreprocessor()

    def collate(self, samples: Sequence[str]) -> list[str]:
        return list(samples)

    def forward(self, batch: list[str]) -> torch.Tensor:
        if self.exit_after is not None and self.batches >= self.exit_after:
            os._exit(3)
        if self.interrupt_after is not None and self.batches >= self.interrupt_after:
            raise KeyboardInterrupt
        self.batches += 1
        self.items += len(batch)
        return torch.stack([self.scale * features(text) for text in batch])


def features(text: str) -> torch.Tensor:
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    return torch.randn(CARD.dim, generator=torch.Generator().manual_seed(seed))


def expected(texts: Sequence[str]) -> torch.Tensor:
    return torch.stack([features(t) for t in texts])


def shards(cache: FeatureCache, encoder: bind.Encoder) -> list[Path]:
    return sorted((cache.folder(encoder) / "shards").glob("*.safetensors"))


def test_real_expert_cached_equals_fresh_and_second_run_reads_disk(tmp_path, minilm):
    texts = ["a cat on a mat", "a red truck", "rain on a window", "a cat on a mat", "an old clock"]
    cache = FeatureCache(tmp_path, flush_every=2)
    first = cache.embed(texts, minilm, batch_size=2, progress=False)
    fresh = bind.embed(texts, encoder=minilm, normalize=False)
    assert first.shape == (5, 384) and torch.allclose(first, fresh, atol=1e-5)
    assert cache.stats().misses == 4 and torch.equal(first[0], first[3])  # the repeat is computed once
    second = FeatureCache(tmp_path).embed(texts, "minilm-l6.text", progress=False)
    assert torch.equal(first, second)
    assert len(shards(cache, minilm)) == 2  # 4 rows, flushed every 2


def test_second_run_computes_nothing_and_keeps_input_order(tmp_path, capsys):
    cache = FeatureCache(tmp_path, flush_every=4)
    encoder = CountingText()
    out = cache.embed(TEXTS, encoder, batch_size=3, progress=True)
    assert torch.equal(out, expected(TEXTS)) and encoder.items == 20
    assert "cache counting.text" in capsys.readouterr().err  # the progress bar, asked for
    shuffled = TEXTS[::-1] + TEXTS[:2]
    again = cache.embed(shuffled, encoder, batch_size=3, progress=False)
    assert torch.equal(again, expected(shuffled)) and encoder.items == 20
    assert (cache.stats().hits, cache.stats().misses) == (22, 20)
    assert [len(bind_shard_rows(p)) for p in shards(cache, encoder)] == [4, 4, 4, 4, 4]


def test_no_progress_bar_by_default_as_in_bind_embed(tmp_path, capsys):
    out = FeatureCache(tmp_path).embed(TEXTS[:5], CountingText(), batch_size=2)
    assert torch.equal(out, expected(TEXTS[:5]))
    assert "cache counting.text" not in capsys.readouterr().err


def bind_shard_rows(path: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(path)["features"]


def test_interrupt_keeps_finished_work_and_resume_computes_the_rest(tmp_path):
    cache = FeatureCache(tmp_path, flush_every=4)
    with pytest.raises(KeyboardInterrupt):
        cache.embed(TEXTS, CountingText(interrupt_after=3), batch_size=2, progress=False)
    # batches 1-2 filled and flushed the first 4-item chunk; the interrupt came inside the second chunk
    resumed = CountingText()
    out = cache.embed(TEXTS, resumed, batch_size=2, progress=False)
    assert resumed.items == 16 and torch.equal(out, expected(TEXTS))


def test_hard_kill_leaves_a_consistent_cache(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_cache import TEXTS, CountingText
        from bind.experts.cache import FeatureCache
        FeatureCache({str(tmp_path)!r}, flush_every=4).embed(TEXTS, CountingText(exit_after=5), batch_size=2,
                                                           progress=False)
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    resumed, cache = CountingText(), FeatureCache(tmp_path, flush_every=4)
    assert len(shards(cache, resumed)) == 2  # 8 items flushed before the kill, the next 2 lost
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every indexed shard must pass its checksum
        out = cache.embed(TEXTS, resumed, batch_size=2, progress=False)
    assert resumed.items == 12 and torch.equal(out, expected(TEXTS))


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_corrupt_shard_is_detected_and_recomputed(tmp_path, damage):
    cache = FeatureCache(tmp_path, flush_every=8)
    encoder = CountingText()
    first = cache.embed(TEXTS, encoder, batch_size=4, progress=False)
    victim = shards(cache, encoder)[0]
    rows = len(bind_shard_rows(victim))
    data = bytearray(victim.read_bytes())
    if damage == "flip":
        data[-6:] = bytes(b ^ 0xFF for b in data[-6:])
        victim.write_bytes(bytes(data))
    elif damage == "truncate":
        victim.write_bytes(bytes(data[: len(data) // 2]))
    else:
        victim.unlink()
    again = CountingText()
    with pytest.warns(RuntimeWarning, match="entries are dropped and will be recomputed"):
        second = cache.embed(TEXTS, again, batch_size=4, progress=False)
    assert again.items == rows and torch.equal(second, first) and cache.stats().corrupt_shards == 1
    third = CountingText()
    assert torch.equal(cache.embed(TEXTS, third, progress=False), first) and third.items == 0


def test_changed_preprocessing_weights_or_version_invalidate(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)
    cache.embed(TEXTS[:3], CountingText(), progress=False)
    for changed in (CountingText(CARD.replace(preprocess={"lowercase": True})),
                    CountingText(CARD.replace(options={"pooling": "max"})),
                    CountingText(scale=2.0)):
        cache.embed(TEXTS[:3], changed, progress=False)
        assert changed.items == 3
    monkeypatch.setattr(bind, "__version__", "99.0")
    newer = CountingText()
    cache.embed(TEXTS[:3], newer, progress=False)
    assert newer.items == 3
    assert len(list((tmp_path / "counting.text").iterdir())) == 5


def test_bad_items_raise_with_their_position_or_are_skipped(tmp_path):
    cache = FeatureCache(tmp_path)
    items = ["good one", "", "good two", ""]
    encoder = CountingText()
    with pytest.raises(bind.InputError, match="item 1 '': empty text"):
        cache.embed(items, encoder, progress=False)
    assert encoder.items == 2  # the good rows of that chunk were still computed and stored
    result = cache.embed(items, encoder, on_error="skip", progress=False)
    assert result.indices == [0, 2] and [e.index for e in result.failures] == [1, 3]
    assert torch.equal(result.embeddings, expected(["good one", "good two"])) and encoder.items == 2
    with pytest.raises(bind.InputError, match="item 0 .*cannot read file"):
        cache.embed([tmp_path / "missing.txt"], encoder, progress=False)


def test_registered_name_clear_and_stats(tmp_path):
    bind.register_encoder(CARD, backend=CountingText, overwrite=True)
    try:
        cache = FeatureCache(tmp_path)
        out = cache.embed(TEXTS[:4], "counting.text", progress=False)
        assert torch.equal(out, expected(TEXTS[:4])) and cache.stats().misses == 4
        cache.embed(TEXTS[:4], "counting.text", progress=False)
        assert cache.stats().hits == 4
        cache.clear("counting.text")
        assert not (tmp_path / "counting.text").exists()
        cache.embed(TEXTS[:1], "counting.text", progress=False)
        cache.clear()
        assert list(tmp_path.iterdir()) == [] and cache.stats().misses == 5
    finally:
        bind.unregister_encoder("counting.text")


def test_content_hash(tmp_path):
    text = bind.Modality.TEXT
    (tmp_path / "a.bin").write_bytes(b"same bytes")
    (tmp_path / "b.bin").write_bytes(b"same bytes")
    image = bind.Modality.IMAGE
    assert content_hash(tmp_path / "a.bin", image) == content_hash(str(tmp_path / "b.bin"), image) \
        == content_hash(b"same bytes", image)
    assert content_hash("same bytes", text) != content_hash(b"same bytes", text)
    array = np.arange(6, dtype=np.float32)
    assert content_hash(array, image) == content_hash(torch.from_numpy(array), image)
    assert len({content_hash(a, image) for a in (array, array.reshape(2, 3), array.astype(np.float64))}) == 3
    with pytest.raises(bind.InputError, match="cannot cache an input of type"):
        content_hash(object(), image)
