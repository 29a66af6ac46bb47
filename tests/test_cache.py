"""WorkspaceCache: built once, dropped or updated in place by the events that change the store."""
from __future__ import annotations

import numpy as np

from hce_engine.workspace.cache import WorkspaceCache


class Recorder:
    """Stands in for a vector index: records the ids added and removed."""

    def __init__(self):
        self.added, self.removed = [], []

    def add(self, ids, vecs):
        self.added += list(ids)

    def remove(self, ids):
        self.removed += list(ids)


def test_get_builds_once_and_keeps_the_newest_vectors():
    cache, calls = WorkspaceCache(vector_runs=2), []
    for _ in range(2):
        assert cache.get("tree", 1, lambda: calls.append(1) or "t1") == "t1"
    assert calls == [1]
    for run in (1, 2, 3):
        cache.get("vectors", run, lambda: run)
    assert cache.peek("vectors", 1) is None and cache.peek("vectors", 3) == 3  # the oldest run went first


def test_events_drop_what_they_change():
    cache = WorkspaceCache()
    for kind in ("index", "tree", "fusion_weight", "vectors"):
        cache.put(kind, 1, kind)
        cache.put(kind, 2, kind)
    cache.put("bm25", 10, "bm25")
    cache.tree_written(1)
    assert cache.peek("tree", 1) is None and cache.peek("index", 1) == "index"
    cache.judgements_changed()
    assert cache.count("fusion_weight") == 0
    cache.run_deleted(1)
    assert all(cache.peek(k, 1) is None for k in ("index", "vectors")) and cache.peek("index", 2) == "index"
    cache.corpus_deleted(10, [2])
    assert cache.count("bm25") == cache.count("index") == cache.count("vectors") == 0


def test_document_changes_update_indexes_in_place():
    cache, index = WorkspaceCache(), Recorder()
    cache.put("index", 1, index)
    cache.put("vectors", 1, "stale")
    cache.put("tree", 1, "old tree")
    cache.put("bm25", 7, "stale")
    ids = np.array([5, 6])
    cache.documents_added(7, ids, {1: np.zeros((2, 4), np.float32)}, trees={})
    assert index.added == [5, 6] and cache.peek("tree", 1) is None  # no grown tree given: read again
    assert cache.peek("vectors", 1) is None and cache.peek("bm25", 7) is None
    cache.documents_removed(7, np.array([5]), [1], trees={1: ("pruned", [], [])})
    assert index.removed == [5] and cache.peek("tree", 1) == ("pruned", [], [])
