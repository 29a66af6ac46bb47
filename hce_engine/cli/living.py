"""``hce add | remove | freshness | rebuild-tree``: a corpus that changes after its runs, without retraining."""
from __future__ import annotations

from ..errors import NotFoundError
from . import render
from .common import AS_JSON, CORPUS, RUN, Commands, print_json, progress_bar


def cmd_add(ws, a) -> int:
    out = ws.add_documents(a.corpus, a.path, progress=progress_bar(a.json))
    out.pop("doc_ids")
    fresh = [ws.freshness(r) for r in out["runs_updated"]]
    if a.json:
        print_json({**out, "freshness": [f.to_dict() for f in fresh]})
        return 0
    print(f"added {out['added']} documents to {a.corpus!r} ({out['skipped_empty']} empty skipped); "
          f"runs updated: {out['runs_updated'] or 'none'}")
    for line in render.suggestions(fresh):
        print(line)
    return 0


def add_parser(sub: Commands) -> None:
    s = sub.add_parser("add", parents=[CORPUS, AS_JSON],
                       help="add documents to a corpus and every finished run, without retraining")
    s.add_argument("path", help="file, folder or ZIP in any import format")
    s.set_defaults(func=cmd_add)


def cmd_remove(ws, a) -> int:
    out = ws.remove_documents(a.corpus, a.ids)
    if a.json:
        print_json(out)
    else:
        print(f"removed {out['removed']} documents from {a.corpus!r}; runs updated: {out['runs_updated'] or 'none'}")
    return 0


def remove_parser(sub: Commands) -> None:
    s = sub.add_parser("remove", parents=[CORPUS, AS_JSON],
                       help="remove documents (by id) from a corpus, its indexes and trees")
    s.add_argument("ids", nargs="+")
    s.set_defaults(func=cmd_remove)


def cmd_freshness(ws, a) -> int:
    """Per finished run: documents added since training and since its tree, leaf fit, suggestions."""
    runs = [a.run] if a.run else [r.run_id for r in ws.runs(a.corpus, status="done")]
    fresh = [ws.freshness(r) for r in runs]
    rows = [f.to_dict() for f in fresh]
    if a.json:
        print_json([{"run_id": r.pop("run"), **r} for r in rows])
        return 0
    for r in rows:
        r["share_new"] = f"{r['share_new']:.1%}"
        r["share_new_tree"] = f"{r['share_new_tree']:.1%}"
        for k in ("fit_tree", "fit_added"):
            r[k] = "" if r[k] is None else f"{r[k]:.3f}"
    print(render.table(rows, ["run", "live_documents", "added_since", "share_new", "tree_rebuild",
                              "added_since_tree", "share_new_tree", "fit_tree", "fit_added", "rebuild_suggested",
                              "retrain_suggested"]))
    for line in render.suggestions(fresh):
        print(line)
    return 0


def freshness_parser(sub: Commands) -> None:
    s = sub.add_parser("freshness", parents=[CORPUS, AS_JSON],
                       help="documents added since each run was trained and its tree built; whether to rebuild the "
                            "tree or retrain")
    s.add_argument("--run", type=int, help="one run (default: every finished run of the corpus)")
    s.set_defaults(func=cmd_freshness)


def cmd_rebuild_tree(ws, a) -> int:
    run = a.run or ws.latest_run(a.corpus)
    if run is None:
        raise NotFoundError(f"corpus {a.corpus!r} has no finished run")
    rebuild = ws.rebuild_tree(run)
    tree = ws.tree(run).tree
    out = {"run_id": run, "rebuild": rebuild, "documents": tree.n_docs, "depth": tree.depth, "nodes": tree.n_nodes}
    if a.json:
        print_json(out)
    else:
        print(f"run {run}: tree rebuilt as rebuild {rebuild} ({tree.n_docs} documents, depth {tree.depth}, "
              f"{tree.n_nodes} nodes)")
    return 0


def rebuild_tree_parser(sub: Commands) -> None:
    s = sub.add_parser("rebuild-tree", parents=[CORPUS, RUN, AS_JSON],
                       help="cluster a run's current documents again (no retraining)")
    s.set_defaults(func=cmd_rebuild_tree)
