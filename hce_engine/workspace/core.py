"""The engine's main object: a workspace folder (one DuckDB file + model checkpoints) and its verbs.

Data flows one way: corpus file -> store -> encoder -> tree -> training -> index -> search/evaluation.
Everything the app and the ``hce`` command do goes through :class:`Workspace`.

Example::

    ws = Workspace("./hce-workspace")
    ws.import_corpus("sample_corpora/jargon_file/corpus.jsonl", name="jargon")
    run = ws.encode("jargon")                  # zero-shot baseline: vectors + tree
    ws.search("jargon", "a program that never ends")
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import replace
from functools import partial
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from .. import tempfiles
from ..corpus import read_corpus, read_qrels, read_queries
from ..errors import HCEError, InputError, NotFoundError
from ..jobs import JobRegistry
from ..runs import EncodeConfig, Run, RunStatus, RunTree
from ..settings import DEFAULT_MAX_LENGTH
from ..store import Store
from .cache import WorkspaceCache
from .experiments import ExperimentVerbs
from .exports import ExportVerbs
from .maps import MapVerbs
from .search import SearchVerbs
from .shared import (
    DB_FILE,
    INDEX_FILE,
    SAMPLE_CORPORA,
    SAMPLES_DIR,
    ImportReport,
    Progress,
    ProgressFn,
    default_workspace,
    doc_text,
)
from .training import TrainingVerbs
from .updates import UpdateVerbs

log = logging.getLogger(__name__)


class Workspace(SearchVerbs, UpdateVerbs, TrainingVerbs, ExperimentVerbs, ExportVerbs, MapVerbs):
    """A folder with one DuckDB file (``hce.duckdb``) and trained models (``models/run-N``).

    Args:
        path: the folder (created if missing); default ``$HCE_WORKSPACE`` or ``./hce-workspace``.
        default_model: encoder folder used when a run names none (default: the bundled MiniLM, or
            ``$HCE_DEFAULT_MODEL``).
    """

    def __init__(self, path: str | None = None, default_model: str | None = None):
        self.path = os.path.abspath(path or default_workspace())
        os.makedirs(self.path, exist_ok=True)
        self.models_dir = os.path.join(self.path, "models")
        self.store = Store(os.path.join(self.path, DB_FILE))
        tempfiles.remove_stale()  # what killed processes left: ZIPs unpacked mid-import, app exports
        # This process owns the file (DuckDB allows one writer), so a run left 'running' has no process.
        self.interrupted_runs = self.store.mark_interrupted()
        self.store.drop_orphan_vectors()
        self.default_model = default_model or os.environ.get("HCE_DEFAULT_MODEL") or None
        self.cache = WorkspaceCache()  # indexes, trees, vectors, BM25, encoders: derived, dropped by event
        self.jobs: JobRegistry[int] = JobRegistry()  # runs encoded or trained in the background, by run id
        self.experiment_jobs: JobRegistry[int] = JobRegistry()  # experiments run in the background, by their id
        self.map_jobs: JobRegistry[tuple[int, int | None]] = JobRegistry()  # maps computed, by (run, align_to)

    def close(self, timeout: float = 30.0) -> None:
        """Cancel this process's background runs, wait for them to stop, close the database."""
        for exp_id in self.experiment_jobs.active():
            self.experiment_jobs.cancel(exp_id)
        for run_id in self.jobs.active():
            self.jobs.cancel(run_id)
        for run_id in self.jobs.active():
            self.jobs.wait(run_id, timeout)
        for exp_id in self.experiment_jobs.active():
            self.experiment_jobs.wait(exp_id, timeout)
        self.store.close()

    # -- corpora -------------------------------------------------------------------------------
    def import_corpus(self, path: str, name: str | None = None, id_col: str | None = None,
                      title_col: str | None = None, text_col: str | None = None) -> ImportReport:
        """Read, validate and store a corpus (with its queries and qrels, if any) in one transaction."""
        name = name or os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
        if name == "corpus":  # BEIR-style file: name it after its folder
            name = os.path.basename(os.path.dirname(os.path.abspath(path))) or name
        if not name or len(name) > 100:
            raise InputError("a corpus name must be 1-100 characters")
        if self.store.find_corpus(name) is not None:
            raise InputError(f"a corpus named {name!r} already exists; choose another --name")
        parsed = read_corpus(path, id_col=id_col, title_col=title_col, text_col=text_col)
        with self.store.transaction():
            cid = self.store.create_corpus(name, parsed.source)
            docs = parsed.documents
            self.store.insert_documents(cid, [d.ext_id for d in docs], [d.title for d in docs],
                                        [d.text for d in docs],
                                        [json.dumps(d.metadata, ensure_ascii=False) if d.metadata else None
                                         for d in docs])
            self.store.insert_queries(cid, list(parsed.queries), list(parsed.queries.values()))
            for split, rows in parsed.qrels.items():
                self.store.insert_qrels(cid, split, rows)
        return ImportReport(name, parsed.format, len(parsed.documents), parsed.skipped_empty,
                            len(parsed.queries), {s: len(r) for s, r in parsed.qrels.items()}, parsed.empty_judged)

    def import_queries(self, corpus: str, queries_path: str, qrels_path: str | None = None,
                       split: str = "test") -> ImportReport:
        """Add queries (and optionally their qrels, as ``split``) to an existing corpus, all or nothing."""
        cid = self.store.corpus_id(corpus)
        queries = read_queries(queries_path, os.path.basename(queries_path))
        known_docs = set(self.store.documents(cid, include_removed=True)["ext_id"])
        rows = read_qrels(qrels_path, os.path.basename(qrels_path), known_docs,
                          {**self.store.queries(cid), **queries}) if qrels_path else []
        with self.store.transaction():
            self.store.insert_queries(cid, list(queries), list(queries.values()))
            self.store.insert_qrels(cid, split, rows)
        self.cache.judgements_changed()  # a corpus that gained train qrels fits its hybrid weight on them
        return ImportReport(corpus, "queries", 0, 0, len(queries), {split: len(rows)} if rows else {})

    def judge(self, corpus: str, query: str, relevant: Sequence[str], seen: Sequence[str] = (),
              split: str = "test") -> dict:
        """Record one judged query, typed by a user (the Search page's judging, ``hce judge``): the documents
        ``relevant`` (ids in the corpus) answer ``query``; the other ids in ``seen`` were looked at and do not
        (stored with relevance 0). A query of the same text keeps its id and has its judgements in ``split``
        replaced. Judged queries check every run (``evaluate``, :meth:`rejudge`); in split "train" they are also
        what supervised training learns from.

        Returns ``{"query_id", "query", "split", "relevant", "not_relevant", "judged_queries"}`` (the last: how
        many queries ``split`` now judges).
        """
        cid = self.store.corpus_id(corpus)
        text = " ".join(str(query).split())
        if not text:
            raise InputError("the query is empty: type the query the documents answer")
        split = str(split).strip()
        if not split or len(split) > 40 or not split.replace("-", "").replace("_", "").isalnum():
            raise InputError(f"split {split!r}: use 1-40 letters, digits, - or _ (e.g. test or train)")
        rel = list(dict.fromkeys(str(d) for d in relevant))
        if not rel:
            raise InputError("mark at least one document as relevant: a query that nothing answers measures "
                             "nothing")
        others = [d for d in dict.fromkeys(str(d) for d in seen) if d not in set(rel)]
        live = set(self.store.documents(cid)["ext_id"])
        unknown = [d for d in rel + others if d not in live]
        if unknown:
            raise NotFoundError(f"not a live document of corpus {corpus!r}: {', '.join(unknown[:5])}")
        known = self.store.queries(cid)
        qid = next((q for q, t in known.items() if t == text), None)
        if qid is None:
            n = 1 + sum(q.startswith("judged-") for q in known)
            while f"judged-{n}" in known:
                n += 1
            qid = f"judged-{n}"
        with self.store.transaction():
            self.store.insert_queries(cid, [qid], [text])
            self.store.delete_qrels(cid, split, qid)
            self.store.insert_qrels(cid, split, [(qid, d, 1) for d in rel] + [(qid, d, 0) for d in others])
        self.cache.judgements_changed()
        return {"query_id": qid, "query": text, "split": split, "relevant": rel, "not_relevant": others,
                "judged_queries": int(self.store.splits(cid).get(split, 0))}

    def judgements(self, corpus: str, query: str, split: str = "test") -> dict[str, int]:
        """The judgements in ``split`` of the query with this text (document id -> relevance), {} if none."""
        cid = self.store.corpus_id(corpus)
        text = " ".join(str(query).split())
        qid = next((q for q, t in self.store.queries(cid).items() if t == text), None)
        return dict(self.store.qrels(cid, split).get(qid, {})) if qid is not None else {}

    def subset_corpus(self, corpus: str, ext_ids: Sequence[str], name: str) -> ImportReport:
        """A new corpus holding copies of some of ``corpus``'s documents (e.g. a selection on the map), with
        the judgements that name them and the queries of those judgements. Nothing is encoded yet."""
        if not name or len(name) > 100:
            raise InputError("a corpus name must be 1-100 characters")
        if self.store.find_corpus(name) is not None:
            raise InputError(f"a corpus named {name!r} already exists; choose another name")
        cid = self.store.corpus_id(corpus)
        wanted = list(dict.fromkeys(str(e) for e in ext_ids))
        if not wanted:
            raise InputError("select at least one document")
        docs = self.store.documents(cid)
        docs = docs[docs["ext_id"].isin(set(wanted))]
        missing = sorted(set(wanted) - set(docs["ext_id"]))
        if missing:
            raise NotFoundError(f"not in corpus {corpus!r} (or removed): {', '.join(missing[:5])}")
        keep = set(docs["ext_id"])
        qrels = {split: [(q, d, v) for q, judged in self.store.qrels(cid, split).items() for d, v in judged.items()
                         if d in keep] for split in self.store.splits(cid)}
        texts = self.store.queries(cid)
        qids = sorted({q for rows in qrels.values() for q, _, _ in rows})
        with self.store.transaction():
            new = self.store.create_corpus(name, f"subset of {corpus}")
            self.store.insert_documents(new, docs["ext_id"].tolist(), docs["title"].tolist(), docs["text"].tolist(),
                                        [m if isinstance(m, str) else None for m in docs["metadata"]])
            self.store.insert_queries(new, qids, [texts[q] for q in qids])
            for split, rows in qrels.items():
                self.store.insert_qrels(new, split, rows)
        return ImportReport(name, "subset", len(docs), 0, len(qids), {s: len(r) for s, r in qrels.items() if r})

    def add_sample(self, name: str = "jargon") -> ImportReport:
        """Import a bundled sample corpus (see ``sample_corpora/README.md``) under its own name."""
        if name not in SAMPLE_CORPORA:
            raise NotFoundError(f"no sample corpus {name!r} (samples: {', '.join(SAMPLE_CORPORA)})")
        return self.import_corpus(os.path.join(SAMPLES_DIR, SAMPLE_CORPORA[name]), name=name)

    def corpora(self) -> list[dict]:
        return self.store.list_corpora()

    def delete_corpus(self, corpus: str) -> None:
        cid = self.store.corpus_id(corpus)
        self._check_idle(cid)
        runs = [r.run_id for r in self.runs(corpus, metrics=False)]
        self.store.delete_corpus(cid)
        for run_id in runs:
            shutil.rmtree(os.path.join(self.models_dir, f"run-{run_id}"), ignore_errors=True)
        self.cache.corpus_deleted(cid, runs)

    def documents(self, corpus: str, include_removed: bool = False,
                  doc_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """The corpus's documents: DataFrame(doc_id, ext_id, title, text, removed, added_at, metadata), one row
        per document, ordered by doc_id. Live documents only unless ``include_removed``; with ``doc_ids``
        (internal ids), only those (ids the corpus does not hold are left out)."""
        return self.store.documents(self.store.corpus_id(corpus), include_removed=include_removed, doc_ids=doc_ids)

    def display_rows(self, corpus: str, doc_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """DataFrame(doc_id, ext_id, title, text) ordered by doc_id, removed documents included: ``title`` stripped,
        ``text`` only where the title is blank (else None), for lists of many documents; ``doc_ids``: only those."""
        return self.store.display_rows(self.store.corpus_id(corpus), doc_ids)

    def doc_ids_of(self, corpus: str, ext_ids: Iterable[str]) -> dict[str, int]:
        """{ext id: doc id} of the corpus's live documents among ``ext_ids`` (others left out)."""
        return self.store.doc_ids_of(self.store.corpus_id(corpus), ext_ids)

    def memo_document_stats(self, corpus: str, params: str, compute: Callable[[], dict]) -> dict:
        """``compute()`` (a JSON-friendly dict of statistics of the corpus's documents, computed with settings
        named by ``params``), saved in the workspace: read back while no document is added or removed."""
        cid = self.store.corpus_id(corpus)
        state = f"{self.store.docs_state(cid)}|{params}"
        saved = self.store.saved_stats(cid, state)
        if saved is not None:
            return saved
        stats = compute()
        if f"{self.store.docs_state(cid)}|{params}" == state:  # nothing was added or removed meanwhile
            self.store.save_stats(cid, state, stats)
        return stats

    def qrels(self, corpus: str, split: str | None = None) -> pd.DataFrame:
        """The corpus's judgements in ``split`` (default: every split): DataFrame(split, query_id, query,
        doc_ext_id, score), one row per judged (query, document) pair, split after split in name order, then
        by query id and document id.
        ``query`` is the query's text (missing, ``isna()``, when the corpus stores none), ``score`` the relevance
        (int64; 0 = judged not relevant)."""
        cid = self.store.corpus_id(corpus)
        texts = self.store.queries(cid)
        rows = [(s, q, texts.get(q), d, v) for s in ([split] if split is not None else self.store.splits(cid))
                for q, judged in self.store.qrels(cid, s).items() for d, v in judged.items()]
        return pd.DataFrame(rows, columns=["split", "query_id", "query", "doc_ext_id", "score"]).astype(
            {"score": "int64"})

    def _texts(self, corpus_id: int) -> tuple[np.ndarray, list[str], list[str]]:
        """(doc ids, ext ids, encoder texts) of the live documents."""
        df = self.store.documents(corpus_id)
        texts = [doc_text(t, x) for t, x in zip(df["title"], df["text"], strict=True)]
        return df["doc_id"].to_numpy(np.int64), list(df["ext_id"]), texts

    # -- encoders and runs ---------------------------------------------------------------------
    def model_for(self, model: str | None) -> str:
        from ..encoder import default_model_path
        return model or self.default_model or default_model_path()

    def encoder(self, model: str | None = None, device: str = "auto", max_length: int = DEFAULT_MAX_LENGTH):
        """A loaded encoder, cached per (model, device, max length)."""
        from ..encoder import load_encoder
        path = self.model_for(model)
        if not os.path.isdir(path):
            raise NotFoundError(f"model folder not found: {path}")
        return self.cache.get("encoder", (path, device, max_length),
                              lambda: load_encoder(path, device=device, max_length=max_length))

    def runs(self, corpus: str | None = None, status: RunStatus | str | None = None, kind: str | None = None,
             with_tree: bool = False, metrics: bool = True) -> list[Run]:
        """The runs (of ``corpus``, else all), oldest first, each with its stored ``metrics`` (left empty with
        ``metrics=False``, cheaper for a check); only those with ``status`` (:class:`RunStatus` or its value) and
        ``kind`` ("baseline", "train") when given, and only runs that have a tree with ``with_tree``."""
        cid = self.store.corpus_id(corpus) if corpus else None
        status = RunStatus(status) if status is not None else None
        rows = [r for r in self.store.list_runs(cid)
                if (status is None or r["status"] == status.value) and (kind is None or r["kind"] == kind)]
        if with_tree:
            have = self.store.runs_with_trees()
            rows = [r for r in rows if r["run_id"] in have]
        stored: dict[int, list[dict]] = {}
        for m in self.store.metrics() if metrics else ():
            stored.setdefault(m["run_id"], []).append(m)
        return [Run.from_row(r, stored.get(r["run_id"])) for r in rows]

    def splits(self, corpus: str) -> dict[str, int]:
        """The corpus's judged splits: {split: judged queries}."""
        return self.store.splits(self.store.corpus_id(corpus))

    def run(self, run_id: int, purpose: str | None = None, corpus: str | None = None) -> Run:
        """One run, typed: the one way to fetch a run (NotFoundError when there is none).

        Without ``purpose``: the run as stored, in any state, with its stored metrics. With ``purpose`` (what the
        caller does with it, completing "no finished run 7 to ...": "search with", "explore", "export"): the run
        must be finished (HCEError) and comes without its metrics. With ``corpus``, it must belong to that corpus
        (InputError). Each message names the purpose.
        """
        what = f" to {purpose}" if purpose else ""
        try:
            row = self.store.get_run(int(run_id))
        except NotFoundError:
            raise NotFoundError(f"no run {run_id}{what}") from None
        info = Run.from_row(row, None if purpose else self.store.metrics(int(run_id)))
        if corpus is not None and info.corpus != corpus:
            raise InputError(f"no run {run_id} of corpus {corpus!r}{what}: it belongs to corpus {info.corpus!r}")
        if purpose and not info.done:
            raise HCEError(f"no finished run {run_id}{what}: it is {info.status}")
        return info

    def latest_run(self, corpus: str) -> int | None:
        """Which run serves the corpus by default: the most recently finished run that did not come out worse
        than its starting encoder (a worse run is served only when named, or when no other run is finished), or
        None."""
        done = self.runs(corpus, status=RunStatus.DONE, metrics=False)
        fine = [r for r in done if r.verdict != "worse"]
        return max(fine or done, key=lambda r: (r.finished_at, r.run_id)).run_id if done else None

    def ensure_run(self, corpus: str, progress: ProgressFn | None = None) -> int:
        """The latest finished run, creating the zero-shot baseline first if there is none."""
        return self.latest_run(corpus) or self.encode(corpus, progress=progress)

    def encode(self, corpus: str, progress: ProgressFn | None = None, cancel: Callable[[], bool] | None = None,
               **settings) -> int:
        """Zero-shot baseline run: encode every live document, store the vectors, build the tree.

        ``settings``: :class:`EncodeConfig` fields (model, device, max_length, batch_size, tree, branching,
        builder, seed, nproc: processes that share the encoding, :func:`~hce_engine.encoder.sharded.encode_sharded`).
        Returns the run id. A failure marks the run failed (cancel: 'cancelled') and re-raises; other runs are
        untouched.
        """
        run_id = self._new_baseline_run(corpus, **settings)
        self._execute_baseline(run_id, progress, cancel)
        return run_id

    def start_encode(self, corpus: str, **kwargs) -> int:
        """Like :meth:`encode`, in a background thread; returns the run id at once."""
        run_id = self._new_baseline_run(corpus, **kwargs)
        self.jobs.start(run_id, "encode", lambda job: self._execute_baseline(
            run_id, job.report, job.cancelled))
        return run_id

    def _new_baseline_run(self, corpus: str, **settings) -> int:
        cid = self.store.corpus_id(corpus)
        try:
            config = EncodeConfig(**settings).validate()
            if config.nproc > 1:
                from ..encoder.sharded import check_nproc
                check_nproc(config.nproc, config.device)
        except (TypeError, ValueError) as exc:
            raise InputError(f"encode settings: {exc}") from None
        config = replace(config, model=self.model_for(config.model))
        return self.store.create_run(cid, "baseline", config.to_dict(), config.seed, status="running")

    def _execute_baseline(self, run_id: int, progress: ProgressFn | None, cancel: Callable[[], bool] | None) -> None:
        info = self.run(run_id)
        cfg = info.config
        try:
            enc = self.encoder(cfg.model, cfg.device, cfg.max_length)
            ids, _, texts = self._texts(info.corpus_id)
            if cfg.nproc > 1:
                from ..encoder.sharded import encode_sharded
                vecs = encode_sharded(cfg.model, texts, cfg.nproc, max_length=cfg.max_length,
                                      batch_size=cfg.batch_size, device=cfg.device, progress=progress, cancel=cancel)
            else:
                vecs = enc.encode(texts, batch_size=cfg.batch_size, progress=progress, cancel=cancel)
            self.store.write_vectors(run_id, ids, vecs)
            if cfg.tree:
                if progress:
                    progress(Progress("tree", 0, 1))
                self.build_tree(run_id, vecs, ids, texts, branching=cfg.branching, builder=cfg.builder,
                                seed=cfg.seed)
                if progress:
                    progress(Progress("tree", 1, 1))  # a bar drawn for the tree ends before the run id is printed
            self.store.update_run(run_id, status="done", model_path=cfg.model,
                                  summary={"documents": int(len(ids)), "dim": int(vecs.shape[1])})
        except BaseException as exc:
            self._fail(run_id, exc)
            raise

    def _fail(self, run_id: int, exc: BaseException) -> None:
        status = "cancelled" if isinstance(exc, (InterruptedError, KeyboardInterrupt)) else "failed"
        self.store.update_run(run_id, status=status, error=str(exc) or type(exc).__name__)

    def cancel(self, run_id: int) -> bool:
        """Ask a background run of this process to stop (takes effect within a batch/step)."""
        return self.jobs.cancel(run_id)

    def run_progress(self, run_id: int) -> Progress | None:
        """The latest progress of a run active in this process (None when this process runs no such run)."""
        job = self.jobs.get(run_id)
        return job.progress if job else None

    def cancelling(self, run_id: int) -> bool:
        """Whether a run active in this process was asked to stop and has not stopped yet."""
        job = self.jobs.get(run_id)
        return job is not None and job.cancelled()

    def wait(self, run_id: int, timeout: float | None = None) -> Run:
        """Block until a background run ends; returns the run."""
        self.jobs.wait(run_id, timeout)
        return self.run(run_id)

    def build_tree(self, run_id: int, vectors: np.ndarray, doc_ids: np.ndarray, texts: Sequence[str],
                   rebuild: int = 0, branching: int = 10, builder: str = "auto", seed: int = 0, tree=None):
        """Build (unless given), label and store a run's tree. Returns the Tree."""
        from ..tree import build_tree, node_terms, representative_docs, tree_stats
        if tree is None:
            tree = build_tree(vectors, builder=builder, branching=branching, seed=seed)
        tree.doc_ids = np.asarray(doc_ids, dtype=np.int64)
        terms = node_terms(tree, texts)
        reps = representative_docs(tree, vectors)
        rep_ids = np.where(reps >= 0, tree.doc_ids[np.maximum(reps, 0)], -1)
        self.store.write_tree(run_id, rebuild, tree, terms, rep_ids, tree_stats(tree, vectors, seed=seed))
        self.cache.tree_written(run_id)
        return tree

    def _check_idle(self, corpus_id: int | None = None, run_id: int | None = None) -> None:
        for r in map(Run.from_row, self.store.list_runs(corpus_id)):
            if r.status.active and (run_id is None or r.run_id == run_id):
                raise HCEError(f"run {r.run_id} is still {r.status}; cancel it first")

    def delete_run(self, run_id: int) -> None:
        """Delete a finished run with its vectors, trees, metrics and model folder."""
        self.store.get_run(run_id)
        self._check_idle(run_id=run_id)
        self.store.delete_run(run_id)
        shutil.rmtree(os.path.join(self.models_dir, f"run-{run_id}"), ignore_errors=True)
        self.cache.run_deleted(run_id)

    # -- indexes -----------------------------------------------------------------------------
    def index(self, run_id: int):
        """The run's vector index, cached in memory. On first use an approximate (HNSW) index is read
        from the run's folder, where it was saved when first built, and brought up to date with the
        store (documents added or removed since are added or dropped); a flat index, or a missing or
        unreadable file, is built from the stored vectors."""
        return self.cache.get("index", run_id, lambda: self._open_index(run_id))

    def _index_path(self, run_id: int) -> str:
        return os.path.join(self.models_dir, f"run-{run_id}", INDEX_FILE)

    def _open_index(self, run_id: int):
        from ..index import VectorIndex
        cid = self.run(run_id).corpus_id
        live = self.store.vector_ids(run_id, live_only_corpus=cid)
        if len(live) == 0:
            raise HCEError(f"run {run_id} has no vectors")
        path = self._index_path(run_id)
        index = None
        if os.path.exists(path):
            try:
                index = VectorIndex.load(path)
            except Exception as exc:  # noqa: BLE001 - a cache: any unreadable file is rebuilt, never trusted
                log.warning("run %s: saved index unreadable (%s); rebuilding", run_id, exc)
        if index is None:
            index = VectorIndex.build(*self.store.read_vectors(run_id, live_only_corpus=cid), kind="auto")
            changed = True
        else:
            have = index.ids()
            gone, new = np.setdiff1d(have, live), np.setdiff1d(live, have)
            index.remove(gone)
            if len(new):
                index.add(*self.store.read_vectors(run_id, doc_ids=new))
            changed = bool(len(gone) or len(new))
        if changed and index.kind != "flat":  # a flat index rebuilds in well under a second
            index.save(path)
        return index

    def vectors(self, run_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(doc ids int64 ascending, float32 (n, d)) of the run's live documents; the last few runs cached."""
        return self.cache.get("vectors", run_id, lambda: self.store.read_vectors(
            run_id, live_only_corpus=self.run(run_id).corpus_id))

    def tree_rebuilds(self, run_id: int) -> list[dict]:
        """The run's stored trees, oldest first ([] if none): [{run_id, rebuild, builder, branching, depth,
        stats (dict or None), created_at}]."""
        return self.store.list_trees(int(run_id))

    def tree(self, run_id: int, rebuild: int | None = None) -> RunTree:
        """A run's tree with its node terms and representatives (:class:`RunTree`); latest rebuild by default."""
        if rebuild is not None:
            return RunTree(*self.store.read_tree(run_id, rebuild))
        return self.cache.get("tree", run_id, lambda: RunTree(*self.store.read_tree(run_id)))

    def tree_shape(self, run_id: int) -> RunTree:
        """The run's latest tree without centroids (float32 (n_nodes, 0)) unless the full one is cached: what maps
        and node tables need, read several times faster than :meth:`tree` at a million documents. Cached."""
        full = self.cache.peek("tree", run_id)
        if full is not None:
            return full
        return self.cache.get("tree_shape", run_id,
                              lambda: RunTree(*self.store.read_tree(run_id, centroids=False)))

    def run_encoder(self, run: Run):
        """The encoder that made a run's vectors (cached); encode with ``run.doc_max_length`` /
        ``run.query_max_length``."""
        return self.encoder(run.model, run.device, run.config_dict.get("max_length", DEFAULT_MAX_LENGTH))

    def encode_queries(self, run: Run, texts: Sequence[str]) -> np.ndarray:
        """(n, d) float32 L2-normalised query vectors under the run's encoder, at its query length. A few
        (interactive) queries are cached per run: a page rerun or a search and its tree route encode once."""
        texts = list(texts)
        if len(texts) > 4 or not texts:  # an evaluation's queries: encoded in batches, not kept
            return self.run_encoder(run).encode(texts, max_length=run.query_max_length)

        def encode_one(text: str) -> np.ndarray:
            return self.run_encoder(run).encode([text], max_length=run.query_max_length)[0]

        return np.stack([self.cache.get("query", (run.run_id, t), partial(encode_one, t)) for t in texts])
