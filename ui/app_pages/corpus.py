"""Corpus: load the bundled sample in one click or upload a corpus; validation report, encode progress,
statistics."""
from __future__ import annotations

import os
import shutil

import streamlit as st

from hce_engine import Run, tempfiles, views
from hce_engine.plotting import length_histogram
from ui.common import (
    active_runs,
    baseline_run,
    friendly_errors,
    get_workspace,
    live_progress,
    md_escape,
    pick_corpus,
    save_upload,
)

SAMPLE = "jargon"

ws = get_workspace()


def select(name: str) -> None:
    """Make ``name`` the current corpus on every page (before the picker below is drawn). The picker's own state
    is set, not dropped: dropped, the browser's last value of the picker comes back on the rerun, so the picker
    (and every page sharing it) stayed on the previous corpus."""
    st.session_state["corpus"] = name
    st.session_state["corpus_select"] = name


def load_sample() -> None:
    with friendly_errors("Loading the sample"):
        report = ws.add_sample(SAMPLE)
        st.session_state["import_report"] = report.to_dict()
        select(report.corpus)
        ws.start_encode(report.corpus)
        st.rerun()


def import_upload(upload, name: str, id_col: str, title_col: str, text_col: str, encode: bool) -> None:
    """Save the upload under its file name, made safe (so errors name it), and import it."""
    folder = tempfiles.make("upload")
    try:
        path = save_upload(upload, folder, "corpus.jsonl")
        with friendly_errors("Import failed"):
            report = ws.import_corpus(path, name=name.strip() or None, id_col=id_col.strip() or None,
                                      title_col=title_col.strip() or None, text_col=text_col.strip() or None)
            st.session_state["import_report"] = report.to_dict()
            select(report.corpus)
            if encode:
                ws.start_encode(report.corpus)
            st.rerun()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def add_upload(corpus: str, upload) -> None:
    """New documents into the corpus and every finished run (no retraining)."""
    folder = tempfiles.make("add")
    try:
        path = save_upload(upload, folder, "documents.jsonl")
        with friendly_errors("Adding documents"), st.spinner("Encoding the new documents with every run…"):
            out = ws.add_documents(corpus, path)
            updated = ", ".join(f"#{r}" for r in out["runs_updated"]) or "none"
            st.session_state["update_report"] = (f"Added {out['added']:,} documents ({out['skipped_empty']} empty "
                                                 f"skipped); runs updated: {updated}.")
            st.rerun()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def update_section(corpus: str) -> None:
    """Add and remove documents without retraining; show when retraining is suggested."""
    with st.expander("Add or remove documents (no retraining)", icon=":material/edit_note:"):
        st.caption("HCE serves an ordinary vector index: new documents are encoded by every finished run and "
                   "placed under their nearest leaf cluster; removed ones leave every index and tree.")
        if st.session_state.get("update_report"):
            st.success(st.session_state.pop("update_report"))
        c1, c2 = st.columns(2)
        with c1:
            upload = st.file_uploader("Documents to add", type=["jsonl", "csv", "tsv", "txt", "zip"],
                                      key="add_upload")
            if st.button("Add", key="add_docs", disabled=upload is None):
                add_upload(corpus, upload)
        with c2:
            ids = st.text_area("Document ids to remove (one per line or comma-separated)", key="remove_ids")
            wanted = [i.strip() for i in ids.replace(",", "\n").splitlines() if i.strip()]
            if st.button("Remove", key="remove_docs", disabled=not wanted):
                with friendly_errors("Removing documents"):
                    out = ws.remove_documents(corpus, wanted)
                    st.session_state["update_report"] = f"Removed {out['removed']:,} documents."
                    st.rerun()
        for run in ws.runs(corpus, status="done")[-3:]:
            freshness_note(run)


QUERY_SPLITS = {"test": "test: check runs on them", "train": "train: also train supervised runs on them"}


def import_judged(corpus: str, queries_file, qrels_file, split: str) -> None:
    """Queries (and their qrels, as ``split``) into the corpus, all or nothing, as `hce import --queries` does;
    then every finished training run is checked again on the judged queries."""
    folder = tempfiles.make("upload")
    try:
        paths = {}
        for what, upload, fallback in (("queries", queries_file, "queries.tsv"), ("qrels", qrels_file, "qrels.tsv")):
            if upload is not None:  # each in its own folder: a queries and a qrels file may share a name
                os.mkdir(os.path.join(folder, what))
                paths[what] = save_upload(upload, os.path.join(folder, what), fallback)
        known = next(c["queries"] for c in ws.corpora() if c["name"] == corpus)
        with friendly_errors("Importing queries"):
            report = ws.import_queries(corpus, paths["queries"], paths.get("qrels"), split)
            new = next(c["queries"] for c in ws.corpora() if c["name"] == corpus) - known
            judged = report.qrels.get(split, 0)
            text = (f"Imported {report.queries:,} queries ({new:,} new) and {judged:,} judgements into the "
                    f"{split} split of {corpus}.")
            if judged:
                with friendly_errors("Checking the trained runs"), \
                        st.spinner("Checking the trained runs on the judged queries…"):
                    changed = ws.rejudge(corpus, split)
                    moved = "; ".join(f"run #{r['run_id']}: {r['before']} → {r['after']}" for r in changed
                                      if r["before"] != r["after"])
                    text += (f" Verdicts changed: {moved}." if moved else
                             f" {len(changed)} trained run(s) checked again; no verdict changed." if changed else
                             " No trained run to check yet.")
            st.session_state["queries_report"] = text
            st.rerun()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def queries_section(corpus: str) -> None:
    """Upload judged queries: a queries file and (optionally) its qrels, into the test or the train split."""
    with st.expander("Add judged queries (queries and relevance judgements)", icon=":material/fact_check:",
                     expanded=bool(st.session_state.get("queries_report"))):
        st.caption("Judged queries check every run on real queries (nDCG@10, the starting encoder against the "
                   "trained one); in the train split, supervised runs also learn from them. The same files as "
                   "`hce import --queries FILE --qrels FILE --name CORPUS`: queries as JSONL (`_id`, `text`) or "
                   "TSV (`id<TAB>text`); qrels as TSV (`query-id<TAB>corpus-id<TAB>score`, header optional). "
                   "To judge a few by hand instead, tick the hits that answer a query on the **Search** page.")
        if st.session_state.get("queries_report"):
            st.success(md_escape(st.session_state.pop("queries_report")))
        c1, c2 = st.columns(2)
        queries_file = c1.file_uploader("Queries", type=["jsonl", "tsv"], key="queries_upload")
        qrels_file = c2.file_uploader("Relevance judgements (qrels, optional)", type=["tsv"], key="qrels_upload")
        split = st.segmented_control("Split", list(QUERY_SPLITS), default="test", key="queries_split",
                                     format_func=QUERY_SPLITS.__getitem__) or "test"
        if st.button("Import the queries", key="queries_import", disabled=queries_file is None):
            import_judged(corpus, queries_file, qrels_file, split)


def freshness_note(run: Run) -> None:
    """What the documents added since a run was trained / its tree was built suggest, with a rebuild button."""
    f = ws.freshness(run.run_id)
    todo = [w for w, on in (("rebuilding the tree", f.rebuild_suggested),
                            ("retraining", f.retrain_suggested and run.kind == "train")) if on]
    name = f"Run #{run.run_id} ({run.kind})"
    if todo:
        st.warning(f"{name}: {' and '.join(todo)} suggested: {md_escape('; '.join(f.reasons))}.")
    elif f.added_since_tree:
        fit = (f" Their mean cosine to their leaf centroid is {f.fit_added:.2f} (the tree's own documents: "
               f"{f.fit_tree:.2f}).") if f.fit_added is not None else ""
        st.caption(f"{name}: {f.added_since_tree:,} documents ({f.share_new_tree:.0%}) added since its tree "
                   f"was built.{fit}")
    if f.added_since_tree and st.button(f"Rebuild the tree of run #{run.run_id}",
                                           key=f"rebuild_{run.run_id}",
                                           help="Cluster the run's current documents again with its encoder "
                                                "(no retraining); the old tree stays as an earlier rebuild."):
        with friendly_errors("Rebuilding the tree"), st.spinner("Clustering…"):
            rebuild = ws.rebuild_tree(run.run_id)
            st.session_state["update_report"] = f"Run #{run.run_id}: tree rebuilt (rebuild {rebuild})."
            st.rerun()


def show_report(rep: dict) -> None:
    st.success(f"Imported **{md_escape(rep['corpus'])}** ({rep['format']}): the file is valid.")
    cols = st.columns(4)
    cols[0].metric("Documents", f"{rep['documents']:,}")
    cols[1].metric("Empty, skipped", f"{rep['skipped_empty']:,}")
    cols[2].metric("Queries", f"{rep['queries']:,}")
    cols[3].metric("Qrels", ", ".join(f"{s}: {n:,}" for s, n in rep["qrels"].items()) or "none")
    if rep.get("empty_judged"):
        st.info(f"{rep['empty_judged']:,} judgements name a document with no text: they are kept (they count in "
                "nDCG's ideal ranking and in recall), though the document cannot be retrieved.")


@st.cache_data(max_entries=8, show_spinner=False)
def corpus_stats(_ws, workspace: str, corpus: str, corpus_id: int, n_docs: int) -> tuple[dict, object]:
    """The engine's corpus statistics and the first documents (cached per workspace, corpus and size)."""
    sample = _ws.documents(corpus).head(20)[["ext_id", "title", "text"]].copy()
    sample["text"] = sample["text"].str.slice(0, 200)
    return views.corpus_stats(_ws, corpus), sample


st.title("Corpus")
corpora = {c["name"]: c for c in ws.corpora()}

adding = st.expander("Add a corpus", icon=":material/add:") if corpora else st.container()
left, right = adding.columns(2, gap="large")
with left.container(border=True):
    st.subheader("Start with the sample")
    st.write("The Jargon File: 2,307 entries of hacker slang (public domain). One click imports it and "
             "encodes it with the starting encoder, so Search, Tree and Map work right away.")
    loaded = SAMPLE in corpora
    if st.button("Sample loaded" if loaded else "Load the Jargon File sample", type="primary", key="load_sample",
                 disabled=loaded, icon=":material/check:" if loaded else None):
        load_sample()
with right.container(border=True):
    st.subheader("Or upload your corpus")
    upload = st.file_uploader("Corpus file", type=["jsonl", "csv", "tsv", "txt", "zip"],
                              help="JSONL (_id, title, text), CSV/TSV with a header row, .txt (one document per "
                                   "line), or a ZIP (e.g. a BEIR folder with queries.jsonl and qrels/*.tsv).")
    name = st.text_input("Corpus name", placeholder="default: the file name", key="upload_name")
    with st.expander("Column names (optional; detected when empty)"):
        c1, c2, c3 = st.columns(3)
        id_col = c1.text_input("id column", key="upload_id_col")
        title_col = c2.text_input("title column", key="upload_title_col")
        text_col = c3.text_input("text column", key="upload_text_col")
    encode_now = st.checkbox("Encode it right away (zero-shot baseline, in the background)", value=True,
                             key="upload_encode")
    if st.button("Import", key="upload_import", disabled=upload is None):
        import_upload(upload, name, id_col, title_col, text_col, encode_now)

if st.session_state.get("import_report"):
    show_report(st.session_state["import_report"])

st.divider()
corpus = pick_corpus()
if not corpus:
    st.stop()

running = active_runs(corpus, kind="baseline")
base = baseline_run(corpus)
if running:
    st.markdown(f"**Encoding {md_escape(corpus)}** with the starting encoder (vectors, then the tree):")
    live_progress(running[-1].run_id, key="corpus")
elif base is None:
    st.warning("This corpus is not encoded yet: search, tree and map need the zero-shot baseline run.")
    if st.button("Encode now", type="primary", key="encode_now"):
        with friendly_errors("Encoding"):
            ws.start_encode(corpus)
            st.rerun()
else:
    st.success(f"Encoded by run #{base}: ready to search and explore.")
    links = st.columns(4)
    links[0].page_link("app_pages/search.py", label="Search it", icon=":material/search:")
    links[1].page_link("app_pages/tree.py", label="See its tree", icon=":material/account_tree:")
    links[2].page_link("app_pages/map.py", label="See its map", icon=":material/scatter_plot:")
    links[3].page_link("app_pages/train.py", label="Train an encoder", icon=":material/model_training:")

update_section(corpus)
queries_section(corpus)

info = next(c for c in ws.corpora() if c["name"] == corpus)
with friendly_errors("Statistics"):
    stats, sample = corpus_stats(ws, ws.path, corpus, info["corpus_id"], info["documents"])
    st.subheader("Statistics")
    cols = st.columns(5)
    cols[0].metric("Documents", f"{stats['documents']:,}")
    cols[1].metric("Duplicate texts", f"{stats['duplicates']['documents']:,}",
                   help="Documents whose text repeats an earlier one (case and spacing ignored).")
    cols[2].metric("Median words", f"{stats['words']['median']:,.0f}")
    cols[3].metric("Queries", f"{stats['queries']:,}")
    cols[4].metric("Qrels", ", ".join(f"{s['split']}: {s['qrels']:,}" for s in stats["splits"]) or "none")
    if stats["long_docs"]:
        st.caption(f"About {stats['long_docs']:,} documents are longer than the encoder's {stats['max_tokens']} "
                   f"tokens: it reads only their beginning. Estimated from words, not tokenized: more than "
                   f"{stats['long_words']} words at about {stats['tokens_per_word']} tokens per word (its tokenizer "
                   "on English prose; technical text has more).")
    if stats["duplicates"]["examples"]:
        with st.expander(f"{stats['duplicates']['groups']:,} groups of duplicate texts"):
            st.dataframe([{"ids": ", ".join(e["ext_ids"]), "copies": e["count"], "text": e["snippet"]}
                          for e in stats["duplicates"]["examples"]], hide_index=True)
    st.plotly_chart(length_histogram(stats["words_hist"]), key="length_hist")
    st.caption("A sample of the documents")
    st.dataframe(sample, hide_index=True, key="doc_sample")
