"""Where a training run's time goes, by stage, and how much is left, re-estimated as the run goes.

A run (``Workspace.train``) passes through four stages, in order; each maps the progress events it reports:

* ``baseline`` - encoding the corpus with the starting encoder and building its tree (first run of a corpus
  only: events named ``baseline ...``);
* ``prepare``  - pairs, the self signal's teacher, the starting encoder's validation (from the baseline's end
  to the first training step);
* ``steps``    - the training steps, with the validations and tree rebuilds between epochs (``train`` events);
* ``finish``   - the last validation, the trained encoder's corpus encode, its tree, the judged-split checks.

:class:`RunClock` sits between the run and its progress callback: it times the stages (``seconds()``) and
replaces each event's ``eta_s`` by the time left for the *whole* run: the current stage's own rate where it
reports one (the training loop's ETA; an encode's done/total), plus the estimate of every later stage, scaled by
how the finished stages compared with their estimates.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Mapping

from ..progress import Progress

STAGES = ("baseline", "prepare", "steps", "finish")
#: Stages estimated shorter than this (seconds) do not scale the rest: their fixed costs (loading, first calls)
#: are not in the estimate and would make every later stage look slower than it will be.
MIN_STAGE_S = 10.0
#: Events that are waiting, not work: their time is in no stage.
WAITING = ("queued", "waiting for baseline")


def stage_of(event_stage: str, seen_steps: bool) -> str | None:
    """The run stage a progress event belongs to (None: waiting), given whether a step was reported yet."""
    if event_stage in WAITING:
        return None
    if event_stage.startswith("baseline"):
        return "baseline"
    if event_stage == "train":
        return "steps"
    if event_stage in ("final encode", "evaluate"):
        return "finish"
    return "steps" if seen_steps else "prepare"  # validate, tree: between steps once steps began


class RunClock:
    """Times a training run's stages from its progress events; ``eta_s`` of the whole run.

    Args:
        estimate: seconds per stage announced before the run (``Workspace.estimate(...).stages``), or None.
        now: the clock (monotonic seconds), injectable for tests.

    Example:
        ::

            clock = RunClock({"baseline": 0, "prepare": 10, "steps": 100, "finish": 20})
            report = lambda ev: print(clock(ev).eta_s)   # wrap the run's progress callback
            ...
            clock.finish(); clock.seconds()              # {"baseline": 0.0, "prepare": 9.1, ...}
    """

    def __init__(self, estimate: Mapping[str, float] | None = None, now: Callable[[], float] = time.monotonic):
        self.estimate = {s: float((estimate or {}).get(s) or 0.0) for s in STAGES}
        self.now = now
        self.t0 = now()
        self.spent = {s: 0.0 for s in STAGES}
        self.stage: str | None = None
        self.entered = self.t0
        self.seen_steps = False
        self.count_start = True  # the time before the first event counts (not after waiting first)
        self.ended = False

    def _enter(self, stage: str | None) -> None:
        t = self.now()
        if self.stage is not None:
            self.spent[self.stage] += t - self.entered
        if stage is not None and self.stage is not None and STAGES.index(stage) < STAGES.index(self.stage):
            stage = self.stage  # never back: a late event of an earlier kind belongs to the current stage
        # the run's own start (loading, pairs) up to its first event belongs to that event's stage
        first = self.stage is None and self.count_start and stage is not None
        self.count_start = False
        self.stage, self.entered = stage, (self.t0 if first else t)

    def __call__(self, ev: Progress) -> Progress:
        """Record ``ev``; return it with ``eta_s`` = seconds left for the whole run (None before any estimate)."""
        stage = stage_of(ev.stage, self.seen_steps)
        if stage is None:
            self.count_start = False  # queued first: the run starts when the wait ends
        self.seen_steps = self.seen_steps or stage == "steps"
        if stage != self.stage:
            self._enter(stage)
        if stage is None:
            return ev
        return replace(ev, eta_s=self.remaining(ev))

    def finish(self) -> dict[str, float]:
        """Close the current stage (the run ended); returns :meth:`seconds`."""
        if not self.ended:
            self._enter(None)
            self.ended = True
        return self.seconds()

    def seconds(self) -> dict[str, float]:
        """Seconds spent in each stage so far (the open stage up to now)."""
        out = dict(self.spent)
        if self.stage is not None and not self.ended:
            out[self.stage] += self.now() - self.entered
        return {s: round(v, 2) for s, v in out.items()}

    def ratio(self, ev: Progress | None = None) -> float:
        """How much slower (> 1) or faster than estimated this run goes: during the steps, from their own rate
        (seconds so far over the share of steps done, against the steps' estimate); else measured over estimated
        seconds of the finished stages estimated at ``MIN_STAGE_S`` or more (fixed costs dominate shorter ones);
        1.0 before any."""
        if self.stage is None:
            return 1.0
        if self.stage == "steps" and ev is not None and ev.stage == "train" and ev.total and ev.done >= 2 \
                and self.estimate["steps"] > 0:
            spent = self.spent["steps"] + self.now() - self.entered
            return spent * ev.total / ev.done / self.estimate["steps"]
        done = [s for s in STAGES[:STAGES.index(self.stage)] if self.estimate[s] >= MIN_STAGE_S]
        est = sum(self.estimate[s] for s in done)
        return sum(self.spent[s] for s in done) / est if est > 0 else 1.0

    def remaining(self, ev: Progress) -> float | None:
        """Seconds left: the current stage's own ETA (its event's, or its done/total rate), else its estimate
        less the time spent in it; plus the later stages' estimates, all scaled by :meth:`ratio`."""
        if self.stage is None or not any(self.estimate.values()) and ev.eta_s is None:
            return ev.eta_s
        k = self.ratio(ev)
        stage = self.stage
        spent = self.spent[stage] + self.now() - self.entered
        if ev.eta_s is not None and ev.eta_s == ev.eta_s and stage == "steps":
            here = float(ev.eta_s)  # the loop's own ETA: steps left at its measured step time + validations
        elif ev.total and 0 < ev.done < ev.total and spent > 0 and stage != "steps":
            here = spent * (ev.total - ev.done) / ev.done  # an encode's progress bar
        else:
            here = max(0.0, self.estimate[stage] * k - spent)
        later = sum(self.estimate[s] for s in STAGES[STAGES.index(stage) + 1:])
        return here + later * k
