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
import os
import threading
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from .corpus import read_corpus, read_qrels, read_queries
from .errors import HCEError, InputError, NotFoundError
from .jobs import JobRegistry
from .store import Store

DB_FILE = "hce.duckdb"
SAMPLES_DIR = os.environ.get("HCE_SAMPLES") or os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "sample_corpora")
SAMPLE_CORPORA = {"jargon": "jargon_file/corpus.jsonl"}
VECTOR_CACHE_RUNS = 3  # runs whose vectors stay in memory for the explorer views
RETRAIN_SHARE = 0.25  # suggest retraining once this share of a run's documents arrived after it was trained
Progress = Callable[[str, int, int], None]  # (stage, done, total)


def default_workspace() -> str:
    return os.environ.get("HCE_WORKSPACE") or os.path.abspath("hce-workspace")


def doc_text(title: str, text: str) -> str:
    """The text the encoder sees for a document (BEIR convention: title + " " + text)."""
    return f"{title} {text}".strip() if title else text


@dataclass
class ImportReport:
    corpus: str
    format: str
    documents: int
    skipped_empty: int
    queries: int = 0
    qrels: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Hit:
    rank: int
    doc_id: int
    ext_id: str
    title: str
    snippet: str
    score: float
    path: list[int] = field(default_factory=list)
    path_labels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _snippet(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


class Workspace:
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
        # This process owns the file (DuckDB allows one writer), so a run left 'running' has no process.
        self.interrupted_runs = self.store.mark_interrupted()
        self.default_model = default_model or os.environ.get("HCE_DEFAULT_MODEL") or None
        self._lock = threading.RLock()
        self._encoders: dict[tuple, object] = {}
        self._indexes: dict[int, object] = {}
        self._bm25: dict[int, tuple] = {}
        self._trees: dict[int, tuple] = {}
        self._vectors: dict[int, tuple] = {}  # insertion-ordered: the oldest is dropped first
        self.jobs = JobRegistry()
        self._seconds_per_seq: dict[tuple, float] = {}

    def close(self, timeout: float = 30.0) -> None:
        """Cancel this process's background runs, wait for them to stop, close the database."""
        for run_id in self.jobs.active():
            self.jobs.cancel(run_id)
        for run_id in self.jobs.active():
            self.jobs.wait(run_id, timeout)
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
        doc_ids = {d.ext_id for d in parsed.documents}
        self._check_qrels(parsed.qrels, parsed.queries, doc_ids, os.path.basename(os.path.normpath(path)))
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
                            len(parsed.queries), {s: len(r) for s, r in parsed.qrels.items()})

    @staticmethod
    def _check_qrels(qrels: dict, queries: dict, doc_ids: set, label: str) -> None:
        for split, rows in qrels.items():
            for i, (q, d, _) in enumerate(rows):
                if d not in doc_ids:
                    raise InputError(f"qrels {split}: document id {d!r} is not in the corpus",
                                     f"{label}/qrels/{split}.tsv", None)
                if q not in queries:
                    raise InputError(f"qrels {split}: query id {q!r} has no query text",
                                     f"{label}/qrels/{split}.tsv", None)

    def import_queries(self, corpus: str, queries_path: str, qrels_path: str | None = None,
                       split: str = "test") -> ImportReport:
        """Add queries (and optionally their qrels, as ``split``) to an existing corpus, all or nothing."""
        cid = self.store.corpus_id(corpus)
        queries = read_queries(queries_path, os.path.basename(queries_path))
        rows = read_qrels(qrels_path, os.path.basename(qrels_path)) if qrels_path else []
        known_docs = set(self.store.documents(cid, include_removed=True)["ext_id"])
        all_queries = {**self.store.queries(cid), **queries}
        for q, d, _ in rows:
            if d not in known_docs or q not in all_queries:
                what = f"document id {d!r}" if d not in known_docs else f"query id {q!r}"
                raise InputError(f"{what} is unknown", os.path.basename(qrels_path))
        with self.store.transaction():
            self.store.insert_queries(cid, list(queries), list(queries.values()))
            self.store.insert_qrels(cid, split, rows)
        return ImportReport(corpus, "queries", 0, 0, len(queries), {split: len(rows)} if rows else {})

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
        self.store.delete_corpus(cid)
        self._forget(corpus_id=cid)

    def documents(self, corpus: str, include_removed: bool = False):
        return self.store.documents(self.store.corpus_id(corpus), include_removed=include_removed)

    def _texts(self, corpus_id: int) -> tuple[np.ndarray, list[str], list[str]]:
        """(doc ids, ext ids, encoder texts) of the live documents."""
        df = self.store.documents(corpus_id)
        texts = [doc_text(t, x) for t, x in zip(df["title"], df["text"])]
        return df["doc_id"].to_numpy(np.int64), list(df["ext_id"]), texts

    # -- encoders and runs ---------------------------------------------------------------------
    def model_for(self, model: str | None) -> str:
        from .encoder import default_model_path
        return model or self.default_model or default_model_path()

    def encoder(self, model: str | None = None, device: str = "auto", max_length: int = 256):
        """A loaded encoder, cached per (model, device, max length)."""
        from .encoder import load_encoder
        path = self.model_for(model)
        key = (path, device, max_length)
        with self._lock:
            if key not in self._encoders:
                if not os.path.isdir(path):
                    raise NotFoundError(f"model folder not found: {path}")
                self._encoders[key] = load_encoder(path, device=device, max_length=max_length)
            return self._encoders[key]

    def runs(self, corpus: str | None = None) -> list[dict]:
        cid = self.store.corpus_id(corpus) if corpus else None
        runs = self.store.list_runs(cid)
        metrics = {}
        for m in self.store.metrics():
            metrics.setdefault(m["run_id"], []).append(m)
        for r in runs:
            r["metrics"] = metrics.get(r["run_id"], [])
        return runs

    def run(self, run_id: int) -> dict:
        return self.store.get_run(run_id)

    def latest_run(self, corpus: str) -> int | None:
        """The most recently finished run of the corpus, or None."""
        done = [r for r in self.store.list_runs(self.store.corpus_id(corpus)) if r["status"] == "done"]
        return max(done, key=lambda r: (r["finished_at"], r["run_id"]))["run_id"] if done else None

    def ensure_run(self, corpus: str, progress: Progress | None = None) -> int:
        """The latest finished run, creating the zero-shot baseline first if there is none."""
        return self.latest_run(corpus) or self.encode(corpus, progress=progress)

    def encode(self, corpus: str, model: str | None = None, device: str = "auto", max_length: int = 256,
               batch_size: int = 64, tree: bool = True, branching: int = 10, builder: str = "auto",
               seed: int = 0, progress: Progress | None = None,
               cancel: Callable[[], bool] | None = None) -> int:
        """Zero-shot baseline run: encode every live document, store the vectors, build the tree.

        Returns the run id. A failure marks the run failed (cancel: 'cancelled') and re-raises; other runs
        are untouched.
        """
        run_id = self._new_baseline_run(corpus, model, device, max_length, batch_size, tree, branching, builder,
                                        seed)
        self._execute_baseline(run_id, progress, cancel)
        return run_id

    def start_encode(self, corpus: str, **kwargs) -> int:
        """Like :meth:`encode`, in a background thread; returns the run id at once."""
        run_id = self._new_baseline_run(corpus, **kwargs)
        self.jobs.start(run_id, "encode", lambda job: self._execute_baseline(
            run_id, lambda stage, d, t: job.report(stage, d, t), job.cancelled))
        return run_id

    def _new_baseline_run(self, corpus: str, model: str | None = None, device: str = "auto",
                          max_length: int = 256, batch_size: int = 64, tree: bool = True, branching: int = 10,
                          builder: str = "auto", seed: int = 0) -> int:
        cid = self.store.corpus_id(corpus)
        config = {"model": self.model_for(model), "device": device, "max_length": max_length,
                  "batch_size": batch_size, "tree": tree, "branching": branching, "builder": builder,
                  "seed": seed}
        return self.store.create_run(cid, "baseline", config, seed, status="running")

    def _execute_baseline(self, run_id: int, progress: Progress | None, cancel: Callable[[], bool] | None) -> None:
        info = self.store.get_run(run_id)
        cfg = info["config"]
        try:
            enc = self.encoder(cfg["model"], cfg["device"], cfg["max_length"])
            ids, _, texts = self._texts(info["corpus_id"])
            vecs = enc.encode(texts, batch_size=cfg["batch_size"],
                              progress=(lambda d, t: progress("encode", d, t)) if progress else None, cancel=cancel)
            self.store.write_vectors(run_id, ids, vecs)
            if cfg["tree"]:
                if progress:
                    progress("tree", 0, 1)
                self.build_tree(run_id, vecs, ids, texts, branching=cfg["branching"], builder=cfg["builder"],
                                seed=cfg["seed"])
            self.store.update_run(run_id, status="done", model_path=cfg["model"],
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

    def progress(self, run_id: int) -> dict | None:
        """Live progress of a run active in this process: stage, done, total, message, eta_s."""
        job = self.jobs.get(run_id)
        return job.snapshot() if job else None

    def wait(self, run_id: int, timeout: float | None = None) -> dict:
        """Block until a background run ends; returns the run."""
        self.jobs.wait(run_id, timeout)
        return self.store.get_run(run_id)

    def build_tree(self, run_id: int, vectors: np.ndarray, doc_ids: np.ndarray, texts: Sequence[str],
                   rebuild: int = 0, branching: int = 10, builder: str = "auto", seed: int = 0, tree=None):
        """Build (unless given), label and store a run's tree. Returns the Tree."""
        from .tree import build_tree, node_terms, representative_docs, tree_stats
        if tree is None:
            tree = build_tree(vectors, builder=builder, branching=branching, seed=seed)
        tree.doc_ids = np.asarray(doc_ids, dtype=np.int64)
        terms = node_terms(tree, texts)
        reps = representative_docs(tree, vectors)
        rep_ids = np.where(reps >= 0, tree.doc_ids[np.maximum(reps, 0)], -1)
        self.store.write_tree(run_id, rebuild, tree, terms, rep_ids, tree_stats(tree, vectors, seed=seed))
        with self._lock:
            self._trees.pop(run_id, None)
        return tree

    def _check_idle(self, corpus_id: int | None = None, run_id: int | None = None) -> None:
        for r in self.store.list_runs(corpus_id):
            if r["status"] in ("queued", "running") and (run_id is None or r["run_id"] == run_id):
                raise HCEError(f"run {r['run_id']} is still {r['status']}; cancel it first")

    def delete_run(self, run_id: int) -> None:
        """Delete a finished run with its vectors, trees, metrics and model folder."""
        import shutil
        self.store.get_run(run_id)
        self._check_idle(run_id=run_id)
        self.store.delete_run(run_id)
        shutil.rmtree(os.path.join(self.models_dir, f"run-{run_id}"), ignore_errors=True)
        self._forget(run_id=run_id)

    def _forget(self, run_id: int | None = None, corpus_id: int | None = None) -> None:
        with self._lock:
            if run_id is not None:
                self._indexes.pop(run_id, None)
                self._trees.pop(run_id, None)
                self._vectors.pop(run_id, None)
            if corpus_id is not None:
                self._bm25.pop(corpus_id, None)
                self._indexes.clear()
                self._trees.clear()
                self._vectors.clear()

    # -- search --------------------------------------------------------------------------------
    def _resolve_run(self, corpus: str, run: int | None, progress: Progress | None = None) -> dict:
        if run is None:
            run = self.ensure_run(corpus, progress)
        info = self.store.get_run(run)
        if info["corpus"] != corpus:
            raise InputError(f"run {run} belongs to corpus {info['corpus']!r}, not {corpus!r}")
        if info["status"] != "done":
            raise HCEError(f"run {run} is {info['status']}; only finished runs can be searched")
        return info

    def index(self, run_id: int):
        """The run's vector index (built from stored vectors on first use, then cached)."""
        from .index import VectorIndex
        with self._lock:
            if run_id not in self._indexes:
                info = self.store.get_run(run_id)
                ids, vecs = self.store.read_vectors(run_id, live_only_corpus=info["corpus_id"])
                if len(ids) == 0:
                    raise HCEError(f"run {run_id} has no vectors")
                self._indexes[run_id] = VectorIndex.build(ids, vecs, kind="auto")
            return self._indexes[run_id]

    def vectors(self, run_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(doc ids int64 ascending, float32 (n, d)) of the run's live documents; the last few runs cached."""
        with self._lock:
            if run_id not in self._vectors:
                info = self.store.get_run(run_id)
                self._vectors[run_id] = self.store.read_vectors(run_id, live_only_corpus=info["corpus_id"])
                while len(self._vectors) > VECTOR_CACHE_RUNS:
                    self._vectors.pop(next(iter(self._vectors)))
            return self._vectors[run_id]

    def tree(self, run_id: int, rebuild: int | None = None):
        """(Tree, terms per node, representative doc id per node) of a run (latest rebuild by default)."""
        if rebuild is not None:
            return self.store.read_tree(run_id, rebuild)
        with self._lock:
            if run_id not in self._trees:
                self._trees[run_id] = self.store.read_tree(run_id)
            return self._trees[run_id]

    def _run_encoder(self, info: dict):
        cfg = info["config"]
        return self.encoder(info["model_path"], cfg.get("device", "auto"), cfg.get("max_length", 256))

    @staticmethod
    def _query_max_length(info: dict) -> int:
        cfg = info["config"]
        return cfg.get("query_max_length", cfg.get("max_length", 256))

    def search_many(self, corpus: str, queries: Sequence[str], run: int | None = None, k: int = 10,
                    with_paths: bool = True) -> list[list[Hit]]:
        """Dense search for several queries with the run's encoder. Returns one hit list per query."""
        info = self._resolve_run(corpus, run)
        enc = self._run_encoder(info)
        qv = enc.encode(list(queries), max_length=self._query_max_length(info))
        scores, ids = self.index(info["run_id"]).search(qv, k)
        return [self._hits(info["run_id"], info["corpus_id"], s, i, with_paths) for s, i in zip(scores, ids)]

    def search(self, corpus: str, query: str, run: int | None = None, k: int = 10) -> list[Hit]:
        if not query.strip():
            raise InputError("the query is empty")
        return self.search_many(corpus, [query], run, k)[0]

    def bm25(self, corpus: str):
        """The corpus's BM25 index (cached; rebuilt when documents change)."""
        from .index import BM25Index
        cid = self.store.corpus_id(corpus)
        with self._lock:
            if cid not in self._bm25:
                ids, _, texts = self._texts(cid)
                self._bm25[cid] = BM25Index.build(ids, texts)
            return self._bm25[cid]

    def bm25_search(self, corpus: str, query: str, k: int = 10, run_for_paths: int | None = None) -> list[Hit]:
        if not query.strip():
            raise InputError("the query is empty")
        scores, ids = self.bm25(corpus).search([query], k)
        cid = self.store.corpus_id(corpus)
        return self._hits(run_for_paths, cid, scores[0], ids[0], run_for_paths is not None)

    def _hits(self, run_id: int | None, corpus_id: int, scores: np.ndarray, ids: np.ndarray,
              with_paths: bool) -> list[Hit]:
        keep = ids >= 0
        scores, ids = scores[keep], ids[keep]
        if len(ids) == 0:
            return []
        df = self.store.documents(corpus_id, doc_ids=ids).set_index("doc_id")
        paths: dict[int, tuple[list[int], list[str]]] = {}
        if with_paths and run_id is not None:
            try:
                tree, terms, _ = self.tree(run_id)
                pos = {int(d): p for p, d in enumerate(tree.doc_ids)}
                for d in ids:
                    if int(d) in pos:
                        path = tree.path(pos[int(d)])
                        paths[int(d)] = (path, [" · ".join(terms[n][:3]) for n in path])
            except NotFoundError:
                pass
        hits = []
        for rank, (d, s) in enumerate(zip(ids, scores), start=1):
            if int(d) not in df.index:  # removed between search and lookup
                continue
            row = df.loc[int(d)]
            p, labels = paths.get(int(d), ([], []))
            hits.append(Hit(rank, int(d), row["ext_id"], row["title"], _snippet(row["text"]), float(s), p, labels))
        return hits

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, corpus: str, run: int | None = None, split: str = "test", bm25: bool = False,
                 k: int = 100, progress: Progress | None = None) -> dict:
        """nDCG@10, R@10, R@100, MRR@10 of a run (and BM25) on a split's qrels; stored with the run.

        Returns ``{"run": id, "split": s, "dense": {...}, "bm25": {...} (if asked)}``.
        """
        from .evaluation import evaluate, rankings_from_arrays
        cid = self.store.corpus_id(corpus)
        qrels = self.store.qrels(cid, split)
        if not qrels:
            have = ", ".join(self.store.splits(cid)) or "none"
            raise NotFoundError(f"corpus {corpus!r} has no qrels for split {split!r} (splits: {have})")
        queries = self.store.queries(cid)
        qids = [q for q in qrels if q in queries]
        info = self._resolve_run(corpus, run, progress)
        docs = self.store.documents(cid, include_removed=True)
        id_to_ext = dict(zip(docs["doc_id"].astype(int), docs["ext_id"]))
        enc = self._run_encoder(info)
        qv = enc.encode([queries[q] for q in qids], max_length=self._query_max_length(info))
        scores, ids = self.index(info["run_id"]).search(qv, k)
        dense = evaluate(rankings_from_arrays(qids, ids, scores, id_to_ext), qrels)
        self.store.write_metrics(info["run_id"], split, "dense", dense)
        out = {"run": info["run_id"], "split": split, "dense": dense}
        if bm25:
            bs, bi = self.bm25(corpus).search([queries[q] for q in qids], k)
            out["bm25"] = evaluate(rankings_from_arrays(qids, bi, bs, id_to_ext), qrels)
            self.store.write_metrics(info["run_id"], split, "bm25", out["bm25"])
        return out

    # -- a living corpus: add and remove documents without retraining -------------------------
    @staticmethod
    def _doc_max_length(info: dict) -> int:
        return (info["summary"] or {}).get("doc_max_length") or info["config"].get("max_length", 256)

    def add_documents(self, corpus: str, path: str, progress: Progress | None = None) -> dict:
        """Add the documents of a file/folder/ZIP to a corpus and to every finished run, without retraining.

        Each run encodes the new documents with its own encoder; they join its vectors, its index and the
        latest tree (under their nearest leaf cluster). Everything is written in one transaction after all
        encoding succeeded, so a failure changes nothing; searches running meanwhile see the old or the new
        state, never half of it. Returns counts and the new store ids.
        """
        from .tree import add_documents as tree_add
        cid = self.store.corpus_id(corpus)
        parsed = read_corpus(path)
        label = os.path.basename(os.path.normpath(path))
        clash = self.store.existing_ext_ids(cid, [d.ext_id for d in parsed.documents])
        if clash:
            raise InputError(f"{len(clash)} document id(s) already in corpus {corpus!r}, e.g. "
                             f"{sorted(clash)[0]!r}; ids must be new", label)
        docs = parsed.documents
        texts = [doc_text(d.title, d.text) for d in docs]
        runs = [r for r in self.store.list_runs(cid) if r["status"] == "done"]
        encoded = {}
        for i, info in enumerate(runs):
            if progress:
                progress("encode", i, len(runs))
            encoded[info["run_id"]] = self._run_encoder(info).encode(texts, max_length=self._doc_max_length(info))
        with self._lock, self.store.transaction():
            ids = self.store.insert_documents(cid, [d.ext_id for d in docs], [d.title for d in docs],
                                              [d.text for d in docs],
                                              [json.dumps(d.metadata, ensure_ascii=False) if d.metadata else None
                                               for d in docs])
            for run_id, vecs in encoded.items():
                self.store.write_vectors(run_id, ids, vecs)
                trees = self.store.list_trees(run_id)
                if trees:
                    tree, terms, reps = self.store.read_tree(run_id)
                    self.store.write_tree(run_id, trees[-1]["rebuild"], tree_add(tree, vecs, ids), terms, reps,
                                          trees[-1]["stats"])
            # in-memory state follows only once the transaction has committed (below)
        with self._lock:
            for run_id, vecs in encoded.items():
                if run_id in self._indexes:
                    self._indexes[run_id].add(ids, vecs)
                self._trees.pop(run_id, None)
                self._vectors.pop(run_id, None)
            self._bm25.pop(cid, None)
        return {"corpus": corpus, "added": len(ids), "skipped_empty": parsed.skipped_empty,
                "runs_updated": sorted(encoded), "doc_ids": ids.tolist()}

    def remove_documents(self, corpus: str, ext_ids: Sequence[str]) -> dict:
        """Remove documents (by external id) from the corpus, every run's index and tree; never returned
        again. Unknown ids are an error and nothing is removed."""
        from .tree import remove_documents as tree_remove
        cid = self.store.corpus_id(corpus)
        ext_ids = list(dict.fromkeys(ext_ids))
        live = set(self.store.documents(cid)["ext_id"])
        missing = [e for e in ext_ids if e not in live]
        if missing:
            raise NotFoundError(f"not in corpus {corpus!r} (or already removed): {', '.join(missing[:5])}")
        if len(live) - len(ext_ids) < 1:
            raise InputError("a corpus must keep at least one document")
        runs = [r["run_id"] for r in self.store.list_runs(cid) if r["status"] == "done"]
        with self._lock:
            with self.store.transaction():
                ids = self.store.mark_removed(cid, ext_ids)
                for run_id in runs:
                    trees = self.store.list_trees(run_id)
                    if trees:
                        tree, terms, reps = self.store.read_tree(run_id)
                        self.store.write_tree(run_id, trees[-1]["rebuild"], tree_remove(tree, ids, strict=False),
                                              terms, reps, trees[-1]["stats"])
            for run_id in runs:
                if run_id in self._indexes:
                    self._indexes[run_id].remove(ids)
                self._trees.pop(run_id, None)
                self._vectors.pop(run_id, None)
            self._bm25.pop(cid, None)
        return {"corpus": corpus, "removed": len(ids), "runs_updated": runs}

    def freshness(self, run_id: int) -> dict:
        """How far the corpus has moved since the run was made: documents added and removed since, their
        share of the run's documents, and whether retraining is suggested (``RETRAIN_SHARE``)."""
        info = self.store.get_run(run_id)
        df = self.store.documents(info["corpus_id"], include_removed=True)
        when = info["finished_at"] or info["created_at"]
        added = int(((df["added_at"] > when) & ~df["removed"]).sum())
        live = int((~df["removed"]).sum())
        share = added / max(1, live)
        return {"run": run_id, "added_since": added, "live_documents": live, "share_new": share,
                "retrain_suggested": share >= RETRAIN_SHARE}

    # -- training ------------------------------------------------------------------------------
    def import_pairs(self, corpus: str, path: str, split: str = "pairs") -> ImportReport:
        """Supervised training pairs (query text, document id) from a two-column file, stored as queries and
        qrels of ``split`` (so ``TrainConfig(split=...)`` trains on them). All or nothing."""
        from .corpus import read_pairs
        cid = self.store.corpus_id(corpus)
        label = os.path.basename(path)
        pairs = read_pairs(path, label)
        known = set(self.store.documents(cid)["ext_id"])
        qid_of: dict[str, str] = {}
        rows = []
        for i, (q, d) in enumerate(pairs, start=1):
            if d not in known:
                raise InputError(f"document id {d!r} is not in corpus {corpus!r}", label, None)
            qid = qid_of.setdefault(q, f"{split}-q{len(qid_of) + 1}")
            rows.append((qid, d, 1))
        rows = sorted(set(rows))
        with self.store.transaction():
            self.store.insert_queries(cid, list(qid_of.values()), list(qid_of))
            self.store.insert_qrels(cid, split, rows)
        return ImportReport(corpus, "pairs", 0, 0, len(qid_of), {split: len(rows)})

    def _train_config(self, corpus_id: int, config) -> "TrainConfig":
        from .training import TrainConfig
        cfg = TrainConfig.from_dict(config) if isinstance(config, dict) else config.replace()
        cfg.model = self.model_for(cfg.model)
        try:
            cfg.validate()
        except ValueError as exc:
            raise InputError(f"training settings: {exc}") from None
        if cfg.signal in ("supervised", "joint") and not self.store.qrels(corpus_id, cfg.split):
            have = ", ".join(self.store.splits(corpus_id)) or "none"
            raise InputError(f"the {cfg.signal} signal needs qrels for split {cfg.split!r} (splits: {have}); "
                             "import queries and qrels or pairs, or train with the ict signal")
        return cfg

    def train(self, corpus: str, config, progress: Progress | None = None,
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

    def resume(self, run_id: int, background: bool = False, progress: Progress | None = None,
               cancel: Callable[[], bool] | None = None) -> int:
        """Continue a cancelled or interrupted training run from its last epoch checkpoint."""
        info = self.store.get_run(run_id)
        if info["kind"] != "train" or info["status"] not in ("cancelled", "interrupted", "failed"):
            raise HCEError(f"run {run_id} is a {info['kind']} run with status {info['status']}: only cancelled, "
                           "interrupted or failed training runs can be resumed")
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
            run_id, lambda stage, d, t, eta=None: job.report(stage, d, t, eta_s=eta), job.cancelled, resume))

    def _new_train_run(self, corpus: str, config) -> int:
        cid = self.store.corpus_id(corpus)
        cfg = self._train_config(cid, config)
        return self.store.create_run(cid, "train", cfg.to_dict(), cfg.seed, status="running")

    def _baseline_for(self, corpus: str, model: str, progress: Progress | None, cancel) -> int:
        """A finished zero-shot run of ``model`` on the corpus (256 tokens), encoding one if none exists."""
        def matches(r: dict) -> bool:
            cfg = r["config"]
            return r["kind"] == "baseline" and cfg.get("model") == model and cfg.get("max_length") == 256 and \
                bool(cfg.get("tree"))

        runs = [r for r in self.store.list_runs(self.store.corpus_id(corpus)) if matches(r)]
        for r in reversed(runs):  # one being encoded in the background by this process: wait for it
            if r["status"] == "running" and self.jobs.get(r["run_id"]) is not None:
                if progress:
                    progress("waiting for baseline", 0, 1)
                self.jobs.wait(r["run_id"])
        done = [r["run_id"] for r in runs if self.store.get_run(r["run_id"])["status"] == "done"]
        return done[-1] if done else self.encode(corpus, model=model, progress=progress, cancel=cancel)

    def training_pairs(self, corpus_id: int, cfg, ext_ids: Sequence[str], texts: Sequence[str]) -> list:
        """The pairs a config trains on: supervised from qrels, ICT from the texts, or both mixed."""
        from .training import ict_pairs, mix_pairs, supervised_pairs
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

    def _execute_train(self, run_id: int, progress: Progress | None, cancel: Callable[[], bool] | None,
                       resume: bool = False) -> None:
        from .encoder import load_encoder
        from .training import TrainConfig, train
        info = self.store.get_run(run_id)
        corpus, cid = info["corpus"], info["corpus_id"]
        report = progress or (lambda *a, **k: None)
        try:
            cfg = TrainConfig.from_dict(info["config"])
            ids, ext_ids, texts = self._texts(cid)
            pairs = self.training_pairs(cid, cfg, ext_ids, texts)
            base_run = self._baseline_for(corpus, cfg.model, lambda st, d, t: report(f"baseline {st}", d, t),
                                          cancel)
            base_ids, base_vecs = self.store.read_vectors(base_run, live_only_corpus=cid)
            initial = base_vecs if np.array_equal(base_ids, ids) else None
            encoder = load_encoder(cfg.model, device=cfg.device, max_length=cfg.max_length)  # a fresh copy
            ckpt = os.path.join(self.models_dir, f"run-{run_id}")
            epochs: list[dict] = list((info["summary"] or {}).get("val_history", [])) if resume else []

            def on_step(ev) -> None:
                nan = float("nan")
                self.store.log_step(run_id, ev.step, ev.epoch - 1 + ev.batch / ev.batches, ev.loss,
                                    [nan if v is None else v for v in ev.level_loss],
                                    [nan if v is None else v for v in ev.level_acc], ev.leaf_acc,
                                    ev.examples_per_s, ev.eta_s)
                report("train", ev.step, ev.total_steps, ev.eta_s)

            def on_epoch(ev) -> None:
                if ev.val is not None:
                    epochs.append(ev.val)
                    self.store.update_run(run_id, summary={"val_history": epochs, "best_epoch": ev.best_epoch,
                                                           "baseline_run": base_run})
                report("validate", ev.epoch, cfg.epochs)

            def on_tree(rebuild: int, tree, vectors) -> None:
                report("tree", rebuild, rebuild)
                self.build_tree(run_id, vectors, ids, texts, rebuild=rebuild, seed=cfg.seed, tree=tree)

            result = train(encoder, texts, pairs, cfg, initial_vectors=initial, on_step=on_step, on_tree=on_tree,
                           on_epoch=on_epoch, should_cancel=cancel, checkpoint_dir=ckpt,
                           resume_from=ckpt if resume else None)
            summary = {"baseline_run": base_run, "best_epoch": result.best_epoch, "start_val": result.start_val,
                       "best_val": result.best_val, "improved": result.improved, "val_history": result.val_history,
                       "steps": result.steps, "epochs_done": result.epochs_done, "memory_levels":
                       result.memory_levels, "rebuilds": result.rebuilds, "n_train_pairs": result.n_train_pairs,
                       "n_val_pairs": result.n_val_pairs, "examples_per_s": result.examples_per_s,
                       "seconds": result.seconds}
            if result.status == "cancelled":
                self.store.update_run(run_id, status="cancelled", summary=summary,
                                      error="cancelled by the user (resume continues from the last epoch)")
                return
            model_path = result.checkpoint or os.path.join(ckpt, "best")
            if not result.checkpoint:
                encoder.save(model_path)
            report("final encode", 0, len(texts))
            # the index holds documents at the baseline's length, so start and trained encoders compare fairly
            doc_len = self.store.get_run(base_run)["config"]["max_length"]
            summary["doc_max_length"] = doc_len
            vecs = encoder.encode(texts, max_length=doc_len, cancel=cancel,
                                  progress=lambda d, t: report("final encode", d, t))
            self.store.write_vectors(run_id, ids, vecs)
            report("tree", 1, 1)
            self.build_tree(run_id, vecs, ids, texts, rebuild=result.rebuilds + 1, branching=cfg.branching,
                            builder=cfg.builder, seed=cfg.seed)
            with self._lock:
                self._encoders.pop((model_path, cfg.device, cfg.max_length), None)
            self.store.update_run(run_id, status="done", model_path=model_path, summary=summary)
            if "test" in self.store.splits(cid) and cfg.split != "test":
                report("evaluate", 0, 2)
                start = self.evaluate(corpus, run=base_run, split="test")["dense"]
                trained = self.evaluate(corpus, run=run_id, split="test")["dense"]
                summary["test"] = {"start": start, "trained": trained}
                self.store.update_run(run_id, summary=summary)
        except BaseException as exc:
            self._fail(run_id, exc)
            raise

    def train_log(self, run_id: int):
        """DataFrame of a training run's steps: step, epoch, loss, level_losses, level_acc, leaf_acc,
        examples_per_s, eta_s."""
        return self.store.train_log(run_id)

    def estimate(self, corpus: str, config) -> dict:
        """Time estimate of a training run on this machine, before it starts (measures a short encode)."""
        from .training import estimate_seconds, measure_seconds_per_sequence
        cid = self.store.corpus_id(corpus)
        cfg = self._train_config(cid, config)
        ids, ext_ids, texts = self._texts(cid)
        pairs = self.training_pairs(cid, cfg, ext_ids, texts)
        enc = self.encoder(cfg.model, cfg.device, cfg.max_length)
        key = (cfg.model, cfg.device, cfg.max_length)
        if key not in self._seconds_per_seq:  # measured once per encoder setting and process
            sample = [texts[i] for i in np.random.default_rng(0).choice(len(texts), min(32, len(texts)), False)]
            self._seconds_per_seq[key] = measure_seconds_per_sequence(enc, sample, cfg.max_length)
        sps = self._seconds_per_seq[key]
        have = any(r["kind"] == "baseline" and r["status"] == "done" and r["config"].get("model") == cfg.model
                   for r in self.store.list_runs(cid))
        est = estimate_seconds(cfg, len(pairs), len(texts), sps, have_initial_vectors=have, device=enc.device)
        est["pairs"] = len(pairs)
        est["device"] = str(enc.device)
        return est

    # -- exports -------------------------------------------------------------------------------
    def export_model(self, run_id: int, dest: str) -> str:
        """Copy the run's encoder (a sentence-transformers folder) to ``dest``; returns ``dest``."""
        import shutil
        info = self.store.get_run(run_id)
        if info["status"] != "done" or not info["model_path"]:
            raise HCEError(f"run {run_id} has no finished encoder to export")
        if os.path.exists(dest):
            raise InputError(f"{dest} already exists")
        shutil.copytree(info["model_path"], dest)
        return dest

    def export_vectors(self, run_id: int, path: str) -> str:
        """Parquet of the run's documents: doc_id, ext_id, title, vector, leaf path and map x/y (if any)."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        from .store.store import _float_list_array
        info = self.store.get_run(run_id)
        ids, vecs = self.store.read_vectors(run_id, live_only_corpus=info["corpus_id"])
        docs = self.store.documents(info["corpus_id"], doc_ids=ids).set_index("doc_id").loc[ids]
        cols = {"doc_id": pa.array(ids), "ext_id": pa.array(list(docs["ext_id"])),
                "title": pa.array(list(docs["title"])), "vector": _float_list_array(vecs)}
        try:
            tree, _, _ = self.tree(run_id)
            pos = {int(d): p for p, d in enumerate(tree.doc_ids)}
            paths = tree.paths()
            cols["tree_path"] = pa.array([paths[pos[int(d)]].tolist() if int(d) in pos else None for d in ids],
                                         pa.list_(pa.int64()))
        except NotFoundError:
            pass
        pids, xy = self.store.read_projection(run_id)
        if len(pids):
            where = {int(d): i for i, d in enumerate(pids)}
            cols["x"] = pa.array([float(xy[where[int(d)], 0]) if int(d) in where else None for d in ids], pa.float32())
            cols["y"] = pa.array([float(xy[where[int(d)], 1]) if int(d) in where else None for d in ids], pa.float32())
        pq.write_table(pa.table(cols), path)
        return path

    def export_trec(self, run_id: int, split: str, path: str, k: int = 100) -> str:
        """A TREC run file (``qid Q0 docid rank score tag``) of the run on a split's queries."""
        from .evaluation import rankings_from_arrays, write_trec_run
        info = self.store.get_run(run_id)
        cid = info["corpus_id"]
        queries = self.store.queries(cid)
        qids = [q for q in self.store.qrels(cid, split) if q in queries]
        if not qids:
            raise NotFoundError(f"corpus {info['corpus']!r} has no queries with qrels in split {split!r}")
        enc = self._run_encoder(info)
        scores, ids = self.index(run_id).search(enc.encode([queries[q] for q in qids],
                                                           max_length=self._query_max_length(info)), k)
        docs = self.store.documents(cid, include_removed=True)
        ranking = rankings_from_arrays(qids, ids, scores, dict(zip(docs["doc_id"].astype(int), docs["ext_id"])))
        write_trec_run(ranking, path, tag=f"hce-run{run_id}")
        return path
