"""Read-only views over a workspace for the explorer pages: pure data (JSON-friendly dicts, DataFrames).

Every view takes the :class:`~hce_engine.workspace.Workspace` as its first argument and never plots:

* :func:`siblings_view` - a document's or query's root-to-leaf path and, at every level, the positive node
  against its siblings (scores, ranks, loss terms), optionally under a second run's encoder on the same tree.
* :func:`tree_overview`, :func:`node_detail`, :func:`tree_quality`, :func:`compare_trees` - the hierarchy,
  one node's documents and children, quality statistics per level and rebuild, and how two trees differ.
* :func:`projection`, :func:`ensure_projection`, :func:`map_frame`, :func:`map_labels`, :func:`place_query` -
  the 2-D map and where its node labels go.
* :func:`corpus_stats` - document lengths, duplicates, queries and qrels per split.
* :func:`walkthrough` - the Learn walkthrough's runs, example and texts (``walkthrough.TEXT``).
* :func:`explain` - why a document ranks where it does for a query: tree path, three retrievers, movers.

No Streamlit import here; the page scripts in ``ui/pages`` draw what these return.
"""
from __future__ import annotations

import numpy as np

from ..errors import HCEError, InputError


# -- helpers shared by the view modules -------------------------------------------------------------
def finished_run(ws, run_id: int) -> dict:
    """The run's record; raises a readable HCEError unless it is finished (vectors and tree complete)."""
    info = ws.store.get_run(int(run_id))
    if info["status"] != "done":
        raise HCEError(f"run {run_id} is {info['status']}; only finished runs can be explored")
    return info


def same_corpus(a: dict, b: dict) -> None:
    if a["corpus_id"] != b["corpus_id"]:
        raise InputError(f"run {b['run_id']} belongs to corpus {b['corpus']!r}, run {a['run_id']} to "
                         f"{a['corpus']!r}; compare runs of the same corpus")


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def run_vectors(ws, run_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(doc ids int64 ascending, L2-normalised float32 vectors) of a run's live documents."""
    reader = getattr(ws, "vectors", None)  # a cached Workspace.vectors(run_id), when the workspace has one
    if callable(reader):
        ids, vecs = reader(run_id)
    else:
        info = ws.store.get_run(run_id)
        ids, vecs = ws.store.read_vectors(run_id, live_only_corpus=info["corpus_id"])
    if len(ids) == 0:
        raise HCEError(f"run {run_id} has no document vectors")
    return np.asarray(ids, dtype=np.int64), normalise(vecs)


def rows_of(ids: np.ndarray, wanted) -> np.ndarray:
    """Row index of each wanted id in the ascending ``ids`` (-1 where absent)."""
    wanted = np.asarray(wanted, dtype=np.int64).reshape(-1)
    if len(ids) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    i = np.clip(np.searchsorted(ids, wanted), 0, len(ids) - 1)
    return np.where(ids[i] == wanted, i, -1).astype(np.int64)


def query_max_length(info: dict) -> int:
    cfg = info["config"]
    if info["kind"] == "train":
        return int(cfg.get("query_max_length", 64))
    return int(cfg.get("max_length", 256))


def encode_queries(ws, info: dict, texts) -> np.ndarray:
    """L2-normalised query vectors under the run's encoder (same settings as the workspace's search)."""
    cfg = info["config"]
    enc = ws.encoder(info.get("model_path") or cfg.get("model"), cfg.get("device", "auto"),
                     cfg.get("max_length", 256))
    return normalise(enc.encode(list(texts), max_length=query_max_length(info)))


def label_of(terms, node: int, max_terms: int = 3) -> str:
    from ..tree.labels import node_label
    t = terms[node] if 0 <= node < len(terms) else []
    return node_label(t, max_terms=max_terms, fallback=f"node {node}")


def snippet(text: str, limit: int = 200) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


# Public views (imported after the helpers above, which the view modules use).
from .corpus_stats import corpus_stats  # noqa: E402
from .explain import explain  # noqa: E402
from .map import (ensure_projection, map_frame, map_labels, place_query, projection, projection_status,  # noqa: E402
                  MAX_DRAWN, select_region, thin_for_display)
from .siblings import (default_compare_run, doc_queries, find_documents, judged_queries,  # noqa: E402
                       siblings_view)
from .tree_compare import compare_trees, list_rebuilds, node_detail, tree_overview, tree_quality  # noqa: E402
from .walkthrough import walkthrough  # noqa: E402

__all__ = ["explain", "walkthrough", "siblings_view", "doc_queries", "find_documents", "judged_queries", "default_compare_run",
           "compare_trees", "tree_overview", "node_detail", "tree_quality", "list_rebuilds",
           "projection", "ensure_projection", "projection_status", "map_frame", "map_labels", "thin_for_display", "select_region", "place_query", "corpus_stats"]
