"""``hce explain | tree | siblings``: why a document ranks where it does, a run's tree, what training contrasts."""
from __future__ import annotations

from ..errors import NotFoundError
from .common import AS_JSON, CORPUS, RUN, Commands, print_json


def _doc_id(ws, corpus: str, ext_id: str) -> int:
    """The document's id in the store from its id in the corpus (NotFoundError when it has none)."""
    docs = ws.documents(corpus)
    match = docs.loc[docs["ext_id"] == ext_id, "doc_id"]
    if match.empty:
        raise NotFoundError(f"no document {ext_id!r} in corpus {corpus!r}")
    return int(match.iloc[0])


def cmd_explain(ws, a) -> int:
    from ..views import explain
    doc_id = _doc_id(ws, a.corpus, a.doc)
    run = a.run if a.run is not None else ws.ensure_run(a.corpus)
    out = explain(ws, run, a.query, doc_id, compare_run=a.compare)
    if a.json:
        print_json(out)
        return 0
    r = out["retrievers"]

    def place(x: dict | None) -> str:
        return "-" if x is None else f"rank {x['rank'] or '-'} (score {x['score']:.3f})"
    print(f"[{out['doc']['ext_id']}] {out['doc']['title']} for {out['query']!r}")
    print(f"  run {out['run_id']}: {place(r['run'])}" + (f"   starting encoder (run {out['compare_run']}): "
                                                         f"{place(r.get('start'))}" if "start" in r else ""))
    print(f"  BM25: {place(r['bm25']) if r['bm25']['rank'] else 'no word in common'}"
          + (f"; shared words: {', '.join(out['shared_words'])}" if out["shared_words"] else ""))
    print("  path through the tree (the query's similarity; * where the query would have taken another branch):")
    for p in out["path"]:
        other = ("" if p["took_branch"] else
                 f"   * query's branch: {p['query_branch_label']} ({p['query_branch_score']:.3f})")
        print(f"    {p['level']}. {p['label']:<40s} {p['score']:.3f}  rank {p['rank']}/{p['n_candidates']}{other}")
    print(f"    leaf: rank {out['leaf']['rank']} of {out['leaf']['n_candidates']} documents in its cluster")
    for key, word in (("moved_up", "up"), ("moved_down", "down")):
        if out[key]:
            print(f"  moved {word} most with training: " + "; ".join(
                f"{m['title'][:40]} {m['rank_compare']}->{m['rank']}" for m in out[key]))
    return 0


def explain_parser(sub: Commands) -> None:
    s = sub.add_parser("explain", parents=[CORPUS, RUN, AS_JSON],
                       help="why a document ranks where it does for a query: tree path, the starting and trained "
                            "encoders, BM25, shared words, what training moved")
    s.add_argument("--compare", type=int, help="the 'before' run (default: the run's starting encoder)")
    s.add_argument("--query", required=True)
    s.add_argument("--doc", required=True, help="the document's id in the corpus")
    s.set_defaults(func=cmd_explain)


def cmd_tree(ws, a) -> int:
    """The run's tree, level by level: node id, size and label (top terms)."""
    from ..views import tree_overview
    run = a.run or ws.ensure_run(a.corpus)
    run_tree = ws.tree(run, a.rebuild)
    tree, terms = run_tree.tree, run_tree.terms
    if a.json:
        print_json(tree_overview(ws, run, a.rebuild, a.max_level))
        return 0
    print(f"run {run}: {tree.n_docs} documents, depth {tree.depth}, {tree.n_nodes} nodes ({tree.builder}, "
          f"b = {tree.branching})")

    def show(node: int, indent: int) -> None:
        label = " · ".join(terms[node][:4]) or "(no terms)"
        print(f"{'  ' * indent}[{node}] {label} ({tree.size[node]})")
        if tree.level[node] < a.max_level:
            for child in tree.children(node):
                show(int(child), indent + 1)
    show(0, 0)
    return 0


def tree_parser(sub: Commands) -> None:
    s = sub.add_parser("tree", parents=[CORPUS, RUN, AS_JSON],
                       help="print a run's tree (labels and sizes) down to --max-level")
    s.add_argument("--rebuild", type=int, help="a co-training rebuild (default: the latest)")
    s.add_argument("--max-level", type=int, default=2)
    s.set_defaults(func=cmd_tree)


def cmd_siblings(ws, a) -> int:
    """A document's or query's path and, per level, the positive against its siblings."""
    from ..views import siblings_view
    run = a.run or ws.ensure_run(a.corpus)
    doc_id = _doc_id(ws, a.corpus, a.doc) if a.doc else None
    view = siblings_view(ws, run, doc_id=doc_id, query=a.query, compare_run=a.compare, max_siblings=a.max)
    if a.json:
        print_json(view)
        return 0
    cmp = a.compare is not None
    print(f"run {run}{f' (before: run {a.compare})' if cmp else ''}: {view['positive_source']} "
          f"[{view['doc']['ext_id']}] {view['doc']['title']}")
    for lv in view["levels"] + [dict(view["leaf"], level="leaf", positive_label=view["leaf"]["leaf_label"])]:
        before = f", before: rank {lv['rank_compare']}" if cmp and "rank_compare" in lv else ""
        print(f"level {lv['level']}: positive ranked {lv['rank']} of {lv['n_candidates']} "
              f"(loss {lv['loss']:.3f}{before})")
        for c in lv["candidates"]:
            name = c.get("label") or c.get("title", "")
            print(f"   {'*' if c['is_positive'] else ' '} {c['score']:6.3f}  {name}")
    return 0


def siblings_parser(sub: Commands) -> None:
    s = sub.add_parser("siblings", parents=[CORPUS, RUN, AS_JSON],
                       help="a document's or query's path and the siblings it is contrasted with")
    s.add_argument("--doc", help="document id (its own vector is the anchor, or the query's positive)")
    s.add_argument("--query", help="query text (positive: --doc, else its top hit)")
    s.add_argument("--compare", type=int, help="another run scored on the same tree (e.g. the baseline)")
    s.add_argument("--max", type=int, default=5, help="candidates shown per level")
    s.set_defaults(func=cmd_siblings)
