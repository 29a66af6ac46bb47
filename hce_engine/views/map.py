"""2-D maps of a run's documents: UMAP projections cached per run in the store, aligned across runs.

UMAP is slow to start (numba compiles for about a minute per process) and to fit on large corpora, so
:func:`ensure_projection` computes a missing map in a background thread and reports its state; the app
polls it and draws the map once it is ``ready``. :func:`projection` is the blocking version.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd

from ..errors import HCEError, InputError, NotFoundError
from . import finished_run, label_of, rows_of, run_vectors, same_corpus

_jobs: dict[tuple, dict] = {}
_jobs_lock = threading.Lock()


def _tree_ids(ws, run_id: int) -> np.ndarray | None:
    """The run's current document ids from its (cached) tree, or None if it has no tree."""
    try:
        tree, _, _ = ws.tree(int(run_id))
    except NotFoundError:
        return None
    return np.sort(tree.doc_ids)


def _stored(ws, run_id: int, live: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The stored map restricted to the live documents, or None if missing or some live document lacks a
    point (documents were added since it was computed)."""
    ids, xy = ws.store.read_projection(int(run_id))
    if len(ids) == 0:
        return None
    if live is None:
        live = _tree_ids(ws, run_id)
    if live is None:
        return ids, xy
    rows = rows_of(ids, live)
    if (rows < 0).any():
        return None
    return live, xy[rows]


def projection(ws, run_id: int, align_to: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(doc ids int64 ascending, xy float32 (n, 2)) of a run's documents; blocking.

    Read from the store when a map covering the run's documents is stored; otherwise computed with UMAP
    (cosine) and stored. With ``align_to`` (another run of the same corpus), a newly computed map starts
    from that run's map (same documents, same places), and the result is Procrustes-aligned onto it, so
    before/after maps can be compared side by side. The stored map is the unaligned one.
    """
    from ..projection import align, project

    info = finished_run(ws, run_id)
    ref = None
    if align_to is not None and int(align_to) != int(run_id):
        same_corpus(info, finished_run(ws, align_to))
        ref = projection(ws, int(align_to), seed=seed)
    got = _stored(ws, run_id)
    if got is None:
        ids, vecs = run_vectors(ws, int(run_id))
        live = _tree_ids(ws, run_id)
        if live is not None:  # map exactly the documents of the tree when it has one
            rows = rows_of(ids, live)
            ids, vecs = live[rows >= 0], vecs[rows[rows >= 0]]
        init = None
        if ref is not None:
            rows = rows_of(ref[0], ids)
            if (rows >= 0).sum() >= 4:
                centre = ref[1][rows[rows >= 0]].mean(0)
                jitter = np.random.default_rng(seed).normal(0, 0.05, size=(len(ids), 2))
                init = np.where((rows >= 0)[:, None], ref[1][np.maximum(rows, 0)], centre + jitter)
        xy = project(vecs, seed=seed, init=init)
        ws.store.write_projection(int(run_id), ids, xy)
        got = (ids, np.asarray(xy, dtype=np.float32))
    ids, xy = got
    if ref is not None:
        xy = align(xy, ids, ref[1], ref[0])
    return ids, xy


def projection_status(ws, run_id: int, align_to: int | None = None) -> dict:
    """State of the run's map without starting anything: {state: "ready" | "computing" | "failed" |
    "missing", warm: UMAP compiled in this process, error, elapsed_s}."""
    from ..projection import is_warm

    key = (ws.path, int(run_id), None if align_to is None else int(align_to))
    with _jobs_lock:
        job = _jobs.get(key)
    base = {"warm": is_warm(), "error": None, "elapsed_s": None}
    if job is not None and job["state"] == "computing":
        return {**base, "state": "computing", "elapsed_s": time.monotonic() - job["started"]}
    if _stored(ws, run_id) is not None and (align_to is None or _stored(ws, align_to) is not None):
        return {**base, "state": "ready"}
    if job is not None and job["state"] == "failed":
        return {**base, "state": "failed", "error": job["error"]}
    return {**base, "state": "missing"}


def ensure_projection(ws, run_id: int, align_to: int | None = None, retry: bool = False) -> dict:
    """Make sure the run's map (and ``align_to``'s) exist, computing them in a background thread if not.

    Never blocks on UMAP. Returns :func:`projection_status`'s dict; ``state`` is "ready" when
    :func:`projection` / :func:`map_frame` will answer at once, "computing" while the thread runs, "failed"
    (with ``error``) when it failed (call again with ``retry=True`` to try again).
    """
    finished_run(ws, run_id)
    if align_to is not None:
        finished_run(ws, align_to)
    status = projection_status(ws, run_id, align_to)
    if status["state"] in ("ready", "computing") or (status["state"] == "failed" and not retry):
        return status
    key = (ws.path, int(run_id), None if align_to is None else int(align_to))
    job = {"state": "computing", "error": None, "started": time.monotonic()}

    def work():
        try:
            projection(ws, run_id, align_to)
            job["state"] = "done"
        except HCEError as exc:
            job.update(state="failed", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - reported to the page, never raised in the thread
            job.update(state="failed", error=f"{type(exc).__name__}: {exc}")

    with _jobs_lock:
        if _jobs.get(key, {}).get("state") == "computing":
            return projection_status(ws, run_id, align_to)
        _jobs[key] = job
    threading.Thread(target=work, name=f"projection-{run_id}", daemon=True).start()
    return projection_status(ws, run_id, align_to)


def _doc_frame(ws, corpus_id: int, doc_ids: np.ndarray) -> pd.DataFrame:
    from .siblings import _display_title
    docs = ws.store.documents(corpus_id, include_removed=True, doc_ids=doc_ids)
    titles = [_display_title(r) for _, r in docs.iterrows()]
    return pd.DataFrame({"doc_id": docs["doc_id"].astype(np.int64).to_numpy(), "ext_id": docs["ext_id"].to_numpy(),
                         "title": titles})


def map_frame(ws, run_id: int, level: int = 1, align_to: int | None = None,
              tree_run: int | None = None) -> pd.DataFrame:
    """One row per mapped document: DataFrame(doc_id, ext_id, title, x, y, node_at_level, label, path).

    ``level`` 1..depth picks the tree level whose node colours the point (clamped; 0 = the root);
    ``path`` is the document's node labels from level 1 to its leaf, joined by " › ". The nodes come from
    ``tree_run``'s tree (default: the run's own), so two maps can be coloured by one tree. Blocks if the
    map must be computed (see :func:`ensure_projection`).
    """
    info = finished_run(ws, run_id)
    if tree_run is not None and int(tree_run) != int(run_id):
        same_corpus(info, finished_run(ws, tree_run))
    ids, xy = projection(ws, run_id, align_to)
    df = pd.DataFrame({"doc_id": ids, "x": xy[:, 0].astype(float), "y": xy[:, 1].astype(float)})
    df = df.merge(_doc_frame(ws, info["corpus_id"], ids), on="doc_id", how="left")
    df["ext_id"] = df["ext_id"].fillna("")
    df["title"] = df["title"].fillna("(removed document)")
    try:
        tree, terms, _ = ws.tree(int(run_id if tree_run is None else tree_run))
    except NotFoundError:
        tree = None
    if tree is None or tree.depth == 0:
        df["node_at_level"], df["label"], df["path"] = -1, "", ""
    else:
        pos = tree.positions_of(df["doc_id"].to_numpy())
        paths = tree.paths()
        lv = min(max(int(level), 0), tree.depth)
        have = pos >= 0
        nodes = np.full(len(df), -1, dtype=np.int64)
        if lv == 0:
            nodes[have] = 0
        else:
            nodes[have] = paths[pos[have], lv - 1]
        labels = {int(n): (label_of(terms, int(n)) if n > 0 else "all documents") for n in np.unique(nodes) if n >= 0}
        df["node_at_level"] = nodes
        df["label"] = [labels.get(int(n), "") for n in nodes]
        uniq_paths: dict[int, str] = {}
        for lf in np.unique(tree.doc_leaf[pos[have]]):
            uniq_paths[int(lf)] = _node_path_label(tree, terms, int(lf))
        df["path"] = [uniq_paths.get(int(tree.doc_leaf[p]), "") if p >= 0 else "" for p in pos]
    return df[["doc_id", "ext_id", "title", "x", "y", "node_at_level", "label", "path"]]


def _node_path_label(tree, terms, node: int) -> str:
    out, n = [], node
    while n > 0:
        out.append(label_of(terms, n))
        n = int(tree.parent[n])
    return " › ".join(out[::-1])


def place_query(ws, run_id: int, query: str, k: int = 10, align_to: int | None = None,
                tau: float = 0.05) -> dict:
    """Where a query lands on the run's map: the softmax(score / tau)-weighted mean of its top-k dense
    hits' points. Returns {query, x, y, hits: DataFrame(rank, doc_id, ext_id, title, score, x, y)}."""
    if not query or not query.strip():
        raise InputError("the query is empty")
    info = finished_run(ws, run_id)
    ids, xy = projection(ws, run_id, align_to)
    hits = ws.search(info["corpus"], query, run=int(run_id), k=int(k))
    df = pd.DataFrame([{"rank": h.rank, "doc_id": h.doc_id, "ext_id": h.ext_id, "title": h.title or h.ext_id,
                        "score": h.score} for h in hits], columns=["rank", "doc_id", "ext_id", "title", "score"])
    rows = rows_of(ids, df["doc_id"].to_numpy()) if len(df) else np.zeros(0, np.int64)
    df = df[rows >= 0].reset_index(drop=True)
    rows = rows[rows >= 0]
    df["x"] = xy[rows, 0].astype(float) if len(rows) else []
    df["y"] = xy[rows, 1].astype(float) if len(rows) else []
    if not len(df):
        raise HCEError("none of the query's hits is on the map")
    s = df["score"].to_numpy(np.float64)
    w = np.exp((s - s.max()) / tau)
    w /= w.sum()
    return {"query": query.strip(), "x": float(w @ df["x"].to_numpy()), "y": float(w @ df["y"].to_numpy()),
            "hits": df}


def map_labels(frame: pd.DataFrame, max_labels: int = 40, width: float = 900.0, height: float = 560.0,
               min_points: int = 3) -> pd.DataFrame:
    """Where to write each tree node's label on the map: at its documents' median point, biggest nodes
    first, none overlapping.

    Args:
        frame: :func:`map_frame` output (x, y, node_at_level, label).
        max_labels: at most this many labels.
        width, height: the drawing's size in pixels; label boxes are estimated in pixels (7 px per character
            at 12 px, scaled with the font) and mapped to data units, so "no overlap" holds at that size.
        min_points: nodes with fewer mapped documents get no label.

    Returns:
        DataFrame(node, label, x, y, size, font_size), one row per label placed, biggest node first.
        ``font_size`` (11-18 px) grows with the square root of the node's share of the documents.
    """
    cols = ["node", "label", "x", "y", "size", "font_size"]
    have = frame[(frame["node_at_level"] >= 0) & (frame["label"] != "")]
    if have.empty:
        return pd.DataFrame(columns=cols)
    groups = have.groupby("node_at_level")
    stats = pd.DataFrame({"x": groups["x"].median(), "y": groups["y"].median(), "size": groups.size(),
                          "label": groups["label"].first()})
    stats = stats[stats["size"] >= min_points].sort_values(["size", "label"], ascending=[False, True])
    xr = float(frame["x"].max() - frame["x"].min()) or 1.0
    yr = float(frame["y"].max() - frame["y"].min()) or 1.0
    share = stats["size"] / max(int(stats["size"].sum()), 1)
    stats["font_size"] = np.clip(11 + 40 * np.sqrt(share), 11, 18).round().astype(int)
    placed: list[tuple[float, float, float, float]] = []
    rows = []
    for node, r in stats.iterrows():
        w = len(str(r["label"])) * 0.58 * r["font_size"] / width * xr  # half-widths below
        h = 1.3 * r["font_size"] / height * yr
        box = (r["x"] - w / 2, r["x"] + w / 2, r["y"] - h / 2, r["y"] + h / 2)
        if any(box[0] < b[1] and b[0] < box[1] and box[2] < b[3] and b[2] < box[3] for b in placed):
            continue
        placed.append(box)
        rows.append({"node": int(node), "label": str(r["label"]), "x": float(r["x"]), "y": float(r["y"]),
                     "size": int(r["size"]), "font_size": int(r["font_size"])})
        if len(rows) >= max_labels:
            break
    return pd.DataFrame(rows, columns=cols)


#: Above this many documents the map draws a density-thinned sample (selection and search stay exact).
MAX_DRAWN = 60_000


def thin_for_display(frame: pd.DataFrame, max_points: int = MAX_DRAWN, grid: int = 200, seed: int = 0
                     ) -> pd.DataFrame:
    """At most ``max_points`` rows of ``frame`` to draw, thinned where the map is dense.

    The plane is cut into ``grid`` x ``grid`` cells and every cell keeps at most ``cap`` of its points (a
    seeded random choice), ``cap`` the largest that keeps the total within ``max_points``: sparse regions and
    outliers stay whole, dense cores are thinned. Returns ``frame`` itself when it is small enough.
    """
    n = len(frame)
    if n <= max_points:
        return frame
    x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
    cx = np.clip(((x - x.min()) / max(np.ptp(x), 1e-12) * grid).astype(np.int64), 0, grid - 1)
    cy = np.clip(((y - y.min()) / max(np.ptp(y), 1e-12) * grid).astype(np.int64), 0, grid - 1)
    cell = cx * grid + cy
    counts = np.bincount(cell, minlength=grid * grid)
    sizes = np.sort(counts[counts > 0])
    # the largest cap with sum(min(count, cap)) <= max_points
    lo, hi = 1, int(sizes[-1])
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if np.minimum(sizes, mid).sum() <= max_points:
            lo = mid
        else:
            hi = mid - 1
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), cell))  # by cell, random within each cell
    first = np.searchsorted(cell[order], cell[order], side="left")
    rank_in_cell = np.arange(n) - first
    keep = np.sort(order[rank_in_cell < lo])
    return frame.iloc[keep]


def select_region(frame: pd.DataFrame, box: list | None = None, lasso: list | None = None) -> list[int]:
    """Doc ids of *all* rows of ``frame`` inside a plotly selection's boxes or lasso polygons (exact, also
    for points a thinned drawing left out).

    Args:
        box: [{"x": [x0, x1], "y": [y0, y1]}, ...]; lasso: [{"x": [...], "y": [...]}, ...] (plotly's
            selection event, as ``st.plotly_chart(on_select=...)`` returns it).
    """
    x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
    inside = np.zeros(len(frame), dtype=bool)
    for b in box or []:
        (x0, x1), (y0, y1) = sorted(b["x"][:2]), sorted(b["y"][:2])
        inside |= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    for poly in lasso or []:
        px, py = np.asarray(poly["x"], dtype=float), np.asarray(poly["y"], dtype=float)
        if len(px) < 3:
            continue
        hit = np.zeros(len(frame), dtype=bool)
        for i in range(len(px)):  # even-odd rule, one edge at a time (vectorised over the points)
            xa, ya, xb, yb = px[i - 1], py[i - 1], px[i], py[i]
            crosses = ((ya > y) != (yb > y)) & (x < (xb - xa) * (y - ya) / np.where(yb != ya, yb - ya, 1e-300) + xa)
            hit ^= crosses
        inside |= hit
    return frame["doc_id"].to_numpy()[inside].astype(int).tolist()
