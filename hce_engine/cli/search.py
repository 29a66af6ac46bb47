"""``hce search | eval``: a run's encoder, BM25 or both fused, on one query or on the judged queries."""
from __future__ import annotations

import argparse

from ..evaluation import METRIC_LABELS
from ..index.fusion import FUSIONS, INDEX_KINDS, MODES
from . import render
from .common import AS_JSON, CORPUS, RUN, Commands, print_json, progress_bar

# the retrieval flags search and eval share
HYBRID = argparse.ArgumentParser(add_help=False)
HYBRID.add_argument("--mode", choices=MODES, default="dense",
                    help="dense (the run's encoder), bm25 (lexical) or hybrid (both fused; see --fusion)")
HYBRID.add_argument("--fusion", choices=FUSIONS, default="weighted",
                    help="hybrid: weighted (normalised scores, dense weight fitted on the corpus's train "
                         "qrels, else the default) or rrf (reciprocal rank fusion)")
HYBRID.add_argument("--weight", type=float, help="hybrid, weighted: the dense weight in [0, 1] (default: fitted)")
HYBRID.add_argument("--index", choices=INDEX_KINDS, default="auto", dest="index_kind",
                    help="the dense index: auto (exact below 100k documents, else HNSW) or tree (the run's "
                         "tree: its leaf clusters as inverted lists, routed by beam search)")


def _mode(a) -> str:
    """--mode, with --bm25 meaning --mode bm25 (search and eval alike)."""
    return "bm25" if a.bm25 and a.mode == "dense" else a.mode


def cmd_search(ws, a) -> int:
    query = " ".join(a.query)
    mode = _mode(a)
    if mode == "bm25" and a.run is None:  # BM25 needs no run (nor an encoded corpus)
        hits = ws.bm25_search(a.corpus, query, a.k)
    else:
        hits = ws.search(a.corpus, query, run=a.run, k=a.k, mode=mode, fusion=a.fusion, weight=a.weight,
                         index_kind=a.index_kind)
    route = ws.tree_route(a.corpus, query, run=a.run) if a.index_kind == "tree" and mode != "bm25" else None
    if a.json:
        print_json({"query": query, "mode": mode, "hits": [h.to_dict() for h in hits],
                    **({"route": route.to_dict()} if route else {})})
    else:
        if route:
            print(f"tree index: {len(route.leaves)} leaf clusters visited, {route.distance_computations} "
                  f"distance computations ({route.share:.1%} of exact search); nearest: "
                  + "; ".join(leaf.label for leaf in route.leaves[:3]))
        for h in hits:
            came = ""
            if h.ranks:
                came = "  (" + ", ".join(f"{k} {'#' + str(r) if r else '-'}" for k, r in h.ranks.items()) + ")"
            print(f"{h.rank:>3}. {h.score:7.4f}  [{h.ext_id}] {h.title}{came}\n     {h.snippet}")
        if not hits:
            print("(no hits)")
    return 0


def search_parser(sub: Commands) -> None:
    s = sub.add_parser("search", parents=[HYBRID, CORPUS, RUN, AS_JSON],
                       help="search a corpus with a run's encoder (default: latest finished run), BM25 or both")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--bm25", action="store_true", help="the same as --mode bm25")
    s.add_argument("query", nargs="+")
    s.set_defaults(func=cmd_search)


def cmd_eval(ws, a) -> int:
    mode = _mode(a)
    out = ws.evaluate(a.corpus, run=a.run, split=a.split, bm25=a.with_bm25, mode=mode, fusion=a.fusion,
                      weight=a.weight, index_kind=a.index_kind, progress=progress_bar(a.json))
    systems = [s for s in ("dense", "bm25", "hybrid") if s in out]
    if a.json:
        # the top level is the row of the mode asked for; the other systems' rows beside it
        top = mode if mode in out else systems[0]
        flat = dict(out[top], run_id=out["run"], split=out["split"], mode=mode)
        flat.update({s: out[s] for s in systems if s != top})
        if "fusion" in out:
            flat["fusion"] = out["fusion"]
        print_json(flat)
    else:
        print(f"run {out['run']} on {a.corpus}/{out['split']}")
        for s in systems:
            print(f"  {s + ':':7s} {render.metrics(out[s])}")
        fit = out.get("fusion")
        if fit:
            how = ("reciprocal rank fusion" if fit["fusion"] == "rrf" else
                   f"dense weight {fit['weight']:.2f}, fitted on {fit['queries']} {fit['split']} queries "
                   f"({METRIC_LABELS['ndcg_at_10']} {fit['ndcg_at_10']:.4f} there)" if fit["split"] else
                   f"dense weight {fit['weight']:.2f} "
                   f"({'given' if a.weight is not None else 'default: no other split has qrels'})")
            print(f"  hybrid: {how}")
    return 0


def eval_parser(sub: Commands) -> None:
    s = sub.add_parser("eval", parents=[HYBRID, CORPUS, RUN, AS_JSON],
                       help="nDCG@10, R@10, R@100, MRR@10 against stored qrels (--mode hybrid also scores dense and "
                            "BM25)")
    s.add_argument("--split", default="test")
    s.add_argument("--bm25", action="store_true", help="the same as --mode bm25 (as for search)")
    s.add_argument("--with-bm25", action="store_true", help="also score BM25, beside the run, as the lexical "
                                                              "reference")
    s.set_defaults(func=cmd_eval)
