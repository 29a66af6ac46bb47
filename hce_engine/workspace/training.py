"""Workspace verbs for training: pairs, runs in the foreground or background, resume, estimates."""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .. import slot
from ..atomic import recover_dir
from ..errors import HCEError, InputError
from ..progress import as_stage
from ..runs import RunStatus, TrainingSummary
from ..settings import DEFAULT_MAX_LENGTH
from .base import WorkspaceBase
from .shared import TRAIN_LOCK, ImportReport, Progress, ProgressFn

#: Seconds between the commits of a training run's step log (see _execute_train).
LOG_EVERY_S = 1.0

if TYPE_CHECKING:
    from ..training import TrainConfig
    from ..training.estimate import TimeEstimate


def judged_unavailable(outcome: dict, exc: BaseException) -> dict:
    """Summary entries of a finished run whose judged-query check failed: ``judged_error`` (what failed) and
    its validation-only ``outcome`` with a note that the judged queries could not be checked."""
    error = f"{type(exc).__name__}: {exc}"
    note = f"The judged-query check could not be made ({error}); this verdict is from validation alone."
    text = outcome.get("text", "")
    return {"judged_error": error, "outcome": {**outcome, "text": f"{text} {note}".strip()}}


def encode_procs(cfg) -> int:
    """Processes for a training run's own corpus encodes (its baseline, its final vectors): the run's ``nproc``
    where they pay, on GPUs (one each); one on a CPU, where processes share its cores (encoding 1,000 texts took
    longer on 2 than on 1: benchmarks/results/distributed.json), and one under torchrun (rank 0 encodes alone:
    the other ranks may be on other machines)."""
    from ..encoder import resolve_device
    from ..training.torchrun import under_torchrun
    if cfg.nproc > 1 and not under_torchrun() and resolve_device(cfg.device).type == "cuda":
        return cfg.nproc
    return 1


class TrainingVerbs(WorkspaceBase):
    """Mixed into :class:`~hce_engine.workspace.Workspace`."""

    def import_pairs(self, corpus: str, path: str, split: str = "pairs") -> ImportReport:
        """Supervised training pairs (query text, document id) from a two-column file, stored as queries and
        qrels of ``split`` (so ``TrainConfig(split=...)`` trains on them). All or nothing."""
        from ..corpus import read_pairs
        cid = self.store.corpus_id(corpus)
        label = os.path.basename(path)
        pairs = read_pairs(path, label)
        known = set(self.store.documents(cid)["ext_id"])
        qid_of: dict[str, str] = {}
        rows = []
        for q, d in pairs:
            if d not in known:
                raise InputError(f"document id {d!r} is not in corpus {corpus!r}", label, None)
            qid = qid_of.setdefault(q, f"{split}-q{len(qid_of) + 1}")
            rows.append((qid, d, 1))
        rows = sorted(set(rows))
        with self.store.transaction():
            self.store.insert_queries(cid, list(qid_of.values()), list(qid_of))
            self.store.insert_qrels(cid, split, rows)
        return ImportReport(corpus, "pairs", 0, 0, len(qid_of), {split: len(rows)})

    def default_config(self, corpus: str, preset: str | None = None, **overrides) -> "TrainConfig":
        """The settings the app and ``hce train`` start from: ``preset`` with ``overrides``. Without a preset:
        ``DEFAULT_PRESET``, or ``UNLABELLED_PRESET`` on a corpus without ``train`` qrels. On such a corpus the
        signal defaults to self (no labels needed: the engine's hybrid search teaches the encoder)."""
        from ..training import TrainConfig
        from ..training.config import DEFAULT_PRESET, UNLABELLED_PRESET
        splits = self.store.splits(self.store.corpus_id(corpus))
        data = dict(overrides)
        unlabelled = "train" not in splits and "signal" not in data and "split" not in data
        if unlabelled:  # judged queries of other splits only check runs: supervised training never takes them
            data["signal"] = "self"
        try:
            return TrainConfig.preset(preset or (UNLABELLED_PRESET if unlabelled else DEFAULT_PRESET), **data)
        except (TypeError, ValueError) as exc:
            raise InputError(f"training settings: {exc}") from None

    def _train_config(self, corpus_id: int, config) -> "TrainConfig":
        from ..training import TrainConfig
        cfg = TrainConfig.from_dict(config) if isinstance(config, dict) else config.replace()
        cfg.model = self.model_for(cfg.model)
        try:
            cfg.validate()
            from ..training.torchrun import under_torchrun, world
            if under_torchrun():  # torchrun started the ranks, on this machine or several
                if cfg.nproc != world():
                    raise ValueError(f"--nproc is {cfg.nproc}, but torchrun started {world()} processes")
            elif cfg.nproc > 1:
                from ..encoder.sharded import check_nproc
                check_nproc(cfg.nproc, cfg.device)
        except ValueError as exc:
            raise InputError(f"training settings: {exc}") from None
        if cfg.signal in ("supervised", "joint") and not self.store.qrels(corpus_id, cfg.split):
            have = ", ".join(self.store.splits(corpus_id)) or "none"
            raise InputError(f"the {cfg.signal} signal needs qrels for split {cfg.split!r} (splits: {have}); "
                             "import queries and qrels or pairs, or train with the self or ict signal (no "
                             "labels needed)")
        return cfg

    def train(self, corpus: str, config, progress: ProgressFn | None = None,
              cancel: Callable[[], bool] | None = None) -> int:
        """Train an HCE encoder on the corpus (synchronously); returns the run id.

        ``config`` is a :class:`~hce_engine.training.TrainConfig` or its dict. The run stores its full
        settings and seed, its log, every tree (rebuild 0 = the starting encoder's, then co-training
        rebuilds, then the trained encoder's), its vectors, checkpoints under ``models/run-N`` and a summary
        (validation before/after, test metrics of the starting and trained encoders when the corpus has a
        ``test`` split). Cancelled runs end 'cancelled' and can be resumed with :meth:`resume`.
        """
        run_id = self._new_train_run(corpus, config)
        self._execute_train(run_id, progress, cancel)
        return run_id

    def start_training(self, corpus: str, config) -> int:
        """Like :meth:`train`, in a background thread of this process; returns the run id at once."""
        run_id = self._new_train_run(corpus, config)
        self._start_train_job(run_id, resume=False)
        return run_id

    def resume(self, run_id: int, background: bool = False, progress: ProgressFn | None = None,
               cancel: Callable[[], bool] | None = None) -> int:
        """Continue a cancelled or interrupted training run from its last epoch checkpoint."""
        info = self.run(run_id)
        if not info.is_train or not info.status.resumable:
            raise HCEError(f"run {run_id} is a {info.kind} run with status {info.status}: only cancelled, "
                           "interrupted or failed training runs can be resumed")
        recover_dir(os.path.join(self.models_dir, f"run-{run_id}", "last"))
        if not os.path.isdir(os.path.join(self.models_dir, f"run-{run_id}", "last")):
            raise HCEError(f"run {run_id} stopped before its first epoch ended: there is no checkpoint to "
                           "resume; start a new run")
        self.store.update_run(run_id, status="running", error=None, finished_at=None)
        if background:
            self._start_train_job(run_id, resume=True)
        else:
            self._execute_train(run_id, progress, cancel, resume=True)
        return run_id

    def _start_train_job(self, run_id: int, resume: bool) -> None:
        self.jobs.start(run_id, "train", lambda job: self._execute_train(
            run_id, job.report, job.cancelled, resume))

    def _new_train_run(self, corpus: str, config) -> int:
        cid = self.store.corpus_id(corpus)
        cfg = self._train_config(cid, config)
        return self.store.create_run(cid, "train", cfg.to_dict(), cfg.seed, status="running")

    def _baseline_for(self, corpus: str, model: str | None, progress: ProgressFn | None, cancel,
                      nproc: int = 1) -> int:
        """A finished zero-shot run of ``model`` on the corpus (at ``DEFAULT_MAX_LENGTH`` tokens), encoding one if
        none exists (on ``nproc`` processes)."""
        runs = [r for r in self.runs(corpus, kind="baseline", metrics=False) if r.config.model == model
                and r.config.max_length == DEFAULT_MAX_LENGTH and r.config.tree]
        for r in reversed(runs):  # one being encoded in the background by this process: wait for it
            if r.status is RunStatus.RUNNING and self.jobs.get(r.run_id) is not None:
                if progress:
                    progress(Progress("waiting for baseline", 0, 1))
                self.jobs.wait(r.run_id)
        done = [r.run_id for r in runs if self.run(r.run_id).done]
        return done[-1] if done else self.encode(corpus, model=model, progress=progress, cancel=cancel, nproc=nproc)

    def training_pairs(self, corpus_id: int, cfg, ext_ids: Sequence[str], texts: Sequence[str]) -> list:
        """The pairs a config trains on: supervised from qrels, ICT from the texts, or both mixed; the self
        signal's pseudo-queries."""
        from ..training import ict_pairs, mix_pairs, self_pairs, supervised_pairs
        if cfg.signal == "self":
            titles = list(self.store.documents(corpus_id)["title"]) if cfg.pseudo_query == "title" else None
            pseudo = self_pairs(texts, seed=cfg.seed, min_words=cfg.ict_min_words, choice=cfg.pseudo_query,
                                titles=titles)
            if not pseudo:
                raise InputError("no training pairs: no document has two sentences of at least "
                                 f"{cfg.ict_min_words} words to draw a pseudo-query from")
            return pseudo
        sup, ict = [], []
        if cfg.signal in ("supervised", "joint"):
            sup = supervised_pairs(self.store.qrels(corpus_id, cfg.split), self.store.queries(corpus_id),
                                   {e: i for i, e in enumerate(ext_ids)})
        if cfg.signal in ("ict", "joint"):
            ict = ict_pairs(texts, seed=cfg.seed, remove_prob=cfg.ict_remove_prob, min_words=cfg.ict_min_words)
        pairs = mix_pairs(sup, ict, cfg.joint_ict_ratio, seed=cfg.seed) if cfg.signal == "joint" else sup or ict
        if not pairs:
            raise InputError("no training pairs: " + ("no qrels row names a live document" if sup == [] and
                             cfg.signal != "ict" else "no document has two sentences of at least "
                             f"{cfg.ict_min_words} words for the Inverse Cloze Task"))
        return pairs

    def _execute_train(self, run_id: int, progress: ProgressFn | None, cancel: Callable[[], bool] | None,
                       resume: bool = False) -> None:
        """Run a created training run once the workspace's training slot is free (queued until then)."""
        report = progress or (lambda *a, **k: None)

        def queued() -> None:
            self.store.update_run(run_id, status="queued")
            report(Progress("queued", 0, 0, message="waiting for the training run before it to end"))

        try:
            with slot.hold(os.path.join(self.path, TRAIN_LOCK), queued, cancel):
                self.store.update_run(run_id, status="running")
                self._train_now(run_id, progress, cancel, resume)
        except InterruptedError as exc:  # cancelled while queued (a cancel while training is recorded there)
            if self.run(run_id).status.active:
                self._fail(run_id, exc)
            raise

    def training_busy(self) -> bool:
        """Whether a training run (of any process) holds this workspace's training slot now."""
        return slot.busy(os.path.join(self.path, TRAIN_LOCK))

    def _train_now(self, run_id: int, progress: ProgressFn | None, cancel: Callable[[], bool] | None,
                   resume: bool = False) -> None:
        from ..encoder import load_encoder, set_max_seq_length
        from ..provenance import provenance
        from ..training import TrainConfig, train
        from ..training.run_clock import RunClock
        info = self.run(run_id)
        corpus, cid = info.corpus, info.corpus_id
        # the stages announced before the run (estimate()), so the ETA covers the whole run as it goes
        clock = RunClock(self.cache.peek("estimate", (corpus, _config_key(info.config_dict))))
        sink = progress or (lambda *a, **k: None)

        def report(ev: Progress) -> None:
            sink(clock(ev))

        try:
            cfg = TrainConfig.from_dict(info.config_dict)
            ids, ext_ids, texts = self._texts(cid)
            pairs = self.training_pairs(cid, cfg, ext_ids, texts)
            procs = encode_procs(cfg)
            base_run = self._baseline_for(corpus, cfg.model,
                                          lambda ev: report(replace(ev, stage=f"baseline {ev.stage}")), cancel,
                                          nproc=procs)
            base_ids, base_vecs = self.store.read_vectors(base_run, live_only_corpus=cid)
            initial = base_vecs if np.array_equal(base_ids, ids) else None
            encoder = load_encoder(cfg.model, device=cfg.device, max_length=cfg.max_length,
                                   precision=cfg.precision)  # a fresh copy
            ckpt = os.path.join(self.models_dir, f"run-{run_id}")
            epochs: list[dict] = list(info.training.val_history or []) if resume else []

            # Steps are logged in brief commits (at most one per LOG_EVERY_S), so that another process
            # sharing the workspace gets its turn on the database between them.
            pending: list[tuple] = []
            flushed = [time.monotonic()]

            def flush() -> None:
                if pending:
                    with self.store.session():
                        for row in pending:
                            self.store.log_step(run_id, *row)
                    pending.clear()
                flushed[0] = time.monotonic()

            def on_step(ev) -> None:
                nan = float("nan")
                pending.append((ev.step, ev.epoch - 1 + ev.batch / ev.batches, ev.loss,
                                [nan if v is None else v for v in ev.level_loss],
                                [nan if v is None else v for v in ev.level_acc], ev.leaf_acc,
                                ev.examples_per_s, ev.eta_s, ev.teacher_agree))
                if time.monotonic() - flushed[0] >= LOG_EVERY_S:
                    flush()
                report(Progress("train", ev.step, ev.total_steps, ev.eta_s))

            def on_epoch(ev) -> None:
                flush()
                if ev.val is not None:
                    epochs.append(ev.val)
                    self.store.update_run(run_id, summary=TrainingSummary(val_history=epochs,
                                                                          best_epoch=ev.best_epoch).to_dict())
                report(Progress("validate", ev.epoch, cfg.epochs))

            def on_tree(rebuild: int, tree, vectors) -> None:
                report(Progress("tree", rebuild, rebuild))
                self.build_tree(run_id, vectors, ids, texts, rebuild=rebuild, seed=cfg.seed, tree=tree)

            # the index holds documents at the baseline's length, so start and trained encoders compare fairly
            doc_len = self.run(base_run).doc_max_length
            teacher = self.teacher(corpus, cfg, base_run) if cfg.signal == "self" else None
            result = train(encoder, texts, pairs, cfg, initial_vectors=initial, on_step=on_step, on_tree=on_tree,
                           on_epoch=on_epoch, should_cancel=cancel, checkpoint_dir=ckpt,
                           resume_from=ckpt if resume else None, initial_max_length=doc_len, teacher=teacher)
            flush()
            summary = TrainingSummary(
                baseline_run=base_run, best_epoch=result.best_epoch, start_val=result.start_val,
                best_val=result.best_val, improved=result.improved, val_history=result.val_history,
                steps=result.steps, epochs_done=result.epochs_done, memory_levels=result.memory_levels,
                rebuilds=result.rebuilds, n_train_pairs=result.n_train_pairs, n_val_pairs=result.n_val_pairs,
                examples_per_s=result.examples_per_s, seconds=result.seconds,
                precision=getattr(encoder, "precision", None), outcome=result.outcome, threads=result.threads,
                provenance=provenance(), estimate_stages=clock.estimate if any(clock.estimate.values()) else None)
            if result.status == "cancelled":
                self.store.update_run(run_id, status="cancelled", summary=summary.to_dict(),
                                      error="cancelled by the user (resume continues from the last epoch)")
                return
            model_path = result.checkpoint or os.path.join(ckpt, "best")
            if not result.checkpoint:
                encoder.save(model_path)
            summary = summary.replace(doc_max_length=doc_len)
            if result.corpus_vectors is not None and cfg.max_length == doc_len:
                vecs = result.corpus_vectors  # the last validation encoded the corpus with these weights
            else:
                report(Progress("final encode", 0, len(texts)))
                if procs > 1:  # the saved weights, on the run's processes
                    from ..encoder.sharded import encode_sharded
                    vecs = encode_sharded(model_path, texts, procs, max_length=doc_len, device=cfg.device,
                                          progress=as_stage(report, "final encode"), cancel=cancel)
                else:
                    vecs = encoder.encode(texts, max_length=doc_len, cancel=cancel,
                                          progress=as_stage(report, "final encode"))
            self.store.write_vectors(run_id, ids, vecs)
            # the saved encoder encodes like the run: documents at the length its vectors were made at
            set_max_seq_length(model_path, doc_len)
            report(Progress("tree", 1, 1))
            self.build_tree(run_id, vecs, ids, texts, rebuild=result.rebuilds + 1, branching=cfg.branching,
                            builder=cfg.builder, seed=cfg.seed)
            self.cache.encoder_saved((model_path, cfg.device, cfg.max_length))
            self.store.update_run(run_id, status="done", model_path=model_path, summary=summary.to_dict())
        except BaseException as exc:
            try:
                flush()  # the steps logged before the failure
            except Exception:  # noqa: BLE001 - e.g. the database is what failed; the run's failure is recorded below
                pass
            self._fail(run_id, exc)
            raise
        # The run is finished (stored done first: evaluate scores finished runs only). Its judged-query check
        # completes the outcome; if it cannot be made, the run stays done with its validation outcome and a note.
        try:
            summary = summary.replace(**self._judge(corpus, cid, cfg, base_run, run_id, result.checks, report))
        except Exception as exc:  # noqa: BLE001 - any failure of the check: recorded, the trained run is kept
            summary = summary.replace(**judged_unavailable(result.outcome, exc))
        summary = summary.replace(stage_seconds=clock.finish())
        self.store.update_run(run_id, summary=summary.to_dict())

    def teacher(self, corpus: str, cfg, base_run: int):
        """The self signal's teacher for ``corpus``: hybrid search over BM25 and ``base_run``'s vectors (the
        starting encoder), by corpus position as :meth:`_texts` orders the live documents (unprepared)."""
        from ..training import HybridTeacher
        cid = self.store.corpus_id(corpus)
        ids, _, _ = self._texts(cid)
        vec_ids, vecs = self.store.read_vectors(base_run, live_only_corpus=cid)
        if not np.array_equal(vec_ids, ids):
            raise HCEError(f"run {base_run}'s vectors do not cover the corpus's documents; encode it again")
        bm25 = self.bm25(corpus)
        order = bm25.positions(ids)
        same = np.array_equal(order, np.arange(len(ids)))

        def lexical(query: str) -> np.ndarray:
            scores = bm25.all_scores(query)
            return scores if same else scores[order]
        return HybridTeacher(vecs, lexical, weight=cfg.teacher_weight, tau=cfg.tau, teacher_tau=cfg.teacher_tau)

    def rejudge(self, corpus: str, split: str | None = None) -> list[dict]:
        """Check every finished training run of ``corpus`` again against the judged queries the corpus has
        now (after :meth:`judge` or an import of qrels): its label-free and validation checks are kept, its
        judged-query checks computed afresh (only ``split``'s when given; the others as measured before), and
        its outcome (verdict) updated. Fast: the runs' vectors are stored, only the queries are encoded, and a
        starting run shared by several runs is scored once.

        Returns ``[{"run_id", "before", "after"}]``: each run's verdict before and after.
        """
        from ..evaluation.outcome import JUDGED_CHECK
        cid = self.store.corpus_id(corpus)
        out: list[dict] = []
        memo: dict = {}
        done = self.runs(corpus, status=RunStatus.DONE, metrics=False)
        finished = {r.run_id for r in done}
        for r in done:
            base = r.starting_run
            if r.kind != "train" or base not in finished:
                continue  # a baseline, or its starting run was deleted: nothing to compare against
            before = r.outcome
            kept = [c for c in before.get("checks", []) if not c["name"].startswith(JUDGED_CHECK)]
            reuse = {s: v for s, v in (r.training.judged or {}).items() if s != split} if split else None
            judged = self._judge(corpus, cid, r.config, base, r.run_id, kept, lambda *_: None, reuse, memo)
            summary = r.training.replace(**{"test": None, **judged})
            self.store.update_run(r.run_id, summary=summary.to_dict())
            out.append({"run_id": r.run_id, "before": before.get("verdict", "unknown"),
                        "after": (summary.outcome or {})["verdict"]})
        return out

    def _judge(self, corpus: str, cid: int, cfg, base_run: int, run_id: int, checks: list[dict],
               report, reuse: dict | None = None, memo: dict | None = None) -> dict:
        """The run's outcome: its validation check plus, for every split with qrels it did not train on,
        nDCG@10 of the starting and the trained encoder on those judged queries (``reuse``: {split: {"start",
        "trained"}} taken as measured; ``memo``: {(run, split): metrics} shared between calls). Returns
        summary entries: ``judged`` ({split: {"start", "trained"}}), ``test`` (the test split's, when judged),
        ``outcome`` and ``improved`` (the verdict is "better")."""
        from ..evaluation import check, outcome
        from ..evaluation.outcome import JUDGED_CHECK
        trained_on = cfg.split if cfg.signal in ("supervised", "joint") else None
        splits = [s for s in self.store.splits(cid) if s != trained_on]
        judged, checks, memo = {}, list(checks), {} if memo is None else memo

        def dense(run: int, split: str) -> dict:
            if (run, split) not in memo:
                memo[run, split] = self.evaluate(corpus, run=run, split=split)["dense"]
            return memo[run, split]

        for i, split in enumerate(splits):
            report(Progress("evaluate", i, len(splits)))
            if reuse and split in reuse:
                start, trained = reuse[split]["start"], reuse[split]["trained"]
            else:
                start, trained = dense(base_run, split), dense(run_id, split)
            if not trained.get("queries"):
                continue
            judged[split] = {"start": start, "trained": trained}
            checks.append(check(f"{JUDGED_CHECK} ({split})", "ndcg_at_10", start["ndcg_at_10"],
                                trained["ndcg_at_10"], trained["queries"]))
        if splits:
            report(Progress("evaluate", len(splits), len(splits)))  # a progress bar ends its line
        out = {"judged": judged, "outcome": outcome(checks)}
        out["improved"] = out["outcome"]["verdict"] == "better"
        if "test" in judged:
            out["test"] = judged["test"]
        return out

    def train_log(self, run_id: int):
        """DataFrame of a training run's steps: step, epoch, loss, level_losses, level_acc, leaf_acc,
        examples_per_s, eta_s, teacher_agree (self signal: share of queries whose top candidate is the
        teacher's)."""
        return self.store.train_log(run_id)

    def estimate(self, corpus: str, config) -> TimeEstimate:
        """Time estimate of a training run on this machine, before it starts: the training loop
        (:func:`~hce_engine.training.estimate_seconds` with speeds measured here, once per encoder setting
        and process), plus the corpus encodes around it (the zero-shot baseline if there is none yet, the
        final encode with the trained encoder at the index's document length), each stage calibrated on the
        runs finished here."""
        from ..training import estimate_seconds, measure_seconds_per_sequence, measure_train_factor
        from ..training.estimate import TimeEstimate, run_stages
        cid = self.store.corpus_id(corpus)
        cfg = self._train_config(cid, config)
        ids, ext_ids, texts = self._texts(cid)
        pairs = self.training_pairs(cid, cfg, ext_ids, texts)
        enc = self.encoder(cfg.model, cfg.device, cfg.max_length)
        sample = [texts[i] for i in np.random.default_rng(0).choice(len(texts), min(32, len(texts)), False)]
        base = [r for r in self.runs(corpus, status=RunStatus.DONE, kind="baseline", metrics=False)
                if r.config.model == cfg.model]
        doc_len = base[-1].doc_max_length if base else DEFAULT_MAX_LENGTH

        from ..projection import is_warming
        # a speed measured while this process also encodes, trains or compiles UMAP is too slow: not kept
        busy = bool(self.jobs.active()) or is_warming()

        def measured(name: str, max_length: int, fn) -> float:
            key = (name, cfg.model, cfg.device, max_length)
            value = self.cache.peek("speed", key)
            if value is None:
                value = fn(enc, sample, max_length)
                if not busy:
                    self.cache.put("speed", key, value)
            return value

        def corpus_speed(encoder, sample, max_length: int) -> float:  # encode's own batching, as a corpus encode
            return measure_seconds_per_sequence(encoder, sample, max_length, batch_size=None)

        sps = measured("encode", cfg.max_length, measure_seconds_per_sequence)
        neg_sps = measured("encode", cfg.negative_max_length, measure_seconds_per_sequence)
        val_sps = measured("corpus encode", cfg.max_length, corpus_speed)
        doc_sps = measured("corpus encode", doc_len, corpus_speed)
        factor = measured("train_factor", cfg.max_length, measure_train_factor)
        neg_factor = measured("train_factor", cfg.negative_max_length, measure_train_factor)
        loop = estimate_seconds(cfg, len(pairs), len(texts), sps, have_initial_vectors=True, device=enc.device,
                                train_factor=factor, negative_seconds_per_sequence=neg_sps,
                                negative_train_factor=neg_factor, encode_seconds_per_sequence=val_sps)
        # the last validation's corpus vectors are the final ones when it encoded the whole corpus at doc_len
        final = not (cfg.max_length == doc_len and loop.validations and len(texts) <= cfg.val_pool)
        model_stages = run_stages(loop, len(texts), doc_sps, baseline=not base, final_encode=final)
        ratios, n_runs = self._calibration(cfg.device)
        stages = {k: v * ratios.get(k, 1.0) for k, v in model_stages.items()}
        self.cache.put("estimate", (corpus, _config_key(cfg.to_dict())), stages)  # for the run's clock
        factors = f"forward+backward = {factor:.1f}x an inference encode (measured)" + (
            f", {neg_factor:.1f}x at the negatives' {cfg.negative_max_length} tokens"
            if cfg.negative_max_length != cfg.max_length else "")
        calibrated = (f"each stage scaled by how the last {n_runs} finished run(s) here compared with their "
                      "estimates (the median, per stage)",) if n_runs else ()
        return TimeEstimate(
            loop, encode_seconds=((0 if base else 1) + final) * len(texts) * doc_sps,  # baseline if missing + final
            model_stages=model_stages, stages=stages, calibration_runs=n_runs, calibration_ratios=ratios,
            train_factor=factor, negative_train_factor=neg_factor, pairs=len(pairs), device=str(enc.device),
            assumptions=(factors, *loop.assumptions[1:], *calibrated))

    def _calibration(self, device: str) -> tuple[dict[str, float], int]:
        """Per stage, the median of measured over estimated seconds of the last ``CALIBRATION_RUNS`` finished
        training runs here (on ``device``) that recorded both, for stages estimated at ``MIN_STAGE_S`` or more
        (clamped to 1/3..3); and how many runs that was. What this machine, under its usual load, does."""
        from ..training.run_clock import MIN_STAGE_S
        per_stage: dict[str, list[float]] = {}
        n = 0
        for r in reversed(self.runs(status=RunStatus.DONE, kind="train", metrics=False)):
            est, took = r.training.estimate_stages, r.training.stage_seconds
            if not est or not took or r.config_dict.get("device", "auto") != device:
                continue
            for stage, seconds in est.items():
                if seconds >= MIN_STAGE_S and stage in took:
                    per_stage.setdefault(stage, []).append(took[stage] / seconds)
            n += 1
            if n == CALIBRATION_RUNS:
                break
        return {k: float(np.clip(np.median(v), 1 / 3, 3)) for k, v in per_stage.items()}, n


#: How many earlier runs calibrate an estimate (:meth:`TrainingVerbs._calibration`).
CALIBRATION_RUNS = 5


def _config_key(config: dict) -> str:
    """A run's settings as a cache key (the same for a config dict and its stored JSON)."""
    return json.dumps(config, sort_keys=True, default=str)
