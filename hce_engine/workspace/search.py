"""Workspace verbs for retrieval: dense, BM25 and hybrid search, and their evaluation on stored qrels.

Modes (everywhere a retriever is chosen: Python, ``hce search/eval --mode``, the Search and Runs pages):

* ``dense``  - the run's encoder and its vector index;
* ``bm25``   - the corpus's BM25 index (no encoder);
* ``hybrid`` - both, fused (:mod:`hce_engine.index.fusion`): the top ``CANDIDATES`` of each, every candidate
  scored exactly by both retrievers (its stored vector and its BM25 score), then a weighted combination of
  normalised scores (the weight fitted on the corpus's train qrels where it has them, else the measured
  default) or reciprocal rank fusion of the two lists.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..corpus.text import snippet
from ..errors import InputError, NotFoundError
from ..index.fusion import INDEX_KINDS, MODES
from ..runs import Run
from .base import WorkspaceBase
from .shared import Hit, ProgressFn

#: Documents taken from each retriever before fusing (the fused top-k comes from their union).
CANDIDATES = 100
#: Splits whose judged queries fit the hybrid weight, in order of preference (never the split evaluated).
FIT_SPLITS = ("train", "dev", "validation")


@dataclass(frozen=True)
class RouteLeaf:
    """A leaf cluster a query visited: its ``node``, ``label`` (its top three terms), ``size`` (documents in its
    list) and ``similarity`` (cosine of the query to its centroid)."""
    node: int
    label: str
    size: int
    similarity: float


@dataclass(frozen=True)
class TreeRoute:
    """Which leaf clusters a query visits in a run's tree index, and what it costs (:meth:`SearchVerbs.tree_route`).

    Attributes:
        run_id: the run whose tree routed the query.
        distance_computations: similarities computed (centroids on the way down + documents in the visited
            leaves); documents: the live documents (an exact search's computations).
        leaves: the visited leaf clusters, best first.
    """
    run_id: int
    distance_computations: int
    documents: int
    leaves: tuple[RouteLeaf, ...]

    @property
    def share(self) -> float:
        """The computations as a share of an exact search's."""
        return self.distance_computations / max(self.documents, 1)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``hce search --json``'s ``route``): ``run`` for run_id."""
        return {"run": self.run_id, "distance_computations": self.distance_computations, "documents": self.documents,
                "leaves": [asdict(leaf) for leaf in self.leaves]}


class SearchVerbs(WorkspaceBase):
    """Mixed into :class:`~hce_engine.workspace.Workspace`."""

    # -- search ---------------------------------------------------------------------------------
    def search_many(self, corpus: str, queries: Sequence[str], run: int | None = None, k: int = 10,
                    with_paths: bool = True, mode: str = "dense", fusion: str = "weighted",
                    weight: float | None = None, index_kind: str = "auto") -> list[list[Hit]]:
        """Search several queries. Returns one hit list per query, best first.

        Args:
            run: the run whose encoder (dense, hybrid) and tree paths are used; default the latest finished.
            mode: "dense", "bm25" or "hybrid".
            fusion, weight: hybrid only: "weighted" (dense weight ``weight``; default: :meth:`fusion_weight`)
                or "rrf" (reciprocal rank fusion, no weight).
            index_kind: the dense index: "auto" (the run's flat or HNSW index) or "tree" (the run's tree as
                the index, :meth:`tree_index`).
        Hybrid hits carry ``ranks``: the hit's rank in the dense and the BM25 list (None: not in the top
        ``CANDIDATES``).
        """
        info = self._run_for(corpus, run, "search with")
        ranked, ranks = self._rank(info, list(queries), k, mode, fusion, weight, index_kind)
        return [self._hits(info.run_id, info.corpus_id, s, i, with_paths, r)
                for (s, i), r in zip(ranked, ranks, strict=True)]

    def search(self, corpus: str, query: str, run: int | None = None, k: int = 10, mode: str = "dense",
               fusion: str = "weighted", weight: float | None = None, index_kind: str = "auto") -> list[Hit]:
        """One query: see :meth:`search_many`."""
        if not query.strip():
            raise InputError("the query is empty")
        return self.search_many(corpus, [query], run, k, mode=mode, fusion=fusion, weight=weight,
                                index_kind=index_kind)[0]

    def tree_index(self, run_id: int):
        """The run's latest tree as a search index (:class:`~hce_engine.index.tree_index.TreeIndex`): its
        leaves as inverted lists, centroids re-centred on the run's vectors. Built on first use (no
        clustering: one pass over the vectors), cached, and kept up to date by document adds and removes."""
        from ..index.tree_index import TreeIndex
        tree = self.tree(run_id).tree
        with self.cache.lock:
            cached = self.cache.peek("tree_index", run_id)
            if cached is None or cached[0] is not tree:  # first use, or the tree was rebuilt / re-read
                cached = (tree, TreeIndex.build(tree, *self.vectors(run_id)))
                self.cache.put("tree_index", run_id, cached)
            return cached[1]

    def tree_route(self, corpus: str, query: str, run: int | None = None) -> TreeRoute:
        """Which leaf clusters a query visits in the run's tree index (default: the latest finished run), and
        what it costs."""
        if not query.strip():
            raise InputError("the query is empty")
        info = self._run_for(corpus, run, "search with")
        index = self.tree_index(info.run_id)
        qv = self.encode_queries(info, [query])
        leaves, cost = index.route(qv)
        terms = self.tree(info.run_id).terms
        visited = [int(n) for n in leaves[0] if n >= 0]
        sims = index.centroids(visited) @ qv[0] if visited else []
        return TreeRoute(info.run_id, int(cost[0]), len(index),
                         tuple(RouteLeaf(n, " · ".join(terms[n][:3]), int(index.list_size(n)), float(s))
                               for n, s in zip(visited, sims, strict=True)))

    def _run_for(self, corpus: str, run: int | None, purpose: str, progress: ProgressFn | None = None) -> Run:
        """The finished run of ``corpus`` to ``purpose``: ``run``, else the default one (:meth:`ensure_run`)."""
        return self.run(self.ensure_run(corpus, progress) if run is None else run, purpose, corpus)

    def bm25(self, corpus: str):
        """The corpus's BM25 index (cached; rebuilt when documents change)."""
        from ..index import BM25Index
        cid = self.store.corpus_id(corpus)

        def build():
            ids, _, texts = self._texts(cid)
            return BM25Index.build(ids, texts)
        return self.cache.get("bm25", cid, build)

    def bm25_search(self, corpus: str, query: str, k: int = 10, run_for_paths: int | None = None) -> list[Hit]:
        """BM25 alone; hits carry tree paths of ``run_for_paths`` when given (no encoder, no run needed)."""
        if not query.strip():
            raise InputError("the query is empty")
        scores, ids = self.bm25(corpus).search([query], k)
        return self._hits(run_for_paths, self.store.corpus_id(corpus), scores[0], ids[0], run_for_paths is not None)

    def _dense_index(self, run_id: int, index_kind: str):
        if index_kind not in INDEX_KINDS:
            raise InputError(f"index must be one of {', '.join(INDEX_KINDS)}, got {index_kind!r}")
        return self.tree_index(run_id) if index_kind == "tree" else self.index(run_id)

    def _rank(self, info: Run, queries: list[str], k: int, mode: str, fusion: str, weight: float | None,
              index_kind: str = "auto", qv: np.ndarray | None = None
              ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[dict]]:
        """Per query: (scores, ids) best first, and {doc id: {"dense": rank, "bm25": rank}} (hybrid only).
        ``qv``: the queries' vectors when already encoded."""
        from ..index.fusion import FUSIONS, fuse
        if mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if fusion not in FUSIONS:
            raise InputError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        if weight is not None and not 0.0 <= weight <= 1.0:
            raise InputError(f"the hybrid weight must be between 0 and 1, got {weight}")
        none: list[dict] = [{} for _ in queries]
        if mode == "bm25":
            scores, ids = self.bm25(info.corpus).search(queries, k)
            return list(zip(scores, ids, strict=True)), none
        if qv is None:
            qv = self.encode_queries(info, queries)
        if mode == "dense":
            scores, ids = self._dense_index(info.run_id, index_kind).search(qv, k)
            return list(zip(scores, ids, strict=True)), none
        if fusion == "weighted" and weight is None:
            weight = self.cache.peek("fusion_weight", info.run_id)
            if weight is None:  # looked up (or fitted, without holding the cache) once per run, then kept
                weight = self.fusion_weight(info.corpus, info.run_id)["weight"]
                self.cache.put("fusion_weight", info.run_id, weight)
        out, ranks = [], []
        for raw, exact in self._candidates(info, queries, qv, max(k, CANDIDATES), index_kind):
            dense, lexical = exact if fusion == "weighted" else raw
            out.append(fuse(dense, lexical, k, fusion, weight or 0.0))
            ranks.append(_list_ranks(out[-1][1], raw))
        return out, ranks

    def _candidates(self, info: Run, queries: list[str], qv: np.ndarray, n: int, index_kind: str = "auto"):
        """Per query: the raw (dense, bm25) top-``n`` lists, and the same union of both scored exactly by each
        retriever (the dense score from the stored vector, the BM25 score from the index)."""
        bm25 = self.bm25(info.corpus)
        ds, di = self._dense_index(info.run_id, index_kind).search(qv, n)
        vec_ids, vecs = self.vectors(info.run_id)
        for q, query in enumerate(queries):
            full, bs, bi = bm25.scores_and_top(query, n)  # one BM25 pass: the top n and every score
            raw = ((ds[q], di[q]), (bs, bi))
            union = np.union1d(di[q][di[q] >= 0], bi[bi >= 0])
            at = np.clip(np.searchsorted(vec_ids, union), 0, max(len(vec_ids) - 1, 0))
            has = vec_ids[at] == union if len(vec_ids) else np.zeros(len(union), bool)
            dense = np.full(len(union), -np.inf, dtype=np.float32)  # no vector: not a dense candidate
            dense[has] = vecs[at[has]] @ qv[q]
            pos = bm25.positions(union)
            lexical = np.where(pos >= 0, full[np.maximum(pos, 0)], 0.0).astype(np.float32)
            yield raw, ((dense, union), (lexical, union))

    def fusion_weight(self, corpus: str, run: int | None = None, refit: bool = False,
                      exclude_split: str | None = None) -> dict:
        """The dense weight hybrid search uses for a run.

        Fitted once (then stored with the run) by maximising nDCG@10 of the weighted fusion over
        ``fusion.WEIGHT_GRID`` on the judged queries of the first of ``FIT_SPLITS`` the corpus has (never
        ``exclude_split``); :data:`~hce_engine.index.fusion.DEFAULT_WEIGHT` where it has none.

        Returns:
            {"weight": w, "split": fitted on (None: the default), "ndcg_at_10": at w on that split,
            "queries": judged queries used}.
        """
        from ..index.fusion import DEFAULT_WEIGHT
        info = self._run_for(corpus, run, "search with")
        cid = info.corpus_id
        judged = self.store.splits(cid)
        splits = [s for s in FIT_SPLITS if s != exclude_split and judged.get(s)]
        stored = self.store.fusion_weight(info.run_id)
        if stored and not refit and stored["split"] in splits:
            return stored
        if not splits:
            return {"weight": DEFAULT_WEIGHT, "split": None, "ndcg_at_10": None, "queries": 0}
        split = splits[0]
        weight, table, queries = self._sweep(info, split)
        self.store.write_fusion_weight(info.run_id, split, weight, table[weight], queries)
        self.cache.drop("fusion_weight", info.run_id)
        return {"weight": weight, "split": split, "ndcg_at_10": table[weight], "queries": queries}

    def hybrid_sweep(self, corpus: str, run: int | None = None, split: str = "test") -> dict[float, float]:
        """nDCG@10 of weighted hybrid search on ``split`` at every weight of ``fusion.WEIGHT_GRID``
        ({dense weight: nDCG@10}; 0 is BM25 over the candidates, 1 the dense ranking)."""
        return self._sweep(self._run_for(corpus, run, "search with"), split)[1]

    def _sweep(self, info: Run, split: str) -> tuple[float, dict[float, float], int]:
        """(best weight, {weight: nDCG@10}, judged queries) of weighted fusion on ``split``."""
        from ..index.fusion import fit_weight, scorer
        cid = info.corpus_id
        qrels = self.store.qrels(cid, split)
        if not qrels:
            raise NotFoundError(f"corpus {info.corpus!r} has no qrels for split {split!r}")
        texts = self.store.queries(cid)
        qids = [q for q in qrels if q in texts]
        queries = [texts[q] for q in qids]
        qv = self.encode_queries(info, queries)
        lists = [exact for _, exact in self._candidates(info, queries, qv, CANDIDATES)]
        best, table = fit_weight([d for d, _ in lists], [b for _, b in lists], qids,
                                 scorer(qrels, self._id_to_ext(cid)))
        return best, table, len(qids)

    def _id_to_ext(self, corpus_id: int) -> dict[int, str]:
        docs = self.store.documents(corpus_id, include_removed=True)
        return dict(zip(docs["doc_id"].astype(int), docs["ext_id"], strict=True))

    def _hits(self, run_id: int | None, corpus_id: int, scores: np.ndarray, ids: np.ndarray,
              with_paths: bool, ranks: dict | None = None) -> list[Hit]:
        keep = ids >= 0
        scores, ids = scores[keep], ids[keep]
        if len(ids) == 0:
            return []
        df = self.store.documents(corpus_id, doc_ids=ids).set_index("doc_id")
        paths: dict[int, tuple[list[int], list[str]]] = {}
        if with_paths and run_id is not None:
            try:
                run_tree = self.tree(run_id)
                tree, terms = run_tree.tree, run_tree.terms
                for d, p in zip(ids.tolist(), tree.positions_of(ids).tolist(), strict=True):
                    if p >= 0:
                        path = tree.path(p)
                        paths[d] = (path, [" · ".join(terms[n][:3]) for n in path])
            except NotFoundError:
                pass
        hits = []
        for rank, (d, s) in enumerate(zip(ids.tolist(), scores.tolist(), strict=True), start=1):
            if d not in df.index:  # removed between search and lookup
                continue
            row = df.loc[d]
            p, labels = paths.get(d, ([], []))
            hits.append(Hit(rank, d, row["ext_id"], row["title"], snippet(row["text"]), s, p, labels,
                            (ranks or {}).get(d, {})))
        return hits

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, corpus: str, run: int | None = None, split: str = "test", bm25: bool = False,
                 k: int = 100, progress: ProgressFn | None = None, mode: str = "dense", fusion: str = "weighted",
                 weight: float | None = None, index_kind: str = "auto", per_query: bool = False) -> dict:
        """nDCG@10, R@10, R@100, MRR@10 on a split's qrels, stored with the run.

        ``mode="dense"`` scores the run's encoder (and BM25 too with ``bm25=True``); ``"bm25"`` BM25 alone;
        ``"hybrid"`` scores dense, BM25 and their fusion (weight as in :meth:`search_many`; when fitted, on a
        split other than ``split``). ``index_kind="tree"`` searches the dense side through the run's tree.

        Returns ``{"run": id, "split": s, "dense": {...}, "bm25": {...}, "hybrid": {...}, "fusion": {...}}``
        with the systems measured (``fusion``: how the hybrid fused, and its weight's origin); with ``per_query``
        also ``"per_query": {system: {query id: {metric: value}}}`` (R@1 included).
        """
        from ..evaluation import evaluate, rankings_from_arrays
        if mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        cid = self.store.corpus_id(corpus)
        qrels = self.store.qrels(cid, split)
        if not qrels:
            have = ", ".join(self.store.splits(cid)) or "none"
            raise NotFoundError(f"corpus {corpus!r} has no qrels for split {split!r} (splits: {have})")
        texts = self.store.queries(cid)
        qids = [q for q in qrels if q in texts]
        queries = [texts[q] for q in qids]
        info = self._run_for(corpus, run, "evaluate", progress)
        id_to_ext = self._id_to_ext(cid)
        out: dict = {"run": info.run_id, "split": split}

        def score(system: str, ranked, stored_as: str | None = None) -> None:
            ranked = _pad(ranked, k)
            scores = np.stack([s for s, _ in ranked]) if ranked else np.zeros((0, k), np.float32)
            ids = np.stack([i for _, i in ranked]) if ranked else np.zeros((0, k), np.int64)
            res = evaluate(rankings_from_arrays(qids, ids, scores, id_to_ext), qrels, per_query=True)
            out[system] = res["mean"]
            if per_query:
                out.setdefault("per_query", {})[system] = res["per_query"]
            self.store.write_metrics(info.run_id, split, stored_as or system, out[system])

        systems = {"dense": ["dense"] + (["bm25"] if bm25 else []), "bm25": ["bm25"],
                   "hybrid": ["dense", "bm25", "hybrid"]}[mode]
        qv = self.encode_queries(info, queries) if mode != "bm25" else None  # encoded once for every system
        for system in systems:
            if system != "hybrid":
                score(system, self._rank(info, queries, k, system, fusion, weight, index_kind, qv)[0],
                      system if index_kind == "auto" or system == "bm25" else f"{system}-tree")
                continue
            fit = {"weight": weight, "split": None, "ndcg_at_10": None, "queries": 0}
            if fusion == "weighted" and weight is None:
                fit = self.fusion_weight(corpus, info.run_id, exclude_split=split)
            out["fusion"] = {"fusion": fusion, **fit}
            score("hybrid", self._rank(info, queries, k, "hybrid", fusion, fit["weight"], index_kind, qv)[0],
                  "hybrid" + ("-rrf" if fusion == "rrf" else "") + ("-tree" if index_kind == "tree" else ""))
        return out


def _list_ranks(ids: np.ndarray, raw) -> dict[int, dict[str, int | None]]:
    """{doc id: {"dense": rank, "bm25": rank}} (1-based; None when outside that list) for the fused ids."""
    where = []
    for _, lst in raw:
        pos: dict[int, int] = {}
        for r, i in enumerate(lst.tolist(), start=1):
            if i >= 0:
                pos.setdefault(i, r)
        where.append(pos)
    return {d: {"dense": where[0].get(d), "bm25": where[1].get(d)} for d in ids.tolist()}


def _pad(ranked: list[tuple[np.ndarray, np.ndarray]], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fused lists padded to length ``k`` (score -inf, id -1), so they stack into (q, k) arrays."""
    out = []
    for s, i in ranked:
        m = min(len(i), k)
        ps = np.full(k, -np.inf, dtype=np.float32)
        pi = np.full(k, -1, dtype=np.int64)
        ps[:m], pi[:m] = s[:m], i[:m]
        out.append((ps, pi))
    return out


__all__ = ["CANDIDATES", "FIT_SPLITS", "INDEX_KINDS", "MODES", "RouteLeaf", "SearchVerbs", "TreeRoute"]
