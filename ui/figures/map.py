"""Figures of the Map page (pure functions of :func:`hce_engine.views.map_frame` / ``place_query``)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5"]
#: With more groups than this, points are coloured per group without a legend entry each.
MAX_LEGEND = 20
#: Above this many points WebGL (Scattergl) is used.
GL_THRESHOLD = 1000


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def default_level(level_sizes: dict[int, int], wanted: int = 6) -> int:
    """The shallowest tree level with at least ``wanted`` nodes (else the deepest): enough colours to see
    structure, few enough to tell apart. ``level_sizes`` maps level -> number of nodes."""
    levels = sorted(lv for lv in level_sizes if lv > 0)
    return next((lv for lv in levels if level_sizes[lv] >= wanted), levels[-1] if levels else 0)


def map_figure(frame: pd.DataFrame, query: dict | None = None, highlight: set[int] | None = None,
               title: str | None = None, height: int = 560) -> go.Figure:
    """Scatter of a run's documents coloured by their node at the chosen level.

    Args:
        frame: ``map_frame(...)`` (doc_id, ext_id, title, x, y, node_at_level, label, path).
        query: ``place_query(...)`` result; its point (a star) and its hits (ringed) are drawn on top.
        highlight: doc ids to emphasise (others are faded), e.g. a selected node's documents.
    Every document trace carries the doc id as ``customdata[0]``, so a box/lasso selection maps back to
    documents with :func:`selected_doc_ids`.
    """
    n = len(frame)
    scatter: Any = go.Scattergl if n > GL_THRESHOLD else go.Scatter
    fig = go.Figure()
    groups = list(frame.groupby("node_at_level", sort=True)) if n else []
    sizes = {k: len(g) for k, g in groups}
    order = sorted(sizes, key=lambda k: -sizes[k])
    colour = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(order)}
    many = len(groups) > MAX_LEGEND
    msize = 7 if n < 2000 else (5 if n < 20000 else 3)
    for i, (node, g) in enumerate(sorted(groups, key=lambda kg: -sizes[kg[0]])):
        opacity = 0.85
        if highlight:
            inside = g["doc_id"].isin(highlight).to_numpy()
            opacity_arr = np.where(inside, 0.95, 0.12)
        label = g["label"].iloc[0] if len(g) else ""
        fig.add_trace(scatter(
            x=g["x"], y=g["y"], mode="markers", name=_short(f"{label} ({len(g)})", 50),
            legendgroup=str(node), showlegend=not many,
            marker={"size": msize, "color": colour[node],
                    "opacity": opacity_arr.tolist() if highlight else opacity},
            customdata=np.column_stack([g["doc_id"].to_numpy(), g["title"].map(_short).to_numpy(),
                                        g["path"].to_numpy(), g["ext_id"].to_numpy()]),
            hovertemplate="<b>%{customdata[1]}</b> [%{customdata[3]}]<br>%{customdata[2]}<extra></extra>"))
    if query is not None:
        hits = query["hits"]
        fig.add_trace(go.Scatter(
            x=hits["x"], y=hits["y"], mode="markers+text", name="query hits",
            text=[str(r) for r in hits["rank"]], textposition="top center",
            marker={"size": 13, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}},
            customdata=np.column_stack([hits["doc_id"].to_numpy(), hits["title"].map(_short).to_numpy(),
                                        hits["score"].round(3).astype(str).to_numpy()]),
            hovertemplate="hit %{text}: <b>%{customdata[1]}</b><br>score %{customdata[2]}<extra></extra>"))
        fig.add_trace(go.Scatter(
            x=[query["x"]], y=[query["y"]], mode="markers", name="query",
            marker={"symbol": "star", "size": 22, "color": "gold", "line": {"color": "black", "width": 1.5}},
            hovertext=[_short(query["query"])], hovertemplate="query: %{hovertext}<extra></extra>"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1)
    fig.update_layout(title=title, height=height, dragmode="lasso", margin={"l": 0, "r": 0, "t": 40 if title else 10,
                                                                            "b": 0},
                      legend={"itemsizing": "constant", "font": {"size": 11}, "orientation": "h", "y": -0.02,
                              "yanchor": "top"}, hovermode="closest")
    return fig


def selected_doc_ids(selection: Any, fig: go.Figure | None = None) -> list[int]:
    """Doc ids of the points in a ``st.plotly_chart(on_select=...)`` selection (query marker excluded).

    Uses each point's ``customdata[0]`` when present, else looks the point up in ``fig`` by curve and
    point index.
    """
    if selection is None:
        return []
    sel = selection.get("selection", selection) if hasattr(selection, "get") else selection
    points = (sel.get("points") if hasattr(sel, "get") else getattr(sel, "points", None)) or []
    out: list[int] = []
    for p in points:
        cd = p.get("customdata")
        doc = None
        if cd is not None and len(cd):
            doc = cd[0]
        elif fig is not None and p.get("curve_number") is not None:
            trace = fig.data[int(p["curve_number"])]
            if trace.customdata is not None and trace.name not in ("query",):
                doc = trace.customdata[int(p.get("point_index", p.get("point_number", 0)))][0]
        try:
            if doc is not None:
                out.append(int(doc))
        except (TypeError, ValueError):
            continue
    return list(dict.fromkeys(out))
