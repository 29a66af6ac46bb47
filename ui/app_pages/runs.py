"""Runs: every run with its status, key settings and metrics; compare runs; evaluate, export, cancel, delete."""
from __future__ import annotations

import os
import shutil

import pandas as pd
import streamlit as st

from hce_engine import tempfiles
from hce_engine.evaluation import METRIC_LABELS
from hce_engine.evaluation import METRICS as STORED
from hce_engine.runs import Run, model_name
from ui.common import friendly_errors, get_workspace, md_escape

KEY_SETTINGS = ("signal", "negatives", "epochs", "siblings", "sibling_max_length", "branching", "level_loss",
                "precision", "seed")
#: The metrics stored with a run, and their labels.
METRICS = {key: METRIC_LABELS[key] for key in STORED}

ws = get_workspace()


def runs_table(runs: list[Run]) -> pd.DataFrame:
    rows = []
    for r in runs:
        cfg, m = r.config_dict, r.headline()
        row = {"run": r.run_id, "corpus": r.corpus, "kind": r.kind, "status": str(r.status),
               "outcome": r.verdict, "model": model_name(cfg.get("model"))}
        row.update({k: cfg.get(k) for k in KEY_SETTINGS})
        row["split"] = m["split"] if m else None
        row.update({label: m[key] if m else None for key, label in METRICS.items()})
        row["created"], row["error"] = r.created_at, r.error
        rows.append(row)
    return pd.DataFrame(rows).dropna(axis=1, how="all")  # e.g. training settings when only baselines exist


def settings_diff(runs: list[Run], show_all: bool) -> pd.DataFrame:
    """Settings (rows) by run (columns); only the rows that differ unless ``show_all``."""
    keys = sorted({"kind", "corpus"} | {k for r in runs for k in r.config_dict})
    table = {r.label: [{"kind": r.kind, "corpus": r.corpus}.get(k, r.config_dict.get(k)) for k in keys] for r in runs}
    df = pd.DataFrame(table, index=keys).astype(str)
    return df if show_all else df[df.nunique(axis=1) > 1]


def metrics_side_by_side(runs: list[Run]) -> pd.DataFrame:
    rows: dict[tuple, dict] = {}
    for r in runs:
        for m in r.metrics:
            for key, label in METRICS.items():
                rows.setdefault((m["split"], m["system"], label), {})[r.label] = m[key]
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index = pd.MultiIndex.from_tuples(df.index, names=["split", "system", "metric"])
    return df


def prepare(kind: str, run: Run, split: str | None = None) -> None:
    """Write an export into a temp folder; remember the file for the download button."""
    folder = tempfiles.make("export")
    rid = run.run_id
    with friendly_errors(f"Export of run #{rid}"), st.spinner("Preparing the file…"):
        if kind == "model":
            ws.export_model(rid, os.path.join(folder, f"hce-run-{rid}"))
            path = shutil.make_archive(os.path.join(folder, f"hce-run-{rid}-model"), "zip", folder, f"hce-run-{rid}")
        elif kind == "vectors":
            path = ws.export_vectors(rid, os.path.join(folder, f"hce-run-{rid}-vectors.parquet"))
        else:
            path = ws.export_trec(rid, split, os.path.join(folder, f"hce-run-{rid}-{split}.trec"))
        st.session_state[f"export_{kind}_{rid}"] = path


def download(kind: str, run_id: int, label: str, mime: str) -> None:
    path = st.session_state.get(f"export_{kind}_{run_id}")
    if path and os.path.exists(path):
        st.download_button(label, data=lambda: open(path, "rb").read(), file_name=os.path.basename(path),
                           mime=mime, key=f"dl_{kind}_{run_id}", type="primary")


def actions(run: Run) -> None:
    rid, splits = run.run_id, list(ws.splits(run.corpus))
    if run.status.active:
        st.info(f"Run #{rid} is {run.status}.")
        if st.button("Cancel this run", key=f"cancel_{rid}"):
            ws.cancel(rid)
            st.caption("Cancelling…")
        return
    if run.done:
        if splits:
            st.markdown("**Evaluate** against the corpus's qrels")
            c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
            split = c1.selectbox("Split", splits, index=splits.index("test") if "test" in splits else 0,
                                 key=f"eval_split_{rid}")
            bm25 = c2.checkbox("Also BM25", value=True, key=f"eval_bm25_{rid}")
            hybrid = c3.checkbox("Also hybrid", value=False, key=f"eval_hybrid_{rid}",
                                 help="dense + BM25 fused, the dense weight fitted on another split's qrels "
                                      "(train first) where the corpus has one")
            if c4.button("Evaluate", key=f"eval_{rid}"):
                with friendly_errors("Evaluation"), st.spinner("Evaluating…"):
                    ws.evaluate(run.corpus, run=rid, split=split, bm25=bm25, mode="hybrid" if hybrid else "dense")
                    st.rerun()
        st.markdown("**Export**")
        c1, c2, c3 = st.columns(3)
        if c1.button("Prepare model folder (.zip)", key=f"prep_model_{rid}"):
            prepare("model", run)
        download("model", rid, "Download model .zip", "application/zip")
        if c2.button("Prepare vectors (.parquet)", key=f"prep_vectors_{rid}"):
            prepare("vectors", run)
        download("vectors", rid, "Download vectors", "application/octet-stream")
        if splits:
            tsplit = c3.selectbox("TREC run file for split", splits, key=f"trec_split_{rid}")
            if c3.button("Prepare TREC run file", key=f"prep_trec_{rid}"):
                prepare("trec", run, tsplit)
            download("trec", rid, "Download TREC run", "text/plain")
        if not splits:
            st.caption("This corpus has no judged queries, so there is nothing to evaluate against yet: judge a few "
                       "on the **Search** page (tick the hits that answer a query under “Judge these results”), or "
                       "upload a queries file and its relevance judgements on the **Corpus** page (“Add judged "
                       "queries”; or `hce import --queries FILE --qrels FILE --name CORPUS`).")
    elif run.error:
        st.caption(f"Error: {md_escape(run.error)}")
    delete_box(run)


def delete_box(run: Run) -> None:
    rid = run.run_id
    if st.session_state.get("confirm_delete") != rid:
        if st.button(f"Delete run #{rid}", key=f"delete_{rid}"):
            st.session_state["confirm_delete"] = rid
            st.rerun()
        return
    st.warning(f"Delete run #{rid} with its vectors, trees, metrics and model? This cannot be undone.")
    c1, c2 = st.columns(2)
    if c1.button("Yes, delete it", type="primary", key=f"delete_yes_{rid}"):
        st.session_state.pop("confirm_delete", None)
        with friendly_errors(f"Deleting run #{rid}"):
            ws.delete_run(rid)
            st.toast(f"Run #{rid} deleted")
            st.rerun()
    if c2.button("Keep it", key=f"delete_no_{rid}"):
        st.session_state.pop("confirm_delete", None)
        st.rerun()


st.title("Runs")
runs = ws.runs()
if not runs:
    st.info("No runs yet. The **Corpus** page encodes a corpus (the zero-shot baseline run); **Train** adds "
            "trained ones.")
    st.stop()
corpora = sorted({r.corpus for r in runs})
only = st.multiselect("Corpora", corpora, default=corpora, key="runs_corpora")
runs = [r for r in runs if r.corpus in only]
st.dataframe(runs_table(runs), hide_index=True, key="runs_table",
             column_config={label: st.column_config.NumberColumn(format="%.4f") for label in METRICS.values()})
labels = {r.run_id: r.label for r in runs}

st.subheader("Compare")
chosen = st.multiselect("Runs to compare", list(labels), format_func=labels.__getitem__, key="runs_compare",
                        max_selections=6)
if len(chosen) >= 2:
    picked = [r for r in runs if r.run_id in chosen]
    show_all = st.toggle("Show all settings", key="runs_all_settings")
    left, right = st.columns(2)
    left.markdown("**Settings**" + ("" if show_all else " (only those that differ)"))
    left.dataframe(settings_diff(picked, show_all), key="runs_settings")
    right.markdown("**Metrics**")
    metrics = metrics_side_by_side(picked)
    if metrics.empty:
        right.caption("No metrics yet: evaluate the runs below (needs a corpus with qrels).")
    else:
        right.dataframe(metrics.style.format("{:.4f}", na_rep="—"), key="runs_metrics")
elif chosen:
    st.caption("Pick at least two runs.")

st.subheader("Run actions")
rid = st.selectbox("Run", list(labels), index=len(labels) - 1 if labels else None, format_func=labels.__getitem__,
                   key="runs_action_run")
if rid is not None:
    actions(next(r for r in runs if r.run_id == rid))
