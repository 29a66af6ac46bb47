"""Document hierarchy: spherical k-means, agglomerative and divisive builders, updates, labels, statistics.

``kmeans``, ``builders`` and ``quality`` need only numpy and torch; ``labels`` imports scikit-learn lazily.
"""
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
from .labels import node_label, node_terms, representative_docs
from .quality import leaf_fit, tree_stats
from .tree import Tree

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
