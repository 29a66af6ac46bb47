"""Benchmark: agglomerative vs divisive tree building on synthetic clustered vectors (d=384).

Usage:
    python benchmarks/tree_build.py                 # N = 1k, 10k, 50k, both builders
    python benchmarks/tree_build.py --big           # also N = 200k, divisive only
    python benchmarks/tree_build.py --sizes 1000 --threads 1

Prints a table and writes benchmarks/results/tree_build.json (timings, tree shape, leaf intra-cosine,
leaf silhouette on a 2000-document sample, machine/threads/load so numbers can be compared).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

# common first: it puts the repository on sys.path
from common import DIM, RESULTS, machine, print_tables, source_line, synthetic, write_result

from hce_engine.tree import build_agglomerative, build_divisive, tree_stats


def run_one(name: str, fn, x: np.ndarray, branching: int, seed: int) -> dict:
    t0 = time.perf_counter()
    tree = fn(x, branching=branching, seed=seed)
    secs = time.perf_counter() - t0
    st = tree_stats(tree, x, sample=2000, seed=0)
    return {
        "builder": name,
        "n_docs": int(len(x)),
        "seconds": round(secs, 3),
        "depth": tree.depth,
        "n_nodes": tree.n_nodes,
        "n_leaves": int(len(tree.nodes_at(tree.depth))),
        "leaf_size_max": int(tree.size[tree.nodes_at(tree.depth)].max()),
        "leaf_intra_cos": round(st["intra_cos_leaf"], 4),
        "level1_intra_cos": round(st["levels"][0]["intra_cos"], 4),
        "leaf_silhouette": None if st["silhouette"] is None else round(st["silhouette"], 4),
    }


def markdown(result: dict) -> str:
    """A result file as the README's table, with where it comes from."""
    meta = result["meta"]
    out = [f"{source_line(result)} · torch threads {meta.get('torch_threads')} · branching {meta.get('branching')}, "
           f"seed {meta.get('seed')}", "",
           "| builder | N | s | depth | nodes | leaves | largest leaf | leaf cos | level-1 cos | leaf silhouette |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["results"]:
        sil = "-" if r["leaf_silhouette"] is None else f"{r['leaf_silhouette']:.3f}"
        out.append(f"| {r['builder']} | {r['n_docs']:,} | {r['seconds']:.2f} | {r['depth']} | {r['n_nodes']} | "
                   f"{r['n_leaves']} | {r['leaf_size_max']} | {r['leaf_intra_cos']:.3f} | {r['level1_intra_cos']:.3f} | "
                   f"{sil} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", nargs="+", metavar="RESULT", help="print result files as tables, run nothing")
    ap.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 50_000])
    ap.add_argument("--big", action="store_true", help="add N=200k (divisive only)")
    ap.add_argument("--branching", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--out", default=str(RESULTS / "tree_build.json"))
    args = ap.parse_args()
    if args.markdown:
        print_tables(args.markdown, markdown)
        return
    if args.threads:
        torch.set_num_threads(args.threads)

    plan = [(n, b) for n in args.sizes for b in ("agglomerative", "divisive")]
    if args.big:
        plan.append((200_000, "divisive"))
    fns = {"agglomerative": build_agglomerative, "divisive": build_divisive}
    rows, cache = [], {}
    print(f"{'builder':<14}{'N':>8}{'secs':>9}{'depth':>6}{'nodes':>8}{'leaves':>8}"
          f"{'leafmax':>8}{'leaf cos':>9}{'L1 cos':>8}{'silh':>8}")
    for n, name in plan:
        if n not in cache:
            cache.clear()
            cache[n] = synthetic(n, seed=args.seed)[0]  # two-level topic mixture, rows L2-normalised
        r = run_one(name, fns[name], cache[n], args.branching, args.seed)
        rows.append(r)
        print(f"{r['builder']:<14}{r['n_docs']:>8}{r['seconds']:>9.2f}{r['depth']:>6}{r['n_nodes']:>8}"
              f"{r['n_leaves']:>8}{r['leaf_size_max']:>8}{r['leaf_intra_cos']:>9.3f}"
              f"{r['level1_intra_cos']:>8.3f}{(r['leaf_silhouette'] or 0):>8.3f}", flush=True)
    meta = {**machine(), "load_avg_at_end": list(os.getloadavg()), "branching": args.branching, "d": DIM,
            "seed": args.seed}
    print(f"wrote {write_result(args.out, {'meta': meta, 'results': rows})}")


if __name__ == "__main__":
    main()
