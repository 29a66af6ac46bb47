"""2-D maps of a run's documents as frames to draw: points coloured by tree node, labels, a placed query.

The projection itself (UMAP, stored per run, computed as a background job) is ``Workspace.projection`` /
``Workspace.ensure_projection``; these views only read it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import HCEError, InputError, NotFoundError
from . import label_of, rows_of, snippet


def _doc_frame(ws, corpus: str, doc_ids: np.ndarray) -> pd.DataFrame:
    """DataFrame(doc_id, ext_id, title) of ``doc_ids`` as lists show them (the title, else a snippet of the text,
    else the external id); texts are read only for documents without a title."""
    doc_ids = np.asarray(doc_ids, dtype=np.int64)
    if len(doc_ids) > _READ_ALL:  # most of a big corpus: read it whole rather than pass a million ids
        docs = ws.display_rows(corpus)
        docs = docs[docs["doc_id"].isin(doc_ids)]
    else:
        docs = ws.display_rows(corpus, doc_ids)
    titles = docs["title"].astype(object).to_numpy()
    blank = np.flatnonzero(titles == "")
    if len(blank):
        texts, ext = docs["text"].to_numpy(), docs["ext_id"].to_numpy()
        titles = titles.copy()
        titles[blank] = [snippet(texts[i], 60) or str(ext[i]) for i in blank]
    return pd.DataFrame({"doc_id": docs["doc_id"].astype(np.int64).to_numpy(), "ext_id": docs["ext_id"].to_numpy(),
                         "title": titles})


#: :func:`_doc_frame` reads the whole corpus instead of passing the ids when asked for more than this many.
_READ_ALL = 100_000


def _run_tree(ws, run_id: int, tree_run: int | None):
    """(Tree, terms) that colour run ``run_id``'s map (``tree_run``'s tree when given), or (None, None)."""
    try:
        run_tree = ws.tree_shape(int(run_id if tree_run is None else tree_run))  # no centroids needed
    except NotFoundError:
        return None, None
    return run_tree.tree, run_tree.terms


def _ancestors_at_level(tree, level: int) -> np.ndarray:
    """int64 (n_nodes,): each node's ancestor at ``level`` (the node itself at or above it). Walks the tree's
    nodes, not its documents: a million documents' nodes at a level are then one lookup."""
    anc = np.arange(tree.n_nodes, dtype=np.int64)
    while True:
        up = np.flatnonzero(tree.level[anc] > level)
        if not len(up):
            return anc
        anc[up] = tree.parent[anc[up]]


def map_points(ws, run_id: int, level: int = 1, align_to: int | None = None,
               tree_run: int | None = None) -> pd.DataFrame:
    """Every mapped document's point and node, without any text: DataFrame(doc_id, x, y, node_at_level, label).

    What the map needs at a million documents (selections, label positions, thinning) and cheap to build:
    ``label`` is categorical (one string per node). Arguments as :func:`map_frame`, which adds the texts.
    """
    info = ws.run(run_id, "explore")
    if tree_run is not None and int(tree_run) != int(run_id):
        info.check_same_corpus(ws.run(tree_run, "explore"))
    ids, xy = ws.projection(run_id, align_to)
    ids = np.asarray(ids, dtype=np.int64)
    tree, terms = _run_tree(ws, run_id, tree_run)
    nodes = np.full(len(ids), -1, dtype=np.int64)
    if tree is not None and tree.depth > 0:
        pos = tree.positions_of(ids)
        have = pos >= 0
        lv = min(max(int(level), 0), tree.depth)
        nodes[have] = 0 if lv == 0 else _ancestors_at_level(tree, lv)[tree.doc_leaf[pos[have]]]
        # np.unique(nodes, return_inverse=True) without sorting a million values: node ids are below n_nodes
        uniq = np.flatnonzero(np.bincount(nodes + 1, minlength=tree.n_nodes + 1)) - 1
        lookup = np.zeros(tree.n_nodes + 1, dtype=np.int64)
        lookup[uniq + 1] = np.arange(len(uniq))
        codes = lookup[nodes + 1]
        names = [label_of(terms, int(n)) if n > 0 else ("all documents" if n == 0 else "") for n in uniq]
        cats = list(dict.fromkeys(names))  # labels may repeat across nodes
        where = {c: i for i, c in enumerate(cats)}
        label = pd.Categorical.from_codes(np.asarray([where[c] for c in names], dtype=np.int64)[codes.ravel()],
                                          categories=cats)
    else:
        label = pd.Categorical.from_codes(np.zeros(len(ids), dtype=np.int64), categories=[""])
    return pd.DataFrame({"doc_id": ids, "x": xy[:, 0].astype(float), "y": xy[:, 1].astype(float),
                         "node_at_level": nodes, "label": label})


def describe_points(ws, run_id: int, points: pd.DataFrame, tree_run: int | None = None,
                    paths: bool = True) -> pd.DataFrame:
    """``points`` (rows of :func:`map_points`) with their documents' texts: DataFrame(doc_id, ext_id, title, x, y,
    node_at_level, label, path) in the same row order, ``label`` as plain strings. Reads only these documents,
    so describing the drawn or selected points of a million-document map stays cheap. ``paths=False`` leaves
    ``path`` empty (a big drawing's hover shows the label only)."""
    info = ws.run(run_id, "explore")
    ids = points["doc_id"].to_numpy(np.int64)
    docs = _doc_frame(ws, info.corpus, ids)
    rows = rows_of(docs["doc_id"].to_numpy(), ids) if len(docs) else np.full(len(ids), -1, dtype=np.int64)
    found = rows >= 0
    ext = np.full(len(ids), "", dtype=object)
    title = np.full(len(ids), "(removed document)", dtype=object)
    ext[found] = docs["ext_id"].to_numpy()[rows[found]]
    title[found] = docs["title"].to_numpy()[rows[found]]
    path = np.full(len(ids), "", dtype=object)
    tree, terms = _run_tree(ws, run_id, tree_run)
    if paths and tree is not None and tree.depth > 0 and len(ids):
        pos = tree.positions_of(ids)
        have = pos >= 0
        leaves = tree.doc_leaf[pos[have]]
        uniq, inv = np.unique(leaves, return_inverse=True)
        memo: dict[int, str] = {}
        path[have] = np.asarray([_node_path_label(tree, terms, int(lf), memo) for lf in uniq],
                                dtype=object)[inv.ravel()]
    return pd.DataFrame({"doc_id": ids, "ext_id": ext, "title": title, "x": points["x"].to_numpy(),
                         "y": points["y"].to_numpy(), "node_at_level": points["node_at_level"].to_numpy(),
                         "label": points["label"].astype(str).to_numpy(dtype=object), "path": path},
                        index=points.index)


def map_frame(ws, run_id: int, level: int = 1, align_to: int | None = None,
              tree_run: int | None = None) -> pd.DataFrame:
    """One row per mapped document: DataFrame(doc_id, ext_id, title, x, y, node_at_level, label, path).

    ``level`` 1..depth picks the tree level whose node colours the point (clamped; 0 = the root);
    ``path`` is the document's node labels from level 1 to its leaf, joined by " › ". The nodes come from
    ``tree_run``'s tree (default: the run's own), so two maps can be coloured by one tree. Blocks if the
    map must be computed (see ``Workspace.ensure_projection``). Reads every document's title: at a million
    documents draw from :func:`map_points` and :func:`describe_points` the rows shown instead.
    """
    points = map_points(ws, run_id, level, align_to, tree_run)
    return describe_points(ws, run_id, points, tree_run).reset_index(drop=True)


def level_sizes(ws, run_id: int) -> dict[int, int]:
    """{level: non-empty nodes at that level} of the run's tree (level 0, the root, included); {} without a tree.
    For :func:`default_level`, without building a node table."""
    tree, _ = _run_tree(ws, run_id, None)
    if tree is None:
        return {}
    levels, counts = np.unique(tree.level[tree.size > 0], return_counts=True)
    return {int(lv): int(c) for lv, c in zip(levels, counts, strict=True)}


def default_level(level_sizes: dict[int, int], wanted: int = 6) -> int:
    """The shallowest tree level with at least ``wanted`` nodes (else the deepest): enough colours to see
    structure, few enough to tell apart. ``level_sizes`` maps level -> number of nodes."""
    levels = sorted(lv for lv in level_sizes if lv > 0)
    return next((lv for lv in levels if level_sizes[lv] >= wanted), levels[-1] if levels else 0)


def _node_path_label(tree, terms, node: int, memo: dict[int, str] | None = None) -> str:
    """The node's labels from level 1 down to it, joined by " › "; ``memo`` ({node: path}) shares the ancestors'
    paths between calls."""
    if node <= 0:
        return ""
    if memo is not None and node in memo:
        return memo[node]
    parent = int(tree.parent[node])
    head = _node_path_label(tree, terms, parent, memo) if parent > 0 else ""
    out = f"{head} › {label_of(terms, node)}" if head else label_of(terms, node)
    if memo is not None:
        memo[node] = out
    return out


def place_query(ws, run_id: int, query: str, k: int = 10, align_to: int | None = None,
                tau: float = 0.05) -> dict:
    """Where a query lands on the run's map: the softmax(score / tau)-weighted mean of its top-k dense
    hits' points. Returns {query, x, y, hits: DataFrame(rank, doc_id, ext_id, title, score, x, y)}."""
    if not query or not query.strip():
        raise InputError("the query is empty")
    info = ws.run(run_id, "explore")
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


#: Font family of the map's node labels: Arial's metrics (Liberation Sans and Helvetica share them), which
#: :func:`text_width` estimates; a browser without any of them falls back to a wider sans-serif.
LABEL_FONT = 'Arial, "Liberation Sans", Helvetica, sans-serif'
#: Advance widths of Arial Bold (1/1000 em) for ASCII; other characters are estimated in ``text_width``.
_BOLD_WIDTHS = dict(zip(
    " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
    [278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278] + [556] * 10
    + [333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722,
       778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556,
       611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556,
       556, 500, 389, 280, 389, 584], strict=True))
_BOLD_WIDTHS.update({"·": 278, "›": 333, "…": 1000, "–": 556, "—": 1000})
#: Label boxes: the text's estimated width times this (font fallback, rendering), plus padding each side.
WIDTH_SAFETY, PAD_X, PAD_Y, GAP = 1.08, 3.0, 2.0, 2.0
#: The map's axes span the points plus this share of their range on each side.
RANGE_PAD = 0.03


def text_width(text: str, font_size: float) -> float:
    """Estimated width in pixels of ``text`` in bold Arial at ``font_size`` px (an upper estimate for other
    characters: wide East Asian ones a full em, other letters as a wide Latin one)."""
    import unicodedata
    units = 0
    for ch in text:
        w = _BOLD_WIDTHS.get(ch)
        if w is None:
            w = 1000 if unicodedata.east_asian_width(ch) in "WF" else (778 if ch.isupper() else 667)
        units += w
    return units / 1000.0 * font_size


def label_size(text: str, font_size: float) -> tuple[float, float]:
    """(width, height) in pixels of a label's box: its text with padding (the same on the map's annotations)."""
    return text_width(text, font_size) * WIDTH_SAFETY + 2 * PAD_X, 1.3 * font_size + 2 * PAD_Y


def map_ranges(*xy) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1): the axes' ranges of a map drawing the given (x, y) arrays, ``RANGE_PAD`` each side."""
    xs = np.concatenate([np.asarray(x, dtype=float).ravel() for x, _ in xy] + [np.zeros(0)])
    ys = np.concatenate([np.asarray(y, dtype=float).ravel() for _, y in xy] + [np.zeros(0)])
    xs, ys = xs[np.isfinite(xs)], ys[np.isfinite(ys)]
    if not len(xs) or not len(ys):
        return -1.0, 1.0, -1.0, 1.0
    out = []
    for v in (xs, ys):
        lo, hi = float(v.min()), float(v.max())
        pad = (hi - lo) * RANGE_PAD or 1.0
        out += [lo - pad, hi + pad]
    return out[0], out[1], out[2], out[3]


def label_candidates(frame: pd.DataFrame, min_points: int = 3) -> pd.DataFrame:
    """Every tree node's label with where it would go: DataFrame(node, label, x, y, size, font_size), the
    node's documents' median point, biggest node first; ``font_size`` (11-18 px) grows with the square root
    of the node's share of the documents. Nodes with fewer than ``min_points`` mapped documents are left out."""
    cols = ["node", "label", "x", "y", "size", "font_size"]
    have = frame[(frame["node_at_level"] >= 0) & (frame["label"] != "")]
    if have.empty:
        return pd.DataFrame(columns=cols)
    groups = have.groupby("node_at_level")
    stats = pd.DataFrame({"x": groups["x"].median(), "y": groups["y"].median(), "size": groups.size(),
                          "label": groups["label"].first()})
    stats = stats[stats["size"] >= min_points].sort_values(["size", "label"], ascending=[False, True])
    share = stats["size"] / max(int(stats["size"].sum()), 1)
    stats["font_size"] = np.clip(11 + 40 * np.sqrt(share), 11, 18).round().astype(int)
    stats["label"] = stats["label"].astype(str)
    return stats.rename_axis("node").reset_index()[cols].astype({"node": int, "size": int, "font_size": int})


def _shorter(label: str) -> list[str]:
    """The label, then shorter forms of it: its " · "-separated terms dropped from the end."""
    terms = label.split(" · ")
    return [" · ".join(terms[:k]) for k in range(len(terms), 0, -1)]


def place_labels(candidates: pd.DataFrame, ranges: tuple[float, float, float, float], width: float,
                 height: float, max_labels: int = 40, avoid: list[tuple[float, float, float, float]] | None = None
                 ) -> pd.DataFrame:
    """Greedy placement of node labels in pixel space, biggest node first, no two boxes overlapping.

    Each label tries its node's median point, then a little above, below, left and right of it, keeping its
    box inside the drawing; if none is free it tries again with fewer terms ("a · b · c", "a · b", "a"), and is
    left out if still none is. Boxes are :func:`label_size` plus ``GAP``.

    Args:
        candidates: :func:`label_candidates` rows (or :func:`place_labels` output: its ``full_label``,
            ``node_x`` and ``node_y`` are used then, so placing again starts from the nodes themselves).
        ranges: the axes' (x0, x1, y0, y1) (:func:`map_ranges`); width, height: the plot area in pixels. A
            placement that holds at a width holds at any larger one (the boxes only shrink in data units).
        avoid: pixel boxes (left, right, top, bottom) no label may cover (a placed query, its hits).

    Returns:
        DataFrame(node, label, x, y, size, font_size, full_label, node_x, node_y, left, right, top, bottom):
        ``label`` as written (maybe shortened), (x, y) where it is written, the box in pixels (y down).
    """
    cols = ["node", "label", "x", "y", "size", "font_size", "full_label", "node_x", "node_y", "left", "right",
            "top", "bottom"]
    if candidates is None or not len(candidates):
        return pd.DataFrame(columns=cols)
    x0, x1, y0, y1 = ranges
    sx, sy = width / ((x1 - x0) or 1.0), height / ((y1 - y0) or 1.0)
    taken: list[tuple[float, float, float, float]] = [tuple(b) for b in (avoid or [])]  # type: ignore[misc]

    def free(b: tuple[float, float, float, float]) -> bool:
        return not any(b[0] < t[1] + GAP and t[0] < b[1] + GAP and b[2] < t[3] + GAP and t[2] < b[3] + GAP
                       for t in taken)

    rows = []
    for r in candidates.to_dict("records"):
        full = str(r.get("full_label", r["label"]))
        nx, ny = float(r.get("node_x", r["x"])), float(r.get("node_y", r["y"]))
        if not (np.isfinite(nx) and np.isfinite(ny)):
            continue
        px, py = (nx - x0) * sx, (y1 - ny) * sy
        fs = float(r["font_size"])
        done = None
        for text in _shorter(full):
            w, h = label_size(text, fs)
            if w > width or h > height:
                continue
            for dx, dy in ((0, 0), (0, -h), (0, h), (-w / 2, 0), (w / 2, 0), (0, -2 * h), (0, 2 * h)):
                cx = min(max(px + dx, w / 2), width - w / 2)  # the box stays inside the drawing
                cy = min(max(py + dy, h / 2), height - h / 2)
                box = (cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2)
                if free(box):
                    done = (text, cx, cy, box)
                    break
            if done:
                break
        if done is None:
            continue
        text, cx, cy, box = done
        taken.append(box)
        rows.append({"node": int(r["node"]), "label": text, "x": x0 + cx / sx, "y": y1 - cy / sy,
                     "size": int(r["size"]), "font_size": int(fs), "full_label": full, "node_x": nx, "node_y": ny,
                     "left": box[0], "right": box[1], "top": box[2], "bottom": box[3]})
        if len(rows) >= max_labels:
            break
    return pd.DataFrame(rows, columns=cols)


def map_labels(frame: pd.DataFrame, max_labels: int = 40, width: float = 900.0, height: float = 560.0,
               min_points: int = 3) -> pd.DataFrame:
    """Where to write each tree node's label on the map: near its documents' median point, biggest nodes
    first, none overlapping (:func:`label_candidates` placed by :func:`place_labels` on axes spanning the
    frame, :func:`map_ranges`).

    Args:
        frame: :func:`map_frame` output (x, y, node_at_level, label).
        max_labels: at most this many labels.
        width, height: the drawing's size in pixels ("no overlap" holds at that size and any larger one).
            ``map_figure`` places the labels it is given again for its own plot area, its query and hits.
        min_points: nodes with fewer mapped documents get no label.

    Returns:
        :func:`place_labels`' DataFrame (node, label, x, y, size, font_size, ...), biggest node first.
    """
    return place_labels(label_candidates(frame, min_points), map_ranges((frame["x"], frame["y"])), width, height,
                        max_labels)


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
    # by cell, in a seeded random order within each cell: a stable sort of shuffled rows by their cell (a radix
    # sort: cells fit 16 bits at the default grid), then each row's rank among its cell's rows
    perm = np.random.default_rng(seed).permutation(n)
    by_cell = np.argsort(cell[perm].astype(np.uint16 if grid * grid <= 1 << 16 else np.int64), kind="stable")
    order = perm[by_cell]
    first = np.cumsum(counts) - counts  # the sorted position of each cell's first row
    rank_in_cell = np.arange(n) - first[cell[order]]
    keep = np.sort(order[rank_in_cell < lo])
    return frame.iloc[keep]


def selection_file(ws, corpus: str, selected: pd.DataFrame, fmt: str) -> bytes:
    """The ``selected`` documents (rows of :func:`describe_points`) as a download: UTF-8 CSV (``fmt="csv"``) or
    JSON lines (``"jsonl"``) with columns ``_id, title, text, node, path`` in the rows' order; removed documents
    are left out. Reads the texts of these rows only (the Map page calls it when a download is clicked)."""
    if fmt not in ("csv", "jsonl"):
        raise InputError(f"unknown selection format {fmt!r}: use csv or jsonl")
    docs = ws.documents(corpus, doc_ids=selected["doc_id"].tolist())[["doc_id", "ext_id", "title", "text"]]
    out = selected[["doc_id", "label", "path"]].merge(docs, on="doc_id")
    out = out[["ext_id", "title", "text", "label", "path"]].rename(columns={"ext_id": "_id", "label": "node"})
    if fmt == "csv":
        return out.to_csv(index=False).encode()
    return out.to_json(orient="records", lines=True, force_ascii=False).encode()


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
