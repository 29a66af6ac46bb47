"""The growth stress test (``run_growth``, ``hce experiment growth``, benchmarks/growth_stress.py): the hold-out and
its old/new queries, the steps reaching the requested shares, every row and the retrained one, the original corpus
left as it was, the conclusions; the Experiments page's section."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from hce_engine.errors import InputError
from hce_engine.experiments.growth import (
    check_steps,
    conclusions,
    gain_retained,
    growth_name,
    hold_out,
    run_growth,
    step_sizes,
    table_rows,
)

TINY = {"siblings": 2, "batch_size": 4}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snapshot(ws, corpus: str) -> dict:
    """What run_growth must not change: the corpus's documents, queries, judgements and runs."""
    cid = ws.store.corpus_id(corpus)
    return {"docs": ws.documents(corpus, include_removed=True)[["doc_id", "ext_id", "removed"]].to_dict("list"),
            "queries": ws.store.queries(cid), "qrels": {s: ws.store.qrels(cid, s) for s in ws.splits(corpus)},
            "runs": [r.run_id for r in ws.runs(corpus)]}


def test_hold_out_splits_documents_and_queries():
    docs = [f"d{i}" for i in range(10)]
    judged = {"qa": {"d0": 1}, "qb": {"d1": 1, "d2": 1}, "qc": {"d3": 0, "d4": 2}, "qd": {"gone": 1},
              "qe": {"d5": 0}}
    out = hold_out(docs, judged, 0.4, seed=3)
    assert len(out["held"]) == 4 and sorted(out["kept"] + out["held"]) == sorted(docs)
    assert out["kept"] == [d for d in docs if d in set(out["kept"])]  # corpus order
    held = set(out["held"])
    for q in ("qa", "qb", "qc"):  # relevance 0 does not count; qd/qe have no relevant live document
        rel = {d for d, v in judged[q].items() if v > 0}
        assert (q in out["new"]) == bool(rel & held) and (q in out["old"]) == (not rel & held)
    assert "qd" not in out["old"] + out["new"] and "qe" not in out["old"] + out["new"]
    assert hold_out(docs, judged, 0.4, seed=3) == out and hold_out(docs, judged, 0.4, seed=4)["held"] != out["held"]
    for bad in (0.0, 1.0, 0.01):
        with pytest.raises(InputError):
            hold_out(docs, judged, bad, seed=0)


def test_steps_sizes_and_names():
    assert step_sizes(18, 18, [0.1, 0.25, 0.5]) == [2, 6, 18]
    assert step_sizes(18, 10, [0.25, 0.6]) == [6, 10]  # capped at every held-out document
    assert check_steps((0.1, 0.25)) == [0.1, 0.25]
    for bad in ([], [0.5, 0.25], [0.1, 1.0], [0.0, 0.2], [0.2, 0.2]):
        with pytest.raises(InputError, match="increasing shares"):
            check_steps(bad)
    assert growth_name(["toy", "toy-growth-0"], "toy", 0) == "toy-growth-0-2"
    assert growth_name(["toy", "toy-growth-0", "toy-growth-0-2"], "toy", 0) == "toy-growth-0-3"
    assert growth_name([], "toy", 5) == "toy-growth-5"
    assert gain_retained({"ndcg_at_10": 0.5}, {"ndcg_at_10": 0.4}, {"ndcg_at_10": 0.6}) == 0.5
    assert gain_retained({"ndcg_at_10": 0.5}, {"ndcg_at_10": 0.4}, {"ndcg_at_10": 0.405}) is None  # nothing to retain
    assert gain_retained({"ndcg_at_10": 0.5}, {"ndcg_at_10": 0.4}, {"ndcg_at_10": 0.3}) is None


def test_run_growth_on_the_toy_corpus(toy_ws):
    ws = toy_ws
    before = snapshot(ws, "toy")
    res = run_growth(ws, "toy", steps=(0.1, 0.25, 0.5), hold=0.5, settings=TINY, seed=0)
    assert snapshot(ws, "toy") == before  # nothing written into the original corpus
    name = res["growth_corpus"]
    assert name == "toy-growth-0" and res["documents"] == {"total": 36, "kept": 18, "held": 18}

    # the steps reach the requested shares, and freshness counts the same documents as new
    rows = res["steps"]
    assert [r["share_new"] for r in rows] == [0.0, 0.1, 0.25, 0.5]
    assert [r["live"] for r in rows] == [18, 20, 24, 36]
    assert [r["freshness"]["share_new"] for r in rows] == [0.0, 0.1, 0.25, 0.5]
    assert len(ws.documents(name)) == 36

    # old queries: every relevant document among the documents the runs were trained with
    docs = ws.documents(name)
    kept = set(docs.loc[docs["added_at"] == docs["added_at"].min(), "ext_id"])
    assert len(kept) == 18
    test = ws.store.qrels(ws.store.corpus_id("toy"), "test")
    old = [q for q, j in test.items() if {d for d, v in j.items() if v > 0} <= kept]
    assert res["queries"] == {"old": len(old), "new": len(test) - len(old)} and 0 < len(old) < len(test)
    assert all(r["queries"]["old"] == len(old) for r in rows)
    assert rows[0]["queries"]["all"] == len(old) and rows[-1]["queries"]["all"] == len(test)
    # the grown corpus's judgements follow its documents: all of them once every document is back
    assert ws.store.qrels(ws.store.corpus_id(name), "test") == test

    # every row, the rebuild and the retrained run
    for r in rows:
        for key in ("trained", "zero_shot", "tree"):
            assert set(r[key]) == {"old", "new", "all"}
            assert 0 <= r[key]["old"]["ndcg_at_10"] <= 1 and r[key]["old"]["queries"] == len(old)
        assert {"fit_tree", "fit_added", "rebuild_suggested", "retrain_suggested"} <= set(r["freshness"])
    assert rows[0]["freshness"]["fit_added"] is None and rows[-1]["freshness"]["fit_added"] is not None
    assert rows[-1]["freshness"]["retrain_suggested"]  # half the documents are new
    assert res["rebuild"]["rebuild"] >= 1 and res["rebuild"]["freshness_after"]["share_new_tree"] == 0.0
    assert set(res["retrained"]) == {"dense", "tree"} and res["retrained"]["dense"]["all"]["queries"] == len(test)
    runs = res["runs"]
    assert len(set(runs.values())) == 3 and all(ws.run(r).done for r in runs.values())
    assert {r.run_id for r in ws.runs(name)} == set(runs.values())
    assert ws.run(runs["retrained"]).config == ws.run(runs["trained"]).config  # same settings and seed
    assert res["settings"]["seed"] == 0 and res["settings"]["siblings"] == 2 and res["overrides"] == TINY
    assert len(res["conclusions"]) == 4 and all(c.endswith(".") for c in res["conclusions"])
    table = table_rows(res)
    assert [t["step"] for t in table] == ["start", "step 1", "step 2", "step 3", "tree rebuilt", "retrained"]
    json.dumps(res)  # JSON-ready

    with pytest.raises(InputError, match="increasing shares"):
        run_growth(ws, "toy", steps=(0.5, 0.1), settings=TINY)
    assert [c["name"] for c in ws.corpora()] == ["toy", name]  # a bad request creates nothing


def test_bad_requests_create_nothing(toy_ws):
    with pytest.raises(InputError, match="no judged queries in split 'dev'"):
        run_growth(toy_ws, "toy", split="dev", settings=TINY)
    with pytest.raises(InputError, match="seed"):
        run_growth(toy_ws, "toy", settings={"seed": 3})
    with pytest.raises(InputError, match="the split they are scored on"):
        run_growth(toy_ws, "toy", settings={**TINY, "split": "test"})
    assert [c["name"] for c in toy_ws.corpora()] == ["toy"]


def fake_result(gains: list[float], fresh: list[tuple[bool, bool]], rebuilt: float, retrained: float) -> dict:
    """A run_growth result with trained nDCG@10 = zero-shot (0.5) + gain per step."""
    def m(v: float) -> dict:
        return {"ndcg_at_10": v, "recall_at_10": v, "recall_at_100": v, "queries": 10}
    first = gains[0]
    rows = [{"step": i, "share_new": s, "live": 100, "queries": {"old": 10, "new": 0, "all": 10},
             "trained": {g: m(0.5 + gain) for g in ("old", "new", "all")},
             "zero_shot": {g: m(0.5) for g in ("old", "new", "all")},
             "tree": {g: m(0.4) for g in ("old", "new", "all")},
             "freshness": {"share_new": s, "fit_tree": 0.8, "fit_added": 0.7 if i else None,
                           "rebuild_suggested": rb, "retrain_suggested": rt},
             "gain": gain, "gain_kept": round(gain / first, 3) if first >= 0.01 else None}
            for i, (s, gain, (rb, rt)) in enumerate(zip([0.0, 0.1, 0.25, 0.5], gains, fresh, strict=True))]
    last = rows[-1]
    res = {"steps": rows, "rebuild": {"share_new": 0.5, "before": last["tree"], "exact": last["trained"],
                                      "after": {"all": m(rebuilt)}},
           "retrained": {"dense": {g: m(retrained) for g in ("old", "new", "all")}}}
    res["gain_retained"] = {g: gain_retained(last["trained"][g], last["zero_shot"][g], res["retrained"]["dense"][g])
                            for g in ("old", "new", "all")}
    return res


def test_conclusions_read_the_numbers():
    never = [(False, False)] * 4
    kept = conclusions(fake_result([0.1, 0.1, 0.095, 0.09], never, rebuilt=0.4, retrained=0.6))
    assert "kept its gain on the 10 old queries at every step" in kept[0] and "+0.100" in kept[0]
    assert kept[1].startswith("Freshness called the tree fresh at every step up to 50%")
    assert "did not pay" in kept[2] and "from 0.400 to 0.400" in kept[2]
    assert "retraining paid on the old and all live queries" in kept[3] and "gain retained 90%" in kept[3]

    lost = conclusions(fake_result([0.1, 0.09, 0.05, 0.0], [(False, False), (False, False), (True, False),
                                                            (True, True)], rebuilt=0.5, retrained=0.6))
    assert "up to 10% new documents; at 25% only 50% of it was left" in lost[0]
    assert "rebuilding the tree from 25% new documents and retraining from 50%" in lost[1]
    assert "0.700 against the tree's own 0.800" in lost[1]
    assert "from 0.400 to 0.500" in lost[2] and "it paid" in lost[2]
    assert "0.200 below exact search at the start" in lost[2]
    assert "retraining paid on the old and all live queries" in lost[3] and "gain retained 0%" in lost[3]

    none = conclusions(fake_result([0.0, 0.0, 0.0, 0.0], never, rebuilt=0.4, retrained=0.5))
    assert "no gain to keep" in none[0] and "retraining did not pay" in none[3]
    assert "and 0.500 zero-shot" in none[3] and "gain retained" not in none[3]


def test_cli_growth(toy_ws, capsys):
    from hce_engine.cli import main
    ws_args = ["--workspace", toy_ws.path]
    toy_ws.close()
    os.environ["HCE_DEFAULT_MODEL"] = toy_ws.default_model
    try:
        assert main(ws_args + ["experiment", "growth", "--corpus", "toy", "--steps", "0.2,0.4", "--hold", "0.4",
                               "--set", "siblings=2,batch_size=4", "--seed", "1"]) == 0
        out = capsys.readouterr().out
        assert "copy: 'toy-growth-1'" in out and "retrained" in out and "tree rebuilt" in out
        assert "Retraining on the grown corpus" in out
        assert main(ws_args + ["experiment", "growth", "--corpus", "toy", "--steps", "0.5,0.2"]) == 1
        assert "increasing shares" in capsys.readouterr().err
        assert main(ws_args + ["experiment", "growth", "--corpus", "toy", "--steps", "a,b"]) == 1
        assert "--steps" in capsys.readouterr().err
    finally:
        os.environ.pop("HCE_DEFAULT_MODEL", None)


def test_benchmark_smoke(tmp_path):
    """benchmarks/growth_stress.py --smoke end to end (fake encoder, toy corpus), then --markdown of its file."""
    env = {**os.environ, "PYTHONPATH": ROOT, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    out = tmp_path / "g.json"
    script = os.path.join(ROOT, "benchmarks", "growth_stress.py")
    proc = subprocess.run([sys.executable, script, "--smoke", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["meta"]["smoke"] is True and res["provenance"]["commit"]
    assert [r["share_new"] for r in res["steps"]] == [0.0, 0.1111, 0.25, 0.5]
    assert (tmp_path / "g.png").stat().st_size > 10_000 and res["plot"] == "g.png"
    proc = subprocess.run([sys.executable, script, "--markdown", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "| retrained |" in proc.stdout and "Retraining on the grown corpus" in proc.stdout


def test_experiments_page_runs_it_and_shows_the_table_and_plot(app_env, tmp_path, fake_model, one_torch_thread):
    """The page's section starts the test in a background thread, follows it, then shows the table (a row per
    step, the rebuilt tree, the retrained run), the conclusions and the plot of old-query nDCG@10."""
    pytest.importorskip("streamlit")
    from conftest import write_toy_beir
    from streamlit.testing.v1 import AppTest

    from hce_engine import Workspace
    ws = Workspace(app_env, default_model=fake_model)
    ws.import_corpus(write_toy_beir(tmp_path / "toy"), name="toy")
    ws.close()
    at = AppTest.from_file(os.path.join(ROOT, "ui", "app_pages", "experiments.py"), default_timeout=120).run()
    assert not at.exception and not at.error
    assert any("can be added without retraining" in m.value for m in at.markdown)
    at.text_input(key="growth_steps").input("0.1; 0.25, 0.5")
    at.text_input(key="growth_settings").input("siblings=2, batch_size=4")
    at.button(key="growth_run").click().run()
    assert not at.exception and not at.error
    deadline = time.time() + 90
    while not [d for d in at.dataframe if "step" in d.value] and time.time() < deadline:
        time.sleep(0.5)
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
    [table] = [d.value for d in at.dataframe if "step" in d.value]
    assert list(table["step"]) == ["start", "step 1", "step 2", "step 3", "tree rebuilt", "retrained"]
    assert list(table["new share"][:4]) == [0.0, 0.1, 0.25, 0.5]
    infos = [re.sub(r"\\(.)", r"\1", i.value) for i in at.info]
    assert any(i.startswith("Retraining on the grown corpus") for i in infos)
    [chart] = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert [t["name"] for t in chart["data"]] == ["trained before the growth", "zero-shot",
                                                   "retrained on the grown corpus"]
    assert len(chart["data"][0]["y"]) == 4
    from ui.common import get_workspace
    assert [c["name"] for c in get_workspace().corpora()] == ["toy", "toy-growth-0"]
