"""Metrics: hand-computed values, trec_eval tie-breaking, agreement with ranx, TREC run output."""
from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest

from hce_engine.evaluation import (
    evaluate,
    order_ranking,
    rankings_from_arrays,
    write_trec_run,
)

QRELS = {
    "q1": {"d1": 3, "d2": 1, "d3": 0, "d4": 2, "dneg": -1},
    "q2": {"r": 1},
    "q3": {"x": 0, "y": -2},  # no relevant doc: not evaluated
    "q4": {"z": 2},  # not in the ranking: counts as 0
}
RANKING = {
    "q1": ["dneg", "d3", "d1", "d5", "d2"],  # negative judgement is just "not relevant"
    "q2": [f"n{i}" for i in range(10)] + ["r", "n10"],  # relevant at rank 11
    "q3": ["x", "y"],
    "q5": ["d1"],  # not in qrels: ignored
}


def test_hand_computed_values():
    res = evaluate(RANKING, QRELS, per_query=True)
    q1 = res["per_query"]["q1"]
    dcg = 3 / math.log2(4) + 1 / math.log2(6)  # d1 at rank 3, d2 at rank 5
    idcg = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)  # 3, 2, 1
    assert q1["ndcg_at_10"] == pytest.approx(dcg / idcg, abs=1e-12)
    assert q1["recall_at_10"] == pytest.approx(2 / 3)
    assert q1["recall_at_100"] == pytest.approx(2 / 3)
    assert q1["mrr_at_10"] == pytest.approx(1 / 3)
    assert q1["recall_at_1"] == 0.0
    assert res["per_query"]["q2"] == {
        "ndcg_at_10": 0.0, "recall_at_10": 0.0, "recall_at_100": 1.0, "mrr_at_10": 0.0, "recall_at_1": 0.0}
    assert res["per_query"]["q4"] == {
        "ndcg_at_10": 0.0, "recall_at_10": 0.0, "recall_at_100": 0.0, "mrr_at_10": 0.0, "recall_at_1": 0.0}
    assert set(res["per_query"]) == {"q1", "q2", "q4"}
    mean = res["mean"]
    assert mean["queries"] == 3
    assert mean["ndcg_at_10"] == pytest.approx(dcg / idcg / 3)
    assert mean["recall_at_10"] == pytest.approx(2 / 9)
    assert mean["recall_at_100"] == pytest.approx((2 / 3 + 1) / 3)
    assert mean["mrr_at_10"] == pytest.approx(1 / 9)
    assert evaluate(RANKING, QRELS) == mean


def test_perfect_and_empty():
    qrels = {"q": {"a": 2, "b": 1}}
    assert evaluate({"q": ["a", "b"]}, qrels) == {
        "ndcg_at_10": 1.0, "recall_at_10": 1.0, "recall_at_100": 1.0, "mrr_at_10": 1.0,
        "queries": 1}
    # b before a: DCG = 1 + 2/log2(3); ideal = 2 + 1/log2(3)
    swapped = evaluate({"q": ["b", "a"]}, qrels)["ndcg_at_10"]
    assert swapped == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert evaluate({}, {})["queries"] == 0
    assert evaluate({"q": ["a"]}, {"q": {"a": 0}})["ndcg_at_10"] == 0.0


def test_score_dict_tie_breaking_matches_trec_eval():
    """trec_eval re-sorts by score desc, then doc id desc: ties go to the larger doc id."""
    scores = {"a": 1.0, "b": 1.0, "c": 0.5, "d": 2.0}
    assert order_ranking(scores) == ["d", "b", "a", "c"]
    res = evaluate({"q": scores}, {"q": {"a": 1}})
    assert res["mrr_at_10"] == pytest.approx(1 / 3)
    # a list is taken as given, duplicates dropped
    assert order_ranking(["x", "y", "x", "z"]) == ["x", "y", "z"]


def _random_run_and_qrels(seed=1234, n_queries=50, n_docs=150):
    rng = np.random.default_rng(seed)
    run, qrels = {}, {}
    for qi in range(n_queries):
        qid = f"q{qi:02d}"
        docs = [f"d{j:03d}" for j in rng.permutation(n_docs + 30)[:n_docs]]  # some judged docs unranked
        scores = rng.random(n_docs)  # distinct with probability 1: no ties
        run[qid] = {d: float(s) for d, s in zip(docs, scores)}
        judged = rng.choice(n_docs + 30, size=25, replace=False)
        rels = rng.choice([0, 0, 1, 1, 2, 3], size=25)
        rels[0] = max(rels[0], 1)  # every query has a relevant doc
        qrels[qid] = {f"d{j:03d}": int(r) for j, r in zip(judged, rels)}
    del run["q07"]  # one query missing from the run
    return run, qrels


def test_agrees_with_ranx():
    ranx = pytest.importorskip("ranx")
    run, qrels = _random_run_and_qrels()
    ours = evaluate(run, qrels, per_query=True)
    r_qrels, r_run = ranx.Qrels(qrels), ranx.Run(run)
    metrics = ["ndcg@10", "recall@10", "recall@100", "mrr@10"]
    theirs = ranx.evaluate(r_qrels, r_run, metrics, make_comparable=True)
    names = dict(zip(metrics, ["ndcg_at_10", "recall_at_10", "recall_at_100", "mrr_at_10"]))
    assert ours["mean"]["queries"] == 50
    for m, ours_name in names.items():
        assert ours["mean"][ours_name] == pytest.approx(float(theirs[m]), abs=1e-6), m
        per = ranx.evaluate(r_qrels, r_run, m, return_mean=False, make_comparable=True)
        mine = [ours["per_query"][q][ours_name] for q in sorted(qrels)]
        np.testing.assert_allclose(mine, per, atol=1e-6, err_msg=m)
    # the values are non-trivial (not all 0 / 1)
    assert 0.05 < ours["mean"]["ndcg_at_10"] < 0.95 and 0 < ours["mean"]["mrr_at_10"] < 1


def test_rankings_from_arrays_drops_padding():
    ids = np.array([[2, 0, -1], [-1, -1, -1]], dtype=np.int64)
    scores = np.array([[0.9, 0.5, -np.inf], [-np.inf] * 3], dtype=np.float32)
    out = rankings_from_arrays(["qa", "qb"], ids, scores, {0: "d0", 2: "d2"})
    assert out == {"qa": {"d2": pytest.approx(0.9), "d0": pytest.approx(0.5)}, "qb": {}}
    assert rankings_from_arrays(["qa", "qb"], ids, scores, ["d0", "d1", "d2"]).keys() == {"qa", "qb"}
    with pytest.raises(ValueError):
        rankings_from_arrays(["qa"], ids, scores, {})


def test_write_trec_run(tmp_path):
    ranking = {"q1": {"a": 1.0, "b": 1.0, "c": 0.123456789012}, "q2": {"z": -0.5}}
    buf = io.StringIO()
    assert write_trec_run(ranking, buf, "myrun") == 4
    lines = [line.split() for line in buf.getvalue().splitlines()]
    assert all(len(cols) == 6 and cols[1] == "Q0" and cols[5] == "myrun" for cols in lines)
    assert [(c[0], c[2], c[3]) for c in lines] == [
        ("q1", "b", "1"), ("q1", "a", "2"), ("q1", "c", "3"), ("q2", "z", "1")]
    assert float(lines[2][4]) == 0.123456789012  # full precision round-trips
    path = tmp_path / "run.trec"
    write_trec_run(ranking, path, "t")
    assert path.read_text().count("\n") == 4
    with pytest.raises(ValueError):
        write_trec_run({"q 1": {"a": 1.0}}, buf, "t")


def test_metrics_import_needs_no_faiss_or_duckdb():
    code = ("import sys\n"
            "for m in ('faiss', 'duckdb', 'bm25s'): sys.modules[m] = None  # make them unimportable\n"
            "import hce_engine.evaluation.metrics as m\n"
            "print(m.evaluate({'q': ['a']}, {'q': {'a': 1}})['ndcg_at_10'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1.0"
