"""Experiments: declaration (TOML, flags), the one-run-at-a-time queue, resume after kill -9 with exactly one run
per arm x seed, added seeds, results and provenance, and the ``hce experiment`` commands."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from hce_engine import slot
from hce_engine.errors import HCEError, InputError
from hce_engine.experiments import ExperimentSpec, load_spec, parse_arm, recipe_spec, summarize
from hce_engine.provenance import git_commit
from hce_engine.workspace.shared import TRAIN_LOCK

TINY = {"siblings": 2, "batch_size": 4}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spec(**kw) -> ExperimentSpec:
    return ExperimentSpec(**{"corpus": "toy", "preset": "quick", "settings": dict(TINY), "seeds": [0, 1],
                             "arms": {"random": {"negatives": "random"}, "siblings": {"negatives": "siblings"}},
                             **kw})


def test_toml_file_with_its_errors_named(tmp_path):
    f = tmp_path / "exp.toml"
    f.write_text('corpus = "toy"\npreset = "quick"\nseeds = [0, 2]\ncontrol = "b"\n[settings]\nmax_pairs = 64\n'
                 '[arms.a]\nnegatives = "random"\n[arms.b]\nnegatives = "siblings"\nbranching = 4\n')
    s = load_spec(str(f))
    assert list(s.arms) == ["a", "b"] and s.control == "b" and s.seeds == [0, 2]
    assert s.overrides("b", 2) == {"max_pairs": 64, "negatives": "siblings", "branching": 4, "seed": 2}
    f.write_text('corpus = "toy"\n[arms.a]\nnegatives = \n')
    with pytest.raises(InputError) as e:
        load_spec(str(f))
    assert "exp.toml, line 3" in str(e.value)
    f.write_text('corpus = "toy"\n[arms.a]\nnegatives = "sideways"\n')
    with pytest.raises(InputError, match=r"(?s)exp.toml: arm 'a': .*negatives must be one of"):
        load_spec(str(f))


@pytest.mark.parametrize("bad, message", [
    ({"arms": {}}, "at least one arm"),
    ({"arms": {"a b": {}}}, "arm name"),
    ({"control": "nope"}, "control 'nope' is not one of the arms"),
    ({"seeds": [1, 1]}, "seeds repeat"),
    ({"arms": {"a": {"seed": 3}}}, "set by the experiment's seeds"),
    ({"arms": {"a": {"lr": -1.0}}}, "lr must be > 0"),
    ({"settings": {"split": "test"}}, "the split they are compared on"),
])
def test_spec_errors(bad, message):
    with pytest.raises(InputError, match=message):
        spec(**bad).validate()


def test_arm_flags():
    assert parse_arm("sib:negatives=siblings,branching=4,lr=3e-5,level_loss=false") == (
        "sib", {"negatives": "siblings", "branching": 4, "lr": 3e-5, "level_loss": False})
    assert parse_arm("plain") == ("plain", {})
    with pytest.raises(InputError, match="expected key=value"):
        parse_arm("x:branching")


def test_a_second_training_run_waits_queued_for_the_slot(toy_ws):
    """The workspace trains one run at a time: a run started while another holds the slot is 'queued' until it
    is free, then runs to the end."""
    cfg = toy_ws.default_config("toy", "quick", **TINY)
    toy_ws.train("toy", cfg)  # the baseline exists, so the queued run's wait is the slot's alone
    with slot.hold(os.path.join(toy_ws.path, TRAIN_LOCK)):
        assert toy_ws.training_busy()
        run = toy_ws.start_training("toy", cfg)
        deadline = time.time() + 20
        while toy_ws.run(run).status.value != "queued" and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.6)
        assert toy_ws.run(run).status.value == "queued"  # still waiting: the slot is held
        assert toy_ws.run_progress(run).stage == "queued"
    assert toy_ws.wait(run, timeout=60).status.value == "done"
    assert not toy_ws.training_busy()


def test_cancel_while_queued(toy_ws):
    cfg = toy_ws.default_config("toy", "quick", **TINY)
    with slot.hold(os.path.join(toy_ws.path, TRAIN_LOCK)):
        run = toy_ws.start_training("toy", cfg)
        time.sleep(0.3)
        toy_ws.cancel(run)
        assert toy_ws.wait(run, timeout=30).status.value == "cancelled"


def test_run_results_and_added_seeds(toy_ws):
    exp = toy_ws.create_experiment(spec(seeds=[0]))
    status = toy_ws.run_experiment(exp)
    assert (status.done, status.total, status.errors) == (2, 2, ())
    runs = {(c.arm, c.seed): c.run_id for c in status.cells}
    assert toy_ws.run(runs["siblings", 0]).config.negatives == "siblings"
    assert toy_ws.run(runs["random", 0]).config.negatives == "random"
    res = toy_ws.experiment_results(exp, n_boot=200)
    assert [a["arm"] for a in res["arms"]] == ["random", "siblings"] and res["queries"] == 9
    assert [c["arm"] for c in res["comparisons"]] == ["siblings"]
    assert "one seed" in res["comparisons"][0]["verdict"]
    assert res["provenance"]["created"]["commit"] == git_commit()
    assert res["runs"]["siblings/0"]["provenance"]["commit"] == git_commit()
    assert len(res["runs"]["random/0"]["ndcg_at_10"]) == 9

    assert toy_ws.add_seeds(exp, [1]) == [0, 1]
    status = toy_ws.run_experiment(exp)
    assert (status.done, status.total) == (4, 4)
    again = {(c.arm, c.seed): c.run_id for c in status.cells}
    assert {k: again[k] for k in runs} == runs  # the first seed's runs were kept, not trained again
    assert len(toy_ws.runs("toy", kind="train")) == 4
    res = toy_ws.experiment_results(exp, n_boot=200)
    assert res["arms"][1]["seeds"] == [0, 1] and res["comparisons"][0]["seeds"] == [0, 1]


def test_experiment_needs_judged_queries_of_its_split(toy_ws):
    with pytest.raises(HCEError, match="no judged queries in split 'dev'"):
        toy_ws.create_experiment(spec(split="dev"))


def test_an_experiment_runs_once_at_a_time(toy_ws):
    exp = toy_ws.create_experiment(spec(seeds=[0]))
    with slot.hold(toy_ws._lock_path(exp)):
        assert toy_ws.experiment_status(exp).running
        with pytest.raises(HCEError, match="already running"):
            toy_ws.run_experiment(exp)
        with pytest.raises(HCEError, match="is running"):
            toy_ws.delete_experiment(exp)


def test_a_background_experiment_shows_its_live_progress_and_cancel(toy_ws):
    exp = toy_ws.create_experiment(spec(seeds=[0]))
    with slot.hold(os.path.join(toy_ws.path, TRAIN_LOCK)):  # its first run waits, queued
        toy_ws.start_experiment(exp)
        queued, deadline = "random seed 0 (1/2): queued", time.time() + 20
        while getattr(toy_ws.experiment_status(exp).progress, "stage", None) != queued:  # the job's own first
            assert time.time() < deadline  # stage is a bare "queued"
            time.sleep(0.05)
        status = toy_ws.experiment_status(exp)
        assert status.progress.stage == queued and status.running and not status.cancelling
        assert toy_ws.cancel_experiment(exp) and toy_ws.experiment_status(exp).cancelling
        assert status.to_dict()["progress"] == {"stage": queued, "done": 0, "total": 0, "eta_s": None,
                                                "message": status.progress.message, "cancelling": False}
        toy_ws.experiment_jobs.wait(exp, 30)
    status = toy_ws.experiment_status(exp)
    assert status.progress is None and not status.running
    assert [c.status for c in status.cells] == ["cancelled", "pending"]


KILLER = r"""
import os, sys
sys.path.insert(0, {root!r})
from hce_engine import Workspace
ws = Workspace({ws!r}, default_model={model!r})
seen = []
def progress(ev):
    # the second run of the experiment, in its first training step: die as kill -9 would
    if ev.stage.startswith("siblings seed 0") and ev.stage.endswith(": train"):
        os._exit(9)
ws.run_experiment(1, progress=progress)
"""


def test_kill_9_then_run_again_finishes_with_one_run_per_cell(tmp_path, fake_model, toy_beir):
    from hce_engine import Workspace
    folder = str(tmp_path / "ws")
    ws = Workspace(folder, default_model=fake_model)
    ws.import_corpus(toy_beir, name="toy")
    exp = ws.create_experiment(spec())
    ws.close()
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(root=ROOT, ws=folder, model=fake_model))
    proc = subprocess.run([sys.executable, str(script)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr

    ws = Workspace(folder, default_model=fake_model)
    try:
        status = ws.experiment_status(exp)
        assert [c.status for c in status.cells][:2] == ["done", "interrupted"]
        assert not status.running  # the dead process's locks went with it
        status = ws.run_experiment(exp)
        assert (status.done, status.total, status.errors) == (4, 4, ())
        train_runs = ws.runs("toy", kind="train")
        assert len(train_runs) == 4  # the interrupted run was replaced, not duplicated
        cells = {c.run_id for c in status.cells}
        assert cells == {r.run_id for r in train_runs}
    finally:
        ws.close()


def test_summarize_by_hand():
    """Two queries, two seeds: means over seeds per arm; the comparison pairs the seed-averaged per-query values."""
    pq = {("c", 0): {"q1": {"ndcg_at_10": 0.2}, "q2": {"ndcg_at_10": 0.4}},
          ("c", 1): {"q1": {"ndcg_at_10": 0.4}, "q2": {"ndcg_at_10": 0.4}},
          ("t", 0): {"q1": {"ndcg_at_10": 0.6}, "q2": {"ndcg_at_10": 0.4}},
          ("t", 1): {"q1": {"ndcg_at_10": 0.6}, "q2": {"ndcg_at_10": 0.6}}}
    for v in pq.values():
        for m in v.values():
            m.update({"mrr_at_10": 0.0, "recall_at_1": 0.0, "recall_at_10": 1.0, "recall_at_100": 1.0})
    res = summarize(["c", "t"], "c", pq, {("c", 0): 60.0, ("c", 1): 120.0}, n_boot=100)
    c, t = res["arms"]
    assert c["ndcg_at_10"]["per_seed"] == pytest.approx([0.3, 0.4]) and c["ndcg_at_10"]["mean"] == pytest.approx(0.35)
    assert c["ndcg_at_10"]["sd"] == pytest.approx(0.0707107, abs=1e-6)
    assert c["train_seconds"]["mean"] == 90.0 and t["train_seconds"]["mean"] is None
    (comp,) = res["comparisons"]
    # per query, seed-averaged: control q1 0.3, q2 0.4; arm q1 0.6, q2 0.5 -> differences 0.3, 0.1
    assert comp["diff"] == pytest.approx(0.2) and (comp["wins"], comp["ties"], comp["losses"]) == (2, 0, 0)
    assert comp["p_randomization"] == pytest.approx(0.5)  # exact: 2 of the 4 sign patterns reach |0.2|
    assert comp["p_t_holm"] == comp["p_t"]  # one comparison: Holm changes nothing


def test_recipe_specs_validate():
    s = recipe_spec("branching", "toy", [0, 1], "quick", {"max_pairs": 64})
    assert list(s.arms) == ["b4", "b10", "b32", "b64"] and s.control == "b10" and s.recipe == "branching"
    assert recipe_spec("cotraining", "toy").settings["epochs"] == 2
    with pytest.raises(InputError, match="unknown recipe"):
        recipe_spec("nope", "toy")


def test_cli_new_run_show_export(toy_ws, tmp_path, capsys):
    from hce_engine.cli import main
    ws_args = ["--workspace", toy_ws.path]
    toy_ws.close()
    os.environ["HCE_DEFAULT_MODEL"] = toy_ws.default_model
    try:
        assert main(ws_args + ["experiment", "new", "--corpus", "toy", "--preset", "quick", "--arm",
                               "random:negatives=random", "--arm", "siblings:negatives=siblings", "--set",
                               "siblings=2,batch_size=4", "--seeds", "0", "--json"]) == 0
        exp = json.loads(capsys.readouterr().out)["experiment_id"]
        assert main(ws_args + ["experiment", "run", str(exp), "--json"]) == 0
        ran = json.loads(capsys.readouterr().out)
        assert ran["done"] == 2 and ran["errors"] == [] and list(ran) == [
            "experiment_id", "name", "corpus", "running", "cells", "done", "total", "eta_s", "progress", "errors"]
        assert list(ran["cells"][0]) == ["arm", "seed", "run_id", "status", "seconds"]
        assert main(ws_args + ["experiment", "show", str(exp), "--boot", "100"]) == 0
        out = capsys.readouterr().out
        assert "random (control)" in out and "siblings against random" in out and "one seed" in out
        assert main(ws_args + ["experiment", "new", "--corpus", "toy", "--arm", "x:negatives=sideways"]) == 1
        assert "arm 'x'" in capsys.readouterr().err
        csv_path = tmp_path / "t.csv"
        assert main(ws_args + ["experiment", "export", str(exp), "--csv", str(csv_path), "--boot", "100"]) == 0
        assert csv_path.read_text().splitlines()[0].startswith("arm,seeds,nDCG@10")
    finally:
        os.environ.pop("HCE_DEFAULT_MODEL", None)


def test_slot_excludes_threads_of_one_process(tmp_path):
    path = str(tmp_path / "lock")
    inside: list[int] = []
    most = [0]

    def work(i: int) -> None:
        with slot.hold(path):
            inside.append(i)
            most[0] = max(most[0], len(inside))
            time.sleep(0.1)
            inside.remove(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
    with slot.hold(path):
        with pytest.raises(TimeoutError):
            with slot.hold(path, wait_s=0.2):
                pass


def test_coherence_against_gain_by_hand():
    """Two top-level subtrees of two leaves each: the tight one's queries gained, the loose one's lost."""
    import numpy as np

    from hce_engine.experiments.coherence import coherence_against_gain, leaf_tightness, subtree_level
    from hce_engine.tree.tree import Tree
    # nodes: 0 root; 1, 2 top level; 3, 4 leaves under 1; 5, 6 leaves under 2
    parent, level = [-1, 0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 2, 2]
    e = np.eye(4, dtype=np.float32)
    centroid = np.stack([e[0], e[0], e[1], e[0], e[0], e[1], e[1]])
    loose = np.array([0.6, 0.8, 0, 0], dtype=np.float32)  # cos 0.8 to e[1]
    vectors = np.stack([e[0], e[0], e[0], e[1], loose, loose])
    tree = Tree(parent, level, centroid, [6, 3, 3, 2, 1, 2, 1], [3, 3, 4, 5, 5, 6])
    assert leaf_tightness(tree, vectors).round(4).tolist() == [1, 1, 1, 1, 0.8, 0.8]
    out = coherence_against_gain(tree, vectors, {"a": 0, "b": 1, "c": 4, "d": 5}, {"a": 0.2, "b": 0.1, "c": -0.1,
                                                                                    "d": -0.3}, min_queries=1, level=1)
    rows = {r["node"]: r for r in out["subtrees"]}
    assert rows[1]["coherence"] == pytest.approx(1.0) and rows[2]["coherence"] == pytest.approx(13 / 15)
    assert rows[1]["gain"] == pytest.approx(0.15) and rows[2]["gain"] == pytest.approx(-0.2)
    assert out["spearman"] is None  # two subtrees: too few for a correlation
    assert subtree_level(tree) == 2 and subtree_level(tree, 2) == 1  # 2 top-level nodes: the leaves by default
    leaves = coherence_against_gain(tree, vectors, {"a": 0, "c": 4}, {"a": 0.2, "c": -0.1}, min_queries=1)
    assert leaves["level"] == 2 and [r["node"] for r in leaves["subtrees"]] == [3, 4, 5, 6]
