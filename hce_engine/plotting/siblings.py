"""Figures of the Siblings view (pure functions of :func:`hce_engine.views.siblings_view`'s dict).

The positive (the branch or document the loss wants on top) is drawn in a strong colour, its siblings
(the negatives) in grey; "before" is the comparison run (e.g. the zero-shot baseline), "after" the run.
"""
from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

POSITIVE = "#d62728"
POSITIVE_BEFORE = "#f4a3a3"
NEGATIVE = "#9aa5b1"
NEGATIVE_BEFORE = "#d3d8de"
AFTER_LINE = "#1f77b4"
BEFORE_LINE = "#aab4be"


def _short(text: str, limit: int = 48) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _names(candidates: list[dict], leaf: bool) -> list[str]:
    """Unique y-axis names: label (nodes) or title (documents), with an id suffix; HTML-escaped (plotly reads
    axis and hover text as HTML, and titles, ids and labels are data)."""
    if leaf:
        return [html.escape(f"{_short(c['title'] or c['ext_id'])} [{c['ext_id'] or c['doc_id']}]")
                for c in candidates]
    return [html.escape(f"{_short(c['label'])} (node {c['node']})") for c in candidates]


def level_title(entry: dict, leaf: bool = False, before_name: str = "before", after_name: str = "after") -> str:
    n = entry["n_candidates"]
    what = "documents in the leaf cluster" if leaf else "sibling branches"
    if "rank_compare" in entry:
        return f"{what}: rank {entry['rank_compare']}/{n} ({before_name}) → {entry['rank']}/{n} ({after_name})"
    return f"{what}: positive ranked {entry['rank']} of {n}"


def level_chart(entry: dict, leaf: bool = False, before_name: str = "before", after_name: str = "after",
                title: str | None = None) -> go.Figure:
    """Horizontal bars of one level's candidates (cosine to the anchor), positive highlighted.

    ``entry`` is one of ``view["levels"]`` or ``view["leaf"]`` (``leaf=True``). With compare scores it draws
    two panels sharing the candidate axis: before (left) and after (right); candidates are ordered by the
    "after" score, best on top.
    """
    cands = entry["candidates"]
    names = _names(cands, leaf)
    pos = [bool(c["is_positive"]) for c in cands]
    hover_extra = [(f"{c['size']} docs · {html.escape(', '.join(c.get('terms', [])[:5]))}" +
                    (f"<br>e.g. {html.escape(_short(c.get('example', ''), 70))}" if c.get("example") else ""))
                   if not leaf else html.escape(c["title"]) for c in cands]
    compare = "score_compare" in (cands[0] if cands else {})
    panels = [("score_compare", "rank_compare", before_name, POSITIVE_BEFORE, NEGATIVE_BEFORE)] if compare else []
    panels.append(("score", "rank", after_name if compare else "score", POSITIVE, NEGATIVE))
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[p[2] for p in panels] if compare else None)
    for col, (skey, rkey, name, cpos, cneg) in enumerate(panels, start=1):
        scores = [c[skey] for c in cands]
        ranks = [c[rkey] for c in cands]
        fig.add_trace(go.Bar(
            x=scores, y=names, orientation="h", name=name, showlegend=False,
            marker={"color": [cpos if p else cneg for p in pos],
                    "line": {"color": [POSITIVE if p else "rgba(0,0,0,0)" for p in pos], "width": 1.5}},
            text=[f"rank {r}" + (" ✔" if p else "") for r, p in zip(ranks, pos, strict=True)], textposition="outside",
            customdata=list(zip(ranks, hover_extra, strict=True)),
            hovertemplate="%{y}<br>cosine %{x:.3f} · rank %{customdata[0]}<br>%{customdata[1]}<extra>" + name +
                          "</extra>"), row=1, col=col)
    lo = min([0.0] + [c[k] for c in cands for k in ("score", "score_compare") if k in c])
    fig.update_xaxes(range=[lo - 0.05, 1.2], title_text="cosine to the anchor", zeroline=True)
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_layout(title=title or level_title(entry, leaf, before_name, after_name), bargap=0.25,
                      height=max(180, 70 + 26 * len(cands)), margin={"l": 10, "r": 10, "t": 60, "b": 40})
    return fig


def rank_summary_chart(view: dict, before_name: str = "before", after_name: str = "after") -> go.Figure:
    """The positive's rank at every level (and the leaf) - lower is better - before and after."""
    xs = [f"L{lv['level']}" for lv in view["levels"]] + ["documents"]
    entries = view["levels"] + [view["leaf"]]
    n = [e["n_candidates"] for e in entries]
    fig = go.Figure()
    if "rank_compare" in view["leaf"]:
        fig.add_trace(go.Scatter(x=xs, y=[e["rank_compare"] for e in entries], name=before_name,
                                 mode="lines+markers", line={"color": BEFORE_LINE, "dash": "dot"},
                                 customdata=n, hovertemplate="%{x}: rank %{y} of %{customdata}<extra>" +
                                 before_name + "</extra>"))
    fig.add_trace(go.Scatter(x=xs, y=[e["rank"] for e in entries], name=after_name if "rank_compare" in
                             view["leaf"] else "rank", mode="lines+markers",
                             line={"color": AFTER_LINE}, marker={"size": 10}, customdata=n,
                             hovertemplate="%{x}: rank %{y} of %{customdata}<extra></extra>"))
    fig.add_trace(go.Bar(x=xs, y=n, name="candidates", marker={"color": "rgba(154,165,177,0.25)"},
                         hovertemplate="%{x}: %{y} candidates<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title_text="rank of the positive (1 = top)", rangemode="tozero")
    fig.update_layout(title="Rank of the positive at each level", height=300, barmode="overlay",
                      margin={"l": 10, "r": 10, "t": 50, "b": 30}, legend={"orientation": "h", "y": -0.2})
    return fig


def level_table(view: dict, before_name: str = "before", after_name: str = "after") -> pd.DataFrame:
    """One row per level: what is contrasted, the positive's rank, probability and loss term."""
    rows = []
    compare = "rank_compare" in view["leaf"]
    for e, leaf in [(lv, False) for lv in view["levels"]] + [(view["leaf"], True)]:
        row = {"level": "documents" if leaf else f"L{e['level']}",
               "positive": _short(view["doc"]["title"] if leaf else e["positive_label"], 60),
               "candidates": e["n_candidates"]}
        if compare:
            row.update({f"rank ({before_name})": e["rank_compare"],
                        f"p ({before_name})": round(e["p_positive_compare"], 3),
                        f"loss ({before_name})": round(e["loss_compare"], 3)})
        row.update({f"rank ({after_name})" if compare else "rank": e["rank"],
                    f"p ({after_name})" if compare else "p(positive)": round(e["p_positive"], 3),
                    f"loss ({after_name})" if compare else "loss": round(e["loss"], 3)})
        rows.append(row)
    return pd.DataFrame(rows)


def path_text(view: dict, escape=lambda s: s) -> str:
    """"all documents › A › B › leaf › document" as one line of markdown (``escape`` for label text)."""
    parts = ["all documents"] + [f"**{escape(p['label'])}** ({p['size']})" for p in view["path"]]
    return " › ".join(parts) + f" › document: *{escape(view['doc']['title'] or view['doc']['ext_id'])}*"
