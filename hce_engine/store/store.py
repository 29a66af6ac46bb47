"""All SQL of the engine: one DuckDB file per workspace.

A :class:`Store` is a :class:`~.locks.SharedConnection`: every method runs in a :meth:`Store.session`, which
opens the file while this process works and lets other processes take their turn on it (see ``locks``). A
long job keeps its state in memory and writes in brief commits.
Vectors move through Arrow in both directions (no per-row inserts).
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
from typing import Any, Iterable, Iterator, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import NotFoundError, WorkspaceBusyError
from ..tempfiles import alive
from .locks import SharedConnection
from .schema import MIGRATIONS, SCHEMA_VERSION

ACTIVE_STATUSES = ("queued", "running")


def _float_list_array(vectors: np.ndarray) -> pa.Array:
    """float32 (n, d) -> Arrow list<float> array without a Python loop."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1)))


def _stack_lists(column: pa.ChunkedArray | pa.Array, dim: int | None = None) -> np.ndarray:
    """Arrow list<float> column -> float32 (n, d)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if n == 0:
        return np.zeros((0, dim or 0), dtype=np.float32)
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(n, -1)


#: rows per Arrow batch when reading vectors (about 15 MB of d = 384 float32)
VECTOR_BATCH = 10_000


class NodeTerms(Sequence[list[str]]):
    """Each node's terms, read from the stored list column one node at a time: a million-document tree's 111k
    nodes turned into Python lists took seconds, where a map's labels need a few of them."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        self._column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column

    def __len__(self) -> int:
        return len(self._column)

    def __getitem__(self, node):  # int -> list[str]; a slice -> a list of them
        if isinstance(node, slice):
            return [self[i] for i in range(*node.indices(len(self)))]
        return self._column[node].as_py() or []


class Store(SharedConnection):
    """The workspace database.

    Args:
        path: DuckDB file (created with the current schema if missing); ":memory:" for tests.
    """

    def __init__(self, path: str, lock_timeout: float | None = None):
        super().__init__(path, lock_timeout)
        with self.session():
            self._migrate()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All statements inside commit together or not at all (nesting joins the outer one)."""
        with self.session():
            depth = getattr(self._local, "depth", 0)
            con = self.con
            if depth == 0:
                con.execute("BEGIN TRANSACTION")
            self._local.depth = depth + 1
            try:
                yield con
            except BaseException:
                self._local.depth = depth
                if depth == 0:
                    con.execute("ROLLBACK")
                raise
            self._local.depth = depth
            if depth == 0:
                con.execute("COMMIT")

    def _migrate(self) -> None:
        con = self.con
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0] or 0
        if current > SCHEMA_VERSION:
            raise WorkspaceBusyError(f"{self.path} was written by a newer HCE Explorer (schema {current}, "
                                     f"this one knows {SCHEMA_VERSION})")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            con.execute("BEGIN TRANSACTION")
            try:
                for stmt in MIGRATIONS[version - 1]:
                    con.execute(stmt)
                con.execute("INSERT INTO schema_version VALUES (?)", [version])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        return self._value("SELECT max(version) FROM schema_version")

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        """First row of a query (the result is drained, as DuckDB requires before the next statement)."""
        rows = self.con.execute(sql, list(params)).fetchall()
        return rows[0] if rows else None

    def _value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """First column of a query that always returns a row (a count, a max, an INSERT ... RETURNING)."""
        return self.con.execute(sql, list(params)).fetchall()[0][0]

    def _arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        return self.con.sql(sql, params=list(params)).to_arrow_table()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        cur = self.con.execute(sql, list(params))
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    # -- corpora -------------------------------------------------------------------------------
    def create_corpus(self, name: str, source: str | None = None) -> int:
        return self._value("INSERT INTO corpora (name, source) VALUES (?, ?) RETURNING corpus_id", [name, source])

    def find_corpus(self, name: str) -> int | None:
        row = self._one("SELECT corpus_id FROM corpora WHERE name = ?", [name])
        return row[0] if row else None

    def corpus_id(self, name: str) -> int:
        cid = self.find_corpus(name)
        if cid is None:
            known = ", ".join(c["name"] for c in self.list_corpora()) or "none yet"
            raise NotFoundError(f"no corpus named {name!r} (corpora: {known})")
        return cid

    def list_corpora(self) -> list[dict]:
        return self._rows("""
            SELECT c.corpus_id, c.name, c.source, c.created_at,
              (SELECT count(*) FROM documents d WHERE d.corpus_id = c.corpus_id AND NOT d.removed) AS documents,
              (SELECT count(*) FROM documents d WHERE d.corpus_id = c.corpus_id AND d.removed) AS removed,
              (SELECT count(*) FROM queries q WHERE q.corpus_id = c.corpus_id) AS queries,
              (SELECT count(*) FROM qrels r WHERE r.corpus_id = c.corpus_id) AS qrels,
              (SELECT count(*) FROM runs u WHERE u.corpus_id = c.corpus_id) AS runs
            FROM corpora c ORDER BY c.corpus_id""")

    def delete_corpus(self, corpus_id: int) -> None:
        with self.transaction() as con:
            for run in self.list_runs(corpus_id):
                self._delete_run_rows(con, run["run_id"])
            con.execute("DELETE FROM experiment_runs WHERE experiment_id IN "
                        "(SELECT experiment_id FROM experiments WHERE corpus_id = ?)", [corpus_id])
            for table in ("documents", "queries", "qrels", "experiments", "corpus_stats", "corpora"):
                con.execute(f"DELETE FROM {table} WHERE corpus_id = ?", [corpus_id])

    # -- documents, queries, qrels ------------------------------------------------------------
    def insert_documents(self, corpus_id: int, ext_ids: Sequence[str], titles: Sequence[str],
                         texts: Sequence[str], metadata: Sequence[str | None]) -> np.ndarray:
        """Insert documents; returns their new doc ids (int64, input order)."""
        n = len(ext_ids)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        con = self.con
        ids = np.asarray([r[0] for r in con.execute(f"SELECT nextval('doc_seq') FROM range({n})").fetchall()],
                         dtype=np.int64)
        table = pa.table({"doc_id": ids, "corpus_id": pa.array([corpus_id] * n, pa.int32()),
                          "ext_id": list(ext_ids), "title": list(titles), "text": list(texts),
                          "metadata": pa.array(list(metadata), pa.string())})
        con.register("_new_docs", table)
        try:
            con.execute("INSERT INTO documents (doc_id, corpus_id, ext_id, title, text, metadata) "
                        "SELECT doc_id, corpus_id, ext_id, title, text, metadata::JSON FROM _new_docs")
        finally:
            con.unregister("_new_docs")
        return ids

    def documents(self, corpus_id: int, include_removed: bool = False,
                  doc_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """DataFrame (doc_id, ext_id, title, text, removed, added_at) ordered by doc_id."""
        sql = ("SELECT doc_id, ext_id, title, text, removed, added_at, metadata FROM documents "
               "WHERE corpus_id = ?")
        params: list[Any] = [corpus_id]
        if not include_removed:
            sql += " AND NOT removed"
        if doc_ids is not None:
            sql += " AND doc_id IN (SELECT unnest(?::BIGINT[]))"
            params.append([int(i) for i in doc_ids])
        return self.con.execute(sql + " ORDER BY doc_id", params).df()

    def display_rows(self, corpus_id: int, doc_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """DataFrame (doc_id, ext_id, title, text) ordered by doc_id, removed documents included: ``title`` stripped,
        ``text`` only where the title is blank (else None), so listing many documents does not read every text.
        ``doc_ids``: only those (all of the corpus: None)."""
        sql = ("SELECT doc_id, ext_id, trim(coalesce(title, '')) AS title, "
               "CASE WHEN trim(coalesce(title, '')) = '' THEN text END AS text FROM documents WHERE corpus_id = ?")
        params: list[Any] = [corpus_id]
        if doc_ids is not None:
            sql += " AND doc_id IN (SELECT unnest(?::BIGINT[]))"
            params.append([int(i) for i in doc_ids])
        return self.con.execute(sql + " ORDER BY doc_id", params).df()

    def doc_ids_of(self, corpus_id: int, ext_ids: Iterable[str]) -> dict[str, int]:
        """{ext id: doc id} of the live documents among ``ext_ids`` (unknown or removed ones left out)."""
        return dict(self.con.execute(
            "SELECT ext_id, doc_id FROM documents WHERE corpus_id = ? AND NOT removed AND "
            "ext_id IN (SELECT unnest(?::VARCHAR[]))", [corpus_id, list(ext_ids)]).fetchall())

    def added_times(self, corpus_id: int) -> pd.DataFrame:
        """DataFrame (doc_id, added_at) of the live documents, ordered by doc_id (no texts: cheap at 200k)."""
        return self.con.execute("SELECT doc_id, added_at FROM documents WHERE corpus_id = ? AND NOT removed "
                                "ORDER BY doc_id", [corpus_id]).df()

    def docs_state(self, corpus_id: int) -> str:
        """A key that changes whenever the corpus's documents do: documents are only ever added (new, larger ids)
        or flagged removed, so the row count, the largest id and the removed ids' count and sum tell the states
        apart."""
        row = self._one("SELECT count(*), coalesce(max(doc_id), 0), count(*) FILTER (WHERE removed), "
                        "coalesce(sum(doc_id) FILTER (WHERE removed), 0) FROM documents WHERE corpus_id = ?",
                        [corpus_id])
        return ":".join(str(int(v)) for v in row or ())

    def saved_stats(self, corpus_id: int, docs_state: str) -> dict | None:
        """The document statistics saved for the corpus when its documents were in ``docs_state`` (else None)."""
        row = self._one("SELECT stats FROM corpus_stats WHERE corpus_id = ? AND docs_state = ?",
                        [corpus_id, docs_state])
        return json.loads(row[0]) if row else None

    def save_stats(self, corpus_id: int, docs_state: str, stats: dict) -> None:
        """Keep ``stats`` (JSON-friendly) as the corpus's document statistics for ``docs_state``."""
        self.con.execute("INSERT OR REPLACE INTO corpus_stats VALUES (?, ?, ?)",
                         [corpus_id, docs_state, json.dumps(stats)])

    def live_count(self, corpus_id: int) -> int:
        """The corpus's documents not removed."""
        return int(self._value("SELECT count(*) FROM documents WHERE corpus_id = ? AND NOT removed", [corpus_id]))

    def existing_ext_ids(self, corpus_id: int, ext_ids: Iterable[str], live: bool = False) -> set[str]:
        """Those of ``ext_ids`` the corpus holds (``live``: and has not removed)."""
        return {r[0] for r in self.con.execute(
            "SELECT ext_id FROM documents WHERE corpus_id = ? AND ext_id IN (SELECT unnest(?::VARCHAR[]))"
            + (" AND NOT removed" if live else ""), [corpus_id, list(ext_ids)]).fetchall()}

    def mark_removed(self, corpus_id: int, ext_ids: Sequence[str]) -> np.ndarray:
        """Flag documents removed; returns the doc ids that were live and are now removed."""
        rows = self.con.execute(
            "UPDATE documents SET removed = true WHERE corpus_id = ? AND NOT removed AND "
            "ext_id IN (SELECT unnest(?::VARCHAR[])) RETURNING doc_id", [corpus_id, list(ext_ids)]).fetchall()
        return np.asarray(sorted(r[0] for r in rows), dtype=np.int64)

    def insert_queries(self, corpus_id: int, ext_ids: Sequence[str], texts: Sequence[str]) -> None:
        if not ext_ids:
            return
        table = pa.table({"corpus_id": pa.array([corpus_id] * len(ext_ids), pa.int32()),
                          "ext_id": list(ext_ids), "text": list(texts)})
        self.con.register("_new_q", table)
        try:
            self.con.execute("INSERT OR REPLACE INTO queries SELECT corpus_id, ext_id, text FROM _new_q")
        finally:
            self.con.unregister("_new_q")

    def insert_qrels(self, corpus_id: int, split: str, rows: Sequence[tuple[str, str, int]]) -> None:
        if not rows:
            return
        q, d, s = zip(*rows, strict=True)
        table = pa.table({"corpus_id": pa.array([corpus_id] * len(rows), pa.int32()),
                          "split": [split] * len(rows), "q": list(q), "d": list(d),
                          "s": pa.array(s, pa.int32())})
        self.con.register("_new_qrels", table)
        try:
            self.con.execute("INSERT OR REPLACE INTO qrels SELECT corpus_id, split, q, d, s FROM _new_qrels")
        finally:
            self.con.unregister("_new_qrels")

    def delete_qrels(self, corpus_id: int, split: str, query_ext_id: str) -> None:
        """Remove one query's judgements in ``split`` (its text stays)."""
        self.con.execute("DELETE FROM qrels WHERE corpus_id = ? AND split = ? AND query_ext_id = ?",
                         [corpus_id, split, query_ext_id])

    def queries(self, corpus_id: int) -> dict[str, str]:
        return dict(self.con.execute("SELECT ext_id, text FROM queries WHERE corpus_id = ? ORDER BY ext_id",
                                     [corpus_id]).fetchall())

    def splits(self, corpus_id: int) -> dict[str, int]:
        """Split name -> number of judged queries."""
        return dict(self.con.execute(
            "SELECT split, count(DISTINCT query_ext_id) FROM qrels WHERE corpus_id = ? GROUP BY split "
            "ORDER BY split", [corpus_id]).fetchall())

    def qrels(self, corpus_id: int, split: str) -> dict[str, dict[str, int]]:
        """{query id: {document id: relevance}} of ``split``, ordered by query id then document id (a table scan
        gives no order, and supervised training takes its pairs in this order)."""
        out: dict[str, dict[str, int]] = {}
        for q, d, s in self.con.execute(
                "SELECT query_ext_id, doc_ext_id, score FROM qrels WHERE corpus_id = ? AND split = ? "
                "ORDER BY query_ext_id, doc_ext_id", [corpus_id, split]).fetchall():
            out.setdefault(q, {})[d] = s
        return out

    # -- runs ---------------------------------------------------------------------------------
    def create_run(self, corpus_id: int, kind: str, config: dict, seed: int | None,
                   status: str = "queued") -> int:
        return self._value(
            "INSERT INTO runs (corpus_id, kind, status, config, seed, pid) VALUES (?, ?, ?, ?, ?, ?) "
            "RETURNING run_id", [corpus_id, kind, status, json.dumps(config, sort_keys=True), seed, os.getpid()])

    def update_run(self, run_id: int, **fields: Any) -> None:
        allowed = {"status", "error", "model_path", "summary", "finished_at", "config", "pid"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update run fields {sorted(bad)}")
        sets, params = [], []
        if fields.get("status") in ACTIVE_STATUSES:  # (re)started by this process: see mark_interrupted
            fields["pid"] = os.getpid()
        for key, value in fields.items():
            if key in ("summary", "config") and value is not None:
                value = json.dumps(value, sort_keys=True)
            sets.append(f"{key} = ?")
            params.append(value)
        if fields.get("status") in ("done", "failed", "cancelled", "interrupted") and "finished_at" not in fields:
            sets.append("finished_at = current_timestamp")
        self.con.execute(f"UPDATE runs SET {', '.join(sets)} WHERE run_id = ?", params + [run_id])

    def _decode_run(self, row: dict) -> dict:
        row["config"] = json.loads(row["config"]) if row["config"] else {}
        row["summary"] = json.loads(row["summary"]) if row["summary"] else None
        return row

    def get_run(self, run_id: int) -> dict:
        rows = self._rows("SELECT r.*, c.name AS corpus FROM runs r JOIN corpora c USING (corpus_id) "
                          "WHERE run_id = ?", [run_id])
        if not rows:
            raise NotFoundError(f"no run {run_id}")
        return self._decode_run(rows[0])

    def list_runs(self, corpus_id: int | None = None) -> list[dict]:
        sql = "SELECT r.*, c.name AS corpus FROM runs r JOIN corpora c USING (corpus_id)"
        params: list[Any] = []
        if corpus_id is not None:
            sql += " WHERE r.corpus_id = ?"
            params.append(corpus_id)
        return [self._decode_run(r) for r in self._rows(sql + " ORDER BY run_id", params)]

    def mark_interrupted(self, run_ids: Sequence[int] | None = None) -> list[int]:
        """Runs left queued/running by a process that no longer runs -> 'interrupted' (a run of a live process,
        this one or another, is left alone). Returns their ids."""
        me = os.getpid()
        stale = [rid for rid, pid in self.con.execute(
                     "SELECT run_id, pid FROM runs WHERE status IN ('queued', 'running')").fetchall()
                 if (run_ids is None or rid in run_ids) and (pid is None or (pid != me and not alive(pid)))]
        if stale:
            self.con.execute("UPDATE runs SET status = 'interrupted', finished_at = current_timestamp, "
                             "error = coalesce(error, 'the process running it stopped') "
                             "WHERE run_id IN (SELECT unnest(?::INTEGER[]))", [stale])
        return sorted(stale)

    def drop_orphan_vectors(self) -> int:
        """Delete the vectors of runs that can never serve them (interrupted, failed, cancelled, or deleted):
        an encode killed mid-way leaves its batches. Returns the rows deleted."""
        where = "WHERE run_id NOT IN (SELECT run_id FROM runs WHERE status IN ('done', 'queued', 'running'))"
        n = self._value(f"SELECT count(*) FROM vectors {where}")
        if n:
            self.con.execute(f"DELETE FROM vectors {where}")
        return n

    def _delete_run_rows(self, con: duckdb.DuckDBPyConnection, run_id: int) -> None:
        for table in ("train_log", "trees", "tree_nodes", "tree_docs", "vectors", "metrics", "projections",
                      "fusion_weights", "experiment_runs", "runs"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])

    def delete_run(self, run_id: int) -> None:
        with self.transaction() as con:
            self._delete_run_rows(con, run_id)

    # -- experiments ----------------------------------------------------------------------------
    def create_experiment(self, corpus_id: int, name: str, spec: dict, provenance: dict) -> int:
        """Store an experiment; ``spec`` keeps its key order (the arms' display order)."""
        return self._value("INSERT INTO experiments (corpus_id, name, spec, provenance) VALUES (?, ?, ?, ?) "
                           "RETURNING experiment_id", [corpus_id, name, json.dumps(spec),
                                                       json.dumps(provenance, sort_keys=True)])

    def update_experiment(self, experiment_id: int, spec: dict) -> None:
        self.con.execute("UPDATE experiments SET spec = ? WHERE experiment_id = ?", [json.dumps(spec), experiment_id])

    def get_experiment(self, experiment_id: int) -> dict:
        rows = self._rows("SELECT e.*, c.name AS corpus FROM experiments e JOIN corpora c USING (corpus_id) "
                          "WHERE experiment_id = ?", [experiment_id])
        if not rows:
            raise NotFoundError(f"no experiment {experiment_id}")
        row = rows[0]
        row["spec"] = json.loads(row["spec"])
        row["provenance"] = json.loads(row["provenance"]) if row["provenance"] else {}
        return row

    def list_experiments(self) -> list[dict]:
        return self._rows("SELECT e.experiment_id, e.name, e.created_at, c.name AS corpus FROM experiments e "
                          "JOIN corpora c USING (corpus_id) ORDER BY experiment_id")

    def create_experiment_run(self, experiment_id: int, arm: str, seed: int, corpus_id: int, config: dict) -> int:
        """A new training run for one arm x seed of an experiment, registered in the same transaction (a
        process killed between the two can leave neither a run without its cell nor a cell without its run)."""
        with self.transaction() as con:
            run_id = self.create_run(corpus_id, "train", config, seed, status="queued")
            con.execute("DELETE FROM experiment_runs WHERE experiment_id = ? AND arm = ? AND seed = ?",
                        [experiment_id, arm, seed])
            con.execute("INSERT INTO experiment_runs VALUES (?, ?, ?, ?)", [experiment_id, arm, seed, run_id])
        return run_id

    def experiment_runs(self, experiment_id: int) -> dict[tuple[str, int], int]:
        """{(arm, seed): run id} of an experiment's cells that have a run."""
        return {(r["arm"], r["seed"]): r["run_id"] for r in self._rows(
            "SELECT arm, seed, run_id FROM experiment_runs WHERE experiment_id = ?", [experiment_id])}

    def delete_experiment(self, experiment_id: int) -> None:
        """The experiment and its cells (its runs stay, as ordinary runs)."""
        with self.transaction() as con:
            for table in ("experiment_runs", "experiments"):
                con.execute(f"DELETE FROM {table} WHERE experiment_id = ?", [experiment_id])

    # -- vectors --------------------------------------------------------------------------------
    def write_vectors(self, run_id: int, doc_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Store float32 (n, d) vectors for ``doc_ids`` (replacing any the run had for them)."""
        doc_ids = np.asarray(doc_ids, dtype=np.int64)
        table = pa.table({"run_id": pa.array(np.full(len(doc_ids), run_id, dtype=np.int32)),
                          "doc_id": doc_ids, "vec": _float_list_array(vectors)})
        with self.transaction() as con:
            con.register("_new_vecs", table)
            try:
                con.execute("DELETE FROM vectors WHERE run_id = ? AND doc_id IN (SELECT doc_id FROM _new_vecs)",
                            [run_id])
                con.execute("INSERT INTO vectors SELECT run_id, doc_id, vec FROM _new_vecs")
            finally:
                con.unregister("_new_vecs")

    @staticmethod
    def _vector_sql(columns: str, run_id: int, live_only_corpus: int | None,
                    doc_ids: Iterable[int] | None) -> tuple[str, list]:
        sql = f"SELECT {columns} FROM vectors v"
        params: list[Any] = [run_id]
        if live_only_corpus is not None:
            sql += " JOIN documents d ON d.doc_id = v.doc_id AND NOT d.removed"
        sql += " WHERE v.run_id = ?"
        if doc_ids is not None:
            sql += " AND v.doc_id IN (SELECT unnest(?::BIGINT[]))"
            params.append([int(i) for i in doc_ids])
        return sql, params

    def read_vectors(self, run_id: int, live_only_corpus: int | None = None,
                     doc_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(doc_ids int64 (n,), vectors float32 (n, d)) ordered by doc_id; optionally skip removed docs
        (``live_only_corpus``) or keep only ``doc_ids``. Read in batches of ``VECTOR_BATCH`` rows into one
        preallocated array, so the peak is the vectors plus one batch."""
        sql, params = self._vector_sql("v.doc_id, v.vec", run_id, live_only_corpus, doc_ids)
        with self.transaction() as con:  # one snapshot for the count and the rows
            n = con.execute(f"SELECT count(*) FROM ({sql})", params).fetchall()[0][0]
            ids, vecs, pos = np.empty(n, dtype=np.int64), None, 0
            for batch in con.sql(sql, params=params).to_arrow_reader(VECTOR_BATCH):  # no ORDER BY: see below
                m = batch.num_rows
                v = _stack_lists(batch.column(1))
                if vecs is None:
                    vecs = np.empty((n, v.shape[1]), dtype=np.float32)
                ids[pos:pos + m] = batch.column(0).to_numpy()
                vecs[pos:pos + m] = v
                pos += m
        if vecs is None:
            return ids, np.zeros((0, 0), dtype=np.float32)
        if n > 1 and not (ids[1:] > ids[:-1]).all():  # DuckDB sorting would hold all rows at once; a scan
            order = np.argsort(ids, kind="stable")     # usually returns insertion (= id) order anyway
            ids, vecs = ids[order], vecs[order]
        return ids, vecs

    def vector_ids(self, run_id: int, live_only_corpus: int | None = None) -> np.ndarray:
        """doc_ids int64 (n,), ascending, of the run's stored vectors (as :meth:`read_vectors`, no vectors)."""
        sql, params = self._vector_sql("v.doc_id", run_id, live_only_corpus, None)
        return self._arrow(sql + " ORDER BY v.doc_id", params).column("doc_id").to_numpy().astype(np.int64)

    # -- training log ---------------------------------------------------------------------------
    def log_step(self, run_id: int, step: int, epoch: float, loss: float | None, level_losses: Sequence[float],
                 level_acc: Sequence[float], leaf_acc: float | None, examples_per_s: float | None,
                 eta_s: float | None, teacher_agree: float | None = None) -> None:
        self.con.execute("INSERT INTO train_log (run_id, step, epoch, loss, level_losses, level_acc, leaf_acc, "
                         "examples_per_s, eta_s, teacher_agree) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [run_id, step, epoch, loss, list(map(float, level_losses)), list(map(float, level_acc)),
                          leaf_acc, examples_per_s, eta_s, teacher_agree])

    def train_log(self, run_id: int) -> pd.DataFrame:
        return self.con.execute("SELECT * FROM train_log WHERE run_id = ? ORDER BY step", [run_id]).df()

    # -- trees ----------------------------------------------------------------------------------
    def write_tree(self, run_id: int, rebuild: int, tree, terms: Sequence[Sequence[str]] | None = None,
                   rep_doc_ids: np.ndarray | None = None, stats: dict | None = None) -> None:
        """Store a :class:`~hce_engine.tree.Tree` (nodes with centroids, labels, doc -> leaf). Rewriting a
        stored rebuild (documents removed from it) keeps its ``created_at``: when it was clustered."""
        n = tree.n_nodes
        nodes = pa.table({
            "run_id": pa.array(np.full(n, run_id, dtype=np.int32)),
            "rebuild": pa.array(np.full(n, rebuild, dtype=np.int32)),
            "node_id": pa.array(np.arange(n, dtype=np.int32)),
            "parent": pa.array(tree.parent.astype(np.int32)),
            "level": pa.array(tree.level.astype(np.int32)),
            "size": pa.array(tree.size.astype(np.int64)),
            "centroid": _float_list_array(tree.centroid),
            "terms": pa.array([list(t) for t in terms] if terms is not None else [None] * n,
                              pa.list_(pa.string())),
            "rep_doc_id": pa.array(rep_doc_ids if rep_doc_ids is not None else [None] * n, pa.int64()),
        })
        docs = pa.table({"run_id": pa.array(np.full(tree.n_docs, run_id, dtype=np.int32)),
                         "rebuild": pa.array(np.full(tree.n_docs, rebuild, dtype=np.int32)),
                         "doc_id": pa.array(tree.doc_ids), "leaf": pa.array(tree.doc_leaf.astype(np.int32))})
        with self.transaction() as con:
            prev = con.execute("SELECT created_at FROM trees WHERE run_id = ? AND rebuild = ?",
                               [run_id, rebuild]).fetchall()
            for table in ("trees", "tree_nodes", "tree_docs"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ? AND rebuild = ?", [run_id, rebuild])
            con.execute("INSERT INTO trees (run_id, rebuild, builder, branching, depth, stats, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, COALESCE(?, current_timestamp))",
                        [run_id, rebuild, tree.builder, int(tree.branching), tree.depth,
                         json.dumps(stats) if stats is not None else None, prev[0][0] if prev else None])
            con.register("_nodes", nodes)
            con.register("_tdocs", docs)
            try:
                con.execute("INSERT INTO tree_nodes SELECT * FROM _nodes")
                con.execute("INSERT INTO tree_docs SELECT * FROM _tdocs")
            finally:
                con.unregister("_nodes")
                con.unregister("_tdocs")

    def append_tree_docs(self, run_id: int, rebuild: int, old, new) -> None:
        """Store ``new``, a tree that extends the stored ``old`` by documents appended at its end (as
        :func:`~hce_engine.tree.add_documents` returns): inserts the new document rows and updates the sizes
        that changed, instead of rewriting every node and document of the tree."""
        start = old.n_docs
        if not (np.array_equal(new.doc_ids[:start], old.doc_ids) and new.n_nodes == old.n_nodes):
            raise ValueError("append_tree_docs needs a tree that only appends documents")
        m = new.n_docs - start
        docs = pa.table({"run_id": pa.array(np.full(m, run_id, dtype=np.int32)),
                         "rebuild": pa.array(np.full(m, rebuild, dtype=np.int32)),
                         "doc_id": pa.array(new.doc_ids[start:]),
                         "leaf": pa.array(new.doc_leaf[start:].astype(np.int32))})
        changed = np.flatnonzero(new.size != old.size)
        sizes = pa.table({"node_id": pa.array(changed.astype(np.int32)), "size": pa.array(new.size[changed])})
        with self.transaction() as con:
            con.register("_tdocs", docs)
            con.register("_sizes", sizes)
            try:
                con.execute("INSERT INTO tree_docs SELECT * FROM _tdocs")
                con.execute("UPDATE tree_nodes SET size = _sizes.size FROM _sizes WHERE tree_nodes.run_id = ? "
                            "AND tree_nodes.rebuild = ? AND tree_nodes.node_id = _sizes.node_id",
                            [run_id, rebuild])
            finally:
                con.unregister("_tdocs")
                con.unregister("_sizes")

    def runs_with_trees(self) -> set[int]:
        """Ids of the runs that have at least one stored tree."""
        return {r[0] for r in self.con.execute("SELECT DISTINCT run_id FROM trees").fetchall()}

    def list_trees(self, run_id: int) -> list[dict]:
        rows = self._rows("SELECT * FROM trees WHERE run_id = ? ORDER BY rebuild", [run_id])
        for r in rows:
            r["stats"] = json.loads(r["stats"]) if r["stats"] else None
        return rows

    def read_tree(self, run_id: int, rebuild: int | None = None, centroids: bool = True):
        """(Tree, terms per node, representative doc id per node); latest rebuild by default. ``centroids=False``
        leaves the centroids out (float32 (n_nodes, 0)): the structure only, several times faster at a million
        documents (what a map or a node table needs), its terms read per node when asked (:class:`NodeTerms`)."""
        from ..tree.tree import Tree

        trees = self.list_trees(run_id)
        if not trees:
            raise NotFoundError(f"run {run_id} has no tree")
        meta = trees[-1] if rebuild is None else next((t for t in trees if t["rebuild"] == rebuild), None)
        if meta is None:
            raise NotFoundError(f"run {run_id} has no tree rebuild {rebuild}")
        columns = "*" if centroids else "node_id, parent, level, size, terms, rep_doc_id"
        nodes = self._arrow(f"SELECT {columns} FROM tree_nodes WHERE run_id = ? AND rebuild = ? ORDER BY node_id",
                            [run_id, meta["rebuild"]])
        docs = self._arrow("SELECT doc_id, leaf FROM tree_docs WHERE run_id = ? AND rebuild = ? ORDER BY doc_id",
                           [run_id, meta["rebuild"]])
        tree = Tree(parent=nodes.column("parent").to_numpy(), level=nodes.column("level").to_numpy(),
                    centroid=(_stack_lists(nodes.column("centroid")) if centroids
                              else np.zeros((nodes.num_rows, 0), dtype=np.float32)),
                    size=nodes.column("size").to_numpy(),
                    doc_leaf=docs.column("leaf").to_numpy(), doc_ids=docs.column("doc_id").to_numpy(),
                    builder=meta["builder"], branching=meta["branching"])
        terms: Sequence[list[str]] = (NodeTerms(nodes.column("terms")) if not centroids else
                                      [t if t is not None else [] for t in nodes.column("terms").to_pylist()])
        reps = pc.fill_null(nodes.column("rep_doc_id"), -1).to_numpy().astype(np.int64)
        return tree, terms, reps

    # -- metrics and projections --------------------------------------------------------------
    def write_metrics(self, run_id: int, split: str, system: str, metrics: dict) -> None:
        with self.transaction() as con:
            con.execute("DELETE FROM metrics WHERE run_id = ? AND split = ? AND system = ?", [run_id, split, system])
            con.execute("INSERT INTO metrics (run_id, split, system, ndcg_at_10, recall_at_10, recall_at_100, "
                        "mrr_at_10, queries) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [run_id, split, system, metrics["ndcg_at_10"], metrics["recall_at_10"],
                         metrics["recall_at_100"], metrics["mrr_at_10"], metrics["queries"]])

    def metrics(self, run_id: int | None = None) -> list[dict]:
        sql = "SELECT * FROM metrics"
        params: list[Any] = []
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params.append(run_id)
        return self._rows(sql + " ORDER BY run_id, split, system", params)

    def write_fusion_weight(self, run_id: int, split: str, weight: float, ndcg_at_10: float, queries: int) -> None:
        """Record the hybrid weight fitted for a run on ``split`` (replacing an earlier fit)."""
        with self.transaction() as con:
            con.execute("DELETE FROM fusion_weights WHERE run_id = ?", [run_id])
            con.execute("INSERT INTO fusion_weights (run_id, split, weight, ndcg_at_10, queries) "
                        "VALUES (?, ?, ?, ?, ?)", [run_id, split, weight, ndcg_at_10, queries])

    def fusion_weight(self, run_id: int) -> dict | None:
        """The hybrid weight fitted for a run: {"weight", "split", "ndcg_at_10", "queries"}, or None."""
        rows = self._rows("SELECT weight, split, ndcg_at_10, queries FROM fusion_weights WHERE run_id = ?", [run_id])
        return rows[0] if rows else None

    def write_projection(self, run_id: int, doc_ids: np.ndarray, xy: np.ndarray) -> None:
        table = pa.table({"run_id": pa.array(np.full(len(doc_ids), run_id, dtype=np.int32)),
                          "doc_id": pa.array(np.asarray(doc_ids, dtype=np.int64)),
                          "x": pa.array(xy[:, 0].astype(np.float32)), "y": pa.array(xy[:, 1].astype(np.float32))})
        with self.transaction() as con:
            con.execute("DELETE FROM projections WHERE run_id = ?", [run_id])
            con.register("_proj", table)
            try:
                con.execute("INSERT INTO projections SELECT * FROM _proj")
            finally:
                con.unregister("_proj")

    def projection_counts(self) -> dict[int, int]:
        """{run id: points of its stored map} for the runs with one."""
        return {int(r): int(n) for r, n in self.con.execute(
            "SELECT run_id, count(*) FROM projections GROUP BY run_id").fetchall()}

    def read_projection(self, run_id: int) -> tuple[np.ndarray, np.ndarray]:
        tbl = self._arrow("SELECT doc_id, x, y FROM projections WHERE run_id = ? ORDER BY doc_id", [run_id])
        ids = tbl.column("doc_id").to_numpy().astype(np.int64)
        xy = np.stack([tbl.column("x").to_numpy(), tbl.column("y").to_numpy()], axis=1) if len(ids) else \
            np.zeros((0, 2), dtype=np.float32)
        return ids, xy.astype(np.float32)


def _in_session(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.session():
            return method(self, *args, **kwargs)
    return wrapper


# Every public method holds the database only while it runs.
for _name, _member in list(vars(Store).items()):
    if callable(_member) and not _name.startswith("_") and _name not in ("session", "transaction", "close"):
        setattr(Store, _name, _in_session(_member))
