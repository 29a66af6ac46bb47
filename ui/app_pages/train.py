"""Train: HCE settings (presets, one-line help, time estimate), start, live progress with cancel, outcome."""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import streamlit as st

from hce_engine import Run
from hce_engine.plotting.training import (
    LOSS_NOTE,
    describe_outcome,
    loss_figure,
    sibling_accuracy_figure,
    validation_figure,
)
from hce_engine.training import PRESET_HELP, PRESETS, TrainConfig
from hce_engine.training.config import DEFAULT_PRESET, LABEL_SOURCE, UNLABELLED_PRESET
from hce_engine.training.estimate import TimeEstimate
from ui.common import (
    active_runs,
    fmt_duration,
    friendly_errors,
    get_workspace,
    live_progress,
    md_escape,
    pick_corpus,
    progress_panel,
)

#: Settings shown up front; every other TrainConfig field sits under "Advanced settings".
MAIN = ("signal", "split", "negatives", "level_loss", "epochs", "batch_size", "siblings", "branching", "seed")
#: Settings the page leaves at their default: several training processes are started from the command line
#: (``hce train --nproc N``), not from inside the app's server.
CLI_ONLY = ("nproc",)

ws = get_workspace()


def setting_widget(f: dataclasses.Field, default, key: str, splits: list[str], disabled: bool = False):
    """One TrainConfig field as a widget of its type, with the field's help as tooltip."""
    label, help_ = f.name.replace("_", " "), f.metadata.get("help")
    choices = f.metadata.get("choices")
    if f.name == "split" and splits:
        choices = tuple(splits)
    if choices:
        return st.selectbox(label, choices, index=choices.index(default) if default in choices else 0,
                            help=help_, key=key, disabled=disabled)
    if isinstance(f.default, bool):
        return st.checkbox(label, value=bool(default), help=help_, key=key, disabled=disabled)
    if isinstance(f.default, int):
        return int(st.number_input(label, value=int(default), step=1, help=help_, key=key, disabled=disabled))
    if isinstance(f.default, float):
        step = 10 ** math.floor(math.log10(abs(default))) if default else 0.01
        return float(st.number_input(label, value=float(default), step=float(step), format="%g", help=help_,
                                     key=key, disabled=disabled))
    text = st.text_input(label, value="" if default is None else str(default), help=help_, key=key,
                         disabled=disabled, placeholder="auto" if f.name == "memory_levels" else "")
    if f.name == "memory_levels":
        text = text.strip()
        return int(text) if text.isdigit() else (None if not text else text)
    if f.default is None:  # optional text (model folder): empty means the default
        return text.strip() or None
    return text.strip()


@st.cache_data(ttl=600, max_entries=32, show_spinner="Estimating the time…")
def estimate(_ws, workspace: str, corpus: str, config_json: str, n_docs: int, busy: bool) -> TimeEstimate:
    return _ws.estimate(corpus, json.loads(config_json))


#: The stages of a run (hce_engine.training.run_clock), as the estimate names them.
STAGE_NAMES = {"baseline": "first encode of the corpus", "prepare": "first check", "steps": "training",
               "finish": "final encode"}


def show_estimate(corpus: str, config: dict) -> None:
    """The engine's time estimate for these settings, before anything starts (made again once this process is
    idle: a speed measured while it encodes or trains is too slow)."""
    n_docs = next(c["documents"] for c in ws.corpora() if c["name"] == corpus)
    busy = bool(ws.jobs.active())
    est = estimate(ws, ws.path, corpus, json.dumps(config, sort_keys=True), n_docs, busy)
    parts = {k: v for k, v in est.stages.items() if v}  # baseline, prepare, steps, finish
    c1, c2 = st.columns([1, 3])
    c1.metric("Estimated time", fmt_duration(est.total_seconds), help="Measured on this machine before the run (an "
              "upper bound): " + "; ".join(est.assumptions))
    lines = [f"{est.loop.steps:,} steps over {est.loop.n_train_pairs:,} training pairs"
             + (f" ({est.loop.n_val_pairs:,} held out for validation)" if est.loop.n_val_pairs else "")
             + (f" on {est.device}" if est.device else "") + "."]
    if parts:
        names = {**STAGE_NAMES, "prepare": "teacher and first check" if config.get("signal") == "self"
                 else STAGE_NAMES["prepare"]}  # the self signal's teacher encodes its pseudo-queries first
        lines.append(" · ".join(f"{names[k]} {fmt_duration(v)}" for k, v in parts.items()))
    runs = est.calibration_runs
    lines.append(f"Scaled by how the last {runs} finished run(s) here compared with their estimates." if runs else
                 "No finished run here to learn from yet: later estimates are scaled by how this one goes.")
    if busy:
        lines.append("Measured while another job runs here, so too long: it is measured again when that ends.")
    c2.caption("  \n".join(lines))


def settings_form(corpus: str) -> None:
    splits = list(ws.splits(corpus))
    start = DEFAULT_PRESET if "train" in splits else UNLABELLED_PRESET
    preset = st.radio("Preset", list(PRESETS), index=list(PRESETS).index(start), horizontal=True,
                      key="train_preset",
                      format_func=lambda p: f"{p}: {PRESET_HELP.get(p, '')}")
    if preset == "quick":
        st.info("The quick preset shows the mechanics (the tree, the sibling losses, the curves) in minutes; it "
                "is too small a budget to show the gain. Use **standard** (the reference budget made affordable "
                "on a CPU) to see whether HCE helps on your corpus.")
    defaults = ws.default_config(corpus, preset).to_dict()
    if "train" not in splits:
        st.caption("No judged training queries in this corpus, so the default is the **self** signal and the "
                   "**unsupervised** preset. The run checks itself on held-out pseudo-queries.")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    values: dict[str, Any] = {}
    prefix = f"tc_{corpus}_{preset}_"
    cols = st.columns(3)
    for i, name in enumerate(MAIN):
        with cols[i % 3]:
            values[name] = setting_widget(fields[name], defaults[name], prefix + name, splits,
                                          disabled=name == "split" and values.get("signal") in ("ict", "self"))
    with st.expander("Advanced settings"):
        cols = st.columns(3)
        for i, name in enumerate(n for n in fields if n not in MAIN and n not in CLI_ONLY):
            with cols[i % 3]:
                values[name] = setting_widget(fields[name], defaults[name], prefix + name, splits)
    try:
        config = TrainConfig.from_dict(values).validate().to_dict()
    except ValueError as exc:
        st.error(str(exc))
        return
    st.info(f"Signal **{config['signal']}**. {LABEL_SOURCE[config['signal']]}")
    with friendly_errors("Time estimate"):
        show_estimate(corpus, config)
    encoding = active_runs(corpus, kind="baseline")
    if encoding:  # training starts from the baseline's vectors and tree: wait for it instead of encoding twice
        st.info(f"The corpus is being encoded by run #{encoding[-1].run_id}; training can start when it is done.")
        live_progress(encoding[-1].run_id, key="train_encode")
    if st.button("Start training", type="primary", key="train_start", disabled=bool(encoding)):
        with friendly_errors("Starting the run"):
            run_id = ws.start_training(corpus, config)
            st.session_state["train_view"] = run_id
            st.rerun()


def run_charts(run: Run, key: str) -> None:
    """Loss and sibling accuracy per level, throughput, ETA, tree rebuilds and validation of one run."""
    log = ws.train_log(run.run_id)
    last = log.iloc[-1].to_dict() if len(log) else {}

    def num(name: str, fmt: str) -> str:
        v = last.get(name)
        return "—" if v is None or v != v else format(v, fmt)

    cols = st.columns(5)
    cols[0].metric("Steps", num("step", ",.0f"))
    cols[1].metric("Epoch", num("epoch", ".2f"))
    cols[2].metric("Loss", num("loss", ".3f"))
    cols[3].metric("Pairs/s", num("examples_per_s", ".1f"))
    if run.status.active:
        live = ws.run_progress(run.run_id)  # the whole run's time left (the log's ETA covers its steps only)
        cols[4].metric("Time left", fmt_duration(live.eta_s if live else last.get("eta_s")))
    else:
        cols[4].metric("Tree rebuilds", run.training.rebuilds or 0, help="Co-training rebuilds of the tree "
                       "(setting recluster every)")
    left, right = st.columns(2)
    self_signal = run.config_dict.get("signal") == "self"
    left.plotly_chart(loss_figure(log), key=f"{key}_loss")
    right.plotly_chart(sibling_accuracy_figure(log), key=f"{key}_acc")
    if self_signal:
        left.caption("Total: KL divergence between the teacher's and the student's probabilities over each "
                     "pseudo-query's siblings and the batch's other documents (0 = the student ranks as the "
                     "teacher does). Level lines: how well the pseudo-query finds its source's branch, not "
                     "trained on (shown for reference).")
        right.caption("Green: how often the student's top candidate is the teacher's. Per level and leaf: the "
                      "pseudo-query's own source branch and document first (not trained on: a drop here is "
                      "forgetting).")
    else:
        left.caption(LOSS_NOTE)
        right.caption("How often the query scores its positive's branch above every sibling branch, per level; "
                      "leaf: the positive document above its sibling and in-batch documents.")
    history = run.training.val_history
    if history:
        st.plotly_chart(validation_figure(history), key=f"{key}_val")


@st.fragment(run_every=2)
def live_run(run_id: int) -> None:
    progress_panel(run_id, key="train")
    run_charts(ws.run(run_id), key="live")


def show_run(run: Run) -> None:
    lines = describe_outcome(run)
    if run.status == "failed":
        st.error(lines[0])
    elif lines:
        st.markdown("\n\n".join(lines))
    if run.is_train and run.status.resumable and st.button(
            "Resume from the last epoch", key=f"resume_{run.run_id}"):
        with friendly_errors("Resume"):
            ws.resume(run.run_id, background=True)
            st.rerun()
    run_charts(run, key=f"run{run.run_id}")


st.title("Train")
corpus = pick_corpus()
if not corpus:
    st.stop()

active = active_runs(corpus, kind="train")
if active:
    st.subheader(f"Training: {md_escape(active[-1].label)}")
    live_run(active[-1].run_id)
else:
    with st.container(border=True):
        st.subheader("New training run")
        settings_form(corpus)

past = [r for r in ws.runs(corpus, kind="train") if not r.status.active]
if past:
    st.divider()
    st.subheader("Finished runs")
    ids = [r.run_id for r in past]
    want = st.session_state.get("train_view")
    labels = {r.run_id: r.label for r in past}
    chosen = st.selectbox("Run", ids, index=ids.index(want) if want in ids else len(ids) - 1,
                          format_func=labels.__getitem__, key=f"train_past_{ids[-1]}")  # a new run resets the choice
    show_run(next(r for r in past if r.run_id == chosen))
else:
    st.caption(f"No finished training run for {md_escape(corpus)} yet.")
