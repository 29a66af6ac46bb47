"""``hce encode | runs | project | delete-run``: zero-shot runs, the list of runs, a run's map, deleting a run."""
from __future__ import annotations

from ..evaluation import METRIC_LABELS
from ..runs import EncodeConfig
from . import render
from .common import AS_JSON, CORPUS, Commands, config_flags, config_settings, print_json, progress_bar


def cmd_encode(ws, a) -> int:
    run = ws.encode(a.corpus, progress=progress_bar(a.json), **config_settings(a, EncodeConfig))
    if a.json:
        print_json({"run_id": run})
    else:
        print(run)
    return 0


def encode_parser(sub: Commands) -> None:
    s = sub.add_parser("encode", parents=[CORPUS, AS_JSON],
                       help="zero-shot baseline run: encode, index and build the tree; prints the run id")
    config_flags(s, EncodeConfig)
    s.set_defaults(func=cmd_encode)


def cmd_runs(ws, a) -> int:
    runs = ws.runs(a.corpus)
    if a.json:
        print_json([r.to_dict() for r in runs])
        return 0
    ndcg = METRIC_LABELS["ndcg_at_10"]
    rows = []
    for r in runs:
        head = r.headline()
        rows.append({**r.to_dict(), ndcg: f"{head['ndcg_at_10']:.4f} ({head['split']})" if head else "",
                     "signal": r.config_dict.get("signal", ""), "negatives": r.config_dict.get("negatives", "")})
    print(render.table(rows, ["run_id", "corpus", "kind", "status", "signal", "negatives", "seed", ndcg,
                              "created_at", "error"]))
    return 0


def runs_parser(sub: Commands) -> None:
    s = sub.add_parser("runs", parents=[AS_JSON], help="list runs with status and metrics")
    s.add_argument("--corpus")
    s.set_defaults(func=cmd_runs)


def cmd_project(ws, a) -> int:
    """Compute (or read) the run's 2-D UMAP map, stored with the run; optionally aligned to another run."""
    ids, _ = ws.projection(a.run, align_to=a.align_to)
    if a.json:
        print_json({"run_id": a.run, "points": int(len(ids))})
    else:
        print(f"run {a.run}: map of {len(ids)} documents stored")
    return 0


def project_parser(sub: Commands) -> None:
    s = sub.add_parser("project", parents=[AS_JSON],
                       help="compute and store a run's UMAP map (the app's Map page)")
    s.add_argument("--run", type=int, required=True)
    s.add_argument("--align-to", type=int, help="start from and align to this run's map")
    s.set_defaults(func=cmd_project)


def cmd_delete_run(ws, a) -> int:
    ws.delete_run(a.run)
    print(f"deleted run {a.run}")
    return 0


def delete_run_parser(sub: Commands) -> None:
    s = sub.add_parser("delete-run", help="delete a finished run with its vectors, trees and model")
    s.add_argument("run", type=int)
    s.set_defaults(func=cmd_delete_run)
