"""Experiments: arms of training settings x seeds, compared query by query against a control. Create one from a
recipe or from custom arms, run its queue (live progress, cancel, resume, more seeds), read its table, verdicts
and plots, download them (CSV, JSON, offline HTML)."""
from __future__ import annotations

import json
import re
from functools import partial

import pandas as pd
import streamlit as st

from hce_engine.errors import InputError
from hce_engine.evaluation import METRIC_LABELS
from hce_engine.experiments import RECIPES, ExperimentSpec, parse_settings, recipe_spec
from hce_engine.plotting import export
from hce_engine.plotting.experiments import metric_figure, recall_figure, results_table, scatter_figure
from hce_engine.training import PRESET_HELP, PRESETS
from hce_engine.training.config import DEFAULT_PRESET, UNLABELLED_PRESET
from hce_engine.workspace import ExperimentStatus
from ui.common import STAGES, fmt_duration, friendly_errors, get_workspace, md_escape, pick_corpus

ws = get_workspace()

#: What to do when the corpus has no judged queries to compare arms on.
NO_JUDGED = ("Corpus **{corpus}** has no judged queries, and an experiment compares its arms on judged queries it "
             "never trains on. Add some: upload a queries file and its relevance judgements on the **Corpus** page "
             "(“Add judged queries”; or `hce import --queries FILE --qrels FILE --name {corpus}`), or judge a few "
             "queries on the **Search** page (tick the hits that answer a query under “Judge these results”).")
ARMS_HELP = ("One arm per line: a name, a colon, then the settings it changes on top of the preset, e.g. "
             "`siblings: negatives=siblings, siblings=7`. A name alone runs the preset unchanged. Settings are "
             "those of the Train page (`hce train --help`).")


def parse_seeds(text: str) -> list[int]:
    """``0, 1, 2`` (commas or spaces) as a list of seeds; InputError naming the bad part."""
    seeds = []
    for part in filter(None, re.split(r"[\s,;]+", text.strip())):
        if not part.isdigit():
            raise InputError(f"seeds: {part!r} is not a whole number >= 0 (write e.g. 0, 1, 2)")
        seeds.append(int(part))
    if not seeds:
        raise InputError("seeds: give at least one (e.g. 0, 1, 2)")
    return seeds


def parse_arms(text: str) -> dict[str, dict]:
    """Arm lines ``name: key=value, key=value`` as {name: settings}; InputError naming the line."""
    arms: dict[str, dict] = {}
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        name = name.strip()
        if not name:
            raise InputError(f"arm line {i}: expected name: key=value, key=value (got {line.strip()!r})")
        if name in arms:
            raise InputError(f"arm line {i}: the arm name {name!r} is used twice")
        arms[name] = parse_settings(rest, f"arm line {i} ({name})")
    if not arms:
        raise InputError("give at least one arm line (name: key=value, ...)")
    return arms


def settings_text(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "the preset unchanged"


def new_experiment(corpus: str, splits: dict[str, int]) -> None:
    """The form: a recipe or custom arms, seeds, preset, split, max pairs, shared settings; creates (and starts)."""
    if not splits:
        st.info(NO_JUDGED.format(corpus=md_escape(corpus)))
        return
    source = st.radio("From", ["recipe", "custom arms"], horizontal=True, key="exp_source",
                      format_func={"recipe": "A recipe (the method's questions)", "custom arms": "Custom arms"}.get)
    if source == "recipe":
        name = st.selectbox("Recipe", list(RECIPES), key="exp_recipe",
                            format_func=lambda n: f"{n}: {RECIPES[n].question}")
        recipe = RECIPES[name]
        st.markdown(f"**{md_escape(recipe.question)}** {md_escape(recipe.shows)}")
        st.caption("Arms: " + "; ".join(f"{md_escape(a)}{' (control)' if a == recipe.control else ''}: "
                                        f"{md_escape(settings_text(v))}" for a, v in recipe.arms.items())
                   + (f". Every arm: {md_escape(settings_text(recipe.settings))}." if recipe.settings else "."))
        arms_text, control, title = "", "", ""
    else:
        arms_text = st.text_area("Arms", value="random: negatives=random\nsiblings: negatives=siblings", height=110,
                                 key="exp_arms", help=ARMS_HELP)
        c1, c2 = st.columns(2)
        control = c1.text_input("Control arm", key="exp_control", placeholder="the first arm",
                                help="The arm every other arm is compared with (empty: the first line's).")
        title = c2.text_input("Title", key="exp_title", placeholder="arm names joined by “vs”", max_chars=120)
    c1, c2, c3, c4 = st.columns(4)
    seeds_text = c1.text_input("Seeds", value="0, 1, 2", key="exp_seeds",
                               help="Every arm trains once per seed; runs pair up by seed. With one seed the "
                                    "seed noise is unknown: use at least 2, better 3 or more.")
    default = DEFAULT_PRESET if "train" in splits else UNLABELLED_PRESET
    preset = c2.selectbox("Preset", list(PRESETS), index=list(PRESETS).index(default), key="exp_preset",
                          help="The base settings of every arm: " + "; ".join(f"{p}: {h}"
                                                                               for p, h in PRESET_HELP.items()))
    names = list(splits)
    split = c3.selectbox("Compare on split", names, index=names.index("test") if "test" in names else 0,
                         key="exp_split", format_func=lambda s: f"{s} ({splits[s]} judged queries)",
                         help="The judged queries the arms are compared on (never trained on).")
    max_pairs = int(c4.number_input("Max training pairs", min_value=0, value=0, step=64, key="exp_max_pairs",
                                    help="Train every run on at most this many pairs (0: the preset's). A "
                                         "smaller number makes a quicker, noisier experiment."))
    shared = st.text_input("Settings for every arm (optional)", key="exp_settings",
                           placeholder="e.g. epochs=2, batch_size=16",
                           help="key=value pairs applied to every arm before the arm's own settings.")
    start = st.checkbox("Start it right away", value=True, key="exp_start_now",
                        help="Runs train one at a time in the background; this page shows the queue.")
    if st.button("Create experiment", type="primary", key="exp_create"):
        with friendly_errors("The experiment was not created"):
            seeds = parse_seeds(seeds_text)
            settings = parse_settings(shared, "settings for every arm")
            if max_pairs:
                settings["max_pairs"] = max_pairs
            if source == "recipe":
                spec = recipe_spec(name, corpus, seeds, preset, settings, split)
            else:
                arms = parse_arms(arms_text)
                spec = ExperimentSpec(corpus=corpus, arms=arms, seeds=seeds, preset=preset, settings=settings,
                                      control=control.strip(), split=split, name=title.strip())
            experiment_id = ws.create_experiment(spec)
            if start:
                ws.start_experiment(experiment_id)
            st.session_state["exp_view"] = experiment_id
            st.rerun()


def is_running(status: ExperimentStatus) -> bool:
    """Running here (a live job) or in another process (its lock is held)."""
    return status.running or status.progress is not None


def queue_table(status: ExperimentStatus) -> pd.DataFrame:
    return pd.DataFrame([{"arm": c.arm, "seed": c.seed, "status": c.status, "run": c.run_id,
                          "time": fmt_duration(c.seconds) if c.seconds else ""} for c in status.cells])


def queue_panel(status: ExperimentStatus) -> None:
    """The cells (arm x seed) with their status and run, the overall progress with its ETA and, while this
    process runs the experiment, the current run's stage."""
    done, total = status.done, status.total
    text = f"{done} of {total} runs finished"
    if is_running(status) and status.eta_s:
        text += f" · about {fmt_duration(status.eta_s)} left (at the finished runs' mean time)"
    st.progress(done / total if total else 0.0, text=text)
    live = status.progress
    if live:
        cur, of = live.done, live.total
        cell, _, stage = live.stage.rpartition(": ")  # "arm seed 0 (1/4): train"
        line = f"{md_escape(cell)}: {STAGES.get(stage, stage)}" if cell else STAGES.get(stage, stage)
        if of:
            line += f" {cur:,}/{of:,}"
        if live.eta_s is not None:
            line += f" · about {fmt_duration(live.eta_s)} left in this run"
        st.progress(min(1.0, cur / of) if of else 0.0, text=line)
    st.dataframe(queue_table(status), hide_index=True, key=f"exp_queue_{status.experiment_id}",
                 column_config={"run": st.column_config.NumberColumn(format="#%d")})


@st.fragment(run_every=2)
def live_queue(experiment_id: int) -> None:
    """:func:`queue_panel` refreshed every 2 s with a cancel button; reruns the page when the experiment stops."""
    status = ws.experiment_status(experiment_id)
    if not is_running(status):
        st.rerun()
    queue_panel(status)
    if status.progress is None:
        st.info("It runs in another process (e.g. `hce experiment run`); stop it there. This page follows it.")
    elif status.cancelling:
        st.caption("Cancelling… the current run stops at its next step; **Resume** trains what is left.")
    elif st.button("Cancel", key=f"exp_cancel_{experiment_id}"):
        ws.cancel_experiment(experiment_id)
        st.caption("Cancelling… the current run stops at its next step; **Resume** trains what is left.")


def controls(experiment_id: int, status: ExperimentStatus) -> None:
    """Run / Resume, Add seeds and Delete for an experiment that is not running."""
    done, total = status.done, status.total
    c1, c2, c3 = st.columns([1, 2, 1])
    label = "Run" if not any(c.run_id for c in status.cells) else "Resume"
    if done < total:
        if c1.button(label, type="primary", key=f"exp_run_{experiment_id}",
                     help="Train the cells that are not finished, one run at a time, in the background (a "
                          "cancelled run resumes from its last epoch)."):
            with friendly_errors(f"{label} the experiment"):
                ws.start_experiment(experiment_id)
                st.rerun()
    else:
        c1.caption("Every run is finished.")
    with c2:
        a, b = st.columns([2, 1], vertical_alignment="bottom")
        more = a.text_input("Add seeds", key=f"exp_more_{experiment_id}", placeholder="e.g. 3, 4",
                            help="More seeds narrow the seed noise; only the new cells train.")
        if b.button("Add seeds", key=f"exp_add_{experiment_id}"):
            with friendly_errors("Adding seeds"):
                seeds = ws.add_seeds(experiment_id, parse_seeds(more))
                st.toast(f"Seeds now {', '.join(map(str, seeds))}: press {label if done else 'Run'} to train "
                         "the new cells.")
                st.rerun()
    with c3:
        if st.session_state.get("exp_confirm_delete") != experiment_id:
            if st.button("Delete experiment", key=f"exp_delete_{experiment_id}",
                         help="Forget the experiment; its runs stay on the Runs page."):
                st.session_state["exp_confirm_delete"] = experiment_id
                st.rerun()
        else:
            st.warning("Delete this experiment? Its runs stay (Runs page).")
            if st.button("Yes, delete it", key=f"exp_delete_yes_{experiment_id}", type="primary"):
                st.session_state.pop("exp_confirm_delete", None)
                with friendly_errors("Deleting the experiment"):
                    ws.delete_experiment(experiment_id)
                    st.session_state.pop("exp_view", None)
                    st.rerun()
            if st.button("Keep it", key=f"exp_delete_no_{experiment_id}"):
                st.session_state.pop("exp_confirm_delete", None)
                st.rerun()


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Comparing the arms query by query…")
def cached_results(_ws, workspace: str, experiment_id: int, state: str) -> dict:
    """``experiment_results``, measured again when a cell, the seeds or the judged queries change (``state``)."""
    return _ws.experiment_results(experiment_id)


def results_state(status: ExperimentStatus, corpus: str) -> str:
    return json.dumps([[c.arm, c.seed, c.run_id, c.status] for c in status.cells]
                      + [ws.splits(corpus)], sort_keys=True, default=str)


def verdicts(res: dict) -> None:
    for c in res["comparisons"]:
        text = md_escape(c["verdict"])
        if "larger than seed noise" in c["verdict"]:
            (st.success if c["diff"] > 0 else st.warning)(text)
        else:
            st.info(text)
    if not res["comparisons"]:
        st.info("No comparison yet: the control and another arm need a finished run with the same seed.")


def show_results(experiment_id: int, spec: ExperimentSpec, status: ExperimentStatus) -> None:
    res = cached_results(ws, ws.path, experiment_id, results_state(status, spec.corpus))
    st.subheader("Results")
    if status.done < status.total:
        st.caption(f"Over the {status.done} finished runs of {status.total}; the rest add to it when they "
                   "finish.")
    st.caption(f"Compared on {res['queries']} judged queries of split {md_escape(spec.split)}, paired by query "
               f"against the control **{md_escape(spec.control)}**: mean ± sd over seeds; diff = arm − control in "
               f"{METRIC_LABELS[res['metric']]} (mean over the seeds both finished), its 95% bootstrap interval, "
               "paired t and randomization p-values (Holm-adjusted across arms) and the queries it wins, ties and "
               "loses.")
    table = results_table(res)
    st.dataframe(table, hide_index=True, key=f"exp_table_{experiment_id}",
                 column_config={c: st.column_config.NumberColumn(format="%.4f") for c in table.columns
                                if c not in ("arm", "seeds", "95% CI", "win/tie/loss")})
    verdicts(res)

    recipe = RECIPES.get(spec.recipe)
    metric = st.columns([1, 3])[0].selectbox("Metric per arm", list(METRIC_LABELS),
                                             format_func=METRIC_LABELS.__getitem__,
                                             key=f"exp_metric_{experiment_id}")
    left, right = st.columns(2)
    left.plotly_chart(metric_figure(res, metric), key=f"exp_metric_chart_{experiment_id}")
    right.plotly_chart(recall_figure(res), key=f"exp_recall_chart_{experiment_id}")
    if recipe is not None and recipe.plot == "recall":
        right.caption("This recipe's plot: R@1 (the top hit) against R@100 (what a re-ranker would see), per arm.")
    arms = [c["arm"] for c in res["comparisons"]]
    if arms:
        arm = st.selectbox("Per query: the control against arm", arms, key=f"exp_scatter_arm_{experiment_id}")
        st.plotly_chart(scatter_figure(res, arm), key=f"exp_scatter_chart_{experiment_id}")
        st.caption(f"Each point is a judged query: {METRIC_LABELS[res['metric']]} of the control (x) and of the arm "
                   "(y), averaged over the seeds both finished. Above the diagonal the arm wins the query.")

    stem = f"hce-experiment-{experiment_id}"
    c1, c2, c3 = st.columns(3)
    c1.download_button("Table (CSV)", table.to_csv(index=False).encode(), f"{stem}.csv", "text/csv",
                       key=f"exp_csv_{experiment_id}", on_click="ignore")
    c2.download_button("Full results (JSON)", json.dumps(res, indent=1, default=str).encode(), f"{stem}.json",
                       "application/json", key=f"exp_json_{experiment_id}", on_click="ignore",
                       help="The spec, per-arm and per-seed metrics, the comparisons, each run's settings, "
                            "provenance and per-query nDCG@10.")
    c3.download_button("Report (HTML)", partial(export.experiment_html, ws, experiment_id, results=res),
                       f"{stem}.html", "text/html", key=f"exp_html_{experiment_id}", on_click="ignore",
                       help="The spec, the table, the verdicts and the plots in one file that opens offline.")


def show_experiment(experiment_id: int) -> None:
    exp = ws.experiment(experiment_id)
    spec = exp.spec
    status = ws.experiment_status(experiment_id)
    st.subheader(f"#{experiment_id} · {md_escape(spec.name)}")
    made = (exp.provenance or {}).get("created") or {}
    clean = made.get("clean_tree")
    tree = "clean checkout" if clean is True else "uncommitted changes" if clean is False else ""
    st.caption(f"Preset **{md_escape(spec.preset or 'default')}**; every arm: {md_escape(settings_text(spec.settings))}"
               f"; seeds {', '.join(map(str, spec.seeds))}; compared on split **{md_escape(spec.split)}** against "
               f"**{md_escape(spec.control)}**. Arms: "
               + "; ".join(f"{md_escape(a)}: {md_escape(settings_text(v))}" for a, v in spec.arms.items())
               + f". Created {md_escape(str(exp.created_at)[:16])} at commit {md_escape(made.get('commit') or '?')}"
               + (f" ({tree})" if tree else "") + ".")
    recipe = RECIPES.get(spec.recipe)
    if recipe is not None:
        st.caption(md_escape(recipe.shows))
    if is_running(status):
        live_queue(experiment_id)
    else:
        queue_panel(status)
        controls(experiment_id, status)
    if status.done:
        show_results(experiment_id, spec, status)
    else:
        st.caption("Results appear here when the first runs finish.")


# -- growth stress test ---------------------------------------------------------------------------------------------
GROWTH_HELP = ("HCE searches with plain vectors, so documents can be added without retraining. How do the queries "
               "you care about hold up as the corpus grows? This holds out a share of the documents, trains on a copy "
               "of the rest (**{corpus}** itself is not changed: the copy is a new corpus), adds the held-out "
               "documents back in steps without retraining and scores the trained and the zero-shot run after each "
               "step, on the judged queries whose relevant documents were all there at training (the old queries) and "
               "on every judged query whose documents are live. At the last step it rebuilds the tree and trains a new "
               "run on the grown corpus, to show whether rebuilding or retraining pays. Two training runs: minutes on "
               "a small corpus.")


@st.cache_resource
def growth_jobs() -> dict:
    """Growth stress tests started in this app process, by (workspace, corpus): {"thread", "progress" (the latest
    Progress), "result", "error", "cancel" (bool)}."""
    return {}


def start_growth(corpus: str, **kwargs) -> None:
    """Run :func:`~hce_engine.experiments.growth.run_growth` on ``corpus`` in a background thread."""
    import threading

    from hce_engine.experiments.growth import run_growth
    job: dict = {"progress": None, "result": None, "error": None, "cancel": False}

    def body() -> None:
        try:
            job["result"] = run_growth(ws, corpus, progress=lambda ev: job.__setitem__("progress", ev),
                                       cancel=lambda: job["cancel"], **kwargs)
        except InterruptedError:
            job["error"] = "cancelled: the runs and the copied corpus made so far stay in the workspace"
        except Exception as exc:  # noqa: BLE001 - shown on the page
            job["error"] = str(exc) or type(exc).__name__
    job["thread"] = threading.Thread(target=body, daemon=True, name=f"hce-growth-{corpus}")
    growth_jobs()[ws.path, corpus] = job
    job["thread"].start()


@st.fragment(run_every=2)
def growth_live(corpus: str) -> None:
    """The running growth stress test's stage, refreshed every 2 s, with a cancel button."""
    job = growth_jobs().get((ws.path, corpus))
    if job is None or not job["thread"].is_alive():
        st.rerun()
        return
    ev = job["progress"]
    phase, _, stage = str(ev.stage if ev else "starting").rpartition(": ")
    text = f"{md_escape(phase)}: {STAGES.get(stage, stage)}" if phase else STAGES.get(stage, stage)
    if ev is not None and ev.total:
        text += f" {ev.done:,}/{ev.total:,}"
    st.progress(ev.fraction if ev is not None else 0.0, text=text)
    if job["cancel"]:
        st.caption("Cancelling… it stops at the next training step or growth step.")
    elif st.button("Cancel", key="growth_cancel"):
        job["cancel"] = True


def growth_figure(res: dict):
    """nDCG@10 on the old queries against the share of new documents: the trained run (no retraining), the
    zero-shot run, and the run retrained on the grown corpus (one point, at the last step)."""
    import plotly.graph_objects as go
    x = [r["share_new"] for r in res["steps"]]
    fig = go.Figure()
    for key, name, dash in (("trained", "trained before the growth", "solid"), ("zero_shot", "zero-shot", "dot")):
        fig.add_scatter(x=x, y=[r[key]["old"]["ndcg_at_10"] for r in res["steps"]], name=name, mode="lines+markers",
                        line={"dash": dash})
    fig.add_scatter(x=[x[-1]], y=[res["retrained"]["dense"]["old"]["ndcg_at_10"]], name="retrained on the grown corpus",
                    mode="markers", marker={"size": 12, "symbol": "star"})
    label = METRIC_LABELS["ndcg_at_10"]
    fig.update_layout(title=f"{label} on the old queries as the corpus grows", xaxis_title="share of new documents",
                      yaxis_title=f"{label} (old queries)", xaxis_tickformat=".0%", height=380,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def growth_result(res: dict) -> None:
    """The table (a row per step, the rebuilt tree, the retrained run), the conclusions and the plot."""
    from hce_engine.experiments.growth import table_rows
    st.caption(f"Run on a copy, **{md_escape(res['growth_corpus'])}**: {res['documents']['held']:,} of "
               f"{res['documents']['total']:,} documents held out (seed {res['seed']}), {res['queries']['old']} old "
               f"and {res['queries']['new']} new judged {md_escape(res['split'])} queries; preset "
               f"{md_escape(res['preset'])}; runs #{res['runs']['zero_shot']} (zero-shot), "
               f"#{res['runs']['trained']} (trained), "
               f"#{res['runs']['retrained']} (retrained). “tree R@10” searches through the trained run's tree; "
               "“fit added/own”: cosine of the added and of the tree's own documents to their leaf centroid.")
    table = pd.DataFrame(table_rows(res))
    st.dataframe(table, hide_index=True, key="growth_table",
                 column_config={c: st.column_config.NumberColumn(format="%.4f") for c in table.columns
                                if c not in ("step", "documents", "old queries", "all queries", "fit added/own",
                                             "suggests")})
    for line in res["conclusions"]:
        st.info(md_escape(line))
    st.plotly_chart(growth_figure(res), key="growth_chart")
    st.download_button("Growth stress test (JSON)", json.dumps(res, indent=1, default=str).encode(),
                       f"hce-growth-{res['growth_corpus']}.json", "application/json", key="growth_json",
                       on_click="ignore")


def growth_section(corpus: str, splits: dict[str, int]) -> None:
    """The growth stress test's form, its progress while it runs, then its result."""
    if not splits:
        st.caption("The growth stress test scores judged queries: add some first (see New experiment).")
        return
    st.markdown(GROWTH_HELP.format(corpus=md_escape(corpus)))
    job = growth_jobs().get((ws.path, corpus))
    if job is not None and job["thread"].is_alive():
        growth_live(corpus)
        return
    c1, c2, c3, c4 = st.columns(4)
    steps_text = c1.text_input("Steps (share of new documents)", value="0.1, 0.25, 0.5", key="growth_steps",
                               help="After each step this share of the live corpus arrived after training.")
    hold = c2.number_input("Held out", min_value=0.05, max_value=0.95, value=0.5, step=0.05, key="growth_hold",
                           help="The share of documents held out before training (the largest step reachable).")
    preset = c3.selectbox("Preset", list(PRESETS), index=list(PRESETS).index("quick"), key="growth_preset")
    seed = int(c4.number_input("Seed", min_value=0, value=0, step=1, key="growth_seed",
                               help="The training seed and the seed of the hold-out draw."))
    c1, c2, c3 = st.columns([1, 1, 2])
    names = list(splits)
    split = c1.selectbox("Score on split", names, index=names.index("test") if "test" in names else 0,
                         key="growth_split", format_func=lambda s: f"{s} ({splits[s]} judged queries)")
    max_pairs = int(c2.number_input("Max training pairs", min_value=0, value=128, step=64, key="growth_max_pairs",
                                    help="0: the preset's."))
    shared = c3.text_input("Other settings (optional)", key="growth_settings", placeholder="e.g. epochs=2")
    if st.button("Run the growth stress test", key="growth_run"):
        with friendly_errors("The growth stress test did not start"):
            try:
                steps = [float(x) for x in re.split(r"[\s,;]+", steps_text.strip()) if x]
            except ValueError:
                raise InputError(f"steps: write shares between 0 and 1, e.g. 0.1, 0.25, 0.5 (got {steps_text!r})"
                                 ) from None
            from hce_engine.experiments.growth import check_steps
            settings = parse_settings(shared, "other settings")
            if max_pairs:
                settings["max_pairs"] = max_pairs
            start_growth(corpus, steps=check_steps(steps), hold=float(hold), preset=preset, settings=settings,
                         seed=seed, split=split)
            st.rerun()
    if job is not None and job["error"]:
        st.error(md_escape(f"The growth stress test stopped: {job['error']}"))
    elif job is not None and job["result"]:
        growth_result(job["result"])


st.title("Experiments")
st.caption("An experiment trains every arm (settings on top of a preset) once per seed, as ordinary runs, and "
           "compares each arm with the control query by query on judged queries: is the difference larger than "
           "the noise of training seeds?")
corpus = pick_corpus()
if not corpus:
    st.stop()
splits = ws.splits(corpus)
mine = [e for e in ws.experiments() if e["corpus"] == corpus]
with st.expander("New experiment", expanded=not mine, icon=":material/add:"):
    new_experiment(corpus, splits)
with st.expander("Growth stress test", icon=":material/trending_up:"):
    growth_section(corpus, splits)
if not mine:
    st.caption(f"No experiment on {md_escape(corpus)} yet.")
    st.stop()

st.subheader("Experiments on this corpus")
rows = []
for e in mine:
    s = ws.experiment_status(e["experiment_id"])
    rows.append({"id": e["experiment_id"], "name": e["name"], "runs": f"{s.done}/{s.total}",
                 "running": "yes" if is_running(s) else "", "created": e["created_at"]})
st.dataframe(pd.DataFrame(rows), hide_index=True, key="exp_list")
ids = [e["experiment_id"] for e in mine]
names = {e["experiment_id"]: f"#{e['experiment_id']} · {e['name']}" for e in mine}
want = st.session_state.get("exp_view")
chosen = st.selectbox("Experiment", ids, index=ids.index(want) if want in ids else len(ids) - 1,
                      format_func=names.__getitem__, key=f"exp_pick_{ids[-1]}")
st.session_state["exp_view"] = chosen
st.divider()
show_experiment(chosen)
