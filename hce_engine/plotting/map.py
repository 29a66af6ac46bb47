"""Figures of the Map page (pure functions of :func:`hce_engine.views.map_frame` / ``place_query``)."""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..views import map as views_map  # plotting draws what the views compute (never the other way)

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5"]
#: With more nodes than this, all points go in one trace coloured per node, without a legend.
MAX_LEGEND = 20
#: Above this many points WebGL (Scattergl) is used (node labels are then annotations, see ``map_figure``).
GL_THRESHOLD = 6000
#: The narrowest plot width (px) labels are placed for by default (the Map page's map column is wider).
LABEL_WIDTH = 640
#: Name of the node-label trace (and of the label annotations on a WebGL map).
LABEL_TRACE = "node labels"
#: A white halo around label text, so it reads over the points.
LABEL_HALO = "0 0 2px white, 0 0 2px white, 0 0 3px white, 0 0 4px white"
#: Above this many points the hover shows the node label instead of the whole tree path.
LIGHT_HOVER = 20000


def _short(text: str, limit: int = 80) -> str:
    """One line of at most ``limit`` characters, HTML-escaped: plotly reads hover and legend text as HTML,
    and documents' titles, ids and labels are data, never markup."""
    text = " ".join(str(text).split())
    return html.escape(text if len(text) <= limit else text[:limit - 1] + "…")


def _short_each(values: pd.Series, limit: int = 80) -> np.ndarray:
    """:func:`_short` of every value, computed once per distinct value: object array, same length."""
    codes, uniques = pd.factorize(values.astype(str), use_na_sentinel=False)
    return np.asarray([_short(u, limit) for u in uniques], dtype=object)[codes]


def _legend_height(names: list[str], width: float) -> float:
    """Pixels a horizontal legend of ``names`` (font 11) takes at ``width``: entries packed in rows, each
    entry's width over-estimated (bold metrics, 46 px for the symbol and gaps), 22 px per row."""
    rows, used = 1, 0.0
    for name in names:
        w = views_map.text_width(html.unescape(name), 11) + 46
        if used and used + w > width:
            rows, used = rows + 1, 0.0
        used += w
    return rows * 22 + 12


def _avoid_boxes(query: dict | None, relevant: pd.DataFrame | None, to_px) -> list[tuple[float, float, float, float]]:
    """Pixel boxes (left, right, top, bottom; y down) of what labels must not cover: the query's star, its
    hits' rings with the rank written above them, the judged query's relevant squares."""
    boxes = []
    if query is not None:
        px, py = to_px(query["x"], query["y"])
        boxes.append((px - 14, px + 14, py - 14, py + 14))
        for x, y, rank in zip(query["hits"]["x"], query["hits"]["y"], query["hits"]["rank"], strict=True):
            px, py = to_px(x, y)
            half = max(9.0, views_map.text_width(str(rank), 13) / 2 + 1)
            boxes.append((px - half, px + half, py - 26, py + 9))
    if relevant is not None:
        for x, y in zip(relevant["x"], relevant["y"], strict=True):
            px, py = to_px(x, y)
            boxes.append((px - 10, px + 10, py - 10, py + 10))
    return boxes


def map_figure(frame: pd.DataFrame, query: dict | None = None, highlight: set[int] | None = None,
               title: str | None = None, height: int = 560, labels: pd.DataFrame | None = None,
               relevant: pd.DataFrame | None = None, label_width: float = LABEL_WIDTH) -> go.Figure:
    """Scatter of a run's documents coloured by their node at the chosen level.

    Args:
        frame: ``map_frame(...)`` (doc_id, ext_id, title, x, y, node_at_level, label, path).
        query: ``place_query(...)`` result; its point (a star) and its hits (ringed) are drawn on top.
        highlight: doc ids to emphasise (others are faded), e.g. a selected node's documents.
        labels: ``map_labels(...)`` or ``label_candidates(...)``: node labels written on the map. They are
            placed again (:func:`hce_engine.views.map.place_labels`) for this figure's plot area, biggest node
            first, no two overlapping and none over the query, its hits or the relevant squares. Drawn as a
            text trace below the query's traces (annotations on a translucent white box when the points are
            WebGL, which draws above every SVG trace).
        relevant: the placed query's judged relevant documents (frame rows: doc_id, title, x, y), drawn as
            green squares, so one sees whether they sit in the query's neighbourhood.
        label_width: the narrowest plot width in pixels the labels are placed for: the figure takes its
            container's width, and labels that do not overlap at a width do not at any larger one.
    Every document trace carries the doc id as ``customdata[0]``, so a box/lasso selection maps back to
    documents with :func:`selected_doc_ids`. The axes span the points (no fixed aspect ratio), so the map fills
    the width it is given.
    """
    n = len(frame)
    gl = n > GL_THRESHOLD
    scatter: Any = go.Scattergl if gl else go.Scatter
    fig = go.Figure()
    sizes = frame["node_at_level"].value_counts(sort=False) if n else pd.Series(dtype=int)
    order = sorted(sizes.index, key=lambda k: (-sizes[k], k))
    colour = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(order)}
    msize = 7 if n < 2000 else (5 if n < 20000 else 3)
    light = n > LIGHT_HOVER  # big maps: no tree path in the hover, to keep the page payload small

    def trace(g: pd.DataFrame, name: str, color, showlegend: bool, group: str):
        opacity: Any = 0.85
        if highlight:
            opacity = np.where(g["doc_id"].isin(highlight).to_numpy(), 0.95, 0.12).tolist()
        # customdata is the doc id alone, a number per point (sent as one typed array, as x and y: an object
        # array is copied and serialised value by value), the hover's two lines are strings without markup (the
        # serialised JSON writes every "<" and ">" as six characters)
        return scatter(x=g["x"], y=g["y"], mode="markers", name=name, legendgroup=group, showlegend=showlegend,
                       marker={"size": msize, "color": color, "opacity": opacity},
                       customdata=g["doc_id"].to_numpy(np.int64),
                       text=_short_each(g["title"]) + " [" + _short_each(g["ext_id"]) + "]",
                       hovertext=_short_each(g["label"] if light else g["path"], 400),
                       hovertemplate="<b>%{text}</b><br>%{hovertext}<extra></extra>")

    legend: list[str] = []
    if len(order) <= MAX_LEGEND:  # one trace (and legend entry) per node
        for node in order:
            g = frame[frame["node_at_level"] == node]
            legend.append(_short(f"{g['label'].iloc[0]} ({len(g)})", 50))
            fig.add_trace(trace(g, legend[-1], colour[node], True, str(node)))
    elif n:  # many nodes: a single trace, coloured per node, no legend
        fig.add_trace(trace(frame, f"{len(order)} nodes", frame["node_at_level"].map(colour).tolist(), False,
                            "docs"))
    # the geometry the labels are placed for: fixed axis ranges, the plot area's height exact, its width a floor
    parts = [(frame["x"], frame["y"])]
    if query is not None:
        parts += [([query["x"]], [query["y"]]), (query["hits"]["x"], query["hits"]["y"])]
        legend += ["query hits", "query"]
    if relevant is not None and len(relevant):
        parts.append((relevant["x"], relevant["y"]))
        legend.append("relevant (qrels)")
    x0, x1, y0, y1 = views_map.map_ranges(*parts)
    top = 40 if title else 10
    bottom = _legend_height(legend, label_width) if legend and len(order) <= MAX_LEGEND else 10
    plot_h = max(height - top - bottom, 50)
    sx, sy = label_width / (x1 - x0), plot_h / (y1 - y0)
    placed = None
    if labels is not None and len(labels):
        avoid = _avoid_boxes(query, relevant if relevant is not None and len(relevant) else None,
                             lambda x, y: ((float(x) - x0) * sx, (y1 - float(y)) * sy))
        placed = views_map.place_labels(labels, (x0, x1, y0, y1), label_width, plot_h, max_labels=len(labels),
                                        avoid=avoid)
    if placed is not None and len(placed) and not gl:  # a text trace, below the query's traces
        texts = [_short(t, 60) for t in placed["label"]]
        fig.add_trace(go.Scatter(
            x=placed["x"], y=placed["y"], mode="text", name=LABEL_TRACE, text=texts, textposition="middle center",
            textfont={"size": placed["font_size"].astype(int).tolist(), "color": "#222", "family": views_map.LABEL_FONT,
                      "weight": "bold", "shadow": LABEL_HALO},
            selected={"textfont": {"color": "#222"}}, unselected={"textfont": {"color": "#222"}},
            hoverinfo="skip", showlegend=False, cliponaxis=False))
    elif placed is not None and len(placed):  # WebGL points cover SVG traces: annotations, which are above
        for r in placed.itertuples():
            fig.add_annotation(x=r.x, y=r.y, text=_short(str(r.label), 60), showarrow=False, name=LABEL_TRACE,
                               font={"size": int(r.font_size), "color": "#222", "family": views_map.LABEL_FONT,
                                     "weight": "bold"},
                               bgcolor="rgba(255,255,255,0.72)", borderpad=1)
    if relevant is not None and len(relevant):
        fig.add_trace(scatter(
            x=relevant["x"], y=relevant["y"], mode="markers", name="relevant (qrels)",
            marker={"symbol": "square-open", "size": 15, "color": "#2ca02c", "line": {"width": 3}},
            customdata=np.column_stack([relevant["doc_id"].to_numpy(), relevant["title"].map(_short).to_numpy()]),
            hovertemplate="relevant: <b>%{customdata[1]}</b><extra></extra>"))
    if query is not None:
        hits = query["hits"]
        fig.add_trace(scatter(
            x=hits["x"], y=hits["y"], mode="markers+text", name="query hits",
            text=[str(r) for r in hits["rank"]], textposition="top center",
            marker={"size": 13, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}},
            customdata=np.column_stack([hits["doc_id"].to_numpy(), hits["title"].map(_short).to_numpy(),
                                        hits["score"].round(3).astype(str).to_numpy()]),
            hovertemplate="hit %{text}: <b>%{customdata[1]}</b><br>score %{customdata[2]}<extra></extra>"))
        fig.add_trace(scatter(
            x=[query["x"]], y=[query["y"]], mode="markers", name="query",
            marker={"symbol": "star", "size": 22, "color": "gold", "line": {"color": "black", "width": 1.5}},
            hovertext=[_short(query["query"])], hovertemplate="query: %{hovertext}<extra></extra>"))
    fig.update_xaxes(visible=False, range=[x0, x1])
    fig.update_yaxes(visible=False, range=[y0, y1])
    fig.update_layout(title=title, height=height, autosize=True, dragmode="lasso",
                      margin={"l": 0, "r": 0, "t": top, "b": bottom, "autoexpand": False},
                      legend={"itemsizing": "constant", "font": {"size": 11}, "orientation": "h", "y": -0.01,
                              "yanchor": "top"}, hovermode="closest")
    return fig


def selected_doc_ids(selection: Any, fig: go.Figure | None = None) -> list[int]:
    """Doc ids of the points in a ``st.plotly_chart(on_select=...)`` selection (query marker excluded).

    Uses each point's ``customdata`` (the doc id, or a row that starts with it) when present, else looks the
    point up in ``fig`` by curve and point index.
    """
    if selection is None:
        return []
    sel = selection.get("selection", selection) if hasattr(selection, "get") else selection
    points = (sel.get("points") if hasattr(sel, "get") else getattr(sel, "points", None)) or []
    out: list[int] = []
    for p in points:
        cd = p.get("customdata")
        doc = None
        if cd is None and fig is not None and p.get("curve_number") is not None:
            trace = fig.data[int(p["curve_number"])]
            if trace.customdata is not None and trace.name not in ("query",):
                cd = trace.customdata[int(p.get("point_index", p.get("point_number", 0)))]
        if cd is not None and np.ndim(cd):  # a row: the doc id first (query hits, relevant squares)
            doc = cd[0] if len(cd) else None
        elif cd is not None:  # the documents' traces: the doc id itself
            doc = cd
        try:
            if doc is not None:
                out.append(int(doc))
        except (TypeError, ValueError):
            continue
    return list(dict.fromkeys(out))
