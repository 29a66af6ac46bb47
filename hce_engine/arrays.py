"""Small numpy helpers shared by the workspace and the views."""
from __future__ import annotations

import numpy as np


def rows_of(ids: np.ndarray, wanted) -> np.ndarray:
    """Row index of each wanted id in the ascending ``ids`` (-1 where absent)."""
    wanted = np.asarray(wanted, dtype=np.int64).reshape(-1)
    if len(ids) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    i = np.clip(np.searchsorted(ids, wanted), 0, len(ids) - 1)
    return np.where(ids[i] == wanted, i, -1).astype(np.int64)


def normalise(x: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
