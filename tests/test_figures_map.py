"""The Map figure's node labels: placed without overlaps, below the query's star and its hits' rings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hce_engine.plotting import map as map_figs
from hce_engine.views import map as view_map


def crowded(n_nodes: int = 60, seed: int = 1) -> pd.DataFrame:
    """Many clusters of different sizes packed in a small square, long labels: they cannot all be written."""
    rng = np.random.default_rng(seed)
    rows = []
    for node in range(n_nodes):
        cx, cy = rng.uniform(0, 10, 2)
        for _ in range(int(rng.integers(3, 80))):
            i = len(rows)
            rows.append({"doc_id": i, "ext_id": f"e{i}", "title": f"title {i}", "x": cx + 0.3 * rng.normal(),
                         "y": cy + 0.3 * rng.normal(), "node_at_level": node,
                         "label": f"used · word{node} · language · stack", "path": f"root › n{node}"})
    return pd.DataFrame(rows)


def query_of(frame: pd.DataFrame) -> dict:
    hits = frame.iloc[::97][:10].reset_index(drop=True)
    hits = hits.assign(rank=np.arange(1, len(hits) + 1), score=np.linspace(0.9, 0.5, len(hits)))
    big = frame["node_at_level"].value_counts().index[0]  # the star right where the biggest node's label goes
    centre = frame[frame["node_at_level"] == big][["x", "y"]].median()
    return {"query": "q", "x": float(centre["x"]), "y": float(centre["y"]), "hits": hits}


def drawn_boxes(fig: go.Figure, texts, xs, ys, sizes, width: float) -> list[tuple[float, float, float, float]]:
    """The labels' pixel boxes, computed as the placement does, on the figure's own axes and plot area."""
    x0, x1 = fig.layout.xaxis.range
    y0, y1 = fig.layout.yaxis.range
    plot_h = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    out = []
    for text, x, y, fs in zip(texts, xs, ys, sizes, strict=True):
        w, h = view_map.label_size(text, fs)
        px, py = (x - x0) / (x1 - x0) * width, (y1 - y) / (y1 - y0) * plot_h
        assert w / 2 - 1e-6 <= px <= width - w / 2 + 1e-6 and h / 2 - 1e-6 <= py <= plot_h - h / 2 + 1e-6
        out.append((px - w / 2, px + w / 2, py - h / 2, py + h / 2))
    return out


def overlaps(boxes) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes) if i < j
            and a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]]


def test_crowded_labels_do_not_overlap_and_sit_below_the_query():
    frame = crowded()
    query = query_of(frame)
    fig = map_figs.map_figure(frame, query=query, labels=view_map.map_labels(frame))
    names = [t.name for t in fig.data]
    assert names.count(map_figs.LABEL_TRACE) == 1
    i = names.index(map_figs.LABEL_TRACE)
    assert names.index("query hits") > i and names.index("query") > i  # traces are drawn in order
    labels = fig.data[i]
    assert labels.mode == "text" and labels.hoverinfo == "skip" and not fig.layout.annotations
    assert 10 <= len(labels.text) < frame["node_at_level"].nunique()  # crowded: some are left out
    for width in (map_figs.LABEL_WIDTH, 2 * map_figs.LABEL_WIDTH):  # placed at a width, fine at any larger one
        boxes = drawn_boxes(fig, labels.text, labels.x, labels.y, labels.textfont.size, width)
        assert overlaps(boxes) == []
        # none covers the star (the biggest node's label moved off its median point, or was shortened)
        star = drawn_boxes(fig, ["★"], [query["x"]], [query["y"]], [14], width)[0]
        assert all(overlaps([star, b]) == [] for b in boxes)
    # the hover of the documents stays whole; the axes span the points, no fixed aspect ratio
    assert "root › n" in str(fig.data[0].hovertext[0]) and fig.data[0].hovertemplate.startswith("<b>%{text}</b>")
    assert fig.layout.yaxis.scaleanchor is None and fig.layout.width is None and fig.layout.autosize


def test_labels_on_a_webgl_map_are_annotations_and_the_query_is_webgl():
    frame = crowded(120, seed=2)
    frame = pd.concat([frame] * (map_figs.GL_THRESHOLD // len(frame) + 1), ignore_index=True)
    frame["doc_id"] = np.arange(len(frame))
    fig = map_figs.map_figure(frame, query=query_of(frame), labels=view_map.label_candidates(frame),
                              label_width=420)
    assert all(isinstance(t, go.Scattergl) for t in fig.data)  # the star and rings above the WebGL points
    notes = fig.layout.annotations
    assert len(notes) > 5 and all(a.name == map_figs.LABEL_TRACE for a in notes)
    boxes = drawn_boxes(fig, [a.text for a in notes], [a.x for a in notes], [a.y for a in notes],
                        [a.font.size for a in notes], 420)
    assert overlaps(boxes) == []


def test_labels_are_shortened_before_they_are_left_out():
    rows = [{"x": 0.0, "y": 0.0, "node_at_level": 1, "label": "alpha · beta · gamma"},
            {"x": 1.0, "y": 1.0, "node_at_level": 2, "label": "delta"}] * 3
    cands = view_map.label_candidates(pd.DataFrame(rows))
    w = view_map.label_size("alpha", int(cands["font_size"].iloc[0]))[0]
    placed = view_map.place_labels(cands, (-0.5, 0.5, -0.5, 0.5), w + 2, 200)  # room for one word only
    assert placed.set_index("node").loc[1, "label"] == "alpha"
    assert placed.set_index("node").loc[1, "full_label"] == "alpha · beta · gamma"
