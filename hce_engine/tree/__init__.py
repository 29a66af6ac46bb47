"""Document hierarchy: spherical k-means, agglomerative and divisive builders, updates, labels, statistics.

``kmeans``, ``builders`` and ``quality`` need only numpy and torch; ``labels`` imports scikit-learn lazily. The
builders, k-means and statistics are imported on first use (they import torch, seconds at a cold start), so reading
a stored :class:`Tree` (the Map page's first view) does not wait for torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .labels import node_label, node_terms, representative_docs
from .tree import Tree

if TYPE_CHECKING:
    from .builders import (
        DIVISIVE_THRESHOLD,
        add_documents,
        build_agglomerative,
        build_divisive,
        build_tree,
        place_documents,
        remove_documents,
        subtree_docs,
    )
    from .kmeans import spherical_kmeans
    from .quality import leaf_fit, tree_stats

_LAZY = {**dict.fromkeys(["DIVISIVE_THRESHOLD", "add_documents", "build_agglomerative", "build_divisive",
                          "build_tree", "place_documents", "remove_documents", "subtree_docs"], "builders"),
         "spherical_kmeans": "kmeans", "leaf_fit": "quality", "tree_stats": "quality"}


def __getattr__(name: str) -> Any:
    """The torch-backed names, imported from their module on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DIVISIVE_THRESHOLD",
    "Tree",
    "add_documents",
    "build_agglomerative",
    "build_divisive",
    "build_tree",
    "leaf_fit",
    "node_label",
    "node_terms",
    "place_documents",
    "remove_documents",
    "representative_docs",
    "spherical_kmeans",
    "subtree_docs",
    "tree_stats",
]
