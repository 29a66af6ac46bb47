"""The interface every text encoder in the engine satisfies (real MiniLM or the test fake)."""
from __future__ import annotations

from typing import Callable, Iterable, Protocol, Sequence

import numpy as np
import torch

# Re-exported for the encoder modules.
from ..progress import Progress as Progress
from ..progress import ProgressFn as ProgressFn

Cancel = Callable[[], bool]


class TextEncoder(Protocol):
    """A trainable text encoder; queries and documents share it.

    ``encode`` is for inference (no grad, numpy out); ``embed`` is for training (grad, torch out).
    Both return L2-normalised rows in input order.
    """

    name_or_path: str
    max_length: int
    device: torch.device

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int | None = None, max_length: int | None = None,
               progress: ProgressFn | None = None, cancel: Cancel | None = None) -> np.ndarray:
        """float32 (n, dim), normalised, no gradient; reports ``Progress("encode", done, n)`` per batch."""

    def batches(self, texts: Sequence[str], batch_size: int | None = None,
                max_length: int | None = None) -> list[np.ndarray]:
        """The batches ``encode`` runs, in order: int64 index arrays into ``texts``. Encoding the texts of a
        contiguous run of them, in this order, runs exactly those batches again."""

    def embed(self, texts: Sequence[str], max_length: int | None = None) -> torch.Tensor:
        """float32 tensor (n, dim) on ``device``, normalised, with gradient."""

    def parameters(self) -> Iterable[torch.nn.Parameter]: ...

    def train(self, mode: bool = True) -> "TextEncoder": ...

    def eval(self) -> "TextEncoder": ...

    def save(self, path: str) -> None:
        """Write a folder that ``load_encoder(path)`` (and, for real models, sentence-transformers) loads."""
