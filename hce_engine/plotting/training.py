"""Figures and plain words for training runs: loss per level, sibling accuracy per level, validation history.

Inputs are what the engine stores: the training log (``ws.train_log(run)``: step, epoch, loss,
level_losses, level_acc, leaf_acc, examples_per_s, eta_s) and a run's summary.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..evaluation import METRIC_LABELS
from ..evaluation.outcome import judged_checks, label_free
from . import fmt_duration

LAYOUT = dict(height=320, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2),
              template="plotly_white")


def empty_figure(title: str, note: str, layout: dict | None = None) -> go.Figure:
    """A figure with no axes, only ``note`` in its middle (``layout``: the caller's, default this module's)."""
    fig = go.Figure(layout=dict(layout or LAYOUT, title=title))
    fig.add_annotation(text=note, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def smooth(values: Sequence[float] | np.ndarray, window: int | None = None) -> np.ndarray:
    """Trailing moving average (window: about 1/25 of the points, at least 1) so noisy curves read."""
    v = pd.Series(np.asarray(values, dtype=float))
    window = window or max(1, len(v) // 25)
    return v.rolling(window, min_periods=1).mean().to_numpy()


def level_matrix(column: Sequence) -> np.ndarray:
    """Ragged per-step lists (levels can change after a tree rebuild) -> steps x levels, NaN-padded."""
    rows = [list(x) if x is not None and not (isinstance(x, float) and math.isnan(x)) else [] for x in column]
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


#: What :func:`loss_figure` draws, in words (the step log keeps the total and the level terms, not the leaf term).
LOSS_NOTE = ("Black: the total loss, i.e. the leaf term (the positive document against its sibling and in-batch "
             "documents) plus the mean of the level terms. Coloured: the cross-entropy of the positive's branch "
             "among its sibling branches, at each tree level. The leaf term alone is not logged per step; the leaf's "
             "accuracy is on the right.")


def loss_figure(log: pd.DataFrame) -> go.Figure:
    """Total training loss and the loss at every tree level, per step (smoothed; raw total faint). The leaf
    term is in the total only: the step log does not keep it apart (see :data:`LOSS_NOTE`)."""
    if log is None or len(log) == 0:
        return empty_figure("Training loss", "no steps logged yet")
    steps = log["step"].to_numpy()
    fig = go.Figure(layout=dict(LAYOUT, title="Training loss", xaxis_title="step", yaxis_title="loss"))
    fig.add_trace(go.Scatter(x=steps, y=log["loss"], name="total (raw)", mode="lines",
                             line=dict(color="lightgray", width=1), showlegend=False))
    fig.add_trace(go.Scatter(x=steps, y=smooth(log["loss"]), name="total", mode="lines",
                             line=dict(color="black", width=2)))
    if "level_losses" in log:
        levels = level_matrix(log["level_losses"])
        for j in range(levels.shape[1]):
            fig.add_trace(go.Scatter(x=steps, y=smooth(levels[:, j]), name=f"level {j + 1}", mode="lines"))
    return fig


def sibling_accuracy_figure(log: pd.DataFrame) -> go.Figure:
    """How often the query picks the positive's branch among its siblings, per level, and at the leaf."""
    if log is None or len(log) == 0:
        return empty_figure("Sibling accuracy", "no steps logged yet")
    steps = log["step"].to_numpy()
    fig = go.Figure(layout=dict(LAYOUT, title="Sibling accuracy per level",
                                xaxis_title="step", yaxis_title="accuracy", yaxis_range=[0, 1.02]))
    if "level_acc" in log:
        levels = level_matrix(log["level_acc"])
        for j in range(levels.shape[1]):
            fig.add_trace(go.Scatter(x=steps, y=smooth(levels[:, j]), name=f"level {j + 1}", mode="lines"))
    if "teacher_agree" in log and log["teacher_agree"].notna().any():
        fig.add_trace(go.Scatter(x=steps, y=smooth(log["teacher_agree"]), name="teacher's top-1 (self signal)",
                                 mode="lines", line=dict(color="seagreen", width=2)))
    if "leaf_acc" in log and log["leaf_acc"].notna().any():
        fig.add_trace(go.Scatter(x=steps, y=smooth(log["leaf_acc"]), name="leaf (documents)", mode="lines",
                                 line=dict(color="black", width=2)))
    return fig


def validation_figure(history: Sequence[dict] | None) -> go.Figure:
    """MRR@10, R@10 and nDCG@10 (those measured) on the held-out validation queries after every epoch
    (epoch 0 = start)."""
    history = [h for h in (history or []) if h]
    if not history:
        return empty_figure("Validation", "no validation yet")
    epochs = [h.get("epoch", i) for i, h in enumerate(history)]
    fig = go.Figure(layout=dict(LAYOUT, title="Held-out validation (epoch 0 = starting encoder)",
                                xaxis_title="epoch", yaxis_title="score", xaxis_dtick=1, yaxis_range=[0, 1.02],
                                xaxis_range=[min(epochs) - 0.3, max(epochs) + 0.3]))
    for key in ("mrr_at_10", "recall_at_10", "ndcg_at_10"):
        if any(key in h for h in history):
            fig.add_trace(go.Scatter(x=epochs, y=[h.get(key) for h in history], name=METRIC_LABELS[key],
                                     mode="lines+markers"))
    if "mrr_at_10" in history[0]:
        fig.add_hline(y=history[0]["mrr_at_10"], line_dash="dot", line_color="gray",
                      annotation_text=f"start {METRIC_LABELS['mrr_at_10']}", annotation_position="bottom right")
    return fig


def _delta(a: float, b: float) -> str:
    return f"{a:.3f} → {b:.3f} ({(b - a) * 100:+.1f} points)"


def describe_outcome(run) -> list[str]:
    """The outcome of a training run (:class:`~hce_engine.workspace.Run`) in plain words (markdown lines),
    from its status and summary."""
    status, s = str(run.status), run.training
    lines: list[str] = []
    if status == "failed":
        return [f"The run failed: {run.error or 'unknown error'}."]
    if status in ("cancelled", "interrupted"):
        lines.append(f"The run was {status}" + (": the best weights validated so far were kept."
                                                 if run.model_path else "."))
    outcome = run.outcome
    if outcome.get("checks"):
        head = {"better": "**Better than the starting encoder.**",
                "no better": "**No better than the starting encoder** (every change within "
                             f"±{outcome.get('margin', 0.005):.3f}, or gains and losses mixed).",
                "worse": ":red[**Worse than the starting encoder.**] Search and the other pages keep using the "
                         "starting encoder unless you pick this run; to do better, train again with a lower "
                         "learning rate or more pairs."}[outcome["verdict"]]
        judged = judged_checks(outcome["checks"])
        unconfirmed = label_free(outcome["checks"])
        if unconfirmed and outcome["verdict"] == "better":
            head = ("**Better on its label-free checks** (held-out pseudo-queries, never trained on), not yet on real "
                    "queries: such gains do not always carry over to them. Judge a few queries on the **Search** "
                    "page (tick the hits that answer them) to check it.")
        elif unconfirmed:
            head += (" Judged by label-free checks only (held-out pseudo-queries, never trained on): no judged "
                     "query confirms it. Judge a few queries on the **Search** page (tick the hits that answer "
                     "them) to check it on real queries.")
        elif len(judged) < len(outcome["checks"]):
            head += " The judged queries decide; the other checks are for information."
        parts = [f"{c['name']}: {METRIC_LABELS.get(c['metric'], c['metric'])} "
                 f"{_delta(c['start'], c['end'])} over {c['n_queries']} queries ({c['verdict']})"
                 for c in outcome["checks"]]
        lines.append(head + " " + "; ".join(parts) + ".")
    elif status == "done":
        lines.append("Nothing to measure this run against: no validation queries were held out and the corpus has "
                     "no judged queries it did not train on.")
    test = s.test or {}
    if test.get("start") and test.get("trained"):
        a, b = test["start"], test["trained"]
        q = b.get("queries")
        lines.append(f"On the test split{f' ({q} queries)' if q else ''}: " + ", ".join(
            f"{METRIC_LABELS[k]} {_delta(a[k], b[k])}" for k in ("ndcg_at_10", "mrr_at_10")) + ".")
    if s.examples_per_s is not None and s.seconds is not None:
        lines.append(f"Trained at {s.examples_per_s:.1f} pairs/s in {fmt_duration(s.seconds)}.")
    return lines

