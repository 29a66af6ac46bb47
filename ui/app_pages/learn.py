"""Learn: a guided walk through HCE on the current corpus, one step at a time, for a class:
embed -> cluster -> a path -> siblings as negatives -> the loss per level -> what training changed (-> the self
signal, when the trained run learned from it)."""
from __future__ import annotations

from functools import partial

import streamlit as st

from hce_engine import InputError, NotFoundError, views
from hce_engine.evaluation import METRIC_LABELS
from hce_engine.plotting import export
from hce_engine.plotting import map as map_figs
from hce_engine.plotting import siblings as sib_figs
from hce_engine.plotting import tree as tree_figs
from hce_engine.views.walkthrough import LOSS_LATEX, NO_TRAINED_RUN, PSEUDO_PAIR, SELF_STEP, STEPS, TEXT
from ui.common import (
    cached_teacher,
    friendly_errors,
    get_workspace,
    md_escape,
    not_encoded_yet,
    pick_corpus,
    show_teacher_example,
)

ws = get_workspace()


@st.cache_data(max_entries=32, ttl=900, show_spinner=False)
def cached_view(_ws, workspace: str, run_id: int, doc_id: int | None, query: str | None, compare: int | None,
                positive_text: str | None = None):
    return views.siblings_view(_ws, run_id, doc_id=doc_id, query=query, compare_run=compare, max_siblings=12,
                               positive_text=positive_text)


def go(delta: int, steps: list[str]) -> None:
    i = steps.index(st.session_state.get("learn_step", steps[0]))
    st.session_state["learn_step"] = steps[min(max(i + delta, 0), len(steps) - 1)]


def nav(where: str, steps: list[str]) -> None:
    i = steps.index(st.session_state.get("learn_step", steps[0]))
    c1, c2, _ = st.columns([1, 1, 6])
    c1.button("◀ Back", on_click=go, args=(-1, steps), disabled=i == 0, key=f"learn_back_{where}")
    c2.button("Next ▶", on_click=go, args=(1, steps), disabled=i == len(steps) - 1, key=f"learn_next_{where}",
              type="primary")


def show_teacher(run_id: int, doc_id: int | None) -> None:
    """The self-signal step: the example document's pseudo-query (or, if it yields none, the first document
    that does), the teacher's probabilities over its siblings and the student's before and after."""
    try:
        tv = cached_teacher(ws, ws.path, run_id, doc_id, 12)
    except (InputError, NotFoundError) as exc:
        st.caption(f"{md_escape(str(exc))}; showing the first document that yields one instead.")
        tv = cached_teacher(ws, ws.path, run_id, None, 12)
    show_teacher_example(tv, run_id, "learn_teacher")


def show_map(run_id: int, level: int, key: str) -> None:
    """The run's map if it is stored; otherwise start computing it and say so (never blocks)."""
    status = ws.ensure_projection(run_id)
    if status.state == "ready":
        frame = views.map_frame(ws, run_id, level)
        st.plotly_chart(map_figs.map_figure(frame, height=420), key=key)
    elif status.state == "failed":
        st.warning(f"The map could not be computed: {md_escape(status.error)}")
    else:
        @st.fragment(run_every=2)
        def poll():
            s = ws.projection_status(run_id)
            if s.state == "ready":
                st.rerun()
            st.info("Preparing the map engine…" if not s.warm else "Computing the map of the documents…")
        poll()


def example_pair(corpus: str) -> tuple[int | None, str | None, str, str | None]:
    """The walkthrough's training pair (doc id, query text, description, the positive's text when it is not the
    stored document), chosen once per corpus. Without judged queries: a pseudo-query (a sentence of the
    document, removed from it), as ICT and the self signal train."""
    judged = views.judged_queries(ws, corpus, limit=300)
    if judged:
        by_id = {q["query_id"]: q for q in judged}
        qid = st.selectbox("Example training pair (a query and its relevant document)", list(by_id),
                           key="learn_pair", format_func=lambda k: f"{by_id[k]['text'][:100]} ({by_id[k]['split']})")
        q = by_id[qid]
        return q["doc_ids"][0], q["text"], "a judged query and its relevant document", None
    docs = views.find_documents(ws, corpus, "", limit=200)
    names = {int(r.doc_id): f"{r.title} [{r.ext_id}]" for r in docs.itertuples()}
    pseudo = {p["doc_id"]: p for p in views.pseudo_queries(ws, corpus, limit=len(names), doc_ids=list(names))}
    ids = list(names)
    first = next((i for i, d in enumerate(ids) if d in pseudo), 0)
    doc = st.selectbox("Example document (no judged queries in this corpus: one of its sentences plays the query)",
                       ids, index=first, format_func=names.__getitem__, key="learn_doc")
    if doc in pseudo:
        return doc, pseudo[doc]["query"], PSEUDO_PAIR, pseudo[doc]["doc_text"]
    return doc, None, ("a document standing in for a query (it has a single sentence, so no pseudo-query: as its "
                       "own query it is trivially found)"), None


st.title("Learn: how HCE trains an encoder")
corpus = pick_corpus("learn_corpus")
if corpus:
    with friendly_errors("Learn"):
        if not ws.runs(corpus, status="done", with_tree=True):
            not_encoded_yet(corpus, "learn", "the walkthrough, which uses its vectors and tree, starts")
            st.stop()
        walk = views.walkthrough(ws, corpus)  # the runs, tree and colour level the exported walkthrough shows too
        start, after = walk["start"], walk["after"]
        st.caption(f"Starting encoder: {md_escape(start.label)}"
                   + (f" · trained: {md_escape(after.label)}" if after else ""))
        steps = walk["steps"]  # the six steps, and the self signal's when the trained run learned from it
        if st.session_state.get("learn_step") not in steps:
            st.session_state.pop("learn_step", None)
        step = st.radio("Step", steps, horizontal=True, key="learn_step", label_visibility="collapsed")
        tree_info = walk["tree"]
        depth = tree_info["depth"]

        if step == STEPS[0]:
            stats = views.corpus_stats(ws, corpus)
            head, body = TEXT[step]
            intro, below = body.split("\n\n")
            st.header(head)
            st.markdown(intro)
            c = st.columns(4)
            c[0].metric("Documents", f"{stats['documents']:,}")
            c[1].metric("Median words", f"{stats['words']['median']:.0f}")
            c[2].metric("Vector size", str((start.summary or {}).get("dim", "—")))
            c[3].metric("Queries", f"{stats['queries']:,}")
            st.markdown(below)
            show_map(start.run_id, 0, "learn_map_1")

        elif step == STEPS[1]:
            level = walk["level"]
            head, body = TEXT[step]
            intro, below = body.format(branching=tree_info["branching"], n_leaves=tree_info["n_leaves"], depth=depth,
                                       level=level).split("\n\n")
            st.header(head)
            st.markdown(intro + " Click a node to zoom in.")
            st.plotly_chart(tree_figs.hierarchy_chart(tree_info["nodes"], "sunburst", min(depth, 3)), key="learn_tree")
            st.markdown(below)
            show_map(start.run_id, level, "learn_map_2")

        elif step in steps[2:]:
            doc_id, query, what, positive_text = example_pair(corpus)
            view = cached_view(ws, ws.path, start.run_id, doc_id, query, None, positive_text) \
                if step != SELF_STEP else {}
            if step == STEPS[2]:
                st.header(TEXT[step][0])
                st.markdown(TEXT[step][1].format(what=what, depth=depth))
                if query:
                    st.markdown(f"**{'Pseudo-query' if positive_text else 'Query'}:** {md_escape(query)}")
                st.markdown(sib_figs.path_text(view, md_escape))
                st.dataframe([{"level": p["level"], "node": p["label"], "documents": p["size"]} for p in view["path"]],
                             hide_index=True)
            elif step == STEPS[3]:
                st.header(TEXT[step][0])
                st.markdown(TEXT[step][1])
                for lv in view["levels"]:
                    st.plotly_chart(sib_figs.level_chart(lv, title=f"Level {lv['level']}: "
                                                         + sib_figs.level_title(lv)), key=f"learn_lv_{lv['level']}")
                st.plotly_chart(sib_figs.level_chart(view["leaf"], leaf=True, title="Documents: "
                                                     + sib_figs.level_title(view["leaf"], leaf=True)), key="learn_leaf")
            elif step == STEPS[4]:
                st.header(TEXT[step][0])
                st.markdown(TEXT[step][1])
                st.latex(LOSS_LATEX)
                st.dataframe(sib_figs.level_table(view), hide_index=True)
                total = view["leaf"]["loss"] + sum(lv["loss"] for lv in view["levels"]) / max(len(view["levels"]), 1)
                st.markdown(f"For this pair: **loss = {total:.3f}** with τ = {view['tau']}. Training nudges the "
                            "encoder to shrink it for many pairs at once; the sibling *documents* at the leaf "
                            "carry most of the gain.")
            elif step == SELF_STEP:
                st.header(TEXT[step][0])
                st.markdown(TEXT[step][1])
                show_teacher(after.run_id, doc_id)
            else:
                st.header(TEXT[step][0])
                if after is None:
                    st.info(NO_TRAINED_RUN)
                else:
                    tv = cached_view(ws, ws.path, after.run_id, doc_id, query, start.run_id, positive_text)
                    before_name, after_name = f"before #{start.run_id}", f"after #{after.run_id}"
                    st.markdown(TEXT[step][1])
                    st.plotly_chart(sib_figs.rank_summary_chart(tv, before_name, after_name), key="learn_ranks")
                    st.plotly_chart(sib_figs.level_chart(tv["leaf"], True, before_name, after_name), key="learn_leaf2")
                    cmp = views.compare_trees(ws, start.run_id, after.run_id)
                    cols = st.columns(3)
                    cols[0].metric("Tree agreement (leaf ARI)", f"{cmp['ari_leaf']:.2f}")
                    cols[1].metric("Same leaf-mates", f"{cmp['unchanged']:.0%}")
                    split = next((m["split"] for m in after.metrics if m["system"] == "dense"), None)
                    ndcg = METRIC_LABELS["ndcg_at_10"]
                    if split and start.metric(split) is not None:
                        b, a = start.metric(split), after.metric(split)
                        cols[2].metric(f"{ndcg} ({split})", f"{a:.3f}", delta=f"{a - b:+.3f}")
                    else:
                        cols[2].metric(ndcg, "—", help="Evaluate both runs on the Runs page to compare.")
        nav("bottom", steps)
        st.download_button("Download the whole walkthrough (HTML)", data=partial(export.learn_html, ws, corpus),
                           file_name=f"hce-walkthrough-{corpus}.html", mime="text/html", key="learn_html",
                           help="All the steps with their figures in one file that opens offline (for a class or "
                                "a report); the map is computed first if it is missing.")
