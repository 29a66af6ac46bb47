"""Figures of the Tree page (pure functions of the views in :mod:`hce_engine.views.tree_compare`)."""
from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

#: Above this many nodes the hierarchy chart is cut at ``max_nodes_level`` (browsers slow down).
MAX_CHART_NODES = 4000


def chart_levels(nodes: pd.DataFrame, requested: int, max_nodes: int = MAX_CHART_NODES) -> int:
    """The deepest level (<= requested) whose nodes, with all above, stay under ``max_nodes``."""
    counts = nodes.groupby("level").size().sort_index().cumsum()
    ok = [int(lv) for lv, c in counts.items() if c <= max_nodes and lv <= requested]
    return max(ok) if ok else 1


def hierarchy_chart(nodes: pd.DataFrame, kind: str = "sunburst", levels: int = 3,
                    highlight: int | None = None, max_nodes: int = MAX_CHART_NODES) -> go.Figure:
    """Sunburst or icicle of the tree.

    Args:
        nodes: ``tree_overview(...)["nodes"]`` (node, parent, level, size, label, terms), root included.
        kind: "sunburst" or "icicle".
        levels: tree levels shown below the root at once (click a node to zoom into it).
        highlight: a node drawn with a thick outline (e.g. the picked node).
        max_nodes: nodes deeper than the level where this many nodes is reached are left out.
    Values are node sizes (documents) with ``branchvalues="total"``.
    """
    deepest = chart_levels(nodes, int(nodes["level"].max()), max_nodes) if len(nodes) else 0
    df = nodes[nodes["level"] <= deepest]
    ids = df["node"].astype(str).tolist()
    parents = ["" if p < 0 else str(p) for p in df["parent"]]
    labels = [html.escape(str(lab)) for lab in df["label"]]  # plotly reads labels as HTML; they are data
    line_w = [3 if highlight is not None and n == highlight else 0.5 for n in df["node"]]
    line_c = ["#d62728" if highlight is not None and n == highlight else "white" for n in df["node"]]
    common = dict(ids=ids, parents=parents, labels=labels, values=df["size"].astype(int).tolist(),
                  branchvalues="total", maxdepth=int(levels) + 1,
                  customdata=list(zip(df["node"].astype(int), df["level"].astype(int),
                                      [html.escape(str(t)) for t in df["terms"]], strict=True)),
                  hovertemplate="<b>%{label}</b><br>node #%{customdata[0]} · level %{customdata[1]}<br>"
                                "%{value} documents (%{percentRoot:.1%})<br>%{customdata[2]}<extra></extra>",
                  marker={"line": {"width": line_w, "color": line_c}})
    if kind == "icicle":
        trace = go.Icicle(**common, tiling={"orientation": "v"}, textinfo="label+value")
    else:
        shown = sunburst_text(df, int(levels))
        trace = go.Sunburst(**common, insidetextorientation="radial", text=shown, texttemplate="%{text}")
    fig = go.Figure(trace)
    fig.update_layout(margin={"l": 0, "r": 0, "t": 10, "b": 0}, height=560)
    return fig


def sunburst_text(nodes: pd.DataFrame, levels: int, radius_px: float = 250, min_arc_px: float = 14,
                  max_chars: int = 18) -> list[str]:
    """What each sunburst segment writes: its label (cut to ``max_chars``) where the segment is wide enough to
    hold a line of text at the chart's first view (``levels`` rings of a ``radius_px`` chart: an arc of at least
    ``min_arc_px`` at the ring's middle), nothing elsewhere. The hover keeps the full label."""
    total = float(nodes.loc[nodes["level"] == nodes["level"].min(), "size"].sum()) or 1.0
    ring = radius_px / (levels + 1)
    out = []
    for lab, lv, size in zip(nodes["label"], nodes["level"], nodes["size"], strict=True):
        arc = 2 * math.pi * (int(lv) + 0.5) * ring * float(size) / total
        text = str(lab) if len(str(lab)) <= max_chars else str(lab)[:max_chars - 1].rstrip(" ,·") + "…"
        out.append(html.escape(text) if int(lv) == 0 or (int(lv) <= levels and arc >= min_arc_px) else "")
    return out


def level_stats_chart(levels: pd.DataFrame, rebuild: int | None = None) -> go.Figure:
    """Per tree level: nodes and cluster sizes (left), cohesion and separation (right).

    ``levels`` is ``tree_quality(...)["levels"]``; the given (default: latest) rebuild is drawn.
    """
    if len(levels) and rebuild is None:
        rebuild = int(levels["rebuild"].max())
    df = levels[levels["rebuild"] == rebuild].sort_values("level") if len(levels) else levels
    x = [f"L{lv}<br>{n} nodes" for lv, n in zip(df["level"], df["n_nodes"], strict=True)]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("cluster size (median, min–max)", "quality"),
                        horizontal_spacing=0.12)
    med = df["size_median"].astype(float)
    fig.add_trace(go.Bar(x=x, y=med, name="median size", marker={"color": "#1f77b4"},
                         error_y={"type": "data", "symmetric": False,
                                  "array": (df["size_max"].astype(float) - med).tolist(),
                                  "arrayminus": (med - df["size_min"].astype(float)).tolist()},
                         hovertemplate="%{x}: median %{y} documents per node<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=df["intra_cos"], name="intra-node cosine", mode="lines+markers",
                             hovertemplate="mean cosine to own centroid %{y:.3f}<extra></extra>"), row=1, col=2)
    fig.add_trace(go.Scatter(x=x, y=df["silhouette"], name="silhouette", mode="lines+markers",
                             hovertemplate="silhouette %{y:.3f}<extra></extra>"), row=1, col=2)
    fig.update_yaxes(type="log", title_text="documents per node", row=1, col=1)
    fig.update_yaxes(range=[-0.2, 1.0], row=1, col=2)
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 40, "b": 30},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def rebuilds_chart(rebuilds: list[dict]) -> go.Figure:
    """Leaf silhouette and intra-cluster cosine across co-training rebuilds."""
    x = [r["rebuild"] for r in rebuilds]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[r["silhouette"] for r in rebuilds], name="leaf silhouette",
                             mode="lines+markers"))
    fig.add_trace(go.Scatter(x=x, y=[r["intra_cos_leaf"] for r in rebuilds], name="leaf intra-cosine",
                             mode="lines+markers"))
    fig.update_xaxes(title_text="rebuild (0 = initial tree)", dtick=1)
    fig.update_layout(height=280, title="How the tree changed across rebuilds",
                      margin={"l": 10, "r": 10, "t": 40, "b": 30})
    return fig


def leaf_size_histogram(sizes: list[int]) -> go.Figure:
    fig = go.Figure(go.Histogram(x=sizes, marker={"color": "#1f77b4"},
                                 hovertemplate="%{x} docs: %{y} leaf clusters<extra></extra>"))
    fig.update_layout(title="Leaf cluster sizes", height=260, bargap=0.05,
                      xaxis_title="documents per leaf cluster", yaxis_title="leaf clusters",
                      margin={"l": 10, "r": 10, "t": 40, "b": 30})
    return fig


def coherence_chart(coherence: pd.DataFrame) -> go.Figure:
    """Share of a query's relevant documents kept in one node, per level (1 = always together)."""
    fig = go.Figure(go.Bar(x=[f"L{lv}" for lv in coherence["level"]], y=coherence["together"],
                           marker={"color": "#2ca02c"},
                           hovertemplate="%{x}: %{y:.1%} of a query's relevant documents together<extra></extra>"))
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    fig.update_layout(title="Relevant documents kept together (queries with ≥ 2 relevant)", height=260,
                      margin={"l": 10, "r": 10, "t": 40, "b": 30})
    return fig


def ari_chart(comparison: dict, name_a: str = "A", name_b: str = "B") -> go.Figure:
    """Adjusted Rand index of the two trees' clusterings at each common level (1 = identical)."""
    lv = comparison["ari_levels"]
    fig = go.Figure(go.Bar(x=[f"L{r['level']}" for r in lv], y=[r["ari"] for r in lv], marker={"color": "#9467bd"},
                           text=[f"{r['ari']:.2f}" for r in lv], textposition="outside",
                           hovertemplate="%{x}: ARI %{y:.3f}<extra></extra>"))
    fig.update_yaxes(range=[min(0.0, min([r["ari"] for r in lv] + [0])) , 1.1], title_text="adjusted Rand index")
    fig.update_layout(title=f"Agreement of {name_a} and {name_b} per level", height=280,
                      margin={"l": 10, "r": 10, "t": 40, "b": 30})
    return fig
