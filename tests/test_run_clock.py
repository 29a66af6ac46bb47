"""The run clock: stage times from progress events, and the whole run's ETA re-estimated as it goes."""
from __future__ import annotations

import pytest

from hce_engine.progress import Progress
from hce_engine.training import TrainConfig, estimate_seconds
from hce_engine.training.estimate import run_stages
from hce_engine.training.run_clock import RunClock, stage_of


class FakeTime:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_stage_of_maps_the_events_a_run_reports():
    assert stage_of("baseline encode", False) == "baseline"
    assert stage_of("baseline tree", False) == "baseline"
    assert stage_of("validate", False) == "prepare"
    assert stage_of("train", False) == "steps"
    assert stage_of("validate", True) == "steps"
    assert stage_of("tree", True) == "steps"
    assert stage_of("final encode", True) == "finish"
    assert stage_of("queued", False) is None


def test_clock_times_stages_and_scales_later_ones_by_how_the_earlier_went():
    now = FakeTime()
    clock = RunClock({"baseline": 10, "prepare": 10, "steps": 100, "finish": 20}, now=now)
    ev = clock(Progress("baseline encode", 0, 100))
    # nothing done yet: the whole estimate is left
    assert ev.eta_s == pytest.approx(140)
    now.t += 10
    ev = clock(Progress("baseline encode", 50, 100))  # half the encode in 10 s: 10 s more at that rate
    assert ev.eta_s == pytest.approx(10 + 130)
    now.t += 10
    clock(Progress("validate", 0, 2))  # baseline took 20 s against 10 estimated: later stages x2
    now.t += 20
    ev = clock(Progress("train", 1, 10, eta_s=90.0))  # the loop's own ETA for the steps
    assert clock.ratio() == pytest.approx(40 / 20)
    assert ev.eta_s == pytest.approx(90 + 20 * 2)
    now.t += 50
    clock(Progress("final encode", 0, 10))
    now.t += 5
    seconds = clock.finish()
    assert seconds == {"baseline": 20.0, "prepare": 20.0, "steps": 50.0, "finish": 5.0}


def test_clock_never_goes_back_and_ignores_waiting():
    now = FakeTime()
    clock = RunClock(None, now=now)
    clock(Progress("queued", 0, 0))
    now.t += 30  # waiting is in no stage
    clock(Progress("train", 1, 2, eta_s=5.0))
    now.t += 4
    ev = clock(Progress("baseline encode", 1, 2))  # a late event of an earlier kind stays in the steps
    assert ev.eta_s is None or ev.eta_s >= 0
    now.t += 1
    assert clock.finish() == {"baseline": 0.0, "prepare": 0.0, "steps": 5.0, "finish": 0.0}


def test_without_an_estimate_the_loop_eta_passes_through():
    clock = RunClock(None, now=FakeTime())
    assert clock(Progress("train", 1, 10, eta_s=42.0)).eta_s == 42.0


def test_run_stages_add_up_to_the_estimate_total():
    cfg = TrainConfig.preset("unsupervised", signal="self")
    est = estimate_seconds(cfg, 1000, 800, 0.01, have_initial_vectors=True)
    stages = run_stages(est, 800, 0.02, baseline=True, final_encode=True)
    assert sum(stages.values()) == pytest.approx(est.total_seconds + 2 * 800 * 0.02)
    assert stages["baseline"] == pytest.approx(16.0)
    assert stages["prepare"] >= est.teacher_seconds
    no_final = run_stages(est, 800, 0.02, baseline=False, final_encode=False)
    assert no_final["baseline"] == 0 and no_final["finish"] == pytest.approx(stages["finish"] - 16.0)


def test_a_run_records_its_stage_times_and_reports_the_whole_runs_eta(toy_ws):
    """A run started after an estimate (as the app and `hce train` do) stores the estimate's stages and the
    measured ones, and its progress events carry the time left for the whole run."""
    cfg = {"epochs": 2, "batch_size": 4, "siblings": 3, "branching": 3, "lr": 1e-2, "memory_lr": 1e-2,
           "signal": "self"}
    est = toy_ws.estimate("toy", cfg)
    assert set(est.stages) == {"baseline", "prepare", "steps", "finish"} and est.stages["baseline"] > 0
    assert sum(est.stages.values()) == pytest.approx(est.total_seconds)
    events: list[Progress] = []
    run = toy_ws.train("toy", cfg, progress=events.append)
    summary = toy_ws.run(run).summary
    assert summary["estimate_stages"] == pytest.approx(est.stages)
    measured = summary["stage_seconds"]
    assert set(measured) == {"baseline", "prepare", "steps", "finish"}
    assert measured["baseline"] > 0 and measured["steps"] > 0
    train_events = [e for e in events if e.stage == "train"]
    assert train_events and all(e.eta_s is not None and e.eta_s >= 0 for e in train_events)
    # a run nobody estimated has no stored estimate, and still its stage times
    run2 = toy_ws.train("toy", {**cfg, "seed": 5})
    assert toy_ws.run(run2).summary["estimate_stages"] is None
    assert toy_ws.run(run2).summary["stage_seconds"]["baseline"] == 0.0  # the baseline existed


def test_during_the_steps_their_own_rate_scales_what_is_left():
    """Halfway through the steps in half their estimate: the run goes twice as fast as estimated, so the
    finish is expected in half its estimate too; a short stage's fixed cost does not count."""
    now = FakeTime()
    clock = RunClock({"baseline": 0, "prepare": 2, "steps": 100, "finish": 40}, now=now)
    clock(Progress("validate", 0, 1))
    now.t += 8  # prepare: 4x its 2 s estimate (loading, first calls), below MIN_STAGE_S: ignored
    clock(Progress("train", 1, 10, eta_s=90.0))
    assert clock.ratio() == 1.0
    now.t += 25
    ev = clock(Progress("train", 5, 10, eta_s=25.0))  # 5 of 10 steps in 25 s: k = 0.5
    assert ev.eta_s == pytest.approx(25 + 40 * 0.5)


def test_an_estimate_learns_from_the_runs_before_it(toy_ws):
    """Once runs here have recorded stage times, the next estimate scales each stage by how they compared
    with their estimates (the median), and says so; stages too short to learn from keep the model's figure."""
    cfg = {"epochs": 1, "batch_size": 4, "siblings": 3, "branching": 3, "signal": "self"}
    first = toy_ws.estimate("toy", cfg)
    assert (first.calibration_runs, first.calibration_ratios) == (0, {}) and first.stages == first.model_stages
    run = toy_ws.train("toy", cfg)
    summary = toy_ws.run(run).summary
    # as if this run's steps had been estimated at 20 s and taken 60 s, its prepare at 1 s and taken 9 s
    summary["estimate_stages"] = {"baseline": 0.0, "prepare": 1.0, "steps": 20.0, "finish": 0.0}
    summary["stage_seconds"] = {"baseline": 0.0, "prepare": 9.0, "steps": 60.0, "finish": 0.0}
    toy_ws.store.update_run(run, summary=summary)
    second = toy_ws.estimate("toy", {**cfg, "seed": 1})
    assert (second.calibration_runs, second.calibration_ratios) == (1, {"steps": 3.0})
    assert second.stages["steps"] == pytest.approx(3 * second.model_stages["steps"])
    assert second.stages["prepare"] == pytest.approx(second.model_stages["prepare"])
    assert second.total_seconds == pytest.approx(sum(second.stages.values()))
    assert any("finished run(s) here" in a for a in second.assumptions)


def test_the_time_before_the_first_event_belongs_to_its_stage():
    now = FakeTime()
    clock = RunClock(None, now=now)
    now.t += 3  # loading, pairs: no event yet
    clock(Progress("validate", 0, 1))
    now.t += 1
    assert clock.finish()["prepare"] == 4.0
