"""Search indexes: dense FAISS vector index, BM25 lexical index, and their fusion (``fusion``, numpy only).

The index classes are imported on first use, so ``hce_engine.index.fusion`` loads without faiss or bm25s.
"""
from __future__ import annotations

import importlib

_LAZY = {"VectorIndex": "vector_index", "APPROX_THRESHOLD": "vector_index", "BLAS_THRESHOLD": "vector_index",
         "BM25Index": "bm25"}
__all__ = ["VectorIndex", "BM25Index", "APPROX_THRESHOLD", "BLAS_THRESHOLD"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
