"""Tree: the document hierarchy of a run as a sunburst or icicle, one node's documents and children, tree
quality per level and rebuild, and a comparison of two trees (two runs, or two rebuilds of one run)."""
from __future__ import annotations

import streamlit as st

from hce_engine import views
from hce_engine.plotting import export
from hce_engine.plotting import tree as figs
from ui.common import friendly_errors, get_workspace, md_escape, not_encoded_yet, pick_corpus

ws = get_workspace()
st.title("Tree")
st.caption("The hierarchy HCE trains with: documents clustered bottom-up with spherical k-means; every node is "
           "labelled with its most distinctive words. The training loss contrasts each branch with its siblings.")


def rebuild_picker(run_id: int, key: str, label: str = "Tree rebuild") -> int | None:
    """Rebuild selectbox when a run has several trees (co-training); None = the latest."""
    rebuilds = views.list_rebuilds(ws, run_id)
    if len(rebuilds) <= 1:
        return rebuilds[0]["rebuild"] if rebuilds else None
    ids = [r["rebuild"] for r in rebuilds]
    return st.selectbox(label, ids, index=len(ids) - 1, key=key,
                        format_func=lambda r: "initial tree (0)" if r == 0 else f"rebuild {r}")


def trees_of(corpus: str) -> list:
    return ws.runs(corpus, status="done", with_tree=True)


def show_node(run_id: int, rebuild: int | None, overview: dict) -> int | None:
    nodes = overview["nodes"]
    st.subheader("Inspect a node")
    c1, c2 = st.columns([1, 3])
    level = c1.selectbox("Level", list(range(0, overview["depth"] + 1)), index=min(1, overview["depth"]),
                         key="tree_level", format_func=lambda lv: "root" if lv == 0 else
                         (f"{lv} (leaf clusters)" if lv == overview["depth"] else str(lv)))
    at = nodes[nodes["level"] == level].sort_values(["size", "node"], ascending=[False, True])
    names = {int(r.node): f"{r.label} · {r.size} docs [#{r.node}]" for r in at.itertuples()}
    node = c2.selectbox("Node", list(names), format_func=names.__getitem__, key=f"tree_node_{level}")
    if node is None:
        return None
    with friendly_errors("Reading the node"):
        d = views.node_detail(ws, run_id, node, rebuild=rebuild)
        st.markdown(" › ".join(("**" + md_escape(p["label"]) + "**") if p["node"] == node else md_escape(p["label"])
                               for p in d["path"]))
        st.caption(f"{d['size']} documents · terms: {md_escape(', '.join(d['terms'])) or '—'}")
        left, right = st.columns([1, 2])
        with left:
            if d["children"]:
                st.markdown(f"**{len(d['children'])} children** (the siblings a query must choose among)")
                st.dataframe([{"node": c["node"], "label": c["label"], "documents": c["size"]} for c in d["children"]],
                             hide_index=True, width="stretch")
            else:
                st.markdown("**Leaf cluster**: its documents are each other's sibling negatives.")
        with right:
            shown = len(d["docs"])
            st.markdown(f"**Documents** ({shown} of {d['size']}, most central first)")
            st.dataframe(d["docs"][["ext_id", "title", "leaf_label", "cosine"]], hide_index=True, width="stretch",
                         column_config={"cosine": st.column_config.NumberColumn("cos to centroid", format="%.3f"),
                                        "leaf_label": "leaf cluster"})
    return node


def show_quality(run_id: int, rebuild: int | None) -> None:
    st.subheader("Tree quality")
    q = views.tree_quality(ws, run_id)
    if len(q["levels"]):
        st.plotly_chart(figs.level_stats_chart(q["levels"], rebuild), key="tree_levels_fig")
        st.caption("Intra-node cosine: how close documents are to their node's centroid (higher = tighter). "
                   "Silhouette: tighter than the nearest other node (−1…1, higher = better separated).")
    cols = st.columns(2)
    with cols[0]:
        st.plotly_chart(figs.leaf_size_histogram(q["leaf_sizes"]), key="tree_leaf_hist")
    with cols[1]:
        if q["coherence"] is not None:
            st.plotly_chart(figs.coherence_chart(q["coherence"]), key="tree_coherence")
        else:
            st.caption("No qrels with two or more relevant documents per query: no coherence chart.")
    if len(q["rebuilds"]) > 1:
        st.plotly_chart(figs.rebuilds_chart(q["rebuilds"]), key="tree_rebuilds_fig")


def show_compare(corpus: str, run_id: int, rebuild: int | None) -> None:
    st.subheader("Compare two trees")
    runs = trees_of(corpus)
    labels = {r.run_id: r.label for r in runs}
    has_rebuilds = len(views.list_rebuilds(ws, run_id)) > 1
    if len(runs) < 2 and not has_rebuilds:
        st.info("Only one tree so far. Train a run (or re-cluster during training) to compare how the "
                "hierarchy moved.")
        return
    c1, c2 = st.columns(2)
    others = [r for r in labels if r != run_id] or [run_id]
    other = c1.selectbox("Compare with run", others, format_func=labels.__getitem__, key="tree_cmp_run")
    with c2:
        other_rebuild = rebuild_picker(other, "tree_cmp_rebuild", "Its rebuild")
    if other == run_id and other_rebuild == rebuild:
        st.caption("Pick another run or another rebuild.")
        return
    with friendly_errors("Comparing the trees"):
        cmp = views.compare_trees(ws, run_id, other, rebuild_a=rebuild, rebuild_b=other_rebuild)
        m = st.columns(4)
        m[0].metric("ARI, leaf clusters", f"{cmp['ari_leaf']:.3f}")
        m[1].metric("ARI, level 1", f"{cmp['ari_level1']:.3f}")
        m[2].metric("Same leaf-mates", f"{cmp['unchanged']:.0%}")
        m[3].metric("Shared documents", f"{cmp['n_shared']:,}")
        st.caption("Adjusted Rand index: 1 = the same clustering, 0 = no more agreement than chance.")
        st.plotly_chart(figs.ari_chart(cmp, f"#{run_id}", f"#{other}"), key="tree_ari_fig")
        st.markdown("**Documents that moved most** (lowest Jaccard overlap of their leaf-mates)")
        st.dataframe(cmp["moved"][["ext_id", "title", "jaccard", "label_a", "label_b"]], hide_index=True,
                     width="stretch",
                     column_config={"jaccard": st.column_config.NumberColumn(format="%.2f"),
                                    "label_a": f"leaf in #{run_id}", "label_b": f"leaf in #{other}"})


def main(corpus: str) -> None:
    runs = trees_of(corpus)
    if not runs:
        not_encoded_yet(corpus, "tree", "its tree appears here")
    else:
        labels = {r.run_id: r.label for r in runs}
        c1, c2 = st.columns([3, 1])
        run_id = c1.selectbox("Run", list(labels), index=len(labels) - 1, format_func=labels.__getitem__,
                              key="tree_run")
        with c2:
            rebuild = rebuild_picker(run_id, "tree_rebuild")
        with friendly_errors("Reading the tree"):
            overview = views.tree_overview(ws, run_id, rebuild)
            depth = overview["depth"]
            c1, c2, c3 = st.columns([1, 2, 3])
            kind = c1.radio("Chart", ["sunburst", "icicle"], key="tree_kind", horizontal=True)
            shown = c2.slider("Levels shown", 1, max(depth, 2), min(3, max(depth, 1)), key="tree_depth",
                              disabled=depth <= 1, help="Levels visible at once; click a node to zoom into it.")
            c3.markdown(f"**{overview['n_docs']:,}** documents · **{overview['n_leaves']:,}** leaf clusters · "
                        f"depth **{depth}** · b = {overview['branching']} · {overview['builder']}")
            node = st.session_state.get(f"tree_node_{st.session_state.get('tree_level', 1)}")
            chart = figs.hierarchy_chart(overview["nodes"], kind, shown, highlight=node)
            st.plotly_chart(chart, key="tree_chart")
            st.download_button(
                "Download this tree (HTML)", file_name=f"{corpus}-run{run_id}-tree.html", mime="text/html",
                data=lambda: export.page_html(f"HCE Explorer tree: {corpus} · run {run_id}", [(f"The tree ({kind})",
                                                                                               chart)]),
                key="tree_html", help="One self-contained file (the chart and its labels) that opens offline.")
            if figs.chart_levels(overview["nodes"], depth) < depth:
                st.caption(f"The chart stops at level {figs.chart_levels(overview['nodes'], depth)} to stay fast; "
                           "inspect deeper nodes below.")
            show_node(run_id, rebuild, overview)
        with friendly_errors("Tree quality"):
            show_quality(run_id, rebuild)
        with friendly_errors("Comparing trees"):
            show_compare(corpus, run_id, rebuild)


corpus = pick_corpus("tree_corpus")
if corpus:
    with friendly_errors("Tree"):
        main(corpus)
