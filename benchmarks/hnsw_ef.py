"""HNSW's search breadth (efSearch) against recall@10 and latency, as the engine builds the index, per corpus size.

    python benchmarks/hnsw_ef.py [--sizes 200000 1000000] [--ef 64 128 256 ...] [--ef-construction 64 128]
    python benchmarks/hnsw_ef.py --markdown benchmarks/results/hnsw_ef.json

For each N: growth.py's synthetic vectors (d = 384) and 500 held-out queries from the same mixture, the HNSW
index ``VectorIndex.build(kind="hnsw")`` makes (M 32; efConstruction by size, ``vector_index.hnsw_settings``,
or ``--ef-construction``), and exact search (FAISS flat) as the truth. Per efSearch: recall@10 against exact search, and the single-query search time p50/p95 (index only, one
query at a time as the app searches; the query's encoding, ~11 ms, comes on top). The engine's default
when measured is marked. Writes benchmarks/results/hnsw_ef.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# common first: it puts the repository on sys.path
from common import RESULTS, machine, pct, print_tables, source_line, synthetic, write_result

from hce_engine.index import VectorIndex, vector_index

TARGET_RECALL = 0.99


def measure(n: int, efs: list[int], queries: int, seed: int, ef_construction: int | None) -> dict:
    x, xq, _, _ = synthetic(n, queries, seed=seed)
    ids = np.arange(n, dtype=np.int64)
    t0 = time.perf_counter()
    build = {} if ef_construction is None else {"ef_construction": ef_construction}
    hnsw = VectorIndex.build(ids, x, kind="hnsw", **build)
    build_s = time.perf_counter() - t0
    flat = VectorIndex.build(ids, x, kind="flat")
    _, truth = flat.search(xq, 10)
    del flat
    rows = []
    for ef in efs:
        hnsw.ef_search = ef
        _, got = hnsw.search(xq, 10)
        recall = float(np.mean([len(np.intersect1d(a, b)) / 10.0 for a, b in zip(truth, got)]))
        ms = []
        for q in xq[:200]:
            t = time.perf_counter()
            hnsw.search(q[None, :], 10)
            ms.append(1000 * (time.perf_counter() - t))
        rows.append({"ef_search": ef, "recall_at_10": round(recall, 4), "p50_ms": round(pct(ms, 50), 3),
                     "p95_ms": round(pct(ms, 95), 3)})
        print(f"[N={n}] ef {ef}: recall@10 {recall:.4f}, p50 {rows[-1]['p50_ms']} ms", file=sys.stderr, flush=True)
    return {"n_docs": n, "build_s": round(build_s, 1), "ef_construction": hnsw._ef_construction,
            "default_ef_search": vector_index.hnsw_settings(n)[1], "rows": rows}


def markdown(result: dict) -> str:
    out = [f"{source_line(result)} · {result['queries']} held-out queries, seed {result['seed']}", "",
           "| N | efConstruction (build s) | efSearch | recall@10 | search p50 / p95 (ms, index only) | |",
           "|---|---|---|---|---|---|"]
    for size in result["sizes"]:
        for r in size["rows"]:
            mark = "engine default when measured" if r["ef_search"] == size["default_ef_search"] else ""
            if r["recall_at_10"] < TARGET_RECALL:
                mark = (mark + "; " if mark else "") + f"below {TARGET_RECALL}"
            out.append(f"| {size['n_docs']:,} | {size.get('ef_construction', 64)} ({size['build_s']:.0f}) | "
                       f"{r['ef_search']} | {r['recall_at_10']:.4f} | "
                       f"{r['p50_ms']:.2f} / {r['p95_ms']:.2f} | {mark} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--ef", type=int, nargs="+", default=[64, 128, 256, 384, 512, 768, 1024])
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--ef-construction", type=int, nargs="+", default=[None],
                    help="build settings to compare (default: the engine's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "hnsw_ef.json"))
    ap.add_argument("--markdown", nargs="+", metavar="RESULT", help="print result files as tables, run nothing")
    a = ap.parse_args(argv)
    if a.markdown:
        print_tables(a.markdown, markdown)
        return None
    result: dict = {"queries": a.queries, "seed": a.seed, "sizes": [], "hardware": machine()}
    for n in a.sizes:
        for efc in a.ef_construction:
            result["sizes"].append(measure(n, a.ef, a.queries, a.seed, efc))
        result["hardware"]["load_avg_at_end"] = list(os.getloadavg())
        write_result(a.out, result)
    print(markdown(json.loads(Path(a.out).read_text())))
    return result


if __name__ == "__main__":
    main()
