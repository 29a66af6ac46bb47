"""How to place the points UMAP was not fitted on: UMAP's transform() vs the k-nearest-sample average.

Above ``FIT_SAMPLE`` documents, ``projection.project`` fits UMAP on a seeded sample and places the rest. This
benchmark fits once, then places the rest both ways and reports, for each:

* seconds and ms per placed point;
* neighbourhood kept: for 1,000 random placed points, the share of their 10 nearest neighbours in the
  embedding space (cosine, among all N points) that are among their 10 nearest on the map; the fitted
  points' own score is the reference (what UMAP keeps for the points it optimised);
* cluster separation on the map: the share of placed points whose nearest map neighbour shares their
  subtopic (synthetic data, where subtopics are known).

Vectors: synthetic clustered unit vectors (``common.synthetic``, as in growth.py), or ``--vectors file.npy`` (float32
(n, d), e.g. a run's stored vectors) with ``--sample`` to fit on fewer points than ``FIT_SAMPLE``.

Usage:
    python benchmarks/umap_placement.py                    # N = 50,000, fit on 20,000
    python benchmarks/umap_placement.py --n 5000 --sample 2000
    python benchmarks/umap_placement.py --corpus ../shared/data/scifact --sample 2000   # real MiniLM vectors
    python benchmarks/umap_placement.py --smoke            # seconds
Prints a table and writes benchmarks/results/umap_placement.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

# common first: it puts the repository on sys.path
from common import RESULTS, encoder_texts, machine, read_docs, source_line, synthetic, write_result


def knn_overlap(x: np.ndarray, xy: np.ndarray, probe: np.ndarray, k: int = 10) -> float:
    """Mean share of each probe point's k nearest neighbours by cosine in ``x`` (n, d) that are among its
    k nearest by Euclidean distance on the map ``xy`` (n, 2); the point itself excluded."""
    import faiss
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    hi = faiss.IndexFlatIP(x.shape[1])
    hi.add(np.ascontiguousarray(xn, dtype=np.float32))
    _, nn_hi = hi.search(np.ascontiguousarray(xn[probe], dtype=np.float32), k + 1)
    lo = faiss.IndexFlatL2(2)
    lo.add(np.ascontiguousarray(xy, dtype=np.float32))
    _, nn_lo = lo.search(np.ascontiguousarray(xy[probe], dtype=np.float32), k + 1)
    shares = [len((set(a) - {p}) & (set(b) - {p})) / k for p, a, b in zip(probe, nn_hi, nn_lo)]
    return round(float(np.mean(shares)), 4)


def same_label_neighbour(xy: np.ndarray, labels: np.ndarray, probe: np.ndarray) -> float:
    import faiss
    lo = faiss.IndexFlatL2(2)
    lo.add(np.ascontiguousarray(xy, dtype=np.float32))
    _, nn = lo.search(np.ascontiguousarray(xy[probe], dtype=np.float32), 2)
    other = np.where(nn[:, 0] == probe, nn[:, 1], nn[:, 0])
    return round(float(np.mean(labels[other] == labels[probe])), 4)


def markdown(results: list[dict]) -> str:
    """Result files as one README table (a data set per file), each with where it comes from."""
    out = ["| data | fit on | placed | method | ms per point | 10-NN kept (placed) | 10-NN kept (fitted) | "
           "same-subtopic neighbour (placed) |", "|---|---|---|---|---|---|---|---|"]
    for result in results:
        m = result["meta"]
        data = f"synthetic, {m['n']:,}" if m["vectors"] == "synthetic" else f"{m['vectors']}, {m['n']:,}"
        for i, r in enumerate(result["rows"]):
            head = f"{data} | {m['fit_sample']:,} | {r['placed']:,}" if i == 0 else " | |"
            same = r.get("same_subtopic_neighbour_placed")
            out.append(f"| {head} | {r['method']} | {r['ms_per_point']:.2f} | {r['knn10_kept_placed']:.3f} | "
                       f"{r['knn10_kept_fitted']:.3f} | {'-' if same is None else f'{same:.3f}'} |")
    out += ["", *(f"- {r['meta']['vectors']}: {source_line(r)}" for r in results)]
    return "\n".join(out)


def corpus_vectors(path: str) -> np.ndarray:
    """The bundled encoder's vectors of a corpus (file or BEIR folder), as a zero-shot run stores them."""
    from hce_engine.encoder import Encoder
    return Encoder.load(device="cpu").encode(encoder_texts(read_docs(path)))


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", nargs="+", metavar="RESULT", help="print result files as one table, run nothing")
    ap.add_argument("--corpus", default=None, help="a corpus (file or BEIR folder) encoded by the bundled model "
                                                  "instead of synthetic vectors")
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--sample", type=int, default=None, help="fit sample size (default FIT_SAMPLE)")
    ap.add_argument("--vectors", default=None, help=".npy float32 (n, d) instead of synthetic vectors")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--probe", type=int, default=1000)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "umap_placement.json"))
    a = ap.parse_args(argv)
    if a.markdown:
        print(markdown([json.loads(Path(p).read_text()) for p in a.markdown]))
        return None
    import umap

    from hce_engine.projection import FIT_SAMPLE, warm_up
    from hce_engine.projection.umap_projection import place_knn
    warm_up()  # numba compiles fit and transform once per process: not part of either timing
    if a.smoke:
        a.n, a.sample, a.probe = 600, 300, 100
    if a.vectors or a.corpus:
        x = np.load(a.vectors, allow_pickle=False).astype(np.float32) if a.vectors else corpus_vectors(a.corpus)
        labels = None
    else:
        x, _, labels, _ = synthetic(a.n, seed=a.seed)
    n = len(x)
    s = min(a.sample or FIT_SAMPLE, n - 1)
    rng = np.random.default_rng(a.seed)
    fit_idx = np.sort(rng.choice(n, s, replace=False))
    rest = np.setdiff1d(np.arange(n), fit_idx)
    t0 = time.perf_counter()
    reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=a.seed, n_components=2,
                        low_memory=True, verbose=False, n_jobs=1)
    base = np.empty((n, 2), dtype=np.float32)
    base[fit_idx] = reducer.fit_transform(x[fit_idx])
    fit_s = time.perf_counter() - t0
    probe_rest = rng.choice(rest, min(a.probe, len(rest)), replace=False)
    probe_fit = rng.choice(fit_idx, min(a.probe, len(fit_idx)), replace=False)
    rows = []
    for name, place in (("knn", lambda v: place_knn(x[fit_idx], base[fit_idx], v)),
                        ("transform", lambda v: reducer.transform(v))):
        xy = base.copy()
        t0 = time.perf_counter()
        xy[rest] = place(x[rest])
        secs = time.perf_counter() - t0
        row = {"method": name, "placed": int(len(rest)), "seconds": round(secs, 2),
               "ms_per_point": round(1000 * secs / len(rest), 4),
               "knn10_kept_placed": knn_overlap(x, xy, probe_rest),
               "knn10_kept_fitted": knn_overlap(x, xy, probe_fit)}
        if labels is not None:
            row["same_subtopic_neighbour_placed"] = same_label_neighbour(xy, labels, probe_rest)
            row["same_subtopic_neighbour_fitted"] = same_label_neighbour(xy, labels, probe_fit)
        rows.append(row)
    knn, tr = rows
    ratios = {"time_transform_over_knn": round(tr["seconds"] / max(knn["seconds"], 1e-9), 1),
              "knn10_kept_knn_minus_transform": round(knn["knn10_kept_placed"] - tr["knn10_kept_placed"], 4)}
    result = {"meta": {"n": n, "fit_sample": int(s), "fit_s": round(fit_s, 1), "vectors": a.vectors or (a.corpus and f"{Path(a.corpus).name} (bundled MiniLM)") or "synthetic",
                       "seed": a.seed, "probe": int(len(probe_rest)), **machine(), "smoke": a.smoke},
              "rows": rows, "ratios": ratios}
    cols = [k for k in rows[0] if k != "method"]
    print(f"N = {n}, UMAP fitted on {s} points in {fit_s:.1f} s; {len(rest)} placed")
    print(f"{'method':<10}" + "".join(f"{c:>32}" for c in cols))
    for r in rows:
        print(f"{r['method']:<10}" + "".join(f"{r.get(c, '-')!s:>32}" for c in cols))
    print(ratios)
    write_result(a.out, result)
    return result


if __name__ == "__main__":
    main()
