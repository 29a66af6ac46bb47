"""Figure builders of the Tree, Siblings and Map pages: pure functions, tested without Streamlit."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from hce_engine.plotting import map as map_figs
from hce_engine.plotting import siblings as sib_figs
from hce_engine.plotting import tree as tree_figs


def toy_nodes(branching: int = 3, depth: int = 3) -> pd.DataFrame:
    """A complete tree: root, then ``branching`` children per node, leaf size 2."""
    rows = [{"node": 0, "parent": -1, "level": 0, "size": 0, "label": "all documents", "terms": ""}]
    frontier = [0]
    for lv in range(1, depth + 1):
        nxt = []
        for p in frontier:
            for _ in range(branching):
                rows.append({"node": len(rows), "parent": p, "level": lv, "size": 0, "label": f"n{len(rows)}",
                             "terms": "a · b"})
                nxt.append(rows[-1]["node"])
        frontier = nxt
    df = pd.DataFrame(rows)
    df.loc[df["level"] == depth, "size"] = 2
    for lv in range(depth - 1, -1, -1):
        sums = df[df["level"] == lv + 1].groupby("parent")["size"].sum()
        df.loc[df["node"].isin(sums.index), "size"] = df["node"].map(sums)
    return df


def toy_view(compare: bool = True) -> dict:
    def cand(i, pos, leaf=False):
        c = {"score": 0.9 - 0.1 * i, "rank": i + 1, "is_positive": pos}
        if compare:
            c.update(score_compare=0.5 + 0.1 * i, rank_compare=3 - i)
        if leaf:
            c.update(doc_id=100 + i, ext_id=f"d{i}", title=f"doc {i}")
        else:
            c.update(node=10 + i, label=f"topic {i}", terms=["x", "y"], size=5, example="an example")
        return c

    def entry(level, leaf=False):
        e = {"n_candidates": 3, "rank": 1, "p_positive": 0.8, "loss": 0.22,
             "candidates": [cand(i, i == 0, leaf) for i in range(3)]}
        if compare:
            e.update(rank_compare=3, p_positive_compare=0.1, loss_compare=2.3)
        if leaf:
            e.update(leaf_node=12, leaf_label="topic 2", positive=100)
        else:
            e.update(level=level, parent=0, parent_label="root", positive=10, positive_label="topic 0")
        return e

    return {"run_id": 2, "compare_run": 1 if compare else None, "depth": 2, "tau": 0.05, "query": "q",
            "doc": {"doc_id": 100, "ext_id": "d0", "title": "doc *0*", "snippet": ""},
            "path": [{"level": 1, "node": 10, "label": "topic 0", "size": 5},
                     {"level": 2, "node": 11, "label": "topic 1", "size": 3}],
            "levels": [entry(1), entry(2)], "leaf": entry(3, leaf=True)}


def test_hierarchy_chart_sunburst_and_icicle():
    nodes = toy_nodes()
    fig = tree_figs.hierarchy_chart(nodes, "sunburst", levels=2, highlight=5)
    tr = fig.data[0]
    assert isinstance(tr, go.Sunburst) and tr.branchvalues == "total" and tr.maxdepth == 3
    assert len(tr.ids) == len(nodes) and tr.parents[0] == "" and tr.values[0] == 54
    assert list(tr.marker.line.width).count(3) == 1
    json.loads(fig.to_json())
    assert isinstance(tree_figs.hierarchy_chart(nodes, "icicle").data[0], go.Icicle)
    # big trees are cut at the deepest level that stays under the node budget
    assert tree_figs.chart_levels(nodes, 3, max_nodes=13) == 2
    assert len(tree_figs.hierarchy_chart(nodes, max_nodes=13).data[0].ids) == 13


def test_sunburst_writes_labels_only_where_they_fit():
    """512 outer segments cannot hold text: they stay blank (their hover has the label); the 8 and 64 above do."""
    nodes = toy_nodes(branching=8, depth=3)
    nodes.loc[1, "label"] = "a very long label · with <b>many</b> terms"
    tr = tree_figs.hierarchy_chart(nodes, "sunburst", levels=3).data[0]
    text: dict[int, list] = {lv: [] for lv in range(4)}
    for lv, t in zip(nodes["level"], tr.text):
        text[lv].append(t)
    assert all(t == "" for t in text[3]) and all(t for t in text[2]) and all(t for t in text[1])
    assert text[0] == ["all documents"] and tr.texttemplate == "%{text}" and "%{label}" in tr.hovertemplate
    assert tr.text[1] == "a very long label…" and tr.labels[1] == "a very long label · with &lt;b&gt;many&lt;/b&gt; terms"
    assert all(t for t in tree_figs.hierarchy_chart(nodes, "sunburst", levels=1).data[0].text[:9])
    assert not any(tree_figs.hierarchy_chart(nodes, "sunburst", levels=1).data[0].text[9:])  # beyond the rings


def test_tree_quality_figures():
    levels = pd.DataFrame([{"rebuild": r, "level": lv, "n_nodes": 3 ** lv, "n_empty": 0, "size_min": 1,
                            "size_median": 4.0, "size_max": 9, "size_mean": 4.0, "intra_cos": 0.5 + lv / 10,
                            "silhouette": 0.1} for r in (0, 1) for lv in (1, 2)])
    fig = tree_figs.level_stats_chart(levels)
    assert len(fig.data) == 3 and list(fig.data[0].x) == ["L1<br>3 nodes", "L2<br>9 nodes"]
    assert tree_figs.rebuilds_chart([{"rebuild": 0, "silhouette": 0.1, "intra_cos_leaf": 0.8},
                                     {"rebuild": 1, "silhouette": 0.2, "intra_cos_leaf": 0.9}]).data[0].y == (0.1, 0.2)
    assert tree_figs.leaf_size_histogram([1, 2, 2]).data[0].x == (1, 2, 2)
    assert len(tree_figs.coherence_chart(pd.DataFrame({"level": [1, 2], "queries": 4, "together": [1, .5]})).data) == 1
    fig = tree_figs.ari_chart({"ari_levels": [{"level": 1, "ari": 1.0}, {"level": 2, "ari": -0.1}]})
    assert list(fig.data[0].y) == [1.0, -0.1]


@pytest.mark.parametrize("compare", [True, False])
def test_sibling_level_chart(compare):
    view = toy_view(compare)
    fig = sib_figs.level_chart(view["levels"][0])
    assert len(fig.data) == (2 if compare else 1)
    after = fig.data[-1]
    assert list(after.x) == [0.9, 0.8, 0.7] and after.marker.color[0] == sib_figs.POSITIVE
    assert after.marker.color[1] == sib_figs.NEGATIVE and len(set(after.y)) == 3
    # node ids and ranks read differently: "topic 0 (node 10)" on the axis, "rank 1 ✔" on the bar
    assert after.y[0] == "topic 0 (node 10)" and list(after.text) == ["rank 1 ✔", "rank 2", "rank 3"]
    assert not any("#" in t for t in [*after.y, *after.text])
    if compare:
        assert list(fig.data[0].x) == [0.5, 0.6, 0.7] and "rank 3/3" in fig.layout.title.text
    leaf = sib_figs.level_chart(view["leaf"], leaf=True)
    assert "doc 0 [d0]" in leaf.data[-1].y
    json.loads(leaf.to_json())


def test_rank_summary_table_and_path():
    view = toy_view(True)
    fig = sib_figs.rank_summary_chart(view, "before #1", "after #2")
    assert [t.name for t in fig.data] == ["before #1", "after #2", "candidates"]
    assert list(fig.data[1].x) == ["L1", "L2", "documents"] and fig.layout.yaxis.autorange == "reversed"
    table = sib_figs.level_table(view, "before", "after")
    assert list(table["level"]) == ["L1", "L2", "documents"]
    assert {"rank (before)", "rank (after)", "loss (after)"} <= set(table.columns)
    assert set(sib_figs.level_table(toy_view(False)).columns) >= {"rank", "p(positive)", "loss"}
    text = sib_figs.path_text(view, lambda s: s.replace("*", "\\*"))
    assert text.startswith("all documents › **topic 0** (5)") and "doc \\*0\\*" in text
    from hce_engine.views import default_level  # a view (the walkthrough picks its level too), not a figure
    assert default_level({0: 1, 1: 2, 2: 7, 3: 20}) == 2 and default_level({0: 1, 1: 2}) == 1


def frame(n: int, groups: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"doc_id": np.arange(1, n + 1), "ext_id": [f"e{i}" for i in range(n)],
                         "title": [f"title {i}" for i in range(n)], "x": rng.normal(size=n), "y": rng.normal(size=n),
                         "node_at_level": np.arange(n) % groups, "label": [f"g{i % groups}" for i in range(n)],
                         "path": ["a › b"] * n})


def test_map_figure_and_selection():
    df = frame(30)
    hits = pd.DataFrame({"rank": [1, 2], "doc_id": [3, 4], "ext_id": ["e2", "e3"], "title": ["t", "u"],
                         "score": [0.9, 0.8], "x": [0.0, 1.0], "y": [0.0, 1.0]})
    fig = map_figs.map_figure(df, query={"query": "q", "x": 0.2, "y": 0.2, "hits": hits}, highlight={1, 2})
    assert [t.name for t in fig.data][-2:] == ["query hits", "query"]
    assert all(isinstance(t, go.Scatter) for t in fig.data)
    docs = sorted(int(c) for t in fig.data[:3] for c in t.customdata)  # the doc id per point, a number
    assert docs == list(range(1, 31))
    n = map_figs.GL_THRESHOLD + 1
    big = map_figs.map_figure(frame(n, groups=40))
    assert len(big.data) == 1 and isinstance(big.data[0], go.Scattergl) and not big.data[0].showlegend
    assert len(set(big.data[0].marker.color)) == 20 and len(big.data[0].x) == n
    # selection: customdata when present (a doc id, or a row starting with one), else the trace/point index
    t0, hit = fig.data[0], fig.data[-2]
    sel = {"selection": {"points": [{"curve_number": 0, "point_index": 1, "customdata": int(t0.customdata[1])},
                                    {"curve_number": 0, "point_index": 2},
                                    {"curve_number": len(fig.data) - 2, "point_index": 0,
                                     "customdata": list(hit.customdata[0])},
                                    {"curve_number": len(fig.data) - 1, "point_index": 0}]}}  # the query's star
    assert map_figs.selected_doc_ids(sel, fig) == [int(t0.customdata[1]), int(t0.customdata[2]), 3]
    assert map_figs.selected_doc_ids(None) == [] and map_figs.selected_doc_ids({"selection": {"points": []}}) == []


def test_figures_from_real_views(workspace, toy_beir, monkeypatch):
    """The builders accept what the engine views return (toy corpus, fake encoder, instant fake UMAP)."""
    from hce_engine import views
    import hce_engine.projection as proj
    monkeypatch.setattr(proj, "project", lambda v, seed=0, init=None, **k: np.asarray(v[:, :2], np.float32))
    workspace.import_corpus(toy_beir, name="toy")
    run = workspace.encode("toy", branching=3)
    ov = views.tree_overview(workspace, run)
    assert len(tree_figs.hierarchy_chart(ov["nodes"]).data[0].ids) == len(ov["nodes"])
    q = views.tree_quality(workspace, run)
    tree_figs.level_stats_chart(q["levels"])
    tree_figs.ari_chart(views.compare_trees(workspace, run, run))
    v = views.siblings_view(workspace, run, query="bake bread oven", compare_run=run)
    for lv in v["levels"]:
        sib_figs.level_chart(lv)
    sib_figs.level_chart(v["leaf"], leaf=True)
    sib_figs.rank_summary_chart(v)
    assert len(sib_figs.level_table(v)) == v["depth"] + 1
    df = views.map_frame(workspace, run, level=2)
    fig = map_figs.map_figure(df, query=views.place_query(workspace, run, "bake bread", k=3))
    assert sum(len(t.x) for t in fig.data[:-2]) == 36


def test_figures_escape_titles_ids_and_labels():
    """Plotly reads hover, legend, axis and sunburst text as HTML: titles, ids and labels must arrive escaped."""
    evil = '<img src="http://127.0.0.1:9/x.png"><a href="http://e">a</a>'
    df = frame(6)
    df["title"], df["ext_id"], df["label"], df["path"] = evil, evil, evil, evil
    fig = map_figs.map_figure(df)
    dumped = json.dumps(fig.to_plotly_json(), default=str)
    assert "<img" not in dumped and "<a href" not in dumped and "&lt;img" in dumped
    nodes = toy_nodes(2, 2)
    nodes["label"], nodes["terms"] = evil, evil
    dumped = json.dumps(tree_figs.hierarchy_chart(nodes).to_plotly_json(), default=str)
    assert "<img" not in dumped and "&lt;img" in dumped
    view = toy_view(False)
    for c in view["levels"][0]["candidates"]:
        c["label"], c["terms"], c["example"] = evil, [evil], evil
    dumped = json.dumps(sib_figs.level_chart(view["levels"][0], False).to_plotly_json(), default=str)
    assert "<img" not in dumped and "&lt;img" in dumped
