"""Numbered schema migrations for the workspace database (DuckDB).

Each migration is a list of SQL statements applied in one transaction; the version reached is stored in
``schema_version``. Never edit a released migration: append a new one.
"""
from __future__ import annotations

MIGRATIONS: list[list[str]] = [
    # 1: corpora, documents, queries, qrels, runs, training log, trees, vectors, metrics, projections
    [
        "CREATE SEQUENCE corpus_seq START 1",
        "CREATE SEQUENCE doc_seq START 1",
        "CREATE SEQUENCE run_seq START 1",
        """CREATE TABLE corpora (
            corpus_id INTEGER PRIMARY KEY DEFAULT nextval('corpus_seq'),
            name VARCHAR NOT NULL UNIQUE,
            source VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        """CREATE TABLE documents (
            doc_id BIGINT PRIMARY KEY DEFAULT nextval('doc_seq'),
            corpus_id INTEGER NOT NULL,
            ext_id VARCHAR NOT NULL,
            title VARCHAR NOT NULL DEFAULT '',
            text VARCHAR NOT NULL,
            metadata JSON,
            added_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            removed BOOLEAN NOT NULL DEFAULT false,
            UNIQUE (corpus_id, ext_id)
        )""",
        """CREATE TABLE queries (
            corpus_id INTEGER NOT NULL,
            ext_id VARCHAR NOT NULL,
            text VARCHAR NOT NULL,
            PRIMARY KEY (corpus_id, ext_id)
        )""",
        """CREATE TABLE qrels (
            corpus_id INTEGER NOT NULL,
            split VARCHAR NOT NULL,
            query_ext_id VARCHAR NOT NULL,
            doc_ext_id VARCHAR NOT NULL,
            score INTEGER NOT NULL,
            PRIMARY KEY (corpus_id, split, query_ext_id, doc_ext_id)
        )""",
        """CREATE TABLE runs (
            run_id INTEGER PRIMARY KEY DEFAULT nextval('run_seq'),
            corpus_id INTEGER NOT NULL,
            kind VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            config JSON NOT NULL,
            seed INTEGER,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            finished_at TIMESTAMP,
            error VARCHAR,
            model_path VARCHAR,
            summary JSON
        )""",
        """CREATE TABLE train_log (
            run_id INTEGER NOT NULL,
            step INTEGER NOT NULL,
            epoch DOUBLE NOT NULL,
            loss DOUBLE,
            level_losses DOUBLE[],
            level_acc DOUBLE[],
            leaf_acc DOUBLE,
            examples_per_s DOUBLE,
            eta_s DOUBLE,
            logged_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        """CREATE TABLE trees (
            run_id INTEGER NOT NULL,
            rebuild INTEGER NOT NULL,
            builder VARCHAR NOT NULL,
            branching INTEGER NOT NULL,
            depth INTEGER NOT NULL,
            stats JSON,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (run_id, rebuild)
        )""",
        """CREATE TABLE tree_nodes (
            run_id INTEGER NOT NULL,
            rebuild INTEGER NOT NULL,
            node_id INTEGER NOT NULL,
            parent INTEGER NOT NULL,
            level INTEGER NOT NULL,
            size BIGINT NOT NULL,
            centroid FLOAT[],
            terms VARCHAR[],
            rep_doc_id BIGINT
        )""",
        """CREATE TABLE tree_docs (
            run_id INTEGER NOT NULL,
            rebuild INTEGER NOT NULL,
            doc_id BIGINT NOT NULL,
            leaf INTEGER NOT NULL
        )""",
        """CREATE TABLE vectors (
            run_id INTEGER NOT NULL,
            doc_id BIGINT NOT NULL,
            vec FLOAT[] NOT NULL
        )""",
        """CREATE TABLE metrics (
            run_id INTEGER NOT NULL,
            split VARCHAR NOT NULL,
            system VARCHAR NOT NULL,
            ndcg_at_10 DOUBLE, recall_at_10 DOUBLE, recall_at_100 DOUBLE, mrr_at_10 DOUBLE,
            queries INTEGER,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        """CREATE TABLE projections (
            run_id INTEGER NOT NULL,
            doc_id BIGINT NOT NULL,
            x FLOAT NOT NULL,
            y FLOAT NOT NULL
        )""",
    ],
    # 2: the process that runs a run (a workspace is shared by processes: only a dead one's runs are interrupted)
    [
        "ALTER TABLE runs ADD COLUMN pid INTEGER",
    ],
    # 3: the hybrid (dense + BM25) weight fitted for a run on a split's judged queries
    [
        """CREATE TABLE fusion_weights (
            run_id INTEGER NOT NULL,
            split VARCHAR NOT NULL,
            weight DOUBLE NOT NULL,
            ndcg_at_10 DOUBLE NOT NULL,
            queries INTEGER NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
    ],
    # 4: self-signal steps: the share of pseudo-queries whose top candidate is the teacher's
    [
        "ALTER TABLE train_log ADD COLUMN teacher_agree DOUBLE",
    ],
    # 5: experiments (a corpus, a preset, arms of setting overrides x seeds) and the run of each arm x seed
    [
        "CREATE SEQUENCE experiment_seq START 1",
        """CREATE TABLE experiments (
            experiment_id INTEGER PRIMARY KEY DEFAULT nextval('experiment_seq'),
            corpus_id INTEGER NOT NULL,
            name VARCHAR NOT NULL,
            spec JSON NOT NULL,
            provenance JSON,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        """CREATE TABLE experiment_runs (
            experiment_id INTEGER NOT NULL,
            arm VARCHAR NOT NULL,
            seed INTEGER NOT NULL,
            run_id INTEGER NOT NULL,
            PRIMARY KEY (experiment_id, arm, seed)
        )""",
    ],
    # 6: a corpus's document statistics, kept for the state of its documents they were computed on
    [
        """CREATE TABLE corpus_stats (
            corpus_id INTEGER PRIMARY KEY,
            docs_state VARCHAR NOT NULL,
            stats JSON NOT NULL
        )""",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)
