"""Read-only views over a workspace for the explorer pages: pure data (JSON-friendly dicts, DataFrames).

Every view takes the :class:`~hce_engine.workspace.Workspace` as its first argument and never plots:

* :func:`siblings_view` - a document's or query's root-to-leaf path and, at every level, the positive node
  against its siblings (scores, ranks, loss terms), optionally under a second run's encoder on the same tree.
* :func:`tree_overview`, :func:`node_detail`, :func:`tree_quality`, :func:`compare_trees` - the hierarchy,
  one node's documents and children, quality statistics per level and rebuild, and how two trees differ.
* :func:`map_frame`, :func:`map_labels`, :func:`place_query` - the 2-D map (computed by
  ``Workspace.projection`` / ``ensure_projection``) and where its node labels go; :func:`map_points` (no texts)
  and :func:`describe_points` (texts of the rows shown) for maps of a million documents.
* :func:`corpus_stats` - document lengths, duplicates, queries and qrels per split.
* :func:`teacher_view` - a self-signal training example: a pseudo-query, the hybrid teacher's scores over its
  source's siblings, the student's before and after training.
* :func:`walkthrough` - the Learn walkthrough's runs, example and texts (``walkthrough.TEXT``).
* :func:`explain` - why a document ranks where it does for a query: tree path, three retrievers, movers.

No Streamlit import here; the page scripts in ``ui/app_pages`` draw what these return.
"""
from __future__ import annotations

import numpy as np

# Re-exported: the view modules import them from here.
from ..arrays import normalise as normalise
from ..arrays import rows_of as rows_of
from ..corpus.text import snippet as snippet
from ..errors import HCEError


# -- helpers shared by the view modules -------------------------------------------------------------
def run_vectors(ws, run_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(doc ids int64 ascending, L2-normalised float32 vectors) of a run's live documents."""
    ids, vecs = ws.vectors(run_id)
    if len(ids) == 0:
        raise HCEError(f"run {run_id} has no document vectors")
    return np.asarray(ids, dtype=np.int64), normalise(vecs)


def label_of(terms, node: int, max_terms: int = 3) -> str:
    from ..tree.labels import node_label
    t = terms[node] if 0 <= node < len(terms) else []
    return node_label(t, max_terms=max_terms, fallback=f"node {node}")


# Public views, imported after the helpers above because the view modules import those from this package
# (hence E402 below).
from .corpus_stats import corpus_stats  # noqa: E402
from .explain import explain  # noqa: E402
from .map import (  # noqa: E402
    MAX_DRAWN,
    default_level,
    describe_points,
    level_sizes,
    map_frame,
    map_labels,
    map_points,
    place_query,
    select_region,
    selection_file,
    thin_for_display,
)
from .siblings import (  # noqa: E402
    default_compare_run,
    doc_queries,
    find_documents,
    judged_queries,
    pseudo_queries,
    siblings_view,
)
from .teacher import teacher_view  # noqa: E402
from .tree_compare import compare_trees, list_rebuilds, node_detail, tree_overview, tree_quality  # noqa: E402
from .walkthrough import walkthrough  # noqa: E402

__all__ = ["explain", "walkthrough", "siblings_view", "teacher_view", "doc_queries", "find_documents", "judged_queries",
           "pseudo_queries",
           "default_compare_run",
           "compare_trees", "tree_overview", "node_detail", "tree_quality", "list_rebuilds",
           "map_frame", "map_points", "describe_points", "level_sizes", "map_labels", "thin_for_display",
           "select_region", "selection_file", "place_query", "corpus_stats", "MAX_DRAWN",
           "default_level"]
