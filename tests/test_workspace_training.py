"""Training through the Workspace (fake encoder): stored settings, reproducibility, cancel, resume, crashes."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from hce_engine import HCEError, InputError, Workspace
from hce_engine.jobs import JobRegistry
from hce_engine.progress import Progress

TINY = {"epochs": 2, "batch_size": 4, "siblings": 3, "branching": 3, "lr": 1e-2, "memory_lr": 1e-2}


@pytest.fixture(autouse=True)
def log_every_step(monkeypatch):
    """These tests cancel and crash runs at a given logged step: log each step as it happens (a run logs in
    commits of ``LOG_EVERY_S`` seconds; test_train_run_records_everything checks that nothing is lost)."""
    monkeypatch.setattr("hce_engine.workspace.training.LOG_EVERY_S", 0.0)


def count_logged_steps(ws) -> dict:
    """Count training steps as they are logged: returns {"n": steps so far}, updated live."""
    steps = {"n": 0}
    orig = ws.store.log_step

    def counting(*a, **k):
        steps["n"] += 1
        orig(*a, **k)
    ws.store.log_step = counting
    return steps


@pytest.fixture
def ws(workspace, toy_beir):
    workspace.import_corpus(toy_beir, name="toy")
    return workspace


def test_train_run_records_everything(ws, monkeypatch):
    monkeypatch.setattr("hce_engine.workspace.training.LOG_EVERY_S", 3600.0)  # one commit per epoch and at the end
    run = ws.train("toy", TINY)
    info = ws.run(run)
    assert info.status == "done" and info.kind == "train"
    cfg = info.config_dict
    assert cfg["seed"] == 0 and cfg["siblings"] == 3 and cfg["negatives"] == "siblings" and cfg["model"]
    s = info.summary
    assert s["start_val"] is None and s["n_val_pairs"] == 0  # every train pair trained on (the reference)
    assert [c["name"] for c in s["outcome"]["checks"]] == ["judged queries (test)"]  # not the split trained on
    assert s["improved"] == (s["outcome"]["verdict"] == "better")
    assert set(s["test"]) == {"start", "trained"} and s["test"]["trained"]["queries"] == 9
    assert s["outcome"]["checks"][0]["end"] == s["test"]["trained"]["ndcg_at_10"]
    log = ws.train_log(run)
    assert len(log) == s["steps"] > 0 and np.isfinite(log["loss"]).all()
    assert len(log["level_losses"][0]) == ws.tree(run).tree.depth
    trees = ws.store.list_trees(run)
    assert [t["rebuild"] for t in trees] == [0, 1]  # starting encoder's tree, trained encoder's tree
    ids, vecs = ws.store.read_vectors(run)
    assert len(ids) == 36
    assert ws.search("toy", "guitar chord", run=run)[0].ext_id.startswith("music")
    baseline = s["baseline_run"]
    assert ws.run(baseline).kind == "baseline"  # created to compare against and reused for the first tree


def test_same_seed_same_run(ws):
    a, b = ws.train("toy", TINY), ws.train("toy", TINY)
    la, lb = ws.train_log(a), ws.train_log(b)
    assert np.allclose(la["loss"], lb["loss"])
    ta, tb = ws.tree(a, 0).tree, ws.tree(b, 0).tree
    assert np.array_equal(ta.doc_leaf, tb.doc_leaf) and np.array_equal(ta.parent, tb.parent)
    assert ws.run(a).summary["test"] == ws.run(b).summary["test"]
    assert np.array_equal(ws.store.read_vectors(a)[1], ws.store.read_vectors(b)[1])


def test_cotraining_records_rebuilds(ws):
    run = ws.train("toy", {**TINY, "epochs": 3, "recluster_every": 1})
    assert [t["rebuild"] for t in ws.store.list_trees(run)] == [0, 1, 2, 3]
    assert ws.run(run).summary["rebuilds"] == 2


def test_cancel_then_resume(ws):
    slow = {**TINY, "epochs": 3}
    steps = count_logged_steps(ws)
    other = ws.encode("toy")
    # cancel after the first epoch's checkpoint (4 steps per epoch on 13 pairs / batch 4)
    run = ws.train("toy", slow, cancel=lambda: steps["n"] >= 5)
    info = ws.run(run)
    assert info.status == "cancelled" and "resume" in info.error
    assert ws.run(other).status == "done"
    assert len(ws.train_log(run)) == 5
    ws.resume(run)
    info = ws.run(run)
    assert info.status == "done" and info.summary["epochs_done"] == 3
    assert info.summary["steps"] == 12  # 4 steps x 3 epochs, counting the ones before the cancel


def test_background_training_cancel_takes_effect(ws):
    run = ws.start_training("toy", {**TINY, "epochs": 50})
    deadline = time.time() + 60
    while not len(ws.train_log(run)) and time.time() < deadline:
        time.sleep(0.05)
    assert ws.run_progress(run).stage in ("train", "validate", "tree")
    t0 = time.time()
    assert ws.cancel(run)
    info = ws.wait(run, timeout=30)
    assert info.status == "cancelled" and time.time() - t0 < 10
    assert ws.run_progress(run) is None and not ws.cancelling(run)


def test_run_progress_and_cancelling_of_a_live_job(workspace):
    """A job of this process: its latest Progress, and whether it was asked to stop, until it ends."""
    release = threading.Event()

    def body(job):
        job.report(Progress("encode", 3, 8, eta_s=2.0))
        release.wait(30)
    job = workspace.jobs.start(99, "encode", body)
    deadline = time.time() + 10
    while job.progress.stage == "queued" and time.time() < deadline:
        time.sleep(0.01)
    assert workspace.run_progress(99) == Progress("encode", 3, 8, eta_s=2.0) and not workspace.cancelling(99)
    assert workspace.cancel(99) and workspace.cancelling(99)
    release.set()
    workspace.jobs.wait(99, 30)
    assert workspace.run_progress(99) is None and not workspace.cancelling(99)


def test_a_key_runs_one_job_at_a_time_and_keeps_its_failure():
    """A job registry keyed by anything hashable (maps: (run, align_to)): a second start of a running key gets
    the running job; a job that raised leaves its error until its key starts again."""
    jobs: JobRegistry[tuple[int, int | None]] = JobRegistry()
    key = (1, None)
    release = threading.Event()
    first = jobs.start(key, "map", lambda job: release.wait(30))
    assert jobs.start(key, "map", lambda job: None) is first and jobs.active() == [key]
    release.set()
    jobs.wait(key, 30)
    assert jobs.active() == [] and jobs.error(key) is None

    def fail(job):
        raise HCEError("no finished run 1 to map: it is running")
    for target, error in ((lambda job: 1 / 0, "ZeroDivisionError: division by zero"),
                          (fail, "no finished run 1 to map: it is running")):
        jobs.start(key, "map", target)
        jobs.wait(key, 30)
        assert jobs.error(key) == error and jobs.get(key) is None
    jobs.start(key, "map", lambda job: None)
    assert jobs.error(key) is None


def test_crash_mid_run_leaves_other_runs_intact(ws):
    good = ws.train("toy", TINY)
    before = ws.store.read_vectors(good)[1]
    orig = ws.store.log_step

    def crash(run_id, step, *a, **k):
        if step == 3:
            raise RuntimeError("simulated crash")
        orig(run_id, step, *a, **k)
    ws.store.log_step = crash
    with pytest.raises(RuntimeError, match="simulated crash"):
        ws.train("toy", {**TINY, "seed": 1})
    ws.store.log_step = orig
    runs = {r.run_id: r for r in ws.runs("toy")}
    failed = [r for r in runs.values() if r.status == "failed"]
    assert len(failed) == 1 and "simulated crash" in failed[0].error
    assert runs[good].status == "done" and np.array_equal(ws.store.read_vectors(good)[1], before)
    # never the failed run (the baseline when the toy run itself came out worse on the judged queries)
    assert ws.latest_run("toy") in (good, ws.run(good).summary["baseline_run"])


def test_interrupted_run_can_resume(tmp_path, fake_model, toy_beir):
    ws = Workspace(str(tmp_path / "w"), default_model=fake_model)
    ws.import_corpus(toy_beir, name="toy")
    steps = count_logged_steps(ws)
    run = ws.train("toy", {**TINY, "epochs": 2}, cancel=lambda: steps["n"] >= 5)
    # as a process that died mid-run leaves it
    with ws.store.session():
        ws.store.con.execute("UPDATE runs SET status = 'running', error = NULL, pid = NULL WHERE run_id = ?", [run])
    ws.close()
    ws = Workspace(str(tmp_path / "w"), default_model=fake_model)
    assert ws.run(run).status == "interrupted"
    ws.resume(run)
    assert ws.run(run).status == "done"
    ws.close()


def test_bad_settings_and_missing_signal(ws, tmp_path):
    with pytest.raises(InputError, match="training settings"):
        ws.train("toy", {**TINY, "siblings": -1})
    with pytest.raises(InputError, match="needs qrels for split 'dev'"):
        ws.train("toy", {**TINY, "split": "dev"})
    with pytest.raises(Exception, match="unknown"):
        ws.train("toy", {**TINY, "no_such_setting": 1})
    assert all(r.kind != "train" for r in ws.runs("toy"))


def test_ict_and_pairs_signals(ws, tmp_path):
    run = ws.train("toy", {**TINY, "signal": "ict", "epochs": 1})
    info = ws.run(run)
    assert info.status == "done"
    # an ICT run holds out pseudo-queries and trains on no judged query: both qrels splits weigh in too
    assert [c["name"] for c in info.summary["outcome"]["checks"]] == \
        ["known item (held-out pseudo-queries)", "judged queries (test)", "judged queries (train)"]
    p = tmp_path / "pairs.tsv"
    p.write_text("query\tdoc\nguitar chords\tmusic-0\nbaking bread\tcooking-0\nrocket launch\tspace-0\n"
                 "drums\tmusic-1\npasta\tcooking-1\nplanets\tspace-1\n")
    report = ws.import_pairs("toy", str(p))
    assert report.qrels == {"pairs": 6}
    run = ws.train("toy", {**TINY, "split": "pairs", "epochs": 1, "batch_size": 2})
    assert ws.run(run).status == "done"
    bad = tmp_path / "bad.tsv"
    bad.write_text("query\tdoc\nx\tnot-a-doc\n")
    with pytest.raises(InputError, match="'not-a-doc' is not in corpus"):
        ws.import_pairs("toy", str(bad))


def test_estimate(ws):
    est = ws.estimate("toy", TINY)
    assert est.loop.steps == 8 and est.total_seconds > 0 and est.pairs == 15
    assert est.train_factor >= 1 and "(measured)" in est.assumptions[0]
    parts = est.loop.train_seconds + est.loop.validation_seconds + est.loop.tree_seconds + est.encode_seconds
    assert est.total_seconds == pytest.approx(parts)
    ws.encode("toy")  # with a baseline, only the final encode is left around the training loop
    assert ws.estimate("toy", TINY).encode_seconds == pytest.approx(est.encode_seconds / 2)


def test_max_pairs_caps_training(ws):
    run = ws.train("toy", {**TINY, "epochs": 1, "max_pairs": 5})
    s = ws.run(run).summary
    assert s["n_train_pairs"] == 5 and s["steps"] == 2  # ceil(5 / batch 4)
    assert ws.estimate("toy", {**TINY, "epochs": 1, "max_pairs": 5}).loop.steps == 2


def test_a_worse_run_is_not_served_by_default(ws):
    from hce_engine.evaluation import check, outcome
    good = ws.train("toy", TINY)
    bad = ws.train("toy", TINY)
    for run, end in ((good, 0.9), (bad, 0.5)):  # as if the first run came out better, the second worse
        summary = ws.run(run).summary
        summary["outcome"] = outcome([check("judged queries (test)", "ndcg_at_10", 0.8, end, 9)])
        ws.store.update_run(run, summary=summary)
    # search, eval and the pages default to the latest run that is not worse; a worse one only when named
    assert ws.latest_run("toy") == good
    assert ws.search("toy", "guitar chord", run=bad)


def test_a_speed_measured_while_busy_is_not_kept(ws):
    """An estimate measured while this process trains (or encodes, or compiles UMAP) is too slow: measure
    again next time instead of keeping it for the session."""
    run = ws.start_training("toy", {**TINY, "epochs": 200})
    try:
        assert ws.estimate("toy", TINY).total_seconds > 0
        assert ws.jobs.active() and ws.cache.count("speed") == 0
    finally:
        ws.cancel(run)
        ws.wait(run, 60)
    ws.estimate("toy", TINY)
    assert ws.cache.count("speed") > 0


def test_a_failing_judged_check_leaves_the_finished_run_done(ws, monkeypatch):
    """The judged-query check runs after the trained run is stored: when it raises, the run stays done (its
    model and vectors usable) with its validation-only outcome and a note saying the check could not be made."""
    def broken(*a, **k):
        raise RuntimeError("judged check exploded")
    monkeypatch.setattr(type(ws), "_judge", broken)
    run = ws.train("toy", {**TINY, "val_fraction": 0.2})
    info = ws.run(run)
    assert info.status == "done" and info.error is None and info.model_path
    s = info.summary
    assert s["judged_error"] == "RuntimeError: judged check exploded" and s.get("test") is None
    assert [c["name"] for c in s["outcome"]["checks"]] == ["validation"]  # the outcome train() measured
    assert "could not be made" in s["outcome"]["text"] and s["outcome"]["verdict"] in ("better", "no better", "worse")
    assert ws.search("toy", "guitar chord", run=run)  # served like any finished run


def test_training_summary_is_typed_and_keeps_what_it_does_not_know(ws):
    from hce_engine.runs import TrainingSummary
    info = ws.run(ws.train("toy", TINY))
    t = info.training
    assert t.baseline_run == info.starting_run and t.steps == info.summary["steps"] > 0
    assert t.outcome == info.outcome and set(t.stage_seconds) >= {"prepare", "steps", "finish"}
    assert TrainingSummary.from_dict(t.to_dict()) == t and t.to_dict() == info.summary  # stored form round-trips
    old = TrainingSummary.from_dict({"steps": 3, "a_key_of_an_older_version": [1]})  # kept, written back as it was
    assert old.steps == 3 and old.outcome is None and old.to_dict()["a_key_of_an_older_version"] == [1]
    assert ws.run(info.starting_run).training == TrainingSummary()  # a baseline run has no training summary
