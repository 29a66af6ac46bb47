"""Growth benchmark: how HCE Explorer scales with corpus size on one machine.

For each N (default 1k, 10k, 50k, 200k documents), in a fresh subprocess (so its peak memory is its own):

* tree build: agglomerative (only up to --agglo-max, default 50k: its first level is k-means with N/b
  clusters, O(N * N/b * d * iters), about 16x the 50k time at 200k) vs divisive;
* index build: exact (FAISS flat) vs approximate (HNSW, M=32, efConstruction 64), and recall@10 of HNSW
  against exact search on held-out queries drawn from the same distribution as the documents;
* single-query search latency p50/p95 INCLUDING the query's encoding with the bundled MiniLM (real short
  queries: SciFact claims), exact and approximate, plus the full ``Workspace.search`` (index chosen by
  ``kind="auto"``, hit lookup in DuckDB, tree paths), and the query encoding alone as the reference;
* UMAP as ``projection.project`` does it (fit on <= FIT_SAMPLE points, transform() the rest), up to
  --umap-max (default 200k); for larger N the time is extrapolated from the measured fit and placement rate;
* DuckDB: ``Store.write_vectors`` / ``Store.read_vectors`` of the N vectors in a temporary workspace;
* adding 1,000 short real-text documents (SciFact title + first words of the abstract) with
  ``Workspace.add_documents`` to that workspace (N synthetic documents, a finished baseline run with vectors,
  tree and a warm index) against encoding the same 1,000 texts alone. The overhead is
  ``add time - time spent inside the encoder during the add`` (exact, drift-free), also reported against
  a separate encode of the same texts;
* a restart: the approximate index is saved (as ``Workspace.index`` does after building one) before the adds;
  the workspace is closed and opened again *in a fresh process*, as the app starts, where the first
  ``Workspace.index`` (read the saved file, catch up with the documents added since) is timed against the cold
  start (read vectors + build), and the process then serves ``--serve-queries`` dense and hybrid searches;
* peak resident memory (``ru_maxrss``) of the serving process (what the app holds to search N documents) and
  of the benchmark's own process (which also holds the raw vectors, the exact index for recall, a second HNSW
  and UMAP's working set); UMAP's working set alone (the peak during ``project`` above the memory before it);
* diagnostics, not target numbers: the query encoding and the divisive build again on one torch thread (the
  ``1t`` columns), to show how much of the default-thread time is OpenMP waiting on a busy machine.

Document vectors are synthetic clustered unit vectors (d=384, the same topic mixture as tree_build.py) with
pseudo-word texts per subtopic (so node labels have something to count); only queries and added documents
go through the real encoder. Everything runs with library defaults (torch/faiss threads untouched).

Usage:
    python benchmarks/growth.py                        # N = 1k, 10k, 50k, 200k (several minutes)
    python benchmarks/growth.py --sizes 1000 10000
    python benchmarks/growth.py --sizes 1000 10000 50000 200000 1000000 --umap-max 1000000   # about an hour
    python benchmarks/growth.py --markdown benchmarks/results/growth.json  # the README's tables, runs nothing
    python benchmarks/growth.py --smoke                # seconds: N = 600, fake encoder, no UMAP

Prints one table and writes benchmarks/results/growth.json (per-N numbers, targets met/missed, machine
and load averages, so runs can be compared).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# common first: it puts the repository on sys.path
from common import (DIM, JARGON, RESULTS, SCIFACT, machine, pct, print_tables, read_docs, real_queries, source_line,
                    synthetic, synthetic_texts, write_jsonl, write_result)

BRANCHING = 10
#: Targets on the project's 2-core CPU machine, per corpus size: (result key, "<" or "<=", limit, unit).
#: Search latencies include the query's MiniLM encoding; the add overhead is judged at every size.
TARGETS: dict[int, dict[str, tuple[str, str, float, str]]] = {
    200_000: {
        "search_p50": ("hnsw_search_p50_ms", "<", 25.0, "ms"),
        "hybrid_p50": ("hybrid_search_p50_ms", "<", 40.0, "ms"),
        "divisive": ("divisive_s", "<", 60.0, "s"),
    },
    1_000_000: {
        "search_p50": ("hnsw_search_p50_ms", "<", 25.0, "ms"),
        "hybrid_p50": ("hybrid_search_p50_ms", "<", 50.0, "ms"),
        "hnsw_recall_at_10": ("hnsw_recall_at_10", ">=", 0.99, ""),
        "divisive": ("divisive_s", "<", 180.0, "s"),
        "hnsw_build": ("hnsw_build_s", "<", 600.0, "s"),
        "index_saved_reopened": ("first_search_after_restart_s", "<", 30.0, "s"),
        "umap": ("umap_s", "<", 600.0, "s"),
        "serving_peak_rss": ("serve_peak_rss_mib", "<", 12 * 1024.0, "MiB"),
    },
}
ADD_OVERHEAD_S = 1.0  # add_documents(1000) - encoding them, at every N


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- data
def short_docs(n: int, words: int = 30) -> list[dict]:
    """n short real-text documents: title + the first ``words`` words of the text (SciFact, else jargon)."""
    path = SCIFACT / "corpus.jsonl" if (SCIFACT / "corpus.jsonl").is_file() else JARGON
    out = [{"title": d.title, "text": " ".join(d.text.split()[:words])} for d in read_docs(path, n)]
    while len(out) < n:  # a small corpus: reuse texts (ids stay unique)
        out.append(dict(out[len(out) % max(1, len(out))]))
    return out


# ---------------------------------------------------------------------------------------------- timing
class Clock:
    def __init__(self):
        self.t = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        dt, self.t = now - self.t, now
        return dt


_MISSING = object()


@contextlib.contextmanager
def timed_methods(targets: list[tuple[object, str, str]]):
    """Time calls of bound methods: [(object, method name, label)] -> {label: seconds} filled while inside."""
    spent: dict[str, float] = {label: 0.0 for _, _, label in targets}
    patched = []
    for obj, name, label in targets:
        orig = getattr(obj, name)
        own = vars(obj).get(name, _MISSING)  # a class's function, or nothing for a bound method

        def wrapper(*a, __orig=orig, __label=label, **k):
            t = time.perf_counter()
            try:
                return __orig(*a, **k)
            finally:
                spent[__label] += time.perf_counter() - t

        setattr(obj, name, wrapper)
        patched.append((obj, name, own))
    try:
        yield spent
    finally:
        for obj, name, own in reversed(patched):
            if own is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, own)


def reference_ms() -> float:
    """A fixed CPU workload (torch matmul 512x384 @ 384x1536, default threads), median of 15: the machine's
    speed at this moment, to compare runs made under different load."""
    import torch
    a, b = torch.randn(512, 384), torch.randn(384, 1536)
    ts = []
    for _ in range(15):
        t = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t)
    return round(1000 * float(np.median(ts)), 3)


# ------------------------------------------------------------------------------------------- one size
def run_size(n: int, args) -> dict:
    import torch

    from hce_engine import Workspace
    from hce_engine.index import APPROX_THRESHOLD, VectorIndex
    from hce_engine.threads import one_thread_if
    from hce_engine.tree import DIVISIVE_THRESHOLD, build_agglomerative, build_divisive

    res: dict = {"n_docs": n, "load_avg_start": [round(v, 2) for v in os.getloadavg()],
                 "torch_threads": torch.get_num_threads(), "ref_matmul_ms_start": reference_ms()}
    x, xq, lab, sub_top = synthetic(n, args.recall_queries, seed=args.seed)
    texts = synthetic_texts(lab, sub_top, seed=args.seed)
    log(f"[N={n}] data ready")

    # -- tree builders (compute core only)
    c = Clock()
    div = build_divisive(x, branching=BRANCHING, seed=args.seed)
    res["divisive_s"] = round(c.lap(), 3)
    res["divisive_depth"], res["divisive_nodes"] = div.depth, div.n_nodes
    if args.diag_threads:  # diagnostic, not a target number: the same build on one torch thread
        with one_thread_if(True):
            c.lap()
            build_divisive(x, branching=BRANCHING, seed=args.seed)
            res["diag_divisive_s_1thread"] = round(c.lap(), 3)
    agg = None
    if n <= args.agglo_max:
        c.lap()
        agg = build_agglomerative(x, branching=BRANCHING, seed=args.seed)
        res["agglomerative_s"] = round(c.lap(), 3)
        res["agglomerative_depth"], res["agglomerative_nodes"] = agg.depth, agg.n_nodes
    else:
        res["agglomerative_s"] = None
        res["agglomerative_skipped"] = (f"N > {args.agglo_max}: first level is k-means with N/b = {n // BRANCHING} "
                                        "clusters, O(N^2 d iters / b)")
    log(f"[N={n}] trees: divisive {res['divisive_s']} s (1 thread: {res.get('diag_divisive_s_1thread')} s), "
        f"agglomerative {res['agglomerative_s']} s")

    # -- a workspace holding N synthetic documents and a finished baseline run (no document encoding)
    tmp = tempfile.mkdtemp(prefix="hce-growth-")
    try:
        ws = Workspace(tmp, default_model=args.model)
        store = ws.store
        cid = store.create_corpus("synthetic", "benchmarks/growth.py")
        c.lap()
        ids = store.insert_documents(cid, [f"s{i}" for i in range(n)], [""] * n, texts, [None] * n)
        res["db_insert_docs_s"] = round(c.lap(), 3)
        run = ws._new_baseline_run("synthetic", model=args.model, branching=BRANCHING, seed=args.seed)
        c.lap()
        store.write_vectors(run, ids, x)
        res["db_write_vectors_s"] = round(c.lap(), 3)
        rids, rvecs = store.read_vectors(run, live_only_corpus=cid)  # what Workspace.index() reads
        res["db_read_vectors_s"] = round(c.lap(), 3)
        assert np.array_equal(rids, ids) and rvecs.shape == x.shape
        del rvecs
        # the tree builder="auto" would pick, labelled, with statistics, stored
        tree = div if (n > DIVISIVE_THRESHOLD or agg is None) else agg
        c.lap()
        ws.build_tree(run, x, ids, texts, branching=BRANCHING, seed=args.seed, tree=tree)
        res["tree_label_stats_store_s"] = round(c.lap(), 3)
        res["tree_builder_auto"] = tree.builder
        store.update_run(run, status="done", model_path=args.model, summary={"documents": n, "dim": DIM})
        res["db_file_mib"] = round(os.path.getsize(os.path.join(tmp, "hce.duckdb")) / 2 ** 20, 1)
        log(f"[N={n}] store: write {res['db_write_vectors_s']} s, read {res['db_read_vectors_s']} s, "
            f"tree labels+stats+store {res['tree_label_stats_store_s']} s")

        # -- indexes
        c.lap()
        flat = VectorIndex.build(ids, x, kind="flat")
        res["flat_build_s"] = round(c.lap(), 3)
        hnsw = VectorIndex.build(ids, x, kind="hnsw")
        res["hnsw_build_s"] = round(c.lap(), 3)
        auto = "flat" if n < APPROX_THRESHOLD else "hnsw"
        res["auto_index"] = auto
        res["first_search_cold_s"] = round(res["db_read_vectors_s"] + res[f"{auto}_build_s"], 3)
        _, exact_ids = flat.search(xq, 10)
        _, approx_ids = hnsw.search(xq, 10)
        res["hnsw_recall_at_10"] = round(float(np.mean([len(np.intersect1d(a, b)) / 10.0
                                                        for a, b in zip(exact_ids, approx_ids)])), 4)
        log(f"[N={n}] index: flat {res['flat_build_s']} s, hnsw {res['hnsw_build_s']} s, "
            f"recall@10 {res['hnsw_recall_at_10']}")
        # Workspace.index(run) would read the stored vectors and build exactly this index (kind="auto");
        # both steps are timed above, so hand it the one already built instead of building it again.
        ws.cache.put("index", run, flat if auto == "flat" else hnsw)

        # -- single-query latency, query encoding included (the run's own encoder, as Workspace.search).
        # Modes run in alternating blocks of queries, so load drift hits them alike; exact and approximate
        # are separate loops (in the app a search touches one index, and a flat search's OpenMP workers
        # would otherwise still be spinning when the next query is encoded).
        enc = ws.encoder(args.model, "auto", 256)
        res.update(latency(ws, run, enc, flat, hnsw, args, texts))
        log(f"[N={n}] latency p50: encode {res['encode_query_p50_ms']} ms, exact {res['exact_search_p50_ms']} ms, "
            f"hnsw {res['hnsw_search_p50_ms']} ms, Workspace.search {res['ws_search_p50_ms']} ms "
            f"(diagnostic, 1 torch thread: encode {res['diag_encode_query_p50_ms_1thread']} ms)")

        # -- UMAP as project() does it
        res.update(umap_time(x, args))

        # -- the saved index (what Workspace.index does after building an approximate one), before the adds
        if auto != "flat":
            c.lap()
            ws.index(run).save(ws._index_path(run))
            res["index_save_s"] = round(c.lap(), 3)
            res["index_file_mib"] = round(os.path.getsize(ws._index_path(run)) / 2 ** 20, 1)

        # -- add 1,000 short real documents vs encoding them
        res.update(add_documents_cost(ws, enc, hnsw if auto == "hnsw" else flat, args, tmp))

        # -- a restart in a fresh process: the first search reads the saved index and catches up with the
        # documents added since it was saved (a flat index is rebuilt from the store, as the cold start above)
        ws.close()
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            serve_out = f.name
        try:
            subprocess.run([sys.executable, os.path.abspath(__file__), "--serve", tmp, "--serve-run", str(run),
                            "--child-out", serve_out, "--model", args.model, "--seed", str(args.seed),
                            "--serve-queries", str(args.serve_queries)], check=True, timeout=args.timeout)
            served = json.loads(Path(serve_out).read_text())
        finally:
            os.unlink(serve_out)
        assert served["index_size"] == n + args.add_docs * args.add_reps and served["index_kind"] == auto
        res.update({k: v for k, v in served.items() if k not in ("index_size", "index_kind")})
        log(f"[N={n}] restart: index ready in {res['first_search_after_restart_s']} s "
            f"(cold build {res['first_search_cold_s']} s); serving process peak {res['serve_peak_rss_mib']} MiB")
    finally:
        with contextlib.suppress(Exception):
            ws.close()
        shutil.rmtree(tmp, ignore_errors=True)
    res["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    res["ref_matmul_ms_end"] = reference_ms()
    res["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return res


def serve(path: str, run: int, args) -> dict:
    """A fresh process opening the workspace as the app does: the first ``Workspace.index`` timed, then
    ``--serve-queries`` dense and hybrid searches; its peak resident memory."""
    from hce_engine import Workspace
    ws = Workspace(path, default_model=args.model)
    try:
        t = time.perf_counter()
        index = ws.index(run)
        out = {"first_search_after_restart_s": round(time.perf_counter() - t, 3), "index_size": len(index),
               "index_kind": index.kind}
        corpus = ws.run(run).corpus
        times: dict[str, list[float]] = {"dense": [], "hybrid": []}
        for q in real_queries(args.serve_queries):
            for mode in times:
                t = time.perf_counter()
                ws.search(corpus, q, run=run, mode=mode)
                times[mode].append(1000 * (time.perf_counter() - t))
        out.update({f"serve_{m}_p50_ms": round(pct(v[1:], 50), 2) for m, v in times.items()})
    finally:
        ws.close()
    # VmHWM, not ru_maxrss: Linux keeps the parent's peak in ru_maxrss across fork and exec
    out["serve_peak_rss_mib"] = round(rss_mib("VmHWM"), 1)
    return out


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident memory (``VmRSS``) or its peak since the last :func:`reset_peak` (``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Start ``VmHWM`` again from the current resident memory (Linux: ``/proc/self/clear_refs``)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def latency(ws, run: int, enc, flat, hnsw, args, texts: list[str]) -> dict:
    from hce_engine.threads import one_thread_if
    queries = real_queries(args.latency_queries)
    # hybrid queries: the real claim plus one document's pseudo-words, so BM25 walks real postings lists
    rng = np.random.default_rng(args.seed)
    mixed = {q: f"{q} {texts[int(rng.integers(len(texts)))]}" for q in queries}
    for q in queries[:5]:  # warm-up (first calls allocate)
        qv = enc.encode([q])
        flat.search(qv, 10)
        hnsw.search(qv, 10)
    ws.search("synthetic", queries[0], run=run)  # reads and caches the tree
    ws.search("synthetic", queries[0], run=run, mode="hybrid")  # builds BM25, reads the vectors
    t: dict[str, list[float]] = {k: [] for k in ("enc", "x_enc", "x_idx", "h_enc", "h_idx", "ws", "hy")}

    def encode_then_search(index, key: str):
        """One timed query: its encoding into t[key + '_enc'], the index search into t[key + '_idx']."""
        def run(q):
            t0 = time.perf_counter()
            qv = enc.encode([q])
            t1 = time.perf_counter()
            index.search(qv, 10)
            t[f"{key}_enc"].append(t1 - t0)
            t[f"{key}_idx"].append(time.perf_counter() - t1)
        return run

    exact, approx = encode_then_search(flat, "x"), encode_then_search(hnsw, "h")

    def encode_only(q):
        t0 = time.perf_counter()
        enc.encode([q])
        t["enc"].append(time.perf_counter() - t0)

    def workspace(q):
        t0 = time.perf_counter()
        ws.search("synthetic", q, run=run, k=10)
        t["ws"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ws.search("synthetic", mixed[q], run=run, k=10, mode="hybrid")  # no qrels: the default weight
        t["hy"].append(time.perf_counter() - t0)

    block = 10
    for b in range(0, len(queries), block):
        chunk = queries[b:b + block]
        for fn in (encode_only, exact, approx):
            for q in chunk:
                fn(q)
        if b < args.ws_queries:
            for q in chunk[:max(0, args.ws_queries - b)]:
                workspace(q)
    ms = {k: 1000 * np.asarray(v) for k, v in t.items()}
    exact_ms, approx_ms = ms["x_enc"] + ms["x_idx"], ms["h_enc"] + ms["h_idx"]
    out = {
        "latency_queries": len(queries),
        "encode_query_p50_ms": round(pct(ms["enc"], 50), 2), "encode_query_p95_ms": round(pct(ms["enc"], 95), 2),
        "flat_only_p50_ms": round(pct(ms["x_idx"], 50), 3), "hnsw_only_p50_ms": round(pct(ms["h_idx"], 50), 3),
        "exact_search_p50_ms": round(pct(exact_ms, 50), 2), "exact_search_p95_ms": round(pct(exact_ms, 95), 2),
        "hnsw_search_p50_ms": round(pct(approx_ms, 50), 2), "hnsw_search_p95_ms": round(pct(approx_ms, 95), 2),
        "ws_search_p50_ms": round(pct(ms["ws"], 50), 2), "ws_search_p95_ms": round(pct(ms["ws"], 95), 2),
        "hybrid_search_p50_ms": round(pct(ms["hy"], 50), 2), "hybrid_search_p95_ms": round(pct(ms["hy"], 95), 2),
    }
    out["hnsw_search_over_encode_p50"] = round(out["hnsw_search_p50_ms"] / out["encode_query_p50_ms"], 3)
    # Diagnostic, not a target number: the same encodings on one torch thread (how much of the latency is
    # OpenMP waiting on a busy machine rather than compute).
    one = []
    with one_thread_if(True):
        for q in queries[:max(20, len(queries) // 2)]:
            t0 = time.perf_counter()
            enc.encode([q])
            one.append(1000 * (time.perf_counter() - t0))
    out["diag_encode_query_p50_ms_1thread"] = round(pct(one, 50), 2)
    return out


def umap_time(x: np.ndarray, args) -> dict:
    n = len(x)
    if n > args.umap_max:
        return {"umap_s": None, "umap_measured": False}
    import umap

    from hce_engine.projection import umap_projection as up
    c = Clock()
    up.warm_up()  # numba compilation, once per process (the app does it in the background)
    out = {"umap_compile_s": round(c.lap(), 2), "umap_fit_sample": min(n, up.FIT_SAMPLE), "umap_measured": True}
    before = rss_mib()
    reset_peak()
    with timed_methods([(umap.UMAP, "fit_transform", "fit")]) as spent:
        c.lap()
        up.project(x, seed=args.seed)
        out["umap_s"] = round(c.lap(), 2)
    out["umap_working_set_mib"] = round(rss_mib("VmHWM") - before, 1)
    out["umap_fit_s"] = round(spent["fit"], 2)
    out["umap_place_s"] = round(out["umap_s"] - spent["fit"], 2)  # the other points, placed by transform()
    moved = n - out["umap_fit_sample"]
    if moved:
        out["umap_place_ms_per_doc"] = round(1000 * out["umap_place_s"] / moved, 3)
    log(f"[N={n}] umap {out['umap_s']} s (fit {out['umap_fit_s']} s on {out['umap_fit_sample']}, "
        f"place {out['umap_place_s']} s; compile {out['umap_compile_s']} s)")
    return out


@contextlib.contextmanager
def timed_commits(store, spent: dict[str, float]):
    """Add to ``spent["db_commit"]`` the time the store's outermost transactions take to end (their COMMIT)."""
    spent.setdefault("db_commit", 0.0)
    orig = store.transaction

    class Timed:
        def __init__(self, cm):
            self.cm = cm

        def __enter__(self):
            self.depth = getattr(store._local, "depth", 0)
            return self.cm.__enter__()

        def __exit__(self, *exc):
            t = time.perf_counter()
            try:
                return self.cm.__exit__(*exc)
            finally:
                if self.depth == 0:
                    spent["db_commit"] += time.perf_counter() - t

    store.transaction = lambda *a, **k: Timed(orig(*a, **k))
    try:
        yield spent
    finally:
        del store.transaction


def add_documents_cost(ws, enc, index, args, tmp: str) -> dict:
    import hce_engine.tree as hce_tree
    from hce_engine.corpus import doc_text
    from hce_engine.workspace import updates
    docs = short_docs(args.add_docs * args.add_reps)
    reps = []
    for r in range(args.add_reps):
        batch = docs[r * args.add_docs:(r + 1) * args.add_docs]
        path = write_jsonl(os.path.join(tmp, f"add-{r}.jsonl"),
                           ({"_id": f"add-{r}-{i}", **d} for i, d in enumerate(batch)))
        texts = [doc_text(d["title"], d["text"]) for d in batch]  # what add_documents encodes
        t = time.perf_counter()
        enc.encode(texts, max_length=256)
        alone = time.perf_counter() - t
        st = ws.store
        with timed_methods([(enc, "encode", "encode"), (st, "insert_documents", "db_insert_docs"),
                            (st, "write_vectors", "db_write_vectors"), (st, "read_tree", "db_read_tree"),
                            (st, "append_tree_docs", "db_append_tree"), (index, "add", "index_add"),
                            (hce_tree, "add_documents", "tree_place"), (updates, "read_corpus", "read_file"),
                            (st, "existing_ext_ids", "db_id_check"),
                            (ws.cache, "documents_added", "cache_update")]) as spent, \
                timed_commits(st, spent):
            t = time.perf_counter()
            out = ws.add_documents("synthetic", path)
            total = time.perf_counter() - t
        assert out["added"] == len(batch)
        rep = {"add_s": round(total, 3), "encode_inside_add_s": round(spent["encode"], 3),
               "encode_alone_s": round(alone, 3), "overhead_s": round(total - spent["encode"], 3),
               "overhead_vs_separate_encode_s": round(total - alone, 3),
               "breakdown_s": {k: round(v, 3) for k, v in spent.items() if k != "encode"}}
        reps.append(rep)
        log(f"[+{len(batch)} docs] add {rep['add_s']} s = encode {rep['encode_inside_add_s']} s + overhead "
            f"{rep['overhead_s']} s (separate encode {rep['encode_alone_s']} s); {rep['breakdown_s']}")
    worst = max(reps, key=lambda r: r["overhead_s"])
    return {"add_docs": args.add_docs, "add_reps": reps, "add_s": worst["add_s"],
            "add_encode_s": worst["encode_inside_add_s"], "add_overhead_s": worst["overhead_s"],
            "add_overhead_median_s": round(float(np.median([r["overhead_s"] for r in reps])), 3)}


# ---------------------------------------------------------------------------------------------- driver
def fmt(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


COLUMNS = [  # (header, width, key or callable, format)
    ("N", 7, "n_docs", "d"),
    ("agglo s", 8, "agglomerative_s", ".2f"),
    ("divis s", 8, "divisive_s", ".2f"),
    ("flat s", 7, "flat_build_s", ".2f"),
    ("hnsw s", 7, "hnsw_build_s", ".1f"),
    ("R@10", 6, "hnsw_recall_at_10", ".3f"),
    ("enc p50", 8, "encode_query_p50_ms", ".1f"),
    ("exact p50/p95", 14, lambda r: f"{r['exact_search_p50_ms']:.1f}/{r['exact_search_p95_ms']:.1f}", None),
    ("hnsw p50/p95", 13, lambda r: f"{r['hnsw_search_p50_ms']:.1f}/{r['hnsw_search_p95_ms']:.1f}", None),
    ("ws p50", 7, "ws_search_p50_ms", ".1f"),
    ("hyb p50", 8, "hybrid_search_p50_ms", ".1f"),
    ("umap s", 8, lambda r: fmt(r.get("umap_s"), ".1f") if r.get("umap_measured")
     else ("~" + fmt(r["umap_s_extrapolated"], ".0f") if r.get("umap_s_extrapolated") else "-"), None),
    ("cold/restart s", 15,
     lambda r: f"{r['first_search_cold_s']:.1f}/{fmt(r.get('first_search_after_restart_s'), '.1f')}", None),
    ("db w/r s", 10, lambda r: f"{r['db_write_vectors_s']:.2f}/{r['db_read_vectors_s']:.2f}", None),
    ("add1k s", 8, "add_s", ".2f"),
    ("enc1k s", 8, "add_encode_s", ".2f"),
    ("ovh s", 6, "add_overhead_s", ".2f"),
    ("peak MiB", 9, "peak_rss_mib", ".0f"),
    ("serve MiB", 10, "serve_peak_rss_mib", ".0f"),
    ("  | 1t: enc p50", 16, "diag_encode_query_p50_ms_1thread", ".1f"),
    ("divis s", 8, "diag_divisive_s_1thread", ".1f"),
]


def table(rows: list[dict]) -> str:
    """One row per N. Times in s, latencies in ms (p50/p95 per single query, query encoding included).
    The last two columns are diagnostics on one torch thread, not target numbers."""
    head = " ".join(f"{h:>{w}}" for h, w, _, _ in COLUMNS)
    lines = [head]
    for r in rows:
        cells = []
        for _, w, key, spec in COLUMNS:
            v = key(r) if callable(key) else fmt(r.get(key), spec)
            cells.append(f"{v:>{w}}")
        lines.append(" ".join(cells))  # a space between cells: a value wider than its column stays apart
    return "\n".join(lines)


def extrapolate_umap(rows: list[dict]) -> None:
    """For sizes without a UMAP measurement: fit time of the largest measured FIT_SAMPLE-sized fit plus the
    measured transform rate times the points to transform."""
    from hce_engine.projection.umap_projection import FIT_SAMPLE
    measured = [r for r in rows if r.get("umap_measured")]
    if not measured:
        return
    ref = max(measured, key=lambda r: r["n_docs"])
    rate = ref.get("umap_place_ms_per_doc")
    for r in rows:
        if r.get("umap_measured") or rate is None or ref["umap_fit_sample"] < min(FIT_SAMPLE, r["n_docs"]):
            continue
        r["umap_s_extrapolated"] = round(ref["umap_fit_s"] + rate * (r["n_docs"] - FIT_SAMPLE) / 1000, 1)
        r["umap_extrapolated_from"] = ref["n_docs"]


def judge(rows: list[dict]) -> dict:
    """Each target of :data:`TARGETS` for the sizes measured, and the worst add overhead over all sizes:
    {name: {"target", "value", "met", "margin", "at_n"}}."""
    out = {}
    ops = {"<": lambda v, lim: v < lim, "<=": lambda v, lim: v <= lim, ">=": lambda v, lim: v >= lim}
    for r in rows:
        for name, (key, op, lim, unit) in TARGETS.get(r["n_docs"], {}).items():
            v = r.get(key)
            if v is None:
                continue
            margin = lim - v if op != ">=" else v - lim
            out[f"{name}_at_{r['n_docs']}"] = {"target": f"{op} {lim:g} {unit}".rstrip(), "value": v,
                                               "met": bool(ops[op](v, lim)), "margin": round(margin, 4),
                                               "at_n": r["n_docs"]}
    adds = [r for r in rows if r.get("add_overhead_s") is not None]
    if adds:
        worst = max(adds, key=lambda r: r["add_overhead_s"])
        v = worst["add_overhead_s"]
        out["add_1000_overhead_s"] = {"target": f"<= {ADD_OVERHEAD_S} s (every N)", "value": v,
                                      "at_n": worst["n_docs"], "met": v <= ADD_OVERHEAD_S,
                                      "margin": round(ADD_OVERHEAD_S - v, 3)}
    return out


def markdown(result: dict) -> str:
    """A result file as the README shows it: the per-size table and the targets, with provenance."""
    out = [f"{source_line(result)} · seed {result['meta'].get('seed')}",
           "", "```", table(result["results"]), "```", "",
           "| target | N | measured | met | margin |", "|---|---|---|---|---|"]
    for name, t in result["targets"].items():
        out.append(f"| {name} {t['target']} | {t.get('at_n', '')} | {t['value']} | "
                   f"{'yes' if t['met'] else '**no**'} | {t['margin']} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 50_000, 200_000])
    ap.add_argument("--smoke", action="store_true", help="seconds-long run: N=600, fake encoder, no UMAP")
    ap.add_argument("--model", default=None, help="encoder folder for queries and added documents "
                                                   "(default: the bundled MiniLM)")
    ap.add_argument("--agglo-max", type=int, default=50_000, help="largest N for the agglomerative builder")
    ap.add_argument("--umap-max", type=int, default=200_000, help="largest N where UMAP is measured "
                                                                 "(larger: extrapolated)")
    ap.add_argument("--recall-queries", type=int, default=500)
    ap.add_argument("--latency-queries", type=int, default=100)
    ap.add_argument("--ws-queries", type=int, default=40, help="queries timed through Workspace.search")
    ap.add_argument("--add-docs", type=int, default=1_000)
    ap.add_argument("--add-reps", type=int, default=2, help="repetitions of the add (distinct documents)")
    ap.add_argument("--no-diag-threads", dest="diag_threads", action="store_false",
                    help="skip the diagnostic single-thread rebuild of the divisive tree")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=3600, help="seconds allowed per size")
    ap.add_argument("--out", default=str(RESULTS / "growth.json"))
    ap.add_argument("--markdown", nargs="+", metavar="RESULT", help="print result files as tables, run nothing")
    ap.add_argument("--serve-queries", type=int, default=20, help="searches of each mode in the serving process")
    ap.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--serve-run", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.markdown:
        print_tables(args.markdown, markdown)
        return None

    if args.serve is not None:  # the serving process of one size
        Path(args.child_out).write_text(json.dumps(serve(args.serve, args.serve_run, args)))
        return None
    if args.child is not None:  # one size, in this fresh process
        res = run_size(args.child, args)
        Path(args.child_out).write_text(json.dumps(res))
        return None

    fake_dir = None
    if args.smoke:
        from hce_engine.encoder import FakeEncoder
        fake_dir = tempfile.mkdtemp(prefix="hce-growth-fake-")
        FakeEncoder(dim=DIM, seed=0).save(fake_dir)
        args.model = fake_dir
        args.sizes = [600]
        args.umap_max, args.recall_queries, args.latency_queries, args.ws_queries = 0, 20, 10, 3
        args.add_docs, args.add_reps, args.serve_queries = 50, 1, 3
    if args.model is None:
        from hce_engine.encoder import default_model_path
        args.model = default_model_path()
    passthrough = ["--model", args.model, "--agglo-max", str(args.agglo_max), "--umap-max", str(args.umap_max),
                   "--recall-queries", str(args.recall_queries), "--latency-queries", str(args.latency_queries),
                   "--ws-queries", str(args.ws_queries), "--add-docs", str(args.add_docs),
                   "--add-reps", str(args.add_reps), "--seed", str(args.seed),
                   "--serve-queries", str(args.serve_queries)] + \
        ([] if args.diag_threads else ["--no-diag-threads"])
    rows = []
    started = time.time()
    try:
        for n in args.sizes:
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
                child_out = f.name
            try:
                t = time.perf_counter()
                subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(n), "--child-out",
                                child_out, *passthrough], check=True, timeout=args.timeout)
                row = json.loads(Path(child_out).read_text())
                row["wall_s"] = round(time.perf_counter() - t, 1)
                rows.append(row)
            finally:
                os.unlink(child_out)
    finally:
        if fake_dir:
            shutil.rmtree(fake_dir, ignore_errors=True)
    extrapolate_umap(rows)
    print(table(rows))
    targets = judge(rows)
    for name, t in targets.items():
        print(f"{name}: {'MET' if t['met'] else 'MISSED'} ({t['value']} vs target {t['target']}, "
              f"margin {t['margin']})")
    meta = {**machine(), "model": "fake (smoke)" if args.smoke else args.model, "d": DIM,
            "branching": BRANCHING, "seed": args.seed, "smoke": args.smoke,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            "load_avg_at_end": [round(v, 2) for v in os.getloadavg()],
            "notes": {"search": "p50/p95 over single queries, each = MiniLM encoding of a real SciFact claim + "
                                "index search (k=10); ws = full Workspace.search (auto index, DuckDB hit lookup, "
                                "tree paths)",
                      "ref_matmul_ms": "fixed torch workload timed at the start/end of each size: divide "
                                       "timings by it to compare runs made under different machine load",
                      "add_overhead_s": "add_documents wall time minus the time spent inside the encoder during "
                                        "it (worst of --add-reps)"}}
    result = {"meta": meta, "targets": targets, "results": rows}
    print(f"wrote {write_result(args.out, result)}")
    return result


if __name__ == "__main__":
    main()
