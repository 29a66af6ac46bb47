"""Figures and the table of an experiment (pure functions of ``Workspace.experiment_results``' dict).

* :func:`metric_figure` -- one metric per arm: the mean over seeds with an error bar of their sd, each seed's
  value as a dot, the control drawn apart (and its mean as a dotted line across).
* :func:`scatter_figure` -- per judged query, the control's headline metric (x) against an arm's (y), each
  averaged over the seeds both finished: points above the diagonal are queries the arm wins.
* :func:`recall_figure` -- per arm R@1, R@10 and R@100 as a recall@k curve (x in log scale): the top hit
  against what a re-ranker would see.
* :func:`results_table` -- :func:`~hce_engine.experiments.table_rows` as a DataFrame.

Arm names and query ids are data: every text plotly reads as HTML (ticks, legends, hovers, titles) is escaped.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..evaluation import METRIC_LABELS
from ..experiments.results import HEADLINE, table_rows
from .training import empty_figure

CONTROL = "#444444"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"]
WIN, TIE, LOSS = "#2ca02c", "#9aa5b1", "#d62728"
LAYOUT = dict(height=380, margin=dict(l=10, r=10, t=50, b=10), template="plotly_white",
              legend=dict(orientation="h", y=-0.2))
#: The cut-offs of :func:`recall_figure` and their metrics.
RECALL_K = {1: "recall_at_1", 10: "recall_at_10", 100: "recall_at_100"}


def _esc(text) -> str:
    return html.escape(str(text))


def _colours(results: dict) -> dict[str, str]:
    """The control in dark grey, the other arms in the palette's colours, in the arms' order."""
    others = [a["arm"] for a in results["arms"] if not a["control"]]
    out = {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(others)}
    out.update({a["arm"]: CONTROL for a in results["arms"] if a["control"]})
    return out


def _tick(arm: dict) -> str:
    return _esc(arm["arm"]) + (" (control)" if arm["control"] else "")


def metric_figure(results: dict, metric: str = HEADLINE) -> go.Figure:
    """``metric`` per arm: the mean over finished seeds (a diamond) with an error bar of one sd over seeds, the
    per-seed values as dots beside it; the control in grey, its mean a dotted line across the plot."""
    label = METRIC_LABELS.get(metric, metric)
    title = f"{label} per arm: mean ± sd over seeds, dots = single seeds"
    arms = [a for a in results["arms"] if a[metric]["mean"] is not None]
    if not arms:
        return empty_figure(title, "no finished runs yet", LAYOUT)
    colours = _colours(results)
    xs = list(range(len(arms)))
    fig = go.Figure(layout=dict(LAYOUT, title=title, yaxis_title=label, showlegend=True))
    fig.add_trace(go.Scatter(
        x=xs, y=[a[metric]["mean"] for a in arms], mode="markers", name="mean ± sd",
        marker=dict(symbol="diamond", size=14, color=[colours[a["arm"]] for a in arms]),
        error_y=dict(type="data", array=[a[metric]["sd"] or 0.0 for a in arms], visible=True, thickness=2,
                     width=8, color="#555555"),
        customdata=[[_tick(a), len(a["seeds"]), "—" if a[metric]["sd"] is None else f"{a[metric]['sd']:.4f}"]
                    for a in arms],
        hovertemplate="%{customdata[0]}: mean %{y:.4f} ± %{customdata[2]} over %{customdata[1]} seed(s)"
                      "<extra></extra>"))
    dots_x, dots_y, dots_c, dots_text = [], [], [], []
    for x, a in zip(xs, arms, strict=True):
        for seed, value in zip(a["seeds"], a[metric]["per_seed"], strict=False):
            dots_x.append(x + 0.22)
            dots_y.append(value)
            dots_c.append(colours[a["arm"]])
            dots_text.append([_tick(a), seed])
    fig.add_trace(go.Scatter(
        x=dots_x, y=dots_y, mode="markers", name="single seeds",
        marker=dict(size=8, color=dots_c, opacity=0.6, line=dict(width=1, color="white")), customdata=dots_text,
        hovertemplate="%{customdata[0]}, seed %{customdata[1]}: %{y:.4f}<extra></extra>"))
    control = next((a for a in arms if a["control"]), None)
    if control is not None:
        fig.add_hline(y=control[metric]["mean"], line_dash="dot", line_color=CONTROL, opacity=0.6,
                      annotation_text="control mean", annotation_position="top left")
    fig.update_xaxes(tickvals=xs, ticktext=[_tick(a) for a in arms], range=[-0.6, len(arms) - 0.4])
    return fig


def per_query_pairs(results: dict, arm: str) -> tuple[list[str], np.ndarray, np.ndarray, list[int]]:
    """(query ids, control values, arm values, seeds): the headline metric per query of the control and of
    ``arm``, each averaged over the seeds both finished (the comparison's seeds), on the queries both have."""
    control = results["control"]
    runs = results.get("runs") or {}
    comp = next((c for c in results.get("comparisons", []) if c["arm"] == arm), None)
    seeds_of: dict[str, set[int]] = {}
    for key in runs:
        name, _, seed = key.rpartition("/")
        seeds_of.setdefault(name, set()).add(int(seed))
    seeds = sorted(comp["seeds"]) if comp else sorted(seeds_of.get(arm, set()) & seeds_of.get(control, set()))
    if not seeds or arm == control:
        return [], np.zeros(0), np.zeros(0), seeds
    values = {(name, s): runs[f"{name}/{s}"][HEADLINE] for name in (arm, control) for s in seeds}
    qids = sorted(set.intersection(*(set(v) for v in values.values())))
    ctl = np.array([np.mean([values[control, s][q] for s in seeds]) for q in qids], dtype=float)
    trt = np.array([np.mean([values[arm, s][q] for s in seeds]) for q in qids], dtype=float)
    return qids, ctl, trt, seeds


def scatter_figure(results: dict, arm: str, tie: float = 1e-9) -> go.Figure:
    """Per judged query: the control's headline metric (x) against ``arm``'s (y), averaged over the seeds both
    finished. Above the diagonal: the arm wins the query (green); below: it loses (red); on it: a tie (grey)."""
    label = METRIC_LABELS[HEADLINE]
    control = results["control"]
    qids, ctl, trt, seeds = per_query_pairs(results, arm)
    title = f"{_esc(arm)} against {_esc(control)} per query ({label})"
    if not qids:
        return empty_figure(title, "no query both arms were measured on yet", LAYOUT)
    diff = trt - ctl
    groups = [("arm better", diff > tie, WIN), ("tie", np.abs(diff) <= tie, TIE), ("control better", diff < -tie, LOSS)]
    fig = go.Figure(layout=dict(LAYOUT, height=460, title=title + f", mean of {len(seeds)} seed(s)",
                                xaxis_title=f"{_esc(control)} (control)", yaxis_title=_esc(arm)))
    lo = float(min(0.0, ctl.min(), trt.min()))
    hi = float(max(1.0, ctl.max(), trt.max()))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="equal", hoverinfo="skip",
                             line=dict(color="#999999", dash="dash", width=1)))
    for name, mask, colour in groups:
        idx = np.flatnonzero(mask)
        fig.add_trace(go.Scatter(
            x=ctl[idx].tolist(), y=trt[idx].tolist(), mode="markers", name=f"{name} ({len(idx)})",
            marker=dict(color=colour, size=8, opacity=0.7, line=dict(width=0.5, color="white")),
            customdata=[[_esc(qids[i]), f"{diff[i]:+.4f}"] for i in idx],
            hovertemplate="query %{customdata[0]}<br>control %{x:.4f} · arm %{y:.4f} (%{customdata[1]})"
                          "<extra></extra>"))
    pad = 0.02 * (hi - lo)
    fig.update_xaxes(range=[lo - pad, hi + pad], constrain="domain")
    fig.update_yaxes(range=[lo - pad, hi + pad], scaleanchor="x", scaleratio=1, constrain="domain")
    return fig


def recall_figure(results: dict) -> go.Figure:
    """Per arm, recall at 1, 10 and 100 (mean over seeds, error bars one sd) as a curve over k (log scale):
    the top hit against what a re-ranker would see."""
    title = "Recall@k per arm: R@1 (the top hit) to R@100"
    arms = [a for a in results["arms"] if a[RECALL_K[1]]["mean"] is not None]
    if not arms:
        return empty_figure(title, "no finished runs yet", LAYOUT)
    colours = _colours(results)
    fig = go.Figure(layout=dict(LAYOUT, title=title, xaxis_title="k (log scale)", yaxis_title="recall@k"))
    for a in arms:
        name = _tick(a)
        fig.add_trace(go.Scatter(
            x=list(RECALL_K), y=[a[m]["mean"] for m in RECALL_K.values()], mode="lines+markers", name=name,
            line=dict(color=colours[a["arm"]], dash="dash" if a["control"] else "solid", width=2),
            marker=dict(size=8), error_y=dict(type="data", array=[a[m]["sd"] or 0.0 for m in RECALL_K.values()],
                                              visible=True, thickness=1.5, width=5),
            hovertemplate=name + ": R@%{x} = %{y:.4f}<extra></extra>"))
    fig.update_xaxes(type="log", tickvals=list(RECALL_K), ticktext=[f"R@{k}" for k in RECALL_K])
    fig.update_yaxes(rangemode="tozero")
    return fig


def results_table(results: dict) -> pd.DataFrame:
    """One row per arm (:func:`~hce_engine.experiments.table_rows`): means and sds over seeds of every metric,
    training minutes, and for the other arms the paired difference to the control, its interval, the
    Holm-adjusted p-values and wins/ties/losses."""
    return pd.DataFrame(table_rows(results))
