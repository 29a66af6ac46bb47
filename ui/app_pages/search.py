"""Search: the starting encoder, a trained encoder and BM25 side by side; each hit with its tree path and,
for the trained encoder, how its rank moved against the starting one. In hybrid mode the two encoder columns
fuse their dense ranking with BM25, and each hit says where it stood in each list."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from hce_engine.views import explain
from ui.common import active_runs, baseline_run, friendly_errors, get_workspace, live_progress, md_escape, pick_corpus

EXAMPLES = {"jargon": ["a program that never ends", "someone who loves computers", "a bug that hides when you "
                       "look for it", "deliberately complicated code"]}

ws = get_workspace()


def rank_changes(before: list, after: list) -> dict[int, str]:
    """Per doc id of ``after``: ▲n / ▼n against its rank in ``before``, = when unchanged, new when absent."""
    old = {h.doc_id: h.rank for h in before}
    out = {}
    for h in after:
        r = old.get(h.doc_id)
        out[h.doc_id] = "new" if r is None else "=" if r == h.rank else f"▲{r - h.rank}" if r > h.rank \
            else f"▼{h.rank - r}"
    return out


BADGE = {"new": ":blue-background[new]", "=": ":gray[=]"}


def sources(ranks: dict) -> str:
    """Where a fused hit stood in each list: 'dense #3 · BM25 #1' ('—' when outside the top candidates)."""
    return " · ".join(f"{'BM25' if k == 'bm25' else k} {'#' + str(r) if r else '—'}" for k, r in ranks.items())


def show_hits(hits: list, changes: dict[int, str] | None = None) -> None:
    if not hits:
        st.caption("No hits.")
    for h in hits:
        mark = ""
        if changes is not None:
            c = changes.get(h.doc_id, "")
            mark = BADGE.get(c) or (f":green[{c}]" if c.startswith("▲") else f":red[{c}]")
        path = " › ".join(md_escape(p) for p in h.path_labels)
        fused = f" · {sources(h.ranks)}" if h.ranks else ""
        st.container(border=True).markdown(
            f"**{h.rank}. {md_escape(h.title or h.ext_id)}** {mark}  \n"
            f":gray[score {h.score:.3f} · {md_escape(h.ext_id)}{fused}]\n\n{md_escape(h.snippet)}"
            + (f"\n\n:gray[:material/account_tree: {path}]" if path else ""))


def show_route(run: int) -> None:
    """The leaf clusters the query visited in the run's tree index, and the share of an exact search it cost."""
    route = ws.tree_route(corpus, query, run=run)
    with st.expander(f"Tree route: {len(route.leaves)} leaf clusters, {route.share:.1%} of an exact search"):
        st.caption(f"{route.distance_computations:,} similarity computations (centroids on the way down + "
                   f"documents in the visited leaves) instead of {route.documents:,}.")
        # in a third of the page: the short columns first and narrow, the label takes what is left (and wraps)
        st.dataframe(pd.DataFrame([{"leaf": leaf.node, "similarity": leaf.similarity, "documents": leaf.size,
                                    "label": leaf.label} for leaf in route.leaves]),
                     hide_index=True, key=f"search_route_{run}", width="stretch",
                     column_config={"leaf": st.column_config.NumberColumn("node", width="small", format="%d"),
                                    "similarity": st.column_config.NumberColumn("cos", width="small", format="%.3f",
                                                                                help="cosine of the query to the "
                                                                                     "leaf's centroid"),
                                    "documents": st.column_config.NumberColumn("docs", width="small"),
                                    "label": st.column_config.TextColumn("label", width="medium")})


def show_explain(why: dict) -> None:
    """The explain view: ranks under each retriever, shared words, the tree path, what training moved."""
    r = why["retrievers"]
    cols = st.columns(3)
    cols[0].metric(f"Run #{why['run_id']}", f"#{r['run']['rank']}", help=f"cosine {r['run']['score']:.3f}")
    if "start" in r:
        moved = r["start"]["rank"] - r["run"]["rank"]
        cols[1].metric(f"Starting encoder (run #{why['compare_run']})", f"#{r['start']['rank']}",
                       delta=f"{moved:+d} places with training" if moved else "unchanged",
                       help=f"cosine {r['start']['score']:.3f}")
    cols[2].metric("BM25", f"#{r['bm25']['rank']}" if r["bm25"]["rank"] else "no match",
                   help=f"score {r['bm25']['score']:.2f}")
    words = ", ".join(f"**{md_escape(w)}**" for w in why["shared_words"])
    st.markdown(f"Words it shares with the query (what BM25 matches): {words or '*none*'}")
    rows = [{"level": p["level"], "its branch": p["label"], "query similarity": round(p["score"], 3),
             "rank among siblings": f"{p['rank']} of {p['n_candidates']}",
             "the query's own branch": "= its branch" if p["took_branch"] else
             f"{p['query_branch_label']} ({p['query_branch_score']:.3f})"} for p in why["path"]]
    rows.append({"level": len(rows) + 1, "its branch": f"the document, in leaf {why['leaf']['label']}",
                 "query similarity": round(r["run"]["score"], 3),
                 "rank among siblings": f"{why['leaf']['rank']} of {why['leaf']['n_candidates']}",
                 "the query's own branch": ""})
    st.markdown("**Its path through the tree**: at each level HCE's loss asks the query to prefer this branch over "
                "its siblings.")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="search_explain_path")
    if why["moved_up"] or why["moved_down"]:
        st.markdown("**What training moved** for this query (rank before → after)")
        c1, c2 = st.columns(2)
        for col, key, title in ((c1, "moved_up", "Up"), (c2, "moved_down", "Down")):
            col.caption(title)
            col.dataframe(pd.DataFrame([{"before": m["rank_compare"], "after": m["rank"], "document": m["title"]}
                                        for m in why[key]]), hide_index=True, key=f"search_{key}")


def weight_caption(run: int) -> str:
    """How the hybrid column fuses, for its caption (fits the weight on the train qrels on first use)."""
    fit = ws.fusion_weight(corpus, run)
    if fit["split"]:
        return (f"dense weight {fit['weight']:.2f}, fitted on {fit['queries']} {md_escape(fit['split'])} "
                "queries")
    return f"dense weight {fit['weight']:.2f} (the default: this corpus has no train qrels to fit it on)"


st.title("Search")
corpus = pick_corpus()
if not corpus:
    st.stop()
base = baseline_run(corpus)
if base is None:
    running = active_runs(corpus, kind="baseline")
    if running:
        st.info("The corpus is being encoded; search opens when it is done.")
        live_progress(running[-1].run_id, key="search")
    else:
        st.warning("This corpus is not encoded yet: encode it on the **Corpus** page.")
    st.stop()

others = [r for r in ws.runs(corpus, status="done") if r.run_id != base]
# newest trained run that is not worse than its start last = default; when every trained run came out worse, none
# (the starting encoder's column stands alone, as the Train page's outcome promises: a worse one only when picked)
others.sort(key=lambda r: (r.kind == "train" and r.verdict != "worse", r.kind == "train", r.run_id))
all_worse = bool(others) and others[-1].verdict == "worse"
c1, c2, c3, c4 = st.columns([4, 2, 1, 2])
examples = EXAMPLES.get(corpus, [])
query = c1.text_input("Query", key="search_query", placeholder=f"e.g. {examples[0]}" if examples else
                      "type a query and press Enter")
# keyed per corpus: a picker left empty by a corpus without trained runs must not stay empty after a switch
trained = c2.selectbox("Trained encoder", [r.run_id for r in others],
                       index=len(others) - 1 if others and not all_worse else None,
                       format_func={r.run_id: r.label for r in others}.__getitem__, key=f"search_trained_{corpus}",
                       placeholder="none (worse than the start)" if all_worse else "no trained run yet")
k = int(c3.number_input("Hits", min_value=1, max_value=100, value=10, key="search_k"))
mode = c4.segmented_control("Encoder columns", ["dense", "hybrid"], default="dense", key="search_mode",
                            help="hybrid: each encoder's ranking fused with BM25 (normalised scores, the dense "
                                 "weight fitted on the corpus's train qrels where it has them)") or "dense"
via_tree = st.toggle("Search through the tree", key="search_tree",
                     help="The run's tree as the index: a beam search down its levels picks a few leaf clusters "
                          "and only their documents are scored (instead of every document). Shows which leaves "
                          "each query visited and what share of an exact search it cost.")
index_kind = "tree" if via_tree else "auto"
if examples and not query:
    pick = st.pills("Try", examples, key="search_example")
    query = pick or ""
if not query.strip():
    st.caption("Type a query and press Enter: the three lists show how each retriever ranks the corpus.")
    st.stop()

cols = st.columns(3)
base_hits: list = []
hits: list = []
bm25_hits: list = []
with cols[0]:
    st.subheader("Starting encoder" + (" + BM25" if mode == "hybrid" else ""))
    with friendly_errors("Search"):
        if mode == "hybrid":
            with st.spinner("Fitting the hybrid weight…"):
                st.caption(f"run #{base} (zero-shot) + BM25 · {weight_caption(base)}")
        else:
            st.caption(f"run #{base} (zero-shot)")
        base_hits = ws.search(corpus, query, run=base, k=k, mode=mode, index_kind=index_kind)
        show_hits(base_hits)
        if via_tree:
            show_route(base)
with cols[1]:
    st.subheader("Trained encoder" + (" + BM25" if mode == "hybrid" else ""))
    if trained is None and all_worse:
        st.info("Every trained run of this corpus came out worse than the starting encoder, so none is shown: pick "
                "one above to compare it anyway, or train again on the **Train** page.")
    elif trained is None:
        st.info("No trained run yet: train one on the **Train** page to compare it here.")
    else:
        with friendly_errors("Search"):
            if mode == "hybrid":
                with st.spinner("Fitting the hybrid weight…"):
                    st.caption(f"run #{trained} + BM25 · {weight_caption(trained)} · ▲/▼ against the column "
                               "on the left")
            else:
                st.caption(f"run #{trained} · ▲/▼ rank change against the starting encoder")
            hits = ws.search(corpus, query, run=trained, k=k, mode=mode, index_kind=index_kind)
            show_hits(hits, rank_changes(base_hits, hits))
            if via_tree:
                show_route(trained)
with cols[2]:
    st.subheader("BM25")
    st.caption("lexical reference (word overlap)")
    with friendly_errors("BM25"):
        bm25_hits = ws.bm25_search(corpus, query, k=k, run_for_paths=trained if trained is not None else base)
        show_hits(bm25_hits)

JUDGE_SPLITS = {"test": "check runs on them (test)", "train": "also train supervised runs on them (train)"}


def judge_section(pooled: dict[str, str]) -> None:
    """Tick the hits (of all three lists) that answer the query and save it as a judged query; then every
    trained run of the corpus is checked again, now on real queries."""
    st.subheader("Judge these results")
    st.caption("Tick the hits that answer your query and save it. Your judged queries check every trained run on "
               "real queries (starting encoder against trained, nDCG@10): a run trained without labels is otherwise "
               "judged by label-free checks only. A handful already tells a lot; 20 or more tell it reliably.")
    split = st.segmented_control("Use them to", list(JUDGE_SPLITS), default="test",
                                 format_func=JUDGE_SPLITS.__getitem__, key="judge_split") or "test"
    before = ws.judgements(corpus, query, split)
    with st.form(key=f"judge_form_{corpus}"):
        relevant = st.multiselect("Hits that answer the query", list(pooled), key=f"judge_relevant_{split}_{query}",
                                  default=[e for e in pooled if before.get(e, 0) > 0],
                                  format_func=lambda e: f"{pooled[e]} [{e}]")
        saved = st.form_submit_button("Save judged query", key="judge_save")
    if saved:
        with friendly_errors("Judge"):
            out = ws.judge(corpus, query, relevant, seen=list(pooled), split=split)
            with st.spinner("Checking the trained runs on your judged queries…"):
                changed = ws.rejudge(corpus, split)
            moved = "; ".join(f"run #{r['run_id']}: {r['before']} → {r['after']}" for r in changed
                              if r["before"] != r["after"])
            st.success(f"Saved {out['query_id']}: {len(out['relevant'])} relevant, {len(out['not_relevant'])} not. "
                       + (f"Verdicts changed: {moved}." if moved else
                          f"{len(changed)} trained run(s) checked again; no verdict changed."))
    elif before:
        st.caption(f"Judged already ({split}): {sum(v > 0 for v in before.values())} relevant. Saving replaces "
                   "those judgements.")
    n = ws.splits(corpus).get(split, 0)
    st.caption(f"This corpus has {n} judged {split} quer{'y' if n == 1 else 'ies'}.")


st.divider()
judge_section({h.ext_id: h.title or h.ext_id for h in [*hits, *base_hits, *bm25_hits]})

st.divider()
st.subheader("Why this rank?")
shown = {h.doc_id: h.title or h.ext_id for h in [*hits, *base_hits, *bm25_hits]}
run_for = trained if trained is not None else base
pick = st.selectbox("A hit to explain", list(shown), format_func=shown.__getitem__, index=None, key="search_explain",
                    placeholder="pick any hit above")
if pick is None:
    st.caption("Its path through the tree (which branch the query would have taken at each level, against the "
               "siblings HCE contrasts it with), its rank under each retriever, the words it shares with the query, "
               "and the documents training moved most for this query.")
    st.stop()
with friendly_errors("Explain"), st.spinner("Explaining…"):
    show_explain(explain(ws, run_for, query, pick))
