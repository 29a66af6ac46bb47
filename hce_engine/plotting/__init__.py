"""Pure plotly figure builders and formatting helpers (no Streamlit): plain data in (what `hce_engine.views`
returns), figures/text out. The app draws them; `export` writes them as self-contained HTML pages."""
from __future__ import annotations

from ..progress import fmt_duration as fmt_duration


def length_histogram(hist: dict, title: str = "Document length (words)"):
    """Bar chart of ``views.corpus_stats(...)["words_hist"]`` ({edges, counts}); the last bin holds the tail."""
    import plotly.graph_objects as go
    edges, counts = hist.get("edges") or [], hist.get("counts") or []
    fig = go.Figure(layout=dict(title=title, height=300, margin=dict(l=10, r=10, t=40, b=10), bargap=0.05,
                                template="plotly_white", xaxis_title="words per document", yaxis_title="documents"))
    if counts:
        centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
        widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
        labels = [f"{a:.0f}–{b:.0f}" + ("+" if i == len(counts) - 1 else "") for i, (a, b) in
                  enumerate(zip(edges[:-1], edges[1:], strict=True))]
        fig.add_trace(go.Bar(x=centers, y=counts, width=widths, customdata=labels, name="documents",
                             hovertemplate="%{customdata} words: %{y} documents<extra></extra>"))
    return fig
