"""The Experiments page (AppTest, fake encoder), its figures and its offline HTML report.

The page creates an experiment from a recipe; the test runs it synchronously through the workspace (no
background thread) and reads the table, the verdicts, the plots and the downloads back from the page.
"""
from __future__ import annotations

import json
import os
import re
import time

import numpy as np
import pytest

pytest.importorskip("streamlit")
from conftest import write_toy_beir  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from hce_engine.evaluation import METRIC_LABELS  # noqa: E402
from hce_engine.experiments import summarize  # noqa: E402
from hce_engine.plotting import experiments as figs  # noqa: E402
from hce_engine.plotting import export  # noqa: E402

PAGE = os.path.join(os.path.dirname(__file__), "..", "ui", "app_pages", "experiments.py")
HOSTILE = "<b>bold</b>"


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=120)


def ok(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def texts(elements) -> list[str]:
    """Element texts as a reader sees them (user texts are markdown-escaped on the page)."""
    return [re.sub(r"\\(.)", r"\1", e.value) for e in elements]


def charts(at: AppTest) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def app_workspace():
    from ui.common import get_workspace
    return get_workspace()


# -- figures on a synthetic experiment ------------------------------------------------------------------------
def toy_results(arms=("ctl", HOSTILE, "b"), seeds=(0, 1, 2), n_queries: int = 12) -> dict:
    """What ``experiment_results`` returns, from made-up per-query values: arm i gains 0.05 * i."""
    rng = np.random.default_rng(0)
    per_query, seconds, runs = {}, {}, {}
    for i, arm in enumerate(arms):
        for s in seeds:
            values = {f"q{q}": {m: float(np.clip(0.4 + 0.05 * i + 0.1 * rng.standard_normal(), 0, 1))
                                for m in ("ndcg_at_10", "mrr_at_10", "recall_at_1", "recall_at_10",
                                          "recall_at_100")} for q in range(n_queries)}
            per_query[arm, s] = values
            seconds[arm, s] = 60.0 + i
            runs[f"{arm}/{s}"] = {"run_id": len(runs) + 1, "config": {}, "provenance": None,
                                  "ndcg_at_10": {q: v["ndcg_at_10"] for q, v in values.items()}}
    summary = summarize(list(arms), arms[0], per_query, seconds, n_boot=200)
    spec = {"corpus": "toy", "arms": {a: {"negatives": "random"} for a in arms}, "seeds": list(seeds),
            "preset": "quick", "settings": {"siblings": 2}, "control": arms[0], "split": "test",
            "name": "a <i>test</i>", "recipe": ""}
    return {"experiment_id": 7, "name": spec["name"], "spec": spec,
            "status": {"done": len(runs), "total": len(runs), "cells": []}, **summary, "runs": runs,
            "provenance": {"created": {"commit": "abc1234", "clean_tree": True, "recorded": "2026-01-01"}}}


def test_metric_figure_has_error_bars_seed_dots_and_escaped_arm_names():
    res = toy_results()
    spec = json.loads(figs.metric_figure(res).to_json())
    means, dots = spec["data"]
    assert means["name"] == "mean ± sd" and means["error_y"]["visible"]
    assert len(means["y"]) == 3 and len(means["error_y"]["array"]) == 3
    assert means["error_y"]["array"] == pytest.approx([a["ndcg_at_10"]["sd"] for a in res["arms"]])
    assert all(sd > 0 for sd in means["error_y"]["array"])
    assert len(dots["y"]) == 9  # 3 arms x 3 seeds
    ticks = spec["layout"]["xaxis"]["ticktext"]
    assert ticks == ["ctl (control)", "&lt;b&gt;bold&lt;/b&gt;", "b"]
    assert HOSTILE not in json.dumps(spec)  # never raw markup anywhere in the figure
    assert spec["layout"]["shapes"][0]["y0"] == pytest.approx(res["arms"][0]["ndcg_at_10"]["mean"])  # control line
    other = json.loads(figs.metric_figure(res, "recall_at_1").to_json())
    assert other["data"][0]["y"][1] == pytest.approx(res["arms"][1]["recall_at_1"]["mean"])
    assert "R@1" in other["layout"]["title"]["text"]


def test_scatter_figure_puts_queries_above_the_diagonal_when_the_arm_wins():
    res = toy_results()
    spec = json.loads(figs.scatter_figure(res, HOSTILE).to_json())
    diagonal, *groups = spec["data"]
    assert diagonal["mode"] == "lines" and diagonal["x"] == diagonal["y"]
    assert sum(len(g["x"]) for g in groups) == 12
    comp = next(c for c in res["comparisons"] if c["arm"] == HOSTILE)
    wins = next(g for g in groups if g["name"].startswith("arm better"))
    losses = next(g for g in groups if g["name"].startswith("control better"))
    assert len(wins["x"]) == comp["wins"] and len(losses["x"]) == comp["losses"]
    assert all(y > x for x, y in zip(wins["x"], wins["y"], strict=True))
    assert "&lt;b&gt;bold&lt;/b&gt;" in spec["layout"]["title"]["text"] and HOSTILE not in json.dumps(spec)
    # the per-query values are the seed averages the comparison used
    qids, ctl, arm, seeds = figs.per_query_pairs(res, HOSTILE)
    assert seeds == [0, 1, 2] and len(qids) == 12
    assert float(np.mean(arm - ctl)) == pytest.approx(comp["diff"])


def test_recall_figure_and_table():
    res = toy_results()
    spec = json.loads(figs.recall_figure(res).to_json())
    assert spec["layout"]["xaxis"]["type"] == "log"
    assert [t["x"] for t in spec["data"]] == [[1, 10, 100]] * 3
    assert all(t["error_y"]["visible"] for t in spec["data"])
    assert [t["name"] for t in spec["data"]] == ["ctl (control)", "&lt;b&gt;bold&lt;/b&gt;", "b"]
    table = figs.results_table(res)
    assert list(table["arm"]) == ["ctl (control)", HOSTILE, "b"]  # a table shows text as text
    assert {"nDCG@10", "nDCG@10 sd", "diff", "95% CI", "win/tie/loss"} <= set(table.columns)


def test_figures_without_finished_runs_say_so():
    res = toy_results()
    for arm in res["arms"]:
        for m in METRIC_LABELS:
            arm[m] = {"mean": None, "sd": None, "per_seed": []}
    res["runs"], res["comparisons"] = {}, []
    for fig in (figs.metric_figure(res), figs.recall_figure(res), figs.scatter_figure(res, "b")):
        assert fig.layout.annotations and not fig.data


def test_experiment_html_is_offline_and_escaped():
    res = toy_results()

    class FakeWorkspace:
        def experiment_results(self, experiment_id, n_boot=10000):
            assert experiment_id == 7
            return res
    html = export.experiment_html(FakeWorkspace(), 7)
    assert "<title>HCE experiment: a &lt;i&gt;test&lt;/i&gt;</title>" in html
    assert "<i>test</i>" not in html and HOSTILE not in html
    assert "commit abc1234 (clean checkout)" in html and "seeds 0, 1, 2" in html
    for c in res["comparisons"]:  # every verdict sentence, escaped
        assert c["verdict"].replace("<", "&lt;").replace(">", "&gt;") in html
    assert html.count('class="plotly-graph-div"') == 2 + len(res["comparisons"])  # metric, recall, scatters
    outside = re.sub(r"<script.*?</script>", "", html, flags=re.S)  # plotly.js is inlined, never fetched
    assert "<script src=" not in html and "<table" in outside and "NaN" not in outside


# -- the page ---------------------------------------------------------------------------------------------------
@pytest.fixture
def toy_app(app_env, tmp_path, fake_model):
    """The toy corpus (train and test qrels) imported into the app's workspace folder."""
    from hce_engine import Workspace
    ws = Workspace(app_env, default_model=fake_model)
    ws.import_corpus(write_toy_beir(tmp_path / "toy"), name="toy")
    ws.close()
    return app_env


def test_recipe_experiment_created_run_and_shown(toy_app, one_torch_thread):
    at = page().run()
    ok(at)
    assert at.title[0].value == "Experiments"
    assert any("No experiment on toy yet" in t for t in texts(at.caption))
    assert at.radio(key="exp_source").value == "recipe"
    at.selectbox(key="exp_recipe").set_value("negatives").run()
    shown = " ".join(texts(at.markdown))
    assert "Do tree siblings beat random negatives of the same count?" in shown and "seed noise" in shown
    at.text_input(key="exp_seeds").input("0, 1")
    at.selectbox(key="exp_preset").set_value("quick")
    at.text_input(key="exp_settings").input("siblings=2, batch_size=4")
    at.checkbox(key="exp_start_now").uncheck()
    at.button(key="exp_create").click().run()
    ok(at)
    ws = app_workspace()
    [exp] = ws.experiments()
    eid = exp["experiment_id"]
    spec = ws.experiment(eid).spec
    assert spec.recipe == "negatives" and spec.seeds == [0, 1] and spec.control == "random"
    assert spec.settings == {"siblings": 2, "batch_size": 4}
    assert not ws.experiment_status(eid).running
    # the queue before anything ran: six pending cells and a Run button
    assert len(at.dataframe) == 2  # the list of experiments, the queue; no results yet
    assert list(at.dataframe[0].value["runs"]) == ["0/6"]
    queue = at.dataframe[1].value
    assert len(queue) == 6 and set(queue["status"]) == {"pending"}
    assert at.button(key=f"exp_run_{eid}").label == "Run"

    status = ws.run_experiment(eid)  # synchronously, in this thread
    assert status.done == status.total == 6 and not status.errors
    at.run()
    ok(at)
    queue = at.dataframe[1].value
    assert set(queue["status"]) == {"done"} and queue["run"].notna().all()
    assert "Every run is finished." in texts(at.caption)
    table = at.dataframe[2].value
    assert list(table["arm"]) == ["random (control)", "siblings", "in-batch"]
    assert list(table["seeds"]) == [2, 2, 2] and table["nDCG@10"].notna().all()
    verdicts = [t for t in texts(at.info) + texts(at.success) + texts(at.warning) if " against random: " in t]
    assert sorted(v.split(" against ")[0] for v in verdicts) == ["in-batch", "siblings"]
    titles = [c["layout"]["title"]["text"] for c in charts(at)]
    assert titles[0].startswith("nDCG@10 per arm") and titles[1].startswith("Recall@k per arm")
    assert titles[2].startswith("siblings against random per query")
    assert charts(at)[0]["data"][0]["error_y"]["visible"]
    at.selectbox(key=f"exp_scatter_arm_{eid}").set_value("in-batch").run()
    ok(at)
    assert charts(at)[2]["layout"]["title"]["text"].startswith("in-batch against random per query")
    downloads = {d.proto.label: d for d in at.get("download_button")}
    assert set(downloads) == {"Table (CSV)", "Full results (JSON)", "Report (HTML)"}
    assert downloads["Table (CSV)"].proto.url and downloads["Full results (JSON)"].proto.url
    assert downloads["Report (HTML)"].proto.deferred_file_id  # the 5 MB page is built only when clicked

    # the offline report of the same experiment
    html = export.experiment_html(ws, eid, n_boot=200)
    assert "Do tree siblings beat random negatives of the same count?" in html and "in-batch against random" in html
    assert html.count('class="plotly-graph-div"') == 4


def test_a_running_experiment_shows_its_live_queue_and_cancels(toy_app, one_torch_thread):
    """While this process runs an experiment (its first run queued behind a held training slot), the page shows
    the cells' progress and the current run's stage; Cancel stops it."""
    from hce_engine import slot
    from hce_engine.experiments import ExperimentSpec
    from hce_engine.workspace.shared import TRAIN_LOCK
    ws = app_workspace()
    eid = ws.create_experiment(ExperimentSpec(corpus="toy", preset="quick", settings={"siblings": 2, "batch_size": 4},
                                              arms={"random": {"negatives": "random"},
                                                    "siblings": {"negatives": "siblings"}}))
    with slot.hold(os.path.join(ws.path, TRAIN_LOCK)):
        ws.start_experiment(eid)
        queued = "random seed 0 (1/2): queued"
        for _ in range(400):
            if getattr(ws.experiment_status(eid).progress, "stage", None) == queued:
                break
            time.sleep(0.05)
        at = page().run()
        ok(at)
        bars = [e.proto.text for e in at.get("progress")]
        assert bars == ["0 of 2 runs finished", "random seed 0 \\(1/2\\): waiting to start"]
        at.button(key=f"exp_cancel_{eid}").click().run()
        ok(at)
        assert any(t.startswith("Cancelling") for t in texts(at.caption)) and ws.experiment_status(eid).cancelling
        ws.experiment_jobs.wait(eid, 30)
    assert [c.status for c in ws.experiment_status(eid).cells] == ["cancelled", "pending"]


def test_bad_arm_line_shows_the_error_and_creates_nothing(toy_app):
    at = page().run()
    at.radio(key="exp_source").set_value("custom arms").run()
    at.text_area(key="exp_arms").input("random: negatives=random\nsiblings: negatives")
    at.button(key="exp_create").click().run()
    assert not at.exception
    [err] = texts(at.error)
    assert "arm line 2 (siblings): expected key=value, got 'negatives'" in err
    at.text_area(key="exp_arms").input("random: negatives=random\nsiblings: negatives=siblings, colour=blue")
    at.button(key="exp_create").click().run()
    [err] = texts(at.error)
    assert "unknown setting 'colour'" in err
    assert app_workspace().experiments() == []
    assert any("No experiment on toy yet" in t for t in texts(at.caption))


def test_empty_workspace_points_to_the_corpus_page(app_env):
    at = page().run()
    ok(at)
    assert at.title[0].value == "Experiments" and any("No corpus yet" in t for t in texts(at.info))


def test_corpus_without_judged_queries_says_what_to_do(app_env, tmp_path, fake_model):
    from hce_engine import Workspace
    docs = tmp_path / "notes.jsonl"
    docs.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"note number {i} about things"}) + "\n"
                            for i in range(12)))
    ws = Workspace(app_env, default_model=fake_model)
    ws.import_corpus(str(docs), name="notes")
    ws.close()
    at = page().run()
    ok(at)
    [info] = [t for t in texts(at.info) if "no judged queries" in t]
    assert "**Corpus** page" in info and "**Search** page" in info
    assert not at.get("button")  # nothing to create from
