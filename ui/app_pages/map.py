"""Map: a 2-D UMAP of a run's document vectors, coloured by any tree level; a query and its hits on top;
box/lasso selection lists documents; two runs side by side, aligned (before / after training).

Maps are cached per run in the workspace; a missing one is computed in a background thread while the page
polls, so no click waits on UMAP."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from hce_engine import views
from hce_engine.evaluation import METRIC_LABELS
from hce_engine.plotting import export
from hce_engine.plotting import map as figs
from ui.common import friendly_errors, get_workspace, md_escape, not_encoded_yet, pick_corpus, pick_run_and_compare

ws = get_workspace()


# cache_resource, not cache_data: the frames are shared, not copied (a million rows unpickled on every rerun);
# nothing on this page modifies them.
@st.cache_resource(max_entries=16, ttl=300, show_spinner=False)
def cached_points(_ws, workspace: str, run_id: int, level: int, align_to: int | None, tree_run: int | None):
    """Every document's point and node, no texts (selections and labels use all of them)."""
    return views.map_points(_ws, run_id, level, align_to=align_to, tree_run=tree_run)


@st.cache_resource(max_entries=16, ttl=300, show_spinner=False)
def cached_drawn(_ws, workspace: str, run_id: int, level: int, align_to: int | None, tree_run: int | None):
    """The points drawn (thinned above views.MAX_DRAWN) with their texts: only these documents are read."""
    drawn = views.thin_for_display(cached_points(_ws, workspace, run_id, level, align_to, tree_run))
    # a big drawing's hover shows each point's node label, not its whole tree path
    return views.describe_points(_ws, run_id, drawn, tree_run=tree_run, paths=len(drawn) <= figs.LIGHT_HOVER)


@st.cache_data(max_entries=32, ttl=300, show_spinner=False)
def cached_query(_ws, workspace: str, run_id: int, query: str, align_to: int | None):
    return views.place_query(_ws, run_id, query, k=10, align_to=align_to)


def wait_for(run_id: int, compare: int | None) -> None:
    """Progress note while the map is computed in the background; reruns the page when it is ready."""

    @st.fragment(run_every=2)
    def poll():
        s = ws.projection_status(run_id, compare)
        if s.state == "ready":
            st.rerun()
        elif s.state == "failed":
            st.error(f"The map could not be computed: {md_escape(s.error)}")
            if st.button("Try again", key="map_retry"):
                ws.ensure_projection(run_id, compare, retry=True)
                st.rerun()
        else:
            secs = f" ({s.elapsed_s:.0f} s)" if s.elapsed_s else ""
            if not s.warm:
                st.info(f"Preparing the map engine…{secs} UMAP compiles once per app start (about a minute); "
                        "the map appears here by itself.")
            else:
                st.info(f"Computing the map…{secs} It is stored with the run, so this happens once.")

    poll()


def show_metrics(runs: list, run_id: int, compare: int | None) -> None:
    """The stored retrieval metrics of the shown run(s), beside the picture."""
    ndcg, r100 = METRIC_LABELS["ndcg_at_10"], METRIC_LABELS["recall_at_100"]
    rows = []
    for r in runs:
        if r.run_id in (run_id, compare):
            for m in r.metrics:
                rows.append({"run": f"#{r.run_id}", "split": m["split"], "retriever": m["system"],
                             ndcg: m["ndcg_at_10"], r100: m["recall_at_100"], "queries": m["queries"]})
    st.markdown("**Retrieval metrics**")
    if rows:
        table = pd.DataFrame(rows)
        if compare is None:  # a narrow column beside the map: one line per split and retriever
            table = table.drop(columns=["run", "queries", r100])
        st.dataframe(table, hide_index=True, key="map_metrics",
                     column_config={k: st.column_config.NumberColumn(format="%.3f") for k in (ndcg, r100)})
    else:
        st.caption("Not evaluated yet: the **Runs** page scores a run on the corpus's qrels.")


def show_relevant(relevant, run_id: int, query: str) -> None:
    """The judged query's relevant documents: their rank under the run and their tree node."""
    ranks = {h.doc_id: h.rank for h in ws.search(corpus, query, run=run_id, k=100)}
    table = relevant[["doc_id", "ext_id", "title", "label"]].assign(
        rank=[ranks.get(int(d)) for d in relevant["doc_id"]])
    found = int(table["rank"].notna().sum())
    st.markdown(f"**Relevant documents** (green squares): {found} of {len(table)} in the run's top 100, in "
                f"{table['label'].nunique()} tree node(s)")
    st.dataframe(table.drop(columns="doc_id"), hide_index=True, key="map_relevant",
                 column_config={"label": "tree node", "rank": st.column_config.NumberColumn("rank (top 100)")})


def download_html(sections: list, run_id: int) -> None:
    """A download button for the map(s) as one self-contained HTML file (labels, hovers, query and hits)."""
    st.download_button("Download this map (HTML)", file_name=f"{corpus}-run{run_id}-map.html", mime="text/html",
                       data=lambda: export.page_html(f"HCE Explorer map: {corpus} · run {run_id}", sections,
                                                     note="Documents placed by UMAP from their vectors; hover a "
                                                          "point for its title and tree path."),
                       key="map_html", help="One file with the map(s), labels, hover texts and the query's hits; "
                                            "opens offline in any browser.")


def show_selection(event, fig, points, map_run: int, tree_run: int | None, key: str) -> None:
    """The documents under a box/lasso selection: listed, counted per tree node, exported, or made a corpus.
    ``points``: every document of the map (views.map_points of ``map_run``, coloured by ``tree_run``'s tree)."""
    sel = (event or {}).get("selection", {}) if hasattr(event or {}, "get") else {}
    box, lasso = sel.get("box") or [], sel.get("lasso") or []
    # the selected region's documents, all of them (a thinned drawing shows only some); clicked points otherwise
    ids = views.select_region(points, box, lasso) if box or lasso else figs.selected_doc_ids(event, fig)
    if not ids:
        st.caption("Draw a box or lasso on the map to list documents.")
        return
    sel = views.describe_points(ws, map_run, points[points["doc_id"].isin(ids)], tree_run=tree_run)
    st.markdown(f"**{len(sel)} selected documents** in {sel['node_at_level'].nunique()} tree nodes")
    st.dataframe(sel[["ext_id", "title", "label", "path"]], hide_index=True,
                 column_config={"label": "node", "path": "tree path"})
    nodes = sel.groupby("label").size().sort_values(ascending=False).rename("documents").reset_index()
    st.dataframe(nodes, hide_index=True, column_config={"label": "tree node"}, key=f"map_sel_nodes_{key}")
    corpus_name = str(corpus)  # the pages run only with a corpus picked
    c1, c2 = st.columns(2)  # the texts are read when a download is clicked, not on every rerun
    c1.download_button("Selection as CSV", lambda: views.selection_file(ws, corpus_name, sel, "csv"),
                       f"{corpus}-selection.csv", "text/csv", key=f"map_sel_csv_{key}")
    c2.download_button("Selection as JSONL", lambda: views.selection_file(ws, corpus_name, sel, "jsonl"),
                       f"{corpus}-selection.jsonl", "application/jsonl", key=f"map_sel_jsonl_{key}")
    with st.form(f"map_subset_{key}", border=False):
        name = st.text_input("New corpus from the selection", value=f"{corpus}-selection", max_chars=100,
                             key=f"map_subset_name_{key}")
        if st.form_submit_button("Create corpus"):
            with friendly_errors("New corpus"):
                report = ws.subset_corpus(corpus, sel.loc[sel["ext_id"] != "", "ext_id"].tolist(), name.strip())
                st.success(f"Created **{md_escape(report.corpus)}** with {report.documents} documents"
                           + (f" and {report.queries} judged queries" if report.queries else "")
                           + "; encode it on the **Corpus** page.")


st.title("Map")
st.caption("Each point is a document, placed by UMAP from its vector (nearby = similar). Colours are tree "
           "nodes: a good tree gives compact, separated colours.")
corpus = pick_corpus("map_corpus")
if corpus:
    with friendly_errors("Map"):
        runs = ws.runs(corpus, status="done")
        if not runs:
            not_encoded_yet(corpus, "map", "its map is computed")
            st.stop()
        c1, c2 = st.columns(2)
        run_id, compare = pick_run_and_compare(ws, runs, c1, c2, "Run", "Side by side with (aligned)", "map")
        labels = {r.run_id: r.label for r in runs}
        rebuilds = views.list_rebuilds(ws, run_id)
        depth = rebuilds[-1]["depth"] if rebuilds else 0
        sizes = views.level_sizes(ws, run_id) if depth else {}
        c1, c2, c3 = st.columns([1, 2, 1])
        level = c1.number_input("Colour by tree level", 0, max(depth, 0), views.default_level(sizes),
                                key="map_level", help="0 = one colour; higher levels = finer clusters.")
        query = c2.text_input("Place a query on the map", key="map_query", placeholder="type a query")
        judged = {q["query_id"]: q for q in views.judged_queries(ws, corpus, limit=500)}
        picked = c2.selectbox("…or a judged query (its relevant documents get green squares)", list(judged),
                              index=None, key="map_judged", placeholder="pick a query from the corpus's qrels",
                              format_func=lambda q: f"{judged[q]['text'][:90]} ({judged[q]['split']})",
                              disabled=not judged)
        relevant_ids = judged[picked]["doc_ids"] if picked else []
        if picked and not query.strip():
            query = judged[picked]["text"]
        same_tree = c3.toggle("One tree for both", value=True, key="map_same_tree", disabled=compare is None,
                              help="Colour both maps by this run's tree, to see where its clusters went.")
        show_labels = c3.toggle("Node labels", value=True, key="map_labels",
                                help="Write each node's label (its most telling words) at its documents' centre, "
                                     "biggest nodes first, without overlaps; change the level to read the map at "
                                     "another depth.")
        status = ws.ensure_projection(run_id, align_to=compare)
        if status.state != "ready":
            wait_for(run_id, compare)
            st.stop()
        points = cached_points(ws, ws.path, run_id, int(level), compare, None)
        drawn = cached_drawn(ws, ws.path, run_id, int(level), compare, None)
        placed = None
        if query.strip():
            with friendly_errors("Placing the query"):
                placed = cached_query(ws, ws.path, run_id, query.strip(), compare)
        marks = views.map_labels(points) if show_labels else None
        relevant = (views.describe_points(ws, run_id, points[points["doc_id"].isin(relevant_ids)])
                    if relevant_ids else None)
        if len(points) > views.MAX_DRAWN:
            st.caption(f"Drawing {len(drawn):,} of {len(points):,} documents (thinned where the map is dense, "
                       "sparse regions whole); selections and query hits use every document.")
        if compare is None:
            fig = figs.map_figure(drawn, query=placed, labels=marks, relevant=relevant)
            chart, side = st.columns([3, 1])
            with chart:
                event = st.plotly_chart(fig, on_select="rerun", selection_mode=("box", "lasso"), key="map_main",
                                        width="stretch")
            with side:
                show_metrics(runs, run_id, compare)
            download_html([("Map", fig)], run_id)
            show_selection(event, fig, points, run_id, None, "main")
        else:
            before_tree = run_id if same_tree else None
            before = cached_points(ws, ws.path, compare, int(level), None, before_tree)
            drawn_b = cached_drawn(ws, ws.path, compare, int(level), None, before_tree)
            placed_b = None
            if query.strip():
                with friendly_errors("Placing the query"):
                    placed_b = cached_query(ws, ws.path, compare, query.strip(), None)
            left, right = st.columns(2)
            with left:
                fig_b = figs.map_figure(drawn_b, query=placed_b,
                                        title=f"before: {labels[compare]}", height=480,
                                        labels=views.map_labels(before, width=450, height=480) if show_labels else None,
                                        relevant=views.describe_points(
                                            ws, compare, before[before["doc_id"].isin(relevant_ids)], before_tree)
                                        if relevant_ids else None,
                                        label_width=420)
                event_b = st.plotly_chart(fig_b, on_select="rerun", selection_mode=("box", "lasso"), key="map_before",
                                          width="stretch")
            with right:
                fig = figs.map_figure(drawn, query=placed,
                                      title=f"after: {labels[run_id]}", height=480,
                                      labels=views.map_labels(points, width=450, height=480) if show_labels else None,
                                      relevant=relevant, label_width=420)
                event = st.plotly_chart(fig, on_select="rerun", selection_mode=("box", "lasso"), key="map_main",
                                        width="stretch")
            st.caption("The right map starts from the left one's layout and is rotated/scaled onto it, so "
                       "positions are comparable.")
            show_metrics(runs, run_id, compare)
            download_html([(f"before: {labels[compare]}", fig_b), (f"after: {labels[run_id]}", fig)], run_id)
            a, b = st.columns(2)
            with a:
                show_selection(event_b, fig_b, before, compare, before_tree, "before")
            with b:
                show_selection(event, fig, points, run_id, None, "after")
        if relevant is not None:
            show_relevant(relevant, run_id, query)
        if placed is not None:
            st.markdown("**Query hits** (ringed on the map, numbered by rank)")
            st.dataframe(placed["hits"][["rank", "ext_id", "title", "score"]], hide_index=True,
                         column_config={"score": st.column_config.NumberColumn(format="%.3f")})
