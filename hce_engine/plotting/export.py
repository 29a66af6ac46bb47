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
from typing import Sequence

__all__ = ["page_html", "map_html", "tree_html"]


def page_html(title: str, sections: Sequence[tuple[str, object]], note: str = "") -> str:
    """One HTML page: a title, an optional note, then (caption, plotly figure) sections.

    Args:
        title: the page title (plain text).
        sections: (caption, ``plotly.graph_objects.Figure``) pairs, drawn in order.
        note: a plain-text paragraph under the title (e.g. where the view came from).
    Returns:
        The page as a string (about 4.7 MB: plotly.js is inlined so it works offline).
    """
    from plotly.offline import get_plotlyjs
    parts = []
    for i, (caption, fig) in enumerate(sections):
        body = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{i}",
                           config={"displaylogo": False, "responsive": True})
        parts.append(f"<section><h2>{_html.escape(caption)}</h2>{body}</section>")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_html.escape(title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}"
            "h1{font-size:1.6em}h2{font-size:1.15em;margin-top:2em}p.note{color:#555}</style>"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
            f"<h1>{_html.escape(title)}</h1>" + (f"<p class=\"note\">{_html.escape(note)}</p>" if note else "")
            + "".join(parts) + "</body></html>")


def _run_title(ws, run_id: int) -> str:
    info = ws.run(run_id)
    return f"{info['corpus']} · run {run_id} ({info['kind']})"


def map_html(ws, run_id: int, level: int = 1, query: str | None = None, labels: bool = True) -> str:
    """The run's map at tree level ``level`` with its node labels (and ``query`` placed with its hits)."""
    from .. import views
    from .map import map_figure
    frame = views.map_frame(ws, run_id, level)
    placed = views.place_query(ws, run_id, query, k=10) if query and query.strip() else None
    fig = map_figure(views.thin_for_display(frame), query=placed, labels=views.map_labels(frame) if labels else None,
                     height=720)
    caption = f"Map coloured by tree level {level}" + (f"; query: {query.strip()}" if placed is not None else "")
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
