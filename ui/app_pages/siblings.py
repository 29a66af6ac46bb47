"""Siblings: the HCE loss made visible. Pick a query (or a document): its path from the root to its leaf
cluster and, at every level, the branch it must prefer against its sibling branches; at the bottom, its
document against the other documents of the leaf. Before (starting encoder) and after (trained) side by side.
For a training run, what the self signal's teacher said about the document's siblings (training without labels)."""
from __future__ import annotations

import streamlit as st

from hce_engine import Run, views
from hce_engine.plotting import siblings as figs
from ui.common import (
    cached_teacher,
    friendly_errors,
    get_workspace,
    md_escape,
    not_encoded_yet,
    pick_corpus,
    pick_run_and_compare,
    show_teacher_example,
)

ws = get_workspace()

LEVEL_NOTE = ("The loss at this level is a cross-entropy over these {n} branches: it raises the anchor's "
              "cosine to the positive branch (red) and lowers it to its siblings (grey), sharpened by τ = {tau}.")
LEAF_NOTE = ("At the bottom the candidates are the documents of the same leaf cluster, the hardest negatives: "
             "same topic, wrong document. HCE encodes them with gradient and pushes the anchor towards its "
             "document and away from them (plus the other positives of the batch).")
TEACHER_TITLE = "What the teacher said (self signal)"
TEACHER_NOTE = ("The self signal needs no labels: a sentence of the document is a pseudo-query, the engine's hybrid "
                "search with the starting encoder (BM25 + dense, the teacher) scores the document's siblings in "
                "its leaf cluster, and the encoder (the student) learns to match the teacher's probabilities.")
TEACHER_SELF = (" This run trained on this pseudo-query with this teacher; its candidates were its tree batch (with "
                "tree batching: these siblings and the neighbouring leaves' documents).")
TEACHER_OTHER = (" This run learned from another signal ({signal}): this shows what the self signal *would* teach "
                 "it, and how close the run came without being taught.")


@st.cache_data(max_entries=64, ttl=900, show_spinner=False)
def cached_view(_ws, workspace: str, run_id: int, doc_id: int | None, query: str | None, compare: int | None,
                max_siblings: int) -> dict:
    return views.siblings_view(_ws, run_id, doc_id=doc_id, query=query, compare_run=compare,
                               max_siblings=max_siblings)


def tree_runs(corpus: str) -> list[Run]:
    return ws.runs(corpus, status="done", with_tree=True)


def pick_anchor(corpus: str) -> tuple[int | None, str | None]:
    """(positive doc id or None, query text or None) from the page's controls."""
    judged = views.judged_queries(ws, corpus, limit=2000)
    mode = st.radio("Start from", ["a query", "a document"], horizontal=True, key="sib_mode",
                    index=0 if judged else 1)  # without judged queries a document shows something at once
    if mode == "a query":
        options = ["✏️ type my own query"] + [q["query_id"] for q in judged]
        by_id = {q["query_id"]: q for q in judged}
        pick = st.selectbox("Query", options, index=1 if judged else 0, key="sib_query_pick",
                            format_func=lambda k: k if k not in by_id else
                            f"{by_id[k]['text'][:100]}  ({by_id[k]['split']} · {k})")
        if pick in by_id:
            q = by_id[pick]
            st.caption("The positive is this query's relevant document (as in supervised training).")
            return q["doc_ids"][0], q["text"]
        text = st.text_input("Your query", key="sib_query_text", placeholder="e.g. a program that never ends")
        st.caption("The positive is the query's top dense hit under the selected run.")
        return None, (text.strip() or None)
    found = st.text_input("Find a document (title, id or words)", key="sib_doc_search")
    docs = views.find_documents(ws, corpus, found, limit=200)
    if not len(docs):
        st.warning("No document matches.")
        return None, None
    names = {int(r.doc_id): f"{r.title} [{r.ext_id}]" for r in docs.itertuples()}
    doc_id = st.selectbox("Document", list(names), format_func=names.__getitem__, key="sib_doc")
    qs = views.doc_queries(ws, corpus, doc_id)
    anchors = ["the document itself"] + [f"{q['text'][:100]} ({q['split']} · {q['query_id']})" for q in qs]
    which = st.radio("Anchor", anchors, key=f"sib_anchor_{doc_id}",
                     help="Training pairs a query with its document; with no judged query, the document's own "
                          "vector plays the query (its leaf-level rank is then trivially 1).")
    if which == anchors[0]:
        return doc_id, None
    return doc_id, qs[anchors.index(which) - 1]["text"]


def total_loss(entries: list[dict], leaf: dict, key: str) -> float:
    return leaf[key] + sum(e[key] for e in entries) / max(len(entries), 1)


def show(view: dict, after: str, before: str) -> None:
    st.markdown(figs.path_text(view, md_escape))
    anchor = f"query “{md_escape(view['query'])}”" if view["query"] else "the document's own vector"
    st.caption(f"Anchor: {anchor} · positive: {md_escape(view['positive_source'])} "
               f"**{md_escape(view['doc']['title'] or view['doc']['ext_id'])}** · τ = {view['tau']}")
    compare = view["compare_run"] is not None
    cols = st.columns(3 if compare else 2)
    loss = total_loss(view["levels"], view["leaf"], "loss")
    if compare:
        loss_before = total_loss(view["levels"], view["leaf"], "loss_compare")
        cols[0].metric(f"Loss ({before})", f"{loss_before:.3f}")
        cols[1].metric(f"Loss ({after})", f"{loss:.3f}", delta=f"{loss - loss_before:+.3f}", delta_color="inverse")
    else:
        cols[0].metric("Loss", f"{loss:.3f}")
    cols[-1].metric("Levels", f"{view['depth']} + documents")
    st.plotly_chart(figs.rank_summary_chart(view, before, after), key="sib_ranks")
    for lv in view["levels"]:
        parent = md_escape(lv["parent_label"]) if lv["parent"] else "all documents"
        st.subheader(f"Level {lv['level']}: which branch of “{parent}”?")
        st.caption(LEVEL_NOTE.format(n=lv["n_candidates"], tau=view["tau"]))
        st.plotly_chart(figs.level_chart(lv, False, before, after), key=f"sib_level_{lv['level']}")
    st.subheader("Documents: which one in the leaf cluster?")
    st.caption(LEAF_NOTE)
    st.plotly_chart(figs.level_chart(view["leaf"], True, before, after), key="sib_leaf")
    st.markdown("**Loss per level.** p = softmax of cosine/τ over the candidates; loss = −log p. The total "
                "is the leaf term plus the mean of the level terms.")
    st.dataframe(figs.level_table(view, before, after), hide_index=True)


def show_teacher(run: Run, doc: dict) -> None:
    """For a training run, behind a toggle (on for self-signal runs): the self signal's example for ``doc``
    (the view's positive document): pseudo-query, teacher vs student figure, table and a one-line reading."""
    signal = run.config_dict.get("signal", "supervised")
    if not st.toggle(TEACHER_TITLE, value=signal == "self", key=f"sib_teacher_{run.run_id}"):
        return
    st.subheader(TEACHER_TITLE)
    st.caption(TEACHER_NOTE + (TEACHER_SELF if signal == "self" else TEACHER_OTHER.format(signal=signal)))
    with friendly_errors(f"Teacher for “{doc['title'] or doc['ext_id']}”"):
        with st.spinner("Asking the teacher…"):
            tv = cached_teacher(ws, ws.path, run.run_id, int(doc["doc_id"]))
        show_teacher_example(tv, run.run_id, "sib_teacher_fig", ", left out of the candidates")


st.title("Siblings")
st.markdown("HCE trains the encoder with the tree: **at every level a query must pick its own branch among the "
            "sibling branches**, and at the bottom its document among the other documents of the same leaf "
            "cluster. Here you see those contrasts for one query, before and after training.")
corpus = pick_corpus("sib_corpus")
if corpus:
    with friendly_errors("Siblings"):
        runs = tree_runs(corpus)
        if not runs:
            not_encoded_yet(corpus, "sib", "its tree's siblings appear here")
            st.stop()
        c1, c2, c3 = st.columns([2, 2, 1])
        run_id, compare = pick_run_and_compare(ws, runs, c1, c2, "Run (after)",
                                               "Before (same tree, other encoder)", "sib")
        trained = [r.run_id for r in runs if r.kind == "train"]
        max_sib = c3.slider("Candidates shown", 3, 50, 15, key="sib_max")
        if not trained:
            st.info("Only zero-shot runs so far: this shows the contrasts the loss *would* train on. Train a run on "
                    "the **Train** page to see how the ranks move.")
        doc_id, query = pick_anchor(corpus)
        if doc_id is None and not query:
            st.stop()
        with st.spinner("Scoring the path…"):
            view = cached_view(ws, ws.path, run_id, doc_id, query, compare, max_sib)
        show(view, f"after #{run_id}" if compare else f"#{run_id}", f"before #{compare}" if compare else "before")
        run = next(r for r in runs if r.run_id == run_id)
        if run.is_train:
            show_teacher(run, view["doc"])
