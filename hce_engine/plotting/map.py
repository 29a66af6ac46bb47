"""Figures of the Map page (pure functions of :func:`hce_engine.views.map_frame` / ``place_query``)."""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5"]
#: With more nodes than this, all points go in one trace coloured per node, without a legend.
MAX_LEGEND = 20
#: Above this many points WebGL (Scattergl) is used.
GL_THRESHOLD = 1000
#: Above this many points the hover shows the node label instead of the whole tree path.
LIGHT_HOVER = 20000


def _short(text: str, limit: int = 80) -> str:
    """One line of at most ``limit`` characters, HTML-escaped: plotly reads hover and legend text as HTML,
    and documents' titles, ids and labels are data, never markup."""
    text = " ".join(str(text).split())
    return html.escape(text if len(text) <= limit else text[:limit - 1] + "…")


def default_level(level_sizes: dict[int, int], wanted: int = 6) -> int:
    """The shallowest tree level with at least ``wanted`` nodes (else the deepest): enough colours to see
    structure, few enough to tell apart. ``level_sizes`` maps level -> number of nodes."""
    levels = sorted(lv for lv in level_sizes if lv > 0)
    return next((lv for lv in levels if level_sizes[lv] >= wanted), levels[-1] if levels else 0)


def map_figure(frame: pd.DataFrame, query: dict | None = None, highlight: set[int] | None = None,
               title: str | None = None, height: int = 560, labels: pd.DataFrame | None = None,
               relevant: pd.DataFrame | None = None) -> go.Figure:
    """Scatter of a run's documents coloured by their node at the chosen level.

    Args:
        frame: ``map_frame(...)`` (doc_id, ext_id, title, x, y, node_at_level, label, path).
        query: ``place_query(...)`` result; its point (a star) and its hits (ringed) are drawn on top.
        highlight: doc ids to emphasise (others are faded), e.g. a selected node's documents.
        labels: ``map_labels(...)``: node labels written on the map (annotations on a translucent white box,
            sized by node).
        relevant: the placed query's judged relevant documents (frame rows: doc_id, title, x, y), drawn as
            green squares, so one sees whether they sit in the query's neighbourhood.
    Every document trace carries the doc id as ``customdata[0]``, so a box/lasso selection maps back to
    documents with :func:`selected_doc_ids`.
    """
    n = len(frame)
    scatter: Any = go.Scattergl if n > GL_THRESHOLD else go.Scatter
    fig = go.Figure()
    sizes = frame["node_at_level"].value_counts(sort=False) if n else pd.Series(dtype=int)
    order = sorted(sizes.index, key=lambda k: (-sizes[k], k))
    colour = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(order)}
    msize = 7 if n < 2000 else (5 if n < 20000 else 3)
    light = n > LIGHT_HOVER  # big maps: no tree path in the hover, to keep the page payload small

    def trace(g: pd.DataFrame, name: str, color, showlegend: bool, group: str):
        cols = [g["doc_id"].to_numpy(), g["title"].map(_short).to_numpy(), g["ext_id"].map(_short).to_numpy(),
                (g["label"] if light else g["path"]).map(lambda t: _short(t, 400)).to_numpy()]
        opacity: Any = 0.85
        if highlight:
            opacity = np.where(g["doc_id"].isin(highlight).to_numpy(), 0.95, 0.12).tolist()
        return scatter(x=g["x"], y=g["y"], mode="markers", name=name, legendgroup=group, showlegend=showlegend,
                       marker={"size": msize, "color": color, "opacity": opacity},
                       customdata=np.column_stack(cols),
                       hovertemplate="<b>%{customdata[1]}</b> [%{customdata[2]}]<br>%{customdata[3]}<extra></extra>")

    if len(order) <= MAX_LEGEND:  # one trace (and legend entry) per node
        for node in order:
            g = frame[frame["node_at_level"] == node]
            fig.add_trace(trace(g, _short(f"{g['label'].iloc[0]} ({len(g)})", 50), colour[node], True, str(node)))
    elif n:  # many nodes: a single trace, coloured per node, no legend
        fig.add_trace(trace(frame, f"{len(order)} nodes", frame["node_at_level"].map(colour).tolist(), False,
                            "docs"))
    if labels is not None and len(labels):  # annotations: text on a translucent white box, above the points
        for r in labels.itertuples():
            fig.add_annotation(x=r.x, y=r.y, text=f"<b>{_short(r.label, 60)}</b>", showarrow=False,
                               font={"size": int(r.font_size), "color": "#222"}, bgcolor="rgba(255,255,255,0.72)",
                               borderpad=1, name="label")
    if relevant is not None and len(relevant):
        fig.add_trace(go.Scatter(
            x=relevant["x"], y=relevant["y"], mode="markers", name="relevant (qrels)",
            marker={"symbol": "square-open", "size": 15, "color": "#2ca02c", "line": {"width": 3}},
            customdata=np.column_stack([relevant["doc_id"].to_numpy(), relevant["title"].map(_short).to_numpy()]),
            hovertemplate="relevant: <b>%{customdata[1]}</b><extra></extra>"))
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
