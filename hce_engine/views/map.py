"""2-D maps of a run's documents as frames to draw: points coloured by tree node, labels, a placed query.

The projection itself (UMAP, stored per run, computed as a background job) is ``Workspace.projection`` /
``Workspace.ensure_projection``; these views only read it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import HCEError, InputError, NotFoundError
from . import label_of, rows_of


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
    map must be computed (see ``Workspace.ensure_projection``).
    """
    info = ws.finished_run(run_id)
    if tree_run is not None and int(tree_run) != int(run_id):
        info.check_same_corpus(ws.finished_run(tree_run))
    ids, xy = ws.projection(run_id, align_to)
    df = pd.DataFrame({"doc_id": ids, "x": xy[:, 0].astype(float), "y": xy[:, 1].astype(float)})
    df = df.merge(_doc_frame(ws, info.corpus_id, ids), on="doc_id", how="left")
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
    info = ws.finished_run(run_id)
    ids, xy = ws.projection(run_id, align_to)
    hits = ws.search(info.corpus, query, run=int(run_id), k=int(k))
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
