"""Workspace verbs for experiments: create, run (queued, one training run at a time), resume, status, results.

An experiment's arm x seed cells are ordinary training runs (visible everywhere runs are); the experiment
records which run is which cell. Running an experiment trains its missing cells in order (seed by seed, arm
by arm): a cell whose run finished is kept, one cancelled or interrupted after an epoch resumes from its
checkpoint, one that stopped before any checkpoint is deleted and started again. So ``run`` after a crash or a
``kill -9`` finishes the experiment with exactly one run per cell, and adding seeds runs only the new cells.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import numpy as np

from .. import slot
from ..errors import HCEError, NotFoundError
from ..progress import Progress
from ..runs import RunStatus
from .base import WorkspaceBase
from .shared import ProgressFn


@dataclass(frozen=True)
class Experiment:
    """A stored experiment: id, its spec (:class:`~hce_engine.experiments.ExperimentSpec`), the provenance
    recorded when it was created and when each of its runs ended, and when it was created."""
    experiment_id: int
    spec: Any
    provenance: dict
    created_at: Any

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def cells(self) -> list[tuple[str, int]]:
        """Every (arm, seed), in the order they run: seed by seed, arm by arm."""
        return [(arm, seed) for seed in self.spec.seeds for arm in self.spec.arms]


@dataclass(frozen=True)
class ExperimentCell:
    """One arm x seed of an experiment: its training ``run_id`` (None before it starts), that run's ``status``
    ("pending" before) and the ``seconds`` its training took (None until the run records them)."""
    arm: str
    seed: int
    run_id: int | None
    status: str
    seconds: float | None


@dataclass(frozen=True)
class CellError:
    """A cell whose run failed in a :meth:`~ExperimentVerbs.run_experiment` call, and why (``error``)."""
    arm: str
    seed: int
    error: str


@dataclass(frozen=True)
class ExperimentStatus:
    """Where an experiment stands (:meth:`ExperimentVerbs.experiment_status`).

    Attributes:
        experiment_id, name, corpus: the experiment.
        running: a process (this one or another) runs it now (it holds the experiment's lock).
        cells: every arm x seed, in the order they run (:class:`ExperimentCell`); ``done`` of ``total`` finished.
        eta_s: seconds left, the runs left at the finished runs' mean time (0 when all are done, None before one
            finishes).
        progress: the current run's latest event while this process runs the experiment, else None;
            ``cancelling``: it was asked to stop.
        errors: the cells that failed in the :meth:`~ExperimentVerbs.run_experiment` call that returned it (None
            from ``experiment_status``).
    """
    experiment_id: int
    name: str
    corpus: str
    running: bool
    cells: tuple[ExperimentCell, ...]
    done: int
    total: int
    eta_s: float | None
    progress: Progress | None = None
    cancelling: bool = False
    errors: tuple[CellError, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``hce experiment status|run --json``): ``progress`` as the event's fields with
        ``cancelling``; ``errors`` only when set."""
        live = None if self.progress is None else {**asdict(self.progress), "cancelling": self.cancelling}
        out = {"experiment_id": self.experiment_id, "name": self.name, "corpus": self.corpus,
               "running": self.running, "cells": [asdict(c) for c in self.cells], "done": self.done,
               "total": self.total, "eta_s": self.eta_s, "progress": live}
        return out if self.errors is None else {**out, "errors": [asdict(e) for e in self.errors]}


class ExperimentVerbs(WorkspaceBase):
    """Mixed into :class:`~hce_engine.workspace.Workspace`."""

    def create_experiment(self, spec) -> int:
        """Store an experiment (an :class:`ExperimentSpec` or its dict), checked against the corpus: its runs
        must be able to start (labels for a supervised signal) and the compared split must have judged queries.
        Records the provenance (commit, machine, packages). Returns its id; nothing runs yet."""
        from ..experiments import ExperimentSpec
        from ..provenance import provenance
        spec = spec if isinstance(spec, ExperimentSpec) else ExperimentSpec.from_dict(spec)
        spec.validate()
        cid = self.store.corpus_id(spec.corpus)
        for arm in spec.arms:
            self._train_config(cid, self.default_config(spec.corpus, spec.preset or None,
                                                        **spec.overrides(arm, spec.seeds[0])))
        if not self.store.qrels(cid, spec.split):
            have = ", ".join(self.store.splits(cid)) or "none"
            raise HCEError(f"corpus {spec.corpus!r} has no judged queries in split {spec.split!r} to compare the "
                           f"arms on (splits: {have}); import queries and qrels, or judge some on the Search page")
        return self.store.create_experiment(cid, spec.name, spec.to_dict(), {"created": provenance()})

    def experiment(self, experiment_id: int) -> Experiment:
        from ..experiments import ExperimentSpec
        row = self.store.get_experiment(int(experiment_id))
        return Experiment(row["experiment_id"], ExperimentSpec.from_dict(row["spec"]), row["provenance"],
                          row["created_at"])

    def experiments(self) -> list[dict]:
        """Every experiment: {experiment_id, name, corpus, created_at}, oldest first."""
        return self.store.list_experiments()

    def delete_experiment(self, experiment_id: int) -> None:
        """Forget an experiment (not running); its runs stay as ordinary runs."""
        self._check_experiment_idle(experiment_id)
        self.store.delete_experiment(experiment_id)
        if os.path.exists(self._lock_path(experiment_id)):
            os.remove(self._lock_path(experiment_id))

    def add_seeds(self, experiment_id: int, seeds) -> list[int]:
        """Add seeds to an experiment (its next run trains the new cells). Returns the experiment's seeds."""
        exp = self.experiment(experiment_id)
        spec = exp.spec
        spec.seeds = list(spec.seeds) + [int(s) for s in seeds if int(s) not in spec.seeds]
        spec.validate()
        self.store.update_experiment(exp.experiment_id, spec.to_dict())
        return spec.seeds

    def _lock_path(self, experiment_id: int) -> str:
        return os.path.join(self.path, f"experiment-{int(experiment_id)}.lock")

    def _check_experiment_idle(self, experiment_id: int) -> None:
        if slot.busy(self._lock_path(experiment_id)):
            raise HCEError(f"experiment {experiment_id} is running (here or in another process); cancel it first")

    def run_experiment(self, experiment_id: int, progress: ProgressFn | None = None,
                       cancel: Callable[[], bool] | None = None) -> ExperimentStatus:
        """Train every missing cell of the experiment, one at a time, in this thread; returns its status, with
        the cells that failed (``errors``).

        A cancel stops after the current run's step (the run can resume); a failed run is recorded and the
        next cell runs (run the experiment again to retry it). Raises HCEError when the experiment is already
        being run (by this process or another).
        """
        exp = self.experiment(experiment_id)
        report = progress or (lambda *a, **k: None)
        errors: list[CellError] = []
        try:
            with slot.hold(self._lock_path(exp.experiment_id), wait_s=2.0):
                cells = exp.cells
                for i, (arm, seed) in enumerate(cells):
                    if cancel is not None and cancel():
                        break

                    def step(ev: Progress, _arm=arm, _seed=seed, _i=i) -> None:
                        report(Progress(f"{_arm} seed {_seed} ({_i + 1}/{len(cells)}): {ev.stage}", ev.done,
                                        ev.total, ev.eta_s, ev.message))
                    try:
                        self._run_cell(exp, arm, seed, step, cancel)
                    except (InterruptedError, KeyboardInterrupt):
                        break
                    except Exception as exc:  # noqa: BLE001 - recorded with its run; the other cells go on
                        errors.append(CellError(arm, seed, str(exc) or type(exc).__name__))
        except TimeoutError:
            raise HCEError(f"experiment {exp.experiment_id} is already running (here or in another "
                           "process)") from None
        return replace(self.experiment_status(exp.experiment_id), errors=tuple(errors))

    def _run_cell(self, exp: Experiment, arm: str, seed: int, progress: ProgressFn,
                  cancel: Callable[[], bool] | None) -> None:
        spec = exp.spec
        run_id = self.store.experiment_runs(exp.experiment_id).get((arm, seed))
        if run_id is not None:
            self.store.mark_interrupted([run_id])  # left running by a process that died
            info = self.run(run_id)
            if info.done:
                return
            if info.status.active:
                raise HCEError(f"run {run_id} ({arm}, seed {seed}) is {info.status} in another process")
            if os.path.isdir(os.path.join(self.models_dir, f"run-{run_id}", "last")):
                self.resume(run_id, progress=progress, cancel=cancel)
                return
            self.delete_run(run_id)  # stopped before its first checkpoint: nothing to keep
        cid = self.store.corpus_id(spec.corpus)
        cfg = self._train_config(cid, self.default_config(spec.corpus, spec.preset or None,
                                                          **spec.overrides(arm, seed)))
        run_id = self.store.create_experiment_run(exp.experiment_id, arm, seed, cid, cfg.to_dict())
        self._execute_train(run_id, progress, cancel)

    def start_experiment(self, experiment_id: int) -> None:
        """Like :meth:`run_experiment`, in a background thread of this process (:meth:`cancel_experiment`)."""
        self._check_experiment_idle(experiment_id)
        def body(job) -> None:
            self.run_experiment(experiment_id, job.report, job.cancelled)
        self.experiment_jobs.start(int(experiment_id), "experiment", body)

    def cancel_experiment(self, experiment_id: int) -> bool:
        """Ask this process's background run of the experiment to stop (its current run can resume)."""
        return self.experiment_jobs.cancel(int(experiment_id))

    def experiment_status(self, experiment_id: int) -> ExperimentStatus:
        """Where the experiment stands: its cells' runs, how many are done, the time left and, while this process
        runs it, the current run's progress."""
        exp = self.experiment(experiment_id)
        runs = self.store.experiment_runs(exp.experiment_id)
        cells, done_s = [], []
        for arm, seed in exp.cells:
            run_id = runs.get((arm, seed))
            info = None
            if run_id is not None:
                try:
                    info = self.run(run_id)
                except NotFoundError:
                    run_id = None
            seconds = info.training.seconds if info else None
            if info is not None and info.done and seconds:
                done_s.append(float(seconds))
            cells.append(ExperimentCell(arm, seed, run_id, str(info.status) if info else "pending", seconds))
        n_done = sum(c.status == RunStatus.DONE.value for c in cells)
        job = self.experiment_jobs.get(exp.experiment_id)
        left = len(cells) - n_done
        eta = float(np.mean(done_s)) * left if done_s and left else (0.0 if not left else None)
        return ExperimentStatus(exp.experiment_id, exp.name, exp.spec.corpus,
                                slot.busy(self._lock_path(exp.experiment_id)), tuple(cells), n_done, len(cells), eta,
                                job.progress if job else None, job is not None and job.cancelled())

    def experiment_results(self, experiment_id: int, n_boot: int = 10000, control: str | None = None) -> dict:
        """The experiment's results over its finished runs (:func:`~hce_engine.experiments.summarize`) on the
        spec's judged split, against ``control`` (default: the spec's), with the spec, the cells, the per-query
        values of the headline metric per run (for scatter plots) and the provenance. JSON-ready."""
        from ..experiments import summarize
        from ..experiments.results import HEADLINE
        exp = self.experiment(experiment_id)
        status = self.experiment_status(experiment_id)
        per_query: dict[tuple[str, int], dict] = {}
        seconds: dict[tuple[str, int], float] = {}
        runs: dict[str, dict] = {}
        for cell in status.cells:
            if cell.status != RunStatus.DONE.value or cell.run_id is None:
                continue
            key = (cell.arm, cell.seed)
            per_query[key] = self._per_query(exp.spec.corpus, cell.run_id, exp.spec.split)
            if cell.seconds is not None:
                seconds[key] = float(cell.seconds)
            info = self.run(cell.run_id)
            runs[f"{cell.arm}/{cell.seed}"] = {
                "run_id": cell.run_id, "config": info.config_dict,
                "provenance": info.training.provenance,
                HEADLINE: {q: v[HEADLINE] for q, v in per_query[key].items()}}
        if control is not None and control not in exp.spec.arms:
            raise HCEError(f"{control!r} is not an arm of experiment {exp.experiment_id}")
        summary = summarize(list(exp.spec.arms), control or exp.spec.control, per_query, seconds, n_boot=n_boot)
        shown = status.to_dict()
        return {"experiment_id": exp.experiment_id, "name": exp.name, "spec": exp.spec.to_dict(),
                "status": {k: shown[k] for k in ("done", "total", "cells")}, **summary, "runs": runs,
                "provenance": exp.provenance}

    def _per_query(self, corpus: str, run_id: int, split: str) -> dict:
        """{query id: {metric: value}} of a finished run's dense search on ``split``; kept while the split's
        judgements and the corpus's live documents stay the same."""
        cid = self.store.corpus_id(corpus)
        qrels = self.store.qrels(cid, split)
        key = (run_id, split, hash(tuple(sorted((q, tuple(sorted(d.items()))) for q, d in qrels.items()))),
               len(self.store.vector_ids(run_id, live_only_corpus=cid)))
        value = self.cache.peek("per_query", key)
        if value is None:  # measured outside the cache's lock: searches go on meanwhile
            value = self.evaluate(corpus, run=run_id, split=split, per_query=True)["per_query"]["dense"]
            self.cache.put("per_query", key, value)
        return value

    def experiment_coherence(self, experiment_id: int, arm: str | None = None, control: str | None = None,
                             min_queries: int = 3) -> dict:
        """Sibling-group coherence against the per-query gain of ``arm`` (default: the first arm that is not
        the control) over ``control`` (default: the experiment's)
        (:func:`~hce_engine.experiments.coherence.coherence_against_gain`), on the tree the first seed's control
        run started from and the starting vectors it was built from; gains averaged over the seeds both arms
        finished. Adds ``arm``, ``control``, ``seeds`` and ``run_id``."""
        from ..experiments.coherence import coherence_against_gain
        from ..experiments.results import HEADLINE
        exp = self.experiment(experiment_id)
        spec = exp.spec
        ctl = control or spec.control
        arm = arm or next(a for a in spec.arms if a != ctl)
        if arm not in spec.arms or ctl not in spec.arms or arm == ctl:
            raise HCEError(f"arms {arm!r} and {ctl!r} are not two of the experiment's arms")
        runs = self.store.experiment_runs(exp.experiment_id)
        done = {k: r for k, r in runs.items() if self.run(r).done}
        seeds = [s for s in spec.seeds if (arm, s) in done and (ctl, s) in done]
        if not seeds:
            raise HCEError(f"no seed has finished runs of both {arm!r} and {ctl!r} yet")
        gains: dict[str, list[float]] = {}
        for s in seeds:
            a = self._per_query(spec.corpus, done[arm, s], spec.split)
            c = self._per_query(spec.corpus, done[ctl, s], spec.split)
            for q in a.keys() & c.keys():
                gains.setdefault(q, []).append(a[q][HEADLINE] - c[q][HEADLINE])
        start = self.run(done[ctl, seeds[0]])
        run_tree = self.tree(start.run_id, rebuild=0)
        tree, terms = run_tree.tree, run_tree.terms
        base = start.starting_run
        if base is None:
            raise HCEError(f"run {start.run_id} records no starting run to compare against")
        vec_ids, vecs = self.store.read_vectors(base)
        pos_of = {int(d): i for i, d in enumerate(tree.doc_ids)}
        keep = np.array([pos_of.get(int(d), -1) for d in vec_ids])
        vectors = np.zeros((tree.n_docs, vecs.shape[1]), dtype=np.float32)
        vectors[keep[keep >= 0]] = vecs[keep >= 0]
        cid = self.store.corpus_id(spec.corpus)
        docs = self.store.documents(cid)
        internal = dict(zip(docs["ext_id"], docs["doc_id"], strict=True))
        query_doc = {}
        for q, judged in self.store.qrels(cid, spec.split).items():
            rel = [d for d, v in sorted(judged.items()) if v > 0 and int(internal.get(d, -1)) in pos_of]
            if rel:
                query_doc[q] = pos_of[int(internal[rel[0]])]
        out = coherence_against_gain(tree, vectors, query_doc, {q: float(np.mean(g)) for q, g in gains.items()},
                                     [" ".join(t[:3]) for t in terms], min_queries)
        return {**out, "arm": arm, "control": ctl, "seeds": seeds, "run_id": start.run_id}
