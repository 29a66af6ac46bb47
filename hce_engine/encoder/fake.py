"""A tiny deterministic, trainable encoder for fast tests: hashed bag of words -> EmbeddingBag -> linear.

Same interface as :class:`hce_engine.encoder.Encoder`; texts with shared words get similar vectors, so
retrieval, clustering and training behave meaningfully on toy corpora.
"""
from __future__ import annotations

import json
import os
import re
import zlib
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..settings import DEFAULT_MAX_LENGTH
from .base import Cancel, Progress, ProgressFn

_WORD = re.compile(r"[a-z0-9]+")
FAKE_MARKER = "hce_fake_encoder.json"


class FakeEncoder(torch.nn.Module):
    """Hashed bag-of-words encoder.

    Args:
        dim: output dimension.
        buckets: number of hash buckets for words.
        seed: initialises the weights; the same seed gives the same vectors.
        max_length: words kept per text (mirrors the token limit of real encoders).
    """

    def __init__(self, dim: int = 32, buckets: int = 4096, seed: int = 0, max_length: int = DEFAULT_MAX_LENGTH):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.bag = torch.nn.EmbeddingBag(buckets, dim, mode="mean")
        self.proj = torch.nn.Linear(dim, dim)
        with torch.no_grad():
            self.bag.weight.copy_(torch.randn(buckets, dim, generator=g))
            self.proj.weight.copy_(torch.eye(dim) + 0.01 * torch.randn(dim, dim, generator=g))
            self.proj.bias.zero_()
        self.buckets, self.seed, self.max_length = buckets, seed, max_length
        self.name_or_path = f"fake-{dim}d-seed{seed}"
        self.device = torch.device("cpu")

    @property
    def dim(self) -> int:
        return self.proj.out_features

    def _ids(self, texts: Sequence[str], max_length: int):
        flat: list[int] = []
        offsets: list[int] = []
        for t in texts:
            offsets.append(len(flat))
            words = _WORD.findall(t.lower())[:max_length] or ["<empty>"]
            flat.extend(zlib.crc32(w.encode()) % self.buckets for w in words)
        return torch.tensor(flat, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)

    def embed(self, texts: Sequence[str], max_length: int | None = None) -> torch.Tensor:
        ids, offsets = self._ids(texts, max_length or self.max_length)
        return torch.nn.functional.normalize(self.proj(self.bag(ids, offsets)), dim=-1)

    def encode(self, texts: Sequence[str], batch_size: int | None = None, max_length: int | None = None,
               progress: ProgressFn | None = None, cancel: Cancel | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.no_grad():
            for idx in self.batches(texts, batch_size):
                if cancel is not None and cancel():
                    raise InterruptedError("encoding cancelled")
                out[idx] = self.embed([texts[i] for i in idx], max_length).numpy()
                if progress is not None:
                    progress(Progress("encode", int(idx[-1]) + 1, len(texts)))
        return out

    def batches(self, texts: Sequence[str], batch_size: int | None = None,
                max_length: int | None = None) -> list[np.ndarray]:
        """Consecutive runs of ``batch_size`` (default 64) indices in input order: the batches of :meth:`encode`."""
        step = batch_size or 64
        return [np.arange(start, min(start + step, len(texts))) for start in range(0, len(texts), step)]

    def save(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, os.path.join(path, "model.safetensors"))
        with open(os.path.join(path, FAKE_MARKER), "w") as f:
            json.dump({"dim": self.dim, "buckets": self.buckets, "seed": self.seed,
                       "max_length": self.max_length}, f)

    @classmethod
    def load(cls, path: str, device: str = "cpu", max_length: int | None = None) -> "FakeEncoder":
        with open(os.path.join(path, FAKE_MARKER)) as f:
            cfg = json.load(f)
        enc = cls(dim=cfg["dim"], buckets=cfg["buckets"], seed=cfg["seed"],
                  max_length=max_length or cfg["max_length"])
        enc.load_state_dict(load_file(os.path.join(path, "model.safetensors")))
        enc.name_or_path = path
        return enc
