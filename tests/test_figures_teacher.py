"""Figure builders of the self signal (teacher vs student): pure functions, tested without Streamlit."""
from __future__ import annotations

import json

from hce_engine.plotting import teacher as teacher_figs


def toy_teacher_view(n: int = 4, shown: int | None = None) -> dict:
    shown = n if shown is None else shown
    p_t = [0.5, 0.3, 0.15, 0.05][:n]
    cands = [{"doc_id": 10 + i, "ext_id": f"d{i}", "title": ["<b>bold</b> claim", "", "a very long title " * 6,
                                                             "plain"][i],
              "bm25": 3.0 - i, "cos_before": 0.2 + 0.1 * i, "cos_after": 0.7 - 0.1 * i, "teacher": 0.9 - 0.2 * i,
              "p_teacher": p_t[i], "p_before": p_t[::-1][i], "p_after": p_t[i] * 0.9 + 0.025,
              "rank_teacher": i + 1, "rank_before": n - i, "rank_after": i + 1} for i in range(n)]
    return {"run_id": 2, "baseline_run": 1, "query": "rocket launch 1.", "n_candidates": n,
            "candidates": cands[:shown], "kl_before": 0.42, "kl_after": 0.05, "spearman_before": -1.0,
            "spearman_after": 1.0, "source": {"doc_id": 9, "ext_id": "d9", "title": "src", "snippet": ""}}


def test_teacher_figure_groups_teacher_before_after_per_candidate():
    view = toy_teacher_view()
    fig = teacher_figs.teacher_figure(view, "student before #1", "student after #2")
    spec = json.loads(fig.to_json())
    bars = spec["data"]
    assert [b["name"] for b in bars] == ["teacher (hybrid)", "student before #1", "student after #2"]
    assert all(b["type"] == "bar" and b["orientation"] == "h" for b in bars)
    assert spec["layout"]["barmode"] == "group"
    assert [round(x, 3) for x in bars[0]["x"]] == [0.5, 0.3, 0.15, 0.05]
    assert bars[1]["x"][0] == 0.05 and bars[2]["x"][0] == view["candidates"][0]["p_after"]
    # the teacher's best first, drawn on top; labels short, unique, escaped (titles are data)
    assert spec["layout"]["yaxis"]["autorange"] == "reversed"
    names = bars[0]["y"]
    assert names[0] == "&lt;b&gt;bold&lt;/b&gt; claim [d0]" and names[1] == "d1 [d1]"
    assert len(set(names)) == 4 and all(len(y) < 60 for y in names) and "…" in names[2]
    assert "4 siblings" in spec["layout"]["title"]["text"]


def test_teacher_figure_says_when_only_the_top_is_shown_and_the_table_and_summary_read_it():
    view = toy_teacher_view(4, shown=2)
    fig = teacher_figs.teacher_figure(view)
    assert "top 2 shown" in fig.layout.title.text and len(fig.data[0].y) == 2
    table = teacher_figs.teacher_table(view)
    assert list(table.columns) == ["title", "BM25", "teacher score", "p teacher", "p before", "p after",
                                   "rank teacher", "rank before", "rank after"]
    assert len(table) == 2 and table["rank teacher"].tolist() == [1, 2]
    text = teacher_figs.teacher_summary(view)
    assert "**closer to**" in text and "0.420 → 0.050" in text and "-1.00 → +1.00" in text
    worse = teacher_figs.teacher_summary({**view, "kl_after": 0.9, "spearman_before": None})
    assert "no closer to" in worse and "— → +1.00" in worse
