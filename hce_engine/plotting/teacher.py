"""Figures of the self signal (pure functions of :func:`hce_engine.views.teacher_view`'s dict).

The teacher (hybrid search with the starting encoder) gives each sibling of the pseudo-query's source a
probability; the student (the dense encoder) is drawn beside it before and after training. Training moves
the student's bars towards the teacher's.
"""
from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from .siblings import _short

TEACHER = "#2ca02c"
BEFORE = "#c7ced6"
AFTER = "#1f77b4"


def _names(candidates: list[dict]) -> list[str]:
    """Unique, HTML-escaped y-axis names: short title (or id) with the id as suffix."""
    return [html.escape(f"{_short(c['title'] or c['ext_id'], 40)} [{c['ext_id'] or c['doc_id']}]") for c in candidates]


def teacher_figure(view: dict, before_name: str = "student before", after_name: str = "student after") -> go.Figure:
    """Grouped horizontal bars, one group per candidate (the teacher's best on top): the teacher's
    probability beside the student's before and after training (softmaxes over all the siblings)."""
    cands = view["candidates"]
    names = _names(cands)
    hover = [html.escape(_short(c["title"] or c["ext_id"], 90)) for c in cands]
    fig = go.Figure()
    for key, rank, name, colour, extra in [
            ("p_teacher", "rank_teacher", "teacher (hybrid)", TEACHER, "teacher score %{customdata[2]:.3f} · "
                                                                        "BM25 %{customdata[3]:.2f}"),
            ("p_before", "rank_before", before_name, BEFORE, "cosine %{customdata[4]:.3f}"),
            ("p_after", "rank_after", after_name, AFTER, "cosine %{customdata[5]:.3f}")]:
        fig.add_trace(go.Bar(
            x=[c[key] for c in cands], y=names, orientation="h", name=name, marker={"color": colour},
            customdata=[[h, c[rank], c["teacher"], c["bm25"], c["cos_before"], c["cos_after"]]
                        for h, c in zip(hover, cands, strict=True)],
            hovertemplate="%{customdata[0]}<br>p %{x:.3f} · rank %{customdata[1]}<br>" + extra +
                          "<extra>" + html.escape(name) + "</extra>"))
    shown, n = len(cands), view["n_candidates"]
    fig.update_xaxes(title_text="probability over the siblings (softmax)", rangemode="tozero")
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_layout(
        title=f"Teacher vs student over {n} siblings" + (f" (top {shown} shown)" if shown < n else ""),
        barmode="group", bargap=0.2, bargroupgap=0.05, height=max(220, 110 + 48 * shown),
        margin={"l": 10, "r": 10, "t": 80, "b": 40},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom", "traceorder": "normal"})
    return fig


def teacher_table(view: dict) -> pd.DataFrame:
    """One row per candidate (the teacher's best first): title, BM25, teacher score, probabilities, ranks."""
    return pd.DataFrame([{"title": _short(c["title"] or c["ext_id"], 60), "BM25": round(c["bm25"], 2),
                          "teacher score": round(c["teacher"], 3), "p teacher": round(c["p_teacher"], 3),
                          "p before": round(c["p_before"], 3), "p after": round(c["p_after"], 3),
                          "rank teacher": c["rank_teacher"], "rank before": c["rank_before"],
                          "rank after": c["rank_after"]} for c in view["candidates"]])


def teacher_summary(view: dict) -> str:
    """One markdown sentence: how far the student is from the teacher before and after training."""
    def rho(v: float | None) -> str:
        return "—" if v is None else f"{v:+.2f}"
    closer = "closer to" if view["kl_after"] < view["kl_before"] else "no closer to"
    return (f"Over these {view['n_candidates']} siblings the student came **{closer}** the teacher: "
            f"KL(teacher ‖ student) {view['kl_before']:.3f} → {view['kl_after']:.3f} (0 = the same probabilities), "
            f"rank correlation with the teacher's order {rho(view['spearman_before'])} → "
            f"{rho(view['spearman_after'])} (1 = the same order).")
