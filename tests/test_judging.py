"""Judging queries yourself: ``Workspace.judge`` / ``rejudge``, ``hce judge`` and the Search page's judging.

A corpus without judged queries gets them from its user; a run trained without labels is then checked on real
queries, and those checks decide its verdict.
"""
from __future__ import annotations

import json
import os
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from conftest import write_toy_beir
from hce_engine.errors import InputError, NotFoundError
from hce_engine.evaluation import check, outcome


def _documents_only(tmp_path) -> str:
    """The toy corpus's documents, without its queries and judgements."""
    folder = write_toy_beir(tmp_path / "toy")
    path = str(tmp_path / "notes.jsonl")
    shutil.copy(os.path.join(folder, "corpus.jsonl"), path)
    return path


def test_judged_checks_decide_the_verdict():
    free = check("known item (held-out pseudo-queries)", "mrr_at_10", 0.50, 0.56, 100)
    assert outcome([free])["verdict"] == "better"
    flat = check("judged queries (test)", "ndcg_at_10", 0.60, 0.601, 12)
    assert outcome([free, flat])["verdict"] == "no better"  # real queries outrank the pseudo-queries
    assert "judged queries decide" in outcome([free, flat])["text"]
    worse = check("teacher agreement (held-out pseudo-queries)", "ndcg_at_10", 0.5, 0.4, 100)
    up = check("judged queries (test)", "ndcg_at_10", 0.60, 0.65, 12)
    assert outcome([worse, up])["verdict"] == "better"
    assert outcome([worse])["verdict"] == "worse"


def test_judge_stores_a_users_judgements_and_rejudge_checks_runs_on_them(workspace, tmp_path):
    workspace.import_corpus(_documents_only(tmp_path), name="notes")
    cfg = workspace.default_config("notes")
    run = workspace.train("notes", cfg.replace(batch_size=4, siblings=2, branching=3, epochs=1))
    info = workspace.run(run)
    assert info.status == "done", info.error
    label_free = info.summary["outcome"]
    assert not any(c["name"].startswith("judged") for c in label_free["checks"])

    for bad, err, match in ((dict(query=" "), InputError, "query is empty"),
                            (dict(relevant=[]), InputError, "at least one document"),
                            (dict(relevant=["nope"]), NotFoundError, "nope"),
                            (dict(split="my split!"), InputError, "split")):
        args = {"query": "rocket launch", "relevant": ["space-0"], **bad}
        with pytest.raises(err, match=match):
            workspace.judge("notes", **args)
    assert workspace.splits("notes") == {}  # nothing stored by a refused judgement

    saved = workspace.judge("notes", "  rocket   launch ", ["space-0"], seen=["space-0", "space-1", "cooking-0"])
    assert saved == {"query_id": "judged-1", "query": "rocket launch", "split": "test", "relevant": ["space-0"],
                     "not_relevant": ["space-1", "cooking-0"], "judged_queries": 1}
    assert workspace.judgements("notes", "rocket launch") == {"space-0": 1, "space-1": 0, "cooking-0": 0}
    again = workspace.judge("notes", "rocket launch", ["space-1", "space-4"])  # same text: replaced
    assert again["query_id"] == "judged-1" and again["judged_queries"] == 1
    assert workspace.judgements("notes", "rocket launch") == {"space-1": 1, "space-4": 1}
    assert workspace.judge("notes", "guitar chord", ["music-0"])["query_id"] == "judged-2"
    assert workspace.splits("notes") == {"test": 2}
    assert workspace.default_config("notes").signal == "self"  # test judgements are for checking only

    [changed] = workspace.rejudge("notes")
    assert changed["run_id"] == run and changed["before"] == label_free["verdict"]
    summary = workspace.run(run).summary
    judged = [c for c in summary["outcome"]["checks"] if c["name"] == "judged queries (test)"]
    assert len(judged) == 1 and judged[0]["n_queries"] == 2
    assert summary["outcome"]["verdict"] == changed["after"] == judged[0]["verdict"]
    assert summary["outcome"]["checks"][:len(label_free["checks"])] == label_free["checks"]  # kept
    assert summary["test"]["trained"]["queries"] == 2
    assert workspace.rejudge("notes")[0]["after"] == changed["after"]  # the same checks, not added twice
    assert len(workspace.run(run).summary["outcome"]["checks"]) == len(summary["outcome"]["checks"])
    workspace.judge("notes", "bake bread", ["cooking-0"], split="train")  # another split: test kept as measured
    workspace.rejudge("notes", "train")
    again = workspace.run(run).summary
    assert again["judged"]["test"] == summary["judged"]["test"] and again["judged"]["train"]["trained"]["queries"] == 1
    assert [c["name"] for c in again["outcome"]["checks"]][-2:] == ["judged queries (test)", "judged queries (train)"]
    workspace.delete_run(info.starting_run)  # its starting run gone: nothing to compare against, skipped
    assert workspace.rejudge("notes") == []


def test_hce_judge(tmp_path, fake_model, monkeypatch, capsys):
    from hce_engine.cli import main
    monkeypatch.setenv("HCE_DEFAULT_MODEL", fake_model)
    ws = ["--workspace", str(tmp_path / "ws")]
    assert main([*ws, "import", _documents_only(tmp_path), "--name", "notes"]) == 0
    capsys.readouterr()
    assert main([*ws, "judge", "--corpus", "notes", "--query", "bake bread", "--relevant", "cooking-0",
                 "--seen", "cooking-1", "space-2"]) == 0
    assert capsys.readouterr().out.startswith("judged query judged-1 (test): 1 relevant, 2 not; 1 judged test")
    assert main([*ws, "judge", "--json", "--corpus", "notes", "--query", "pasta", "--relevant", "cooking-1",
                 "--split", "train"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "train" and out["judged_queries"] == 1 and out["runs"] == []
    assert main([*ws, "judge", "--corpus", "notes", "--query", "x", "--relevant", "missing-doc"]) == 1
    assert "missing-doc" in capsys.readouterr().err
    # a trained run is checked again when judgements arrive, by hce judge and by hce import --queries alike
    assert main([*ws, "train", "--corpus", "notes", "--batch-size", "4", "--siblings", "2", "--branching", "3",
                 "--epochs", "1", "--json"]) == 0
    run = json.loads(capsys.readouterr().out)["run_id"]
    assert main([*ws, "judge", "--corpus", "notes", "--query", "guitar chord", "--relevant", "music-0"]) == 0
    assert f"run #{run} checked on the judged queries: " in capsys.readouterr().out
    (tmp_path / "q.tsv").write_text("q1\trocket launch\n")
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tspace-0\t1\n")
    assert main([*ws, "import", "--name", "notes", "--queries", str(tmp_path / "q.tsv"), "--qrels",
                 str(tmp_path / "qrels.tsv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["qrels"] == {"test": 1} and [r["run_id"] for r in out["runs"]] == [run]


def test_search_page_saves_a_judged_query(app_env, tmp_path):
    from hce_engine import Workspace
    from ui.common import get_workspace
    ws = Workspace(app_env)
    ws.import_corpus(_documents_only(tmp_path), name="notes")
    ws.encode("notes", branching=3)
    ws.close()
    app = AppTest.from_file(os.path.join(os.path.dirname(__file__), "..", "ui", "app_pages", "search.py"),
                            default_timeout=60)
    app.run()
    app.text_input(key="search_query").input("rocket launch").run()
    assert not app.exception and not app.error
    assert "Judge these results" in [s.value for s in app.subheader]
    box = app.multiselect(key="judge_relevant_test_rocket launch")
    first = box.options[0]
    assert "[space-" in first
    box.select(first.split("[")[-1].rstrip("]"))
    app.button(key="judge_save").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    [ok] = [s.value for s in app.success]
    assert ok.startswith("Saved judged-1: 1 relevant")
    assert "This corpus has 1 judged test query." in [c.value for c in app.caption]
    judged = get_workspace().judgements("notes", "rocket launch")
    assert sum(v > 0 for v in judged.values()) == 1 and len(judged) > 1  # the other hits: seen, not relevant
