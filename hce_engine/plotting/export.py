"""Shareable views: figures written as one self-contained HTML file that opens offline in any browser.

plotly.js is embedded once (no CDN, no network); every text in the page is escaped (titles, captions),
and the figures' own texts were escaped when they were built. The map export carries its node labels, hover
texts and, when a query is given, the query and its ringed hits; the tree export is the sunburst (or icicle)
with its labels.

Example:
    >>> html = map_html(ws, run_id=7, level=2, query="vitamin D and bone density")
    >>> open("map.html", "w").write(html)
"""
from __future__ import annotations

import html as _html
import re
from typing import Any, Sequence

__all__ = ["page_html", "map_html", "tree_html", "learn_html", "experiment_html"]


def _markdown(text: str) -> str:
    """The walkthrough's small markdown (paragraphs, **bold**, *italic*) as escaped HTML."""
    out = []
    for para in text.split("\n\n"):
        h = _html.escape(para)
        h = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", h)
        h = re.sub(r"\*(.+?)\*", r"<i>\1</i>", h)
        out.append(f"<p>{h}</p>")
    return "".join(out)


def page_html(title: str, sections: Sequence[tuple[str, Any]], note: str = "") -> str:
    """One HTML page: a title, an optional note, then (caption, item) sections.

    Args:
        title: the page title (plain text).
        sections: (caption, item) pairs, in order; an item is a ``plotly.graph_objects.Figure``, a pandas
            DataFrame (a table) or a markdown string (paragraphs, **bold**, *italic*); an empty caption adds no
            heading.
        note: a plain-text paragraph under the title (e.g. where the view came from).
    Returns:
        The page as a string (about 4.7 MB: plotly.js is inlined so it works offline).
    """
    from plotly.offline import get_plotlyjs
    parts = []
    for i, (caption, item) in enumerate(sections):
        if isinstance(item, str):  # markdown text (the walkthrough's paragraphs)
            body = _markdown(item)
        elif hasattr(item, "to_html") and hasattr(item, "columns"):  # a table (pandas DataFrame)
            body = item.to_html(index=False, escape=True, border=0)
        else:
            body = item.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{i}",
                                config={"displaylogo": False, "responsive": True})
        parts.append(f"<section>{'<h2>' + _html.escape(caption) + '</h2>' if caption else ''}{body}</section>")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_html.escape(title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}"
            "h1{font-size:1.6em}h2{font-size:1.15em;margin-top:2em}p.note{color:#555}"
            "table{border-collapse:collapse;font-size:.9em}td,th{padding:3px 8px;border-bottom:1px solid #ddd}</style>"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
            f"<h1>{_html.escape(title)}</h1>" + (f"<p class=\"note\">{_html.escape(note)}</p>" if note else "")
            + "".join(parts) + "</body></html>")


def _run_title(ws, run_id: int) -> str:
    info = ws.run(run_id)
    return f"{info.corpus} · run {run_id} ({info.kind})"


def map_html(ws, run_id: int, level: int = 1, query: str | None = None, labels: bool = True) -> str:
    """The run's map at tree level ``level`` with its node labels (and ``query`` placed with its hits)."""
    from .. import views
    from .map import map_figure
    frame = views.map_frame(ws, run_id, level)
    placed = views.place_query(ws, run_id, query, k=10) if query and query.strip() else None
    fig = map_figure(views.thin_for_display(frame), query=placed, labels=views.map_labels(frame) if labels else None,
                     height=720)
    caption = f"Map coloured by tree level {level}"
    if query and placed is not None:
        caption += f"; query: {query.strip()}"
    return page_html(f"HCE Explorer map: {_run_title(ws, run_id)}", [(caption, fig)],
                     note=f"{len(frame)} documents placed by UMAP from their vectors (nearby = similar); hover a "
                          "point for its title and its path of tree labels.")


def tree_html(ws, run_id: int, kind: str = "sunburst", levels: int = 3) -> str:
    """The run's tree as a sunburst or icicle of its top ``levels`` levels, labelled."""
    from .. import views
    from .tree import hierarchy_chart
    nodes = views.tree_overview(ws, run_id)["nodes"]
    fig = hierarchy_chart(nodes, kind=kind, levels=levels)
    return page_html(f"HCE Explorer tree: {_run_title(ws, run_id)}", [(f"The cluster tree ({kind})", fig)],
                     note="Each ring is a tree level; a node's size is its number of documents, its label its "
                          "most telling words.")


def learn_html(ws, corpus: str) -> str:
    """The Learn walkthrough for ``corpus`` as one offline page: the six steps' texts, the map (computed if
    missing), the tree, the example pair's path, siblings and loss, what training changed and, when the trained
    run learned from the self signal, its teacher on the example document (or the first that yields one)."""
    import pandas as pd

    from .. import views
    from ..errors import InputError, NotFoundError
    from ..views.walkthrough import LOSS_LATEX, NO_TRAINED_RUN, SELF_STEP, STEPS, TEXT
    from . import map as map_figs
    from . import siblings as sib_figs
    from . import teacher as teacher_figs
    from .tree import hierarchy_chart
    w = views.walkthrough(ws, corpus)
    start, after = w["start"].run_id, w["after"].run_id if w["after"] else None
    doc_id, query = w["pair"]
    view = views.siblings_view(ws, start, doc_id=doc_id, query=query, max_siblings=12,
                               positive_text=w["positive_text"])
    secs: list[tuple[str, object]] = []

    def text(step: str) -> None:
        head, body = TEXT[step]
        secs.append((head, body.format(**w)))
    text(STEPS[0])
    secs.append(("", map_figs.map_figure(views.thin_for_display(views.map_frame(ws, start, 0)), height=480)))
    text(STEPS[1])
    secs.append(("", hierarchy_chart(w["tree"]["nodes"], "sunburst", min(w["depth"], 3))))
    frame = views.map_frame(ws, start, w["level"])
    secs.append(("", map_figs.map_figure(views.thin_for_display(frame), labels=views.map_labels(frame), height=480)))
    text(STEPS[2])
    if query:
        secs.append(("", f"**Query:** {query}"))
    secs.append(("", pd.DataFrame([{"level": p["level"], "node": p["label"], "documents": p["size"]}
                                   for p in view["path"]])))
    text(STEPS[3])
    for lv in view["levels"]:
        secs.append(("", sib_figs.level_chart(lv, title=f"Level {lv['level']}: " + sib_figs.level_title(lv))))
    secs.append(("", sib_figs.level_chart(view["leaf"], leaf=True, title="Documents: "
                                          + sib_figs.level_title(view["leaf"], leaf=True))))
    text(STEPS[4])
    secs.append(("", f"L = leaf term + mean of the level terms (LaTeX: {LOSS_LATEX})"))
    secs.append(("", sib_figs.level_table(view)))
    if after is None:
        secs.append((TEXT[STEPS[5]][0], NO_TRAINED_RUN))
    else:
        text(STEPS[5])
        tv = views.siblings_view(ws, after, doc_id=doc_id, query=query, compare_run=start, max_siblings=12,
                                 positive_text=w["positive_text"])
        names = (f"before #{start}", f"after #{after}")
        secs.append(("", sib_figs.rank_summary_chart(tv, *names)))
        secs.append(("", sib_figs.level_chart(tv["leaf"], True, *names)))
    if after is not None and w["is_self"]:  # (is_self: ``after`` learned from the self signal)
        text(SELF_STEP)
        try:
            tv = views.teacher_view(ws, after, doc_id=doc_id, max_candidates=12)
        except (InputError, NotFoundError):
            tv = views.teacher_view(ws, after, max_candidates=12)
        secs.append(("", f"**Pseudo-query** (a sentence of *{tv['source']['title'] or tv['source']['ext_id']}*): "
                         f"“{tv['query']}”"))
        secs.append(("", teacher_figs.teacher_figure(tv, f"student before #{tv['baseline_run']}",
                                                     f"student after #{after}")))
        secs.append(("", teacher_figs.teacher_summary(tv)))
        secs.append(("", teacher_figs.teacher_table(tv)))
    return page_html(f"How HCE trains an encoder: {corpus}", secs,
                     note=f"The HCE Explorer walkthrough on corpus {corpus!r}, starting encoder run {start}"
                          + (f", trained run {after}" if after else "") + ".")


def experiment_html(ws, experiment_id: int, n_boot: int = 10000, results: dict | None = None) -> str:
    """An experiment's report as one offline page: its spec and provenance, the results table, the verdicts,
    the headline metric per arm, the recall@k curves and one per-query scatter per arm against the control.
    ``results``: ``ws.experiment_results(experiment_id)`` when the caller has it already (else measured)."""
    from ..experiments import RECIPES
    from .experiments import metric_figure, recall_figure, results_table, scatter_figure
    res = results if results is not None else ws.experiment_results(experiment_id, n_boot=n_boot)
    spec, made = res["spec"], (res.get("provenance") or {}).get("created") or {}
    arms = "; ".join(f"{arm}: " + (", ".join(f"{k}={v}" for k, v in values.items()) or "the preset unchanged")
                     for arm, values in spec["arms"].items())
    shared = ", ".join(f"{k}={v}" for k, v in spec["settings"].items()) or "none"
    commit = made.get("commit") or "unknown"
    tree = made.get("clean_tree")
    clean = "clean checkout" if tree is True else "uncommitted changes" if tree is False else "checkout state unknown"
    note = (f"Experiment {res['experiment_id']} on corpus {spec['corpus']!r}: preset {spec['preset'] or 'default'}, "
            f"shared settings {shared}; arms {arms}; seeds {', '.join(map(str, spec['seeds']))}; compared on the "
            f"{spec['split']!r} split ({res['queries']} judged queries) against the control {spec['control']!r}. "
            f"{res['status']['done']} of {res['status']['total']} runs finished. Code: commit {commit} "
            f"({clean}), recorded {made.get('recorded') or 'unknown'}.")
    secs: list[tuple[str, Any]] = []
    if spec.get("recipe") in RECIPES:
        secs.append(("What it shows", RECIPES[spec["recipe"]].shows))
    table = results_table(res).round(4)
    secs.append(("Results (mean over seeds; differences paired by query)",
                 table.astype(object).where(table.notna(), "—")))
    verdicts = [c["verdict"] for c in res["comparisons"]]
    secs.append(("Verdicts", "\n\n".join(verdicts) if verdicts else
                 "No comparison yet: the control and another arm need a finished run of the same seed."))
    secs.append(("", metric_figure(res)))
    secs.append(("", recall_figure(res)))
    for c in res["comparisons"]:
        secs.append(("", scatter_figure(res, c["arm"])))
    return page_html(f"HCE experiment: {res['name']}", secs, note=note)
