"""What a workspace keeps in memory between calls, and the events that drop or update it.

Everything here is derived from the store (or from model folders) and can be rebuilt from it; the store stays the
truth. One lock guards every map, so searches from the app's threads and a background job see one state.

Per run: ``index`` (the vector index), ``tree`` (the :class:`~hce_engine.runs.RunTree` of its latest tree),
``tree_shape`` (the same without centroids, for maps), ``map`` (its stored 2-D map over the tree's documents),
``tree_index`` ((the Tree it was built from, TreeIndex)), ``fusion_weight`` (hybrid dense weight) and ``vectors``
((ids, float32 vectors), the last ``VECTOR_CACHE_RUNS`` runs only). Per corpus: ``bm25``. Per (model folder,
device, max length): ``encoder``. Per speed probe: ``speed`` (seconds per sequence, for estimates). Per (corpus,
settings): ``estimate`` (the stages announced before a run, for its clock). Per (run,
query text): ``query`` (the query's vector; interactive queries only, the last ``QUERY_CACHE`` of them), so a page
rerun or a search followed by its tree route encodes the query once. Per (run, split, judgements, live
documents): ``per_query`` (an experiment's per-query metrics of a run; the last ``PER_QUERY_CACHE``).

Example::

    cache = WorkspaceCache()
    tree = cache.get("tree", run_id, lambda: RunTree(*store.read_tree(run_id)))
    cache.tree_written(run_id)                       # a rebuild: the next get reads it again
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable, TypeVar

from .shared import VECTOR_CACHE_RUNS

if TYPE_CHECKING:
    from ..runs import RunTree

T = TypeVar("T")
PER_RUN = ("index", "tree", "tree_shape", "map", "tree_index", "fusion_weight", "vectors")
KINDS = PER_RUN + ("bm25", "encoder", "speed", "estimate", "query", "per_query")
QUERY_CACHE = 256  # query vectors kept (insertion-ordered: the oldest goes first)
PER_QUERY_CACHE = 64  # runs' per-query metrics kept


class WorkspaceCache:
    """Maps of derived state (see the module docstring), with get-or-build and invalidation by event."""

    def __init__(self, vector_runs: int = VECTOR_CACHE_RUNS):
        self.lock = threading.RLock()
        self.vector_runs = vector_runs
        self._maps: dict[str, dict] = {kind: {} for kind in KINDS}

    # -- access ----------------------------------------------------------------------------------
    def get(self, kind: str, key, build: Callable[[], T]) -> T:
        """The cached value, built (under the lock) on first use."""
        with self.lock:
            m = self._maps[kind]
            if key not in m:
                m[key] = build()
                limit = {"vectors": self.vector_runs, "query": QUERY_CACHE, "per_query": PER_QUERY_CACHE}.get(kind)
                while limit is not None and len(m) > limit:  # insertion-ordered: the oldest goes first
                    m.pop(next(iter(m)))
            return m[key]

    def peek(self, kind: str, key) -> Any | None:
        """The cached value, or None (never builds)."""
        with self.lock:
            return self._maps[kind].get(key)

    def put(self, kind: str, key, value) -> None:
        with self.lock:
            self._maps[kind][key] = value

    def drop(self, kind: str, key) -> None:
        with self.lock:
            self._maps[kind].pop(key, None)

    def count(self, kind: str) -> int:
        """Entries cached of one kind."""
        with self.lock:
            return len(self._maps[kind])

    # -- events ----------------------------------------------------------------------------------
    def run_deleted(self, run_id: int) -> None:
        """A run and everything it owned are gone."""
        with self.lock:
            for kind in PER_RUN:
                self._maps[kind].pop(run_id, None)
            for key in [k for k in self._maps["query"] if k[0] == run_id]:
                del self._maps["query"][key]

    def corpus_deleted(self, corpus_id: int, run_ids: Iterable[int]) -> None:
        with self.lock:
            self._maps["bm25"].pop(corpus_id, None)
            for run_id in run_ids:
                self.run_deleted(run_id)

    def tree_written(self, run_id: int) -> None:
        """A run's tree was (re)built: read it again; its tree index is rebuilt on next use."""
        with self.lock:
            self._maps["tree"].pop(run_id, None)
            self._drop_map_views(run_id)

    def _drop_map_views(self, run_id: int) -> None:
        """The run's tree or documents changed: its centroid-free tree and its stored map are read again (the map
        may no longer cover every document). Call holding the lock."""
        self._maps["tree_shape"].pop(run_id, None)
        self._maps["map"].pop(run_id, None)

    def judgements_changed(self) -> None:
        """Queries or qrels were added: hybrid weights may now be fitted on other judgements."""
        with self.lock:
            self._maps["fusion_weight"].clear()

    def encoder_saved(self, key: tuple) -> None:
        """A model folder was (re)written: load it again next time."""
        self.drop("encoder", key)

    def documents_added(self, corpus_id: int, ids, vectors: dict[int, Any], trees: dict[int, RunTree]) -> None:
        """Documents ``ids`` joined the corpus (committed). ``vectors``: {run: (n, d) vectors}; ``trees``: {run:
        RunTree with the grown Tree} for the runs with a tree. Cached indexes are updated in place."""
        with self.lock:
            for run_id, vecs in vectors.items():
                index = self._maps["index"].get(run_id)
                if index is not None:
                    index.add(ids, vecs)
                tree_index = self._maps["tree_index"].pop(run_id, None)
                self._drop_map_views(run_id)
                if run_id in trees:
                    grown = trees[run_id].tree
                    self._maps["tree"][run_id] = trees[run_id]
                    if tree_index is not None:  # the tree index follows the tree: same leaves
                        tree_index[1].add(ids, vecs, grown.doc_leaf[grown.positions_of(ids)])
                        self._maps["tree_index"][run_id] = (grown, tree_index[1])
                else:
                    self._maps["tree"].pop(run_id, None)
                self._maps["vectors"].pop(run_id, None)
            self._maps["bm25"].pop(corpus_id, None)

    def documents_removed(self, corpus_id: int, ids, run_ids: Iterable[int], trees: dict[int, RunTree]) -> None:
        """Documents ``ids`` left the corpus (committed); ``trees``: {run: RunTree with the pruned Tree}."""
        with self.lock:
            for run_id in run_ids:
                index = self._maps["index"].get(run_id)
                if index is not None:
                    index.remove(ids)
                tree_index = self._maps["tree_index"].pop(run_id, None)
                self._drop_map_views(run_id)
                if run_id in trees:
                    self._maps["tree"][run_id] = trees[run_id]
                    if tree_index is not None:
                        tree_index[1].remove(ids)
                        self._maps["tree_index"][run_id] = (trees[run_id].tree, tree_index[1])
                else:
                    self._maps["tree"].pop(run_id, None)
                self._maps["vectors"].pop(run_id, None)
            self._maps["bm25"].pop(corpus_id, None)
