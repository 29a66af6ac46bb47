"""The trained tree as the index: the tree's leaves as IVF lists, routed by beam search, against
exact search, HNSW and a FAISS IVF trained from scratch with the same number of lists.

Per corpus it reports, for single queries: recall@10 against exact search on held-out queries, distance
computations per query (exact: N; HNSW: faiss' ``hnsw_stats.ndis``; IVF: lists scored + codes scanned, from
``indexIVF_stats``; tree: centroids scored on the way down + documents in the probed leaves), latency
p50/p95 **including the query's encoding** with the bundled MiniLM (a real SciFact claim is encoded, the
held-out vector searched, as in growth.py), build time (the tree's own build is what training already did:
reported, not charged) and the index's serialised size as its memory.

Each approximate index is swept over its knob (HNSW efSearch, IVF nprobe, tree probe with beam = probe)
and the cheapest setting reaching recall@10 >= 0.99 is the row shown (the whole sweep is in the JSON).

Corpora: synthetic clustered vectors as in growth.py (``--sizes``, default 50k and 200k; the tree is the one
the run would have: agglomerative up to 50k, divisive above, branching 10), and ``--workspace W --corpus C``
for a real run's stored vectors and tree (e.g. SciFact's zero-shot and trained runs).

Usage:
    python benchmarks/tree_index.py                               # 50k and 200k (about 15 minutes)
    python benchmarks/tree_index.py --workspace /tmp/hyb-ws --corpus scifact --sizes
    python benchmarks/tree_index.py --smoke                       # seconds
    python benchmarks/tree_index.py --markdown benchmarks/results/tree_index.json   # its table, runs nothing
Prints one table and writes benchmarks/results/tree_index.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

# common first: it puts the repository on sys.path
from common import RESULTS, machine, pct, print_tables, real_queries, source_line, synthetic, write_result

TARGET_RECALL = 0.99
TARGET_SHARE = 0.10  # of exact search's distance computations
SWEEP = {"hnsw": [16, 32, 64, 128, 256, 512], "ivf": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
         "tree": [4, 8, 16, 32, 64, 128, 256, 512, 1024]}


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g[g >= 0]) & set(w)) / len(w) for g, w in zip(got, want)]))


def size_mib(index) -> float:
    import faiss
    return round(len(faiss.serialize_index(index)) / 2**20, 1)


def measure(x: np.ndarray, ids: np.ndarray, tree, queries: np.ndarray, enc, texts: list[str], args) -> dict:
    import faiss

    from hce_engine.index import VectorIndex
    from hce_engine.index.tree_index import TreeIndex
    n, d = x.shape
    out = {"n_docs": n, "n_leaves": int((tree.level == tree.depth).sum()), "depth": tree.depth, "rows": {}}
    flat = faiss.IndexFlatIP(d)
    flat.add(x)
    want = ids[flat.search(queries, 10)[1]]
    del flat

    def timed(search, knob) -> dict:
        """recall, cost, latency (query encoding included) of one setting."""
        got, cost = search(queries, knob)
        lat = []
        faiss.omp_set_num_threads(1)  # one query: one thread (as the engine's indexes do for small searches)
        for i in range(args.latency_queries):
            t0 = time.perf_counter()
            enc.encode([texts[i % len(texts)]])
            search(queries[i % len(queries)][None], knob)
            lat.append(1000 * (time.perf_counter() - t0))
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        return {"knob": knob, "recall_at_10": round(recall(got, want), 4), "dist_per_query": round(float(cost), 1),
                "share_of_exact": round(float(cost) / n, 4), "p50_ms": round(pct(lat, 50), 2),
                "p95_ms": round(pct(lat, 95), 2)}

    enc_ms = []
    for i in range(args.latency_queries):  # the in-run reference: the query's encoding alone
        t0 = time.perf_counter()
        enc.encode([texts[i % len(texts)]])
        enc_ms.append(1000 * (time.perf_counter() - t0))
    out["encode_p50_ms"] = round(pct(enc_ms, 50), 2)

    def sweep(name: str, search, build_s: float, mem: float, knobs) -> None:
        rows = []
        for knob in knobs:
            rows.append(timed(search, knob))
            if rows[-1]["recall_at_10"] >= TARGET_RECALL:
                break
        ok = [r for r in rows if r["recall_at_10"] >= TARGET_RECALL]
        best = ok[0] if ok else rows[-1]
        out["rows"][name] = {**best, "build_s": build_s, "memory_mib": mem, "sweep": rows}
        print(f"  [{n}] {name}: {best}", file=sys.stderr, flush=True)

    # exact, as the engine serves it below its HNSW threshold
    exact = VectorIndex.build(ids, x, kind="flat")
    sweep("exact", lambda q, _: (exact.search(q, 10)[1], n), 0.0, round(x.nbytes / 2**20, 1), [None])
    # HNSW as the engine builds it
    t0 = time.perf_counter()
    hnsw = VectorIndex.build(ids, x, kind="hnsw")
    hnsw_s = time.perf_counter() - t0

    def hnsw_search(q, ef):
        hnsw.ef_search = ef
        faiss.cvar.hnsw_stats.reset()
        got = hnsw.search(q, 10)[1]
        return got, faiss.cvar.hnsw_stats.ndis / len(q)
    sweep("hnsw", hnsw_search, round(hnsw_s, 2), size_mib(hnsw._index), SWEEP["hnsw"])
    # FAISS IVF from scratch, as many lists as the tree has leaves
    nlist = out["n_leaves"]
    t0 = time.perf_counter()
    quant = faiss.IndexFlatIP(d)
    ivf = faiss.IndexIVFFlat(quant, d, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.niter = args.ivf_iters
    ivf.cp.min_points_per_centroid = 1
    ivf.train(x)
    ivf.add_with_ids(x, ids)
    ivf_s = time.perf_counter() - t0

    def ivf_search(q, nprobe):
        ivf.nprobe = min(nprobe, nlist)
        faiss.cvar.indexIVF_stats.reset()
        got = ivf.search(q, 10)[1]
        return got, (nlist * len(q) + faiss.cvar.indexIVF_stats.ndis) / len(q)
    sweep("ivf", ivf_search, round(ivf_s, 2), size_mib(ivf), [p for p in SWEEP["ivf"] if p <= nlist])
    # the tree
    t0 = time.perf_counter()
    tix = TreeIndex.build(tree, ids, x)
    tree_s = time.perf_counter() - t0

    def tree_search(q, probe):
        got = tix.search(q, 10, beam=probe, probe=probe)[1]
        return got, tix.route(q, beam=probe, probe=probe)[1].mean()
    sweep("tree", tree_search, round(tree_s, 2), size_mib(tix._ivf), [p for p in SWEEP["tree"]])
    default = timed(lambda q, _: (tix.search(q, 10)[1], tix.route(q)[1].mean()), None)
    out["rows"]["tree (defaults)"] = {**default, "knob": f"beam {tix.beam}, probe {tix.probe}",
                                      "build_s": round(tree_s, 2), "memory_mib": out["rows"]["tree"]["memory_mib"]}
    t = out["rows"]["tree"]
    out["goal_met"] = t["recall_at_10"] >= TARGET_RECALL and t["share_of_exact"] <= TARGET_SHARE
    return out


def table(results: list[dict]) -> str:
    """One row per index and corpus; latencies include the query's encoding (its p50 alone is in the corpus
    label's row of the JSON as encode_p50_ms)."""
    head = (f"{'corpus':>24s} {'index':20s}{'knob':>18s}{'R@10':>7s}{'dist/q':>10s}{'share':>7s}{'p50 ms':>8s}"
            f"{'p95 ms':>8s}{'build s':>9s}{'MiB':>7s}")
    lines = [head]
    for label, name, r in _index_rows(results):
        lines.append(f"{label:>24s} {name:20s}{str(r['knob']):>18s}{r['recall_at_10']:7.3f}"
                     f"{r['dist_per_query']:10.0f}{r['share_of_exact']:7.3f}{r['p50_ms']:8.1f}{r['p95_ms']:8.1f}"
                     f"{r['build_s']:9.2f}{r['memory_mib']:7.1f}")
    return "\n".join(lines)


def _index_rows(results: list[dict]):
    """(label, index name, row) per corpus and index: the corpus's name on its first row (exact search), the query
    encoding's p50 on the second (HNSW), blank below."""
    for res in results:
        for name, r in res["rows"].items():
            label = res["label"] if name == "exact" else f"(encode p50 {res['encode_p50_ms']:.1f} ms)" \
                if name == "hnsw" else ""
            yield label, name, r


def markdown(result: dict) -> str:
    """A result file as the README shows it: where it comes from, then one row per corpus and index (the
    cheapest setting of its knob that reaches the target recall), and the tree's whole sweep per corpus."""
    out = [f"{source_line(result)} · load {result.get('machine', {}).get('load_avg')} at the start", "",
           "| corpus | index | knob | R@10 | dist/q | share of exact | p50 ms | p95 ms | build s | MiB |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for label, name, r in _index_rows(result["results"]):
        out.append(f"| {label} | {name} | {r['knob']} | {r['recall_at_10']:.3f} | {r['dist_per_query']:.0f} | "
                   f"{r['share_of_exact']:.3f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['build_s']:.2f} | "
                   f"{r['memory_mib']:.1f} |")
    out.append("")
    for res in result["results"]:
        sweep = res["rows"].get("tree", {}).get("sweep") or []
        built = f", built in {res['tree_s']} s (not charged)" if "tree_s" in res else ""
        out.append(f"- {res['label']} (tree: {res.get('builder')}{built}), the tree's sweep (probe = beam: "
                   "recall@10 at share of exact): "
                   + " · ".join(f"{p['knob']}: {p['recall_at_10']:.3f} at {p['share_of_exact']:.3f}" for p in sweep))
    return "\n".join(out).rstrip("\n")


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", nargs="+", metavar="RESULT", help="print result files' tables, run nothing")
    ap.add_argument("--sizes", type=int, nargs="*", default=[50_000, 200_000])
    ap.add_argument("--workspace")
    ap.add_argument("--corpus", nargs="*", default=[])
    ap.add_argument("--queries", type=int, default=500, help="held-out queries for recall")
    ap.add_argument("--latency-queries", type=int, default=100)
    ap.add_argument("--ivf-iters", type=int, default=10, help="k-means iterations of the from-scratch IVF")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "tree_index.json"))
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.markdown:
        print_tables(args.markdown, markdown)
        return []
    from hce_engine.encoder import default_model_path, load_encoder
    from hce_engine.tree import build_agglomerative, build_divisive
    if args.smoke:
        from hce_engine.encoder.fake import FakeEncoder
        enc = FakeEncoder(dim=32, seed=0)
        args.sizes, args.queries, args.latency_queries = [3000], 50, 5
    else:
        enc = load_encoder(default_model_path(), device="cpu")
    texts = real_queries(max(args.latency_queries, 1))
    results = []
    for n in args.sizes:
        x, q, _, _ = synthetic(n, args.queries, seed=args.seed)
        ids = np.arange(n, dtype=np.int64)
        t0 = time.perf_counter()
        tree = (build_agglomerative if n <= 50_000 else build_divisive)(x, branching=10, seed=args.seed)
        tree_s = round(time.perf_counter() - t0, 1)
        res = measure(x, ids, tree, q, enc, texts, args)
        res.update(label=f"synthetic {n // 1000}k", tree_s=tree_s, builder=tree.builder)
        results.append(res)
        print(table([res]), file=sys.stderr, flush=True)
    if args.workspace:
        from hce_engine import Workspace
        ws = Workspace(args.workspace)
        for corpus in args.corpus:
            judged = ws.qrels(corpus).drop_duplicates("query_id").sort_values("query_id")
            qtexts = list(judged["query"].dropna())[:args.queries]
            for r in ws.runs(corpus, status="done"):
                ids, x = ws.vectors(r.run_id)
                tree = ws.tree(r.run_id).tree
                q = ws.encode_queries(r, qtexts)
                res = measure(x, ids, tree, q, ws.run_encoder(r), qtexts, args)
                res.update(label=f"{corpus} run {r.run_id} ({r.kind})", builder=tree.builder)
                results.append(res)
                print(table([res]), file=sys.stderr, flush=True)
        ws.close()
    target = {"recall_at_10": TARGET_RECALL, "share_of_exact": TARGET_SHARE}
    write_result(args.out, {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), "smoke": args.smoke,
                            "target": target, "results": results})
    print(table(results))
    return results


if __name__ == "__main__":
    main()
