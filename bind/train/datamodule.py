"""``PairedFeatures``: paired items -> cached frozen-expert features -> train/val/test tensors."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from .. import data as datasets
from ..data import PairManifest, assign_splits
from ..errors import ConfigError
from ..experts.cache import FeatureCache
from ..experts.registry import create_encoder, get_card

FORMATS = {"manifest": datasets.load_manifest, "folder": datasets.folder_with_captions,
           "audiocaps": datasets.audiocaps, "clotho": datasets.clotho, "esc50": datasets.esc50,
           "karpathy": datasets.karpathy, "msrvtt": datasets.msrvtt, "modelnet40": datasets.modelnet40}
SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class Split:
    source: torch.Tensor
    target: torch.Tensor


class PairedFeatures(L.LightningDataModule):
    """Pairs from a dataset, embedded once by two frozen experts and kept in a feature cache.

    ``dataset``: ``{"format": NAME, ...loader arguments}`` with NAME one of ``FORMATS`` (e.g.
    ``{"format": "manifest", "path": "pairs.csv"}``). Pairs without a split get a deterministic one
    (``split_fractions``, ``seed``). ``source_encoder`` embeds ``source_field`` of each pair and
    ``target_encoder`` (the anchor) its ``target_field``. For binding without paired data (C-MCR),
    both fields are the caption and ``test_source_encoder`` embeds the test pairs' ``source`` (e.g. audio
    through CLAP's audio tower) so the test split measures the modality the projector was never trained on.
    ``tiny_experts`` swaps every expert for its tiny random-weight stand-in (smoke tests only).
    """

    def __init__(self, dataset: dict[str, Any], source_encoder: str, target_encoder: str,
                 source_field: str = "source", target_field: str = "target",
                 test_source_encoder: str | None = None, cache_dir: str = "~/.cache/bind/features",
                 batch_size: int = 256, split_fractions: dict[str, float] | None = None, seed: int = 0,
                 extract_batch_size: int = 32, tiny_experts: bool = False) -> None:
        super().__init__()
        if dataset.get("format") not in FORMATS:
            raise ConfigError(f"dataset.format must be one of {sorted(FORMATS)}, got {dataset.get('format')!r}")
        for field in (source_field, target_field):
            if field not in ("source", "target"):
                raise ConfigError(f"fields are 'source' or 'target', got {field!r}")
        self.save_hyperparameters()
        self.splits: dict[str, Split] = {}
        self._encoders: dict[str, Any] = {}

    @property
    def source_dim(self) -> int:
        return get_card(self.hparams.source_encoder).dim

    @property
    def target_dim(self) -> int:
        return get_card(self.hparams.target_encoder).dim

    def manifest(self) -> PairManifest:
        """The dataset's pairs, each with a split."""
        spec = dict(self.hparams.dataset)
        pairs = FORMATS[spec.pop("format")](**spec)
        if any(p.meta.get("split") not in SPLITS for p in pairs):
            pairs = assign_splits(pairs, self.hparams.split_fractions or datasets.splits.DEFAULT_FRACTIONS,
                                  seed=self.hparams.seed)
        return pairs

    def _encoder(self, name: str) -> Any:
        if name not in self._encoders:
            self._encoders[name] = create_encoder(name, tiny=self.hparams.tiny_experts)
        return self._encoders[name]

    def _features(self, items: list[Any], encoder: str) -> torch.Tensor:
        cache = FeatureCache(Path(self.hparams.cache_dir).expanduser())
        return cache.embed(items, self._encoder(encoder), batch_size=self.hparams.extract_batch_size, progress=True)

    def _columns(self, split: str) -> list[tuple[str, str]]:
        """(field, encoder) of the source and target side of a split."""
        hp = self.hparams
        source = ("source", hp.test_source_encoder) if split == "test" and hp.test_source_encoder \
            else (hp.source_field, hp.source_encoder)
        return [source, (hp.target_field, hp.target_encoder)]

    def prepare_data(self) -> None:
        """Extract and cache every feature once (rank 0); later runs read them back."""
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        pairs = self.manifest()
        for split in SPLITS:
            part = pairs.split(split)
            if not len(part):
                continue
            (sf, se), (tf, te) = self._columns(split)
            source = self._features([getattr(p, sf) for p in part], se)
            target = self._features([getattr(p, tf) for p in part], te)
            self.splits[split] = Split(F.normalize(source.float(), dim=-1), F.normalize(target.float(), dim=-1))
        if "train" not in self.splits:
            raise ConfigError("the dataset has no training pairs")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.splits:
            return []  # type: ignore[return-value]  # Lightning skips an empty loader
        part = self.splits[split]
        batch_size = min(self.hparams.batch_size, len(part.source))
        return DataLoader(TensorDataset(part.source, part.target), batch_size=batch_size, shuffle=shuffle,
                          drop_last=shuffle and len(part.source) > batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
