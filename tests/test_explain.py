"""Why this rank: the explain view as pure data (fake encoders), and `hce explain`."""
from __future__ import annotations

import json

import pytest

from hce_engine import InputError
from hce_engine.cli import main
from hce_engine.encoder.fake import FakeEncoder
from hce_engine.views import explain

QUERY = "guitar chord melody music"


@pytest.fixture()
def two_runs(workspace, toy_beir, tmp_path):
    """A corpus with two finished runs whose encoders differ (a "before" and an "after")."""
    workspace.import_corpus(toy_beir, name="toy")
    before = workspace.encode("toy", branching=3)
    other = str(tmp_path / "other-model")
    FakeEncoder(dim=32, seed=5).save(other)
    after = workspace.encode("toy", model=other, branching=3)
    return workspace, before, after


def test_explain_matches_the_rankings_it_explains(two_runs):
    ws, before, after = two_runs
    hits = ws.search("toy", QUERY, run=after, k=36)
    doc = hits[4]
    why = explain(ws, after, QUERY, doc.doc_id, compare_run=before)
    r = why["retrievers"]
    assert r["run"]["rank"] == doc.rank and r["run"]["score"] == pytest.approx(doc.score, abs=1e-5)
    start_rank = {h.doc_id: h.rank for h in ws.search("toy", QUERY, run=before, k=36)}[doc.doc_id]
    assert r["start"]["rank"] == start_rank and why["compare_run"] == before
    bm25 = {h.doc_id: h.rank for h in ws.bm25_search("toy", QUERY, k=36)}
    assert r["bm25"]["rank"] == bm25.get(doc.doc_id)
    assert set(why["shared_words"]) <= set(QUERY.split())
    tree = ws.tree(after).tree
    assert [p["node"] for p in why["path"]] == tree.path(tree.positions_of([doc.doc_id])[0])
    for p in why["path"]:
        assert p["took_branch"] == (p["query_branch"] == p["node"]) == (p["rank"] == 1)
        assert sum(s["is_positive"] for s in p["siblings"]) == 1 and 1 <= p["rank"] <= p["n_candidates"]
    assert 1 <= why["leaf"]["rank"] <= why["leaf"]["n_candidates"]


def test_movers_are_the_largest_rank_changes(two_runs):
    ws, before, after = two_runs
    why = explain(ws, after, QUERY, ws.search("toy", QUERY, run=after)[0].doc_id, compare_run=before, moved=3)
    old = {h.doc_id: h.rank for h in ws.search("toy", QUERY, run=before, k=36)}
    new = {h.doc_id: h.rank for h in ws.search("toy", QUERY, run=after, k=36)}
    assert why["moved_up"] and why["moved_down"]
    for m in why["moved_up"] + why["moved_down"]:
        assert (m["rank"], m["rank_compare"]) == (new[m["doc_id"]], old[m["doc_id"]])
    ups = [m["rank_compare"] - m["rank"] for m in why["moved_up"]]
    assert ups == sorted(ups, reverse=True) and ups[0] > 0
    pool = [d for d in new if new[d] <= 20 or old[d] <= 20]
    assert ups[0] == max(old[d] - new[d] for d in pool)


def test_a_zero_shot_run_has_no_before(workspace, toy_beir):
    workspace.import_corpus(toy_beir, name="toy")
    run = workspace.encode("toy", branching=3)
    doc = workspace.search("toy", "rocket launch", run=run)[0].doc_id
    why = explain(workspace, run, "rocket launch", doc)
    assert why["compare_run"] is None and set(why["retrievers"]) == {"run", "bm25"}
    assert why["moved_up"] == [] and why["shared_words"]
    assert explain(workspace, run, "zzzz qqqq", doc)["retrievers"]["bm25"]["rank"] is None  # no word in common
    with pytest.raises(InputError, match="empty"):
        explain(workspace, run, "  ", doc)


def test_hce_explain_cli(two_runs, capsys):
    ws, before, after = two_runs
    ext = ws.search("toy", QUERY, run=after)[2].ext_id
    args = ["--workspace", ws.path, "explain", "--corpus", "toy", "--run", str(after), "--compare", str(before),
            "--query", QUERY, "--doc", ext]
    ws.close()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"[{ext}]" in out and "path through the tree" in out and "BM25:" in out and "leaf: rank" in out
    assert f"starting encoder (run {before})" in out and "moved up most with training" in out
    assert main(args + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["doc"]["ext_id"] == ext and data["compare_run"] == before
    assert main(args[:-1] + ["nope"]) == 1 and "no document 'nope'" in capsys.readouterr().err
