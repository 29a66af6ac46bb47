"""Unit tests of the pure training figure builders and the plain-words outcome (no Streamlit)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hce_engine.plotting import fmt_duration, length_histogram
from hce_engine.workspace import Run, RunStatus
from hce_engine.plotting.training import (describe_outcome, level_matrix, loss_figure, sibling_accuracy_figure, smooth,
                                 validation_figure)


def make_log(steps: int = 30, levels: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "step": np.arange(1, steps + 1), "epoch": np.linspace(0, 1, steps),
        "loss": 3 - np.linspace(0, 2, steps) + rng.normal(0, 0.1, steps),
        "level_losses": [list(rng.random(levels)) for _ in range(steps)],
        "level_acc": [list(rng.random(levels)) for _ in range(steps)],
        "leaf_acc": rng.random(steps), "examples_per_s": np.full(steps, 12.0), "eta_s": np.arange(steps)[::-1],
    })


def names(fig) -> list[str]:
    return [t.name for t in fig.data]


def test_loss_figure_has_total_and_every_level():
    fig = loss_figure(make_log(levels=3))
    assert names(fig) == ["total (raw)", "total", "level 1", "level 2", "level 3"]
    assert fig.layout.title.text == "Training loss"
    assert len(fig.data[0].x) == 30


def test_loss_caption_names_only_the_lines_drawn():
    """The step log has no leaf loss: the caption says the leaf term is inside the total, and no line claims it."""
    from hce_engine.plotting.training import LOSS_NOTE
    assert not any("leaf" in n for n in names(loss_figure(make_log(levels=2))))
    assert "leaf term alone is not logged" in LOSS_NOTE and "Black: the total" in LOSS_NOTE


def test_sibling_accuracy_per_level_and_leaf_in_unit_range():
    fig = sibling_accuracy_figure(make_log(levels=2))
    assert names(fig) == ["level 1", "level 2", "leaf (documents)"]
    assert tuple(fig.layout.yaxis.range) == (0, 1.02)
    assert all(0 <= v <= 1 for t in fig.data for v in t.y)


def test_empty_log_gives_a_labelled_empty_figure():
    for build in (loss_figure, sibling_accuracy_figure):
        fig = build(pd.DataFrame(columns=["step", "loss", "level_losses", "level_acc", "leaf_acc"]))
        assert not fig.data and "no steps" in fig.layout.annotations[0].text
    assert "no validation" in validation_figure(None).layout.annotations[0].text


def test_ragged_levels_after_a_rebuild_are_nan_padded():
    m = level_matrix([[1.0, 2.0], [3.0], None, [4.0, 5.0, 6.0]])
    assert m.shape == (4, 3)
    assert m[1, 0] == 3.0 and math.isnan(m[1, 1]) and np.isnan(m[2]).all() and m[3, 2] == 6.0


def test_smooth_is_a_trailing_mean():
    assert list(smooth([0, 2, 4, 6], window=2)) == [0, 1, 3, 5]
    assert len(smooth(np.arange(100))) == 100


def test_validation_figure_epochs_and_start_line():
    hist = [{"epoch": 0, "mrr_at_10": 0.41, "recall_at_10": 0.6}, {"epoch": 1, "mrr_at_10": 0.47, "recall_at_10": 0.7}]
    fig = validation_figure(hist)
    assert names(fig) == ["MRR@10", "R@10"]
    assert list(fig.data[0].x) == [0, 1] and list(fig.data[0].y) == [0.41, 0.47]
    assert fig.layout.shapes[0].y0 == 0.41


def test_outcome_in_plain_words():
    from hce_engine.evaluation import check, outcome
    metrics = lambda n, m: {"ndcg_at_10": n, "mrr_at_10": m, "recall_at_10": 0, "recall_at_100": 0,  # noqa: E731
                            "queries": 300}
    checks = [check("validation", "mrr_at_10", 0.41, 0.47, 80),
              check("judged queries (test)", "ndcg_at_10", 0.644, 0.752, 300)]
    summary = {"outcome": outcome(checks), "improved": True,
               "test": {"start": metrics(0.644, 0.6), "trained": metrics(0.752, 0.7)},
               "examples_per_s": 11.5, "seconds": 300}
    run = _run("done", summary=summary)
    lines = describe_outcome(run)
    assert lines[0] == ("**Better than the starting encoder.** The judged queries decide; the other checks are for "
                        "information. validation: MRR@10 0.410 → 0.470 (+6.0 points) over "
                        "80 queries (better); judged queries (test): nDCG@10 0.644 → 0.752 (+10.8 points) over 300 "
                        "queries (better).")
    assert "test split (300 queries)" in lines[1] and "0.644 → 0.752 (+10.8 points)" in lines[1]
    assert lines[2] == "Trained at 11.5 pairs/s in 5 min."
    summary["outcome"] = outcome([checks[0], check("judged queries (test)", "ndcg_at_10", 0.644, 0.60, 300)])
    assert "Worse than the starting encoder" in describe_outcome(_run("done", summary=summary))[0]
    assert "unless you pick this run" in describe_outcome(_run("done", summary=summary))[0] and "label-free" not in describe_outcome(_run("done", summary=summary))[0]
    summary["outcome"] = outcome([check("teacher agreement (held-out pseudo-queries)", "ndcg_at_10", 0.75, 0.77, 100)])
    assert describe_outcome(_run("done", summary=summary))[0].startswith("**Better on its label-free checks** (held-out pseudo-queries, never "
                                               "trained on), not yet on real queries")
    summary["outcome"] = outcome([check("known item (held-out pseudo-queries)", "mrr_at_10", 0.75, 0.751, 100)])
    assert "**No better than the starting encoder**" in describe_outcome(_run("done", summary=summary))[0]
    assert "Judged by label-free checks only" in describe_outcome(_run("done", summary=summary))[0]


def test_outcome_of_failed_cancelled_and_unvalidated_runs():
    assert describe_outcome(_run("failed", error="boom")) == ["The run failed: boom."]
    assert describe_outcome(_run("cancelled", model_path="/m"))[0].startswith(
        "The run was cancelled: the best weights")
    assert "Nothing to measure" in describe_outcome(_run("done", summary={}))[0]


def _run(status: str, **fields) -> Run:
    return Run(run_id=1, corpus="toy", corpus_id=1, kind="train", status=RunStatus(status), config_dict={}, **fields)


def test_fmt_duration():
    assert [fmt_duration(s) for s in (None, 5, 89, 600, 7300)] == ["—", "5 s", "89 s", "10 min", "2 h 2 min"]


def test_length_histogram_bars_from_engine_bins():
    fig = length_histogram({"edges": [0.0, 10.0, 20.0], "counts": [3, 5]})
    assert list(fig.data[0].x) == [5.0, 15.0] and list(fig.data[0].y) == [3, 5]
    assert list(fig.data[0].customdata) == ["0–10", "10–20+"]
    assert not length_histogram({"edges": [], "counts": []}).data
