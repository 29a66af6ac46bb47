"""The Workspace with the fake encoder: import is all-or-nothing, runs are recorded, search and eval work."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from hce_engine import HCEError, InputError, NotFoundError, Workspace
from hce_engine.workspace import EncodeConfig, RunStatus, RunTree


def db_snapshot(ws: Workspace) -> dict:
    with ws.store.session():
        con = ws.store.con
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in sorted(tables)}


def test_import_beir_and_list(workspace, toy_beir):
    report = workspace.import_corpus(toy_beir, name="toy")
    assert (report.documents, report.queries, report.qrels) == (36, 24, {"test": 9, "train": 15})
    [c] = workspace.corpora()
    assert (c["name"], c["documents"], c["queries"], c["qrels"]) == ("toy", 36, 24, 24)
    with pytest.raises(InputError, match="already exists"):
        workspace.import_corpus(toy_beir, name="toy")


def test_failed_imports_change_nothing(workspace, toy_beir, tmp_path):
    workspace.import_corpus(toy_beir, name="toy")
    before = db_snapshot(workspace)
    # qrels naming an unknown document: detected before anything is written
    bad = tmp_path / "bad"
    shutil.copytree(toy_beir, bad)
    with open(bad / "qrels" / "test.tsv", "a") as f:
        f.write("q1\tnot-a-doc\t1\n")
    with pytest.raises(InputError, match=r"bad/qrels/test.tsv, line 11: document id 'not-a-doc' is not in the corpus"):
        workspace.import_corpus(str(bad), name="bad")
    # a failure inside the transaction (simulated storage error) rolls back the corpus row too
    orig = workspace.store.insert_qrels

    def boom(*a, **k):
        raise RuntimeError("disk full")
    workspace.store.insert_qrels = boom
    with pytest.raises(RuntimeError):
        workspace.import_corpus(toy_beir, name="other")
    workspace.store.insert_qrels = orig
    with open(tmp_path / "q.tsv", "w") as f:
        f.write("qx\tnew query\n")
    with open(tmp_path / "r.tsv", "w") as f:
        f.write("qx\tmissing\t1\n")
    with pytest.raises(InputError, match=r"r.tsv, line 1: document id 'missing' is not in the corpus"):
        workspace.import_queries("toy", str(tmp_path / "q.tsv"), str(tmp_path / "r.tsv"))
    assert db_snapshot(workspace) == before
    assert [c["name"] for c in workspace.corpora()] == ["toy"]


def test_encode_search_eval(workspace, toy_beir):
    workspace.import_corpus(toy_beir, name="toy")
    run = workspace.encode("toy", branching=3)
    info = workspace.run(run)
    assert info.status == "done" and info.kind == "baseline" and info.config_dict["seed"] == 0
    ids, vecs = workspace.store.read_vectors(run)
    assert vecs.shape == (36, 32) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    run_tree = workspace.tree(run)
    tree, terms = run_tree.tree, run_tree.terms
    assert isinstance(run_tree, RunTree) and tree.n_docs == 36 and len(terms) == tree.n_nodes
    reps = run_tree.representatives
    assert reps.shape == (tree.n_nodes,) and np.isin(reps[reps >= 0], ids).all()
    hits = workspace.search("toy", "guitar chord melody music")
    assert hits[0].ext_id.startswith("music") and len(hits) == 10
    assert hits[0].path and len(hits[0].path) == tree.depth
    bm = workspace.bm25_search("toy", "guitar chord")
    assert bm[0].ext_id.startswith("music")
    out = workspace.evaluate("toy", bm25=True)
    assert out["run"] == run and out["dense"]["queries"] == 9
    assert 0 < out["dense"]["ndcg_at_10"] <= 1 and 0 < out["bm25"]["ndcg_at_10"] <= 1
    stored = workspace.store.metrics(run)
    assert {m["system"] for m in stored} == {"dense", "bm25"}


def test_eval_creates_baseline_and_errors(workspace, toy_beir):
    workspace.import_corpus(toy_beir, name="toy")
    assert workspace.latest_run("toy") is None
    out = workspace.evaluate("toy", split="train")
    assert out["dense"]["queries"] == 15 and workspace.latest_run("toy") == out["run"]
    with pytest.raises(NotFoundError, match="no qrels for split 'dev'"):
        workspace.evaluate("toy", split="dev")
    with pytest.raises(NotFoundError, match="no corpus named 'nope'"):
        workspace.search("nope", "x")
    with pytest.raises(InputError, match="empty"):
        workspace.search("toy", "  ")


def test_a_run_fetched_for_a_purpose_says_what_for(workspace, toy_beir):
    """One way to fetch a run: a missing, unfinished or foreign run's message names what it was wanted for."""
    workspace.import_corpus(toy_beir, name="toy")
    workspace.import_corpus(toy_beir, name="other")
    run = workspace.encode("toy")
    assert workspace.run(run, "search with", "toy").metrics == [] and workspace.run(run).kind == "baseline"
    with pytest.raises(NotFoundError, match="no run 99 to search with"):
        workspace.search("toy", "bread", run=99)
    with pytest.raises(InputError, match=f"no run {run} of corpus 'other' to search with: it belongs to corpus 'toy'"):
        workspace.search("other", "bread", run=run)
    with pytest.raises(InterruptedError):
        workspace.encode("toy", cancel=lambda: True)
    stopped = workspace.runs("toy")[-1].run_id
    for call, purpose in ((lambda: workspace.evaluate("toy", run=stopped, split="train"), "evaluate"),
                          (lambda: workspace.rebuild_tree(stopped), "rebuild the tree of"),
                          (lambda: workspace.export_model(stopped, "x"), "export")):
        with pytest.raises(HCEError, match=f"no finished run {stopped} to {purpose}: it is cancelled"):
            call()


def test_failed_run_leaves_others_intact(workspace, toy_beir):
    workspace.import_corpus(toy_beir, name="toy")
    good = workspace.encode("toy")
    with pytest.raises(InterruptedError):
        workspace.encode("toy", cancel=lambda: True)
    runs = {r.run_id: r.status for r in workspace.runs("toy")}
    assert runs[good] == "done" and sorted(runs.values()) == ["cancelled", "done"]
    assert workspace.latest_run("toy") == good
    assert len(workspace.search("toy", "bread oven")) == 10


def test_stale_running_runs_marked_interrupted(tmp_path, fake_model, toy_beir):
    ws = Workspace(str(tmp_path / "w"), default_model=fake_model)
    ws.import_corpus(toy_beir, name="toy")
    done = ws.encode("toy")
    cid = ws.store.corpus_id("toy")
    dead = ws.store.create_run(cid, "train", {"x": 1}, 0, status="done")
    # as a process that died mid-run leaves it (this process's own live runs are never marked)
    with ws.store.session():
        ws.store.con.execute("UPDATE runs SET status = 'running', pid = NULL WHERE run_id = ?", [dead])
    ws.close()
    ws = Workspace(str(tmp_path / "w"), default_model=fake_model)
    assert ws.interrupted_runs == [dead]
    assert ws.run(dead).status == "interrupted" and ws.run(done).status == "done"
    ws.close()


def test_schema_version_and_vectors_roundtrip(workspace, monkeypatch):
    import hce_engine.store.store as store_mod
    from hce_engine.store import SCHEMA_VERSION
    st = workspace.store
    assert st.schema_version() == SCHEMA_VERSION
    cid = st.create_corpus("v")
    names = [f"d{i}" for i in range(23)]
    ids = st.insert_documents(cid, names, [""] * 23, names, [None] * 23)
    run = st.create_run(cid, "baseline", {}, 0)
    vecs = np.random.default_rng(0).standard_normal((23, 7)).astype(np.float32)
    st.write_vectors(run, ids, vecs)
    for batch in (10_000, 5):  # one Arrow batch, then five batches (the last one short)
        monkeypatch.setattr(store_mod, "VECTOR_BATCH", batch)
        got_ids, got = st.read_vectors(run)
        assert np.array_equal(got_ids, ids) and got.dtype == np.float32 and np.array_equal(got, vecs)
    st.mark_removed(cid, ["d3"])
    got_ids, got = st.read_vectors(run, live_only_corpus=cid)
    assert np.array_equal(got_ids, np.delete(ids, 3)) and np.array_equal(got, np.delete(vecs, 3, axis=0))
    got_ids, got = st.read_vectors(run, doc_ids=ids[[20, 2]])
    assert np.array_equal(got_ids, ids[[2, 20]]) and np.array_equal(got, vecs[[2, 20]])
    assert st.read_vectors(run, doc_ids=[])[1].shape[0] == 0
    assert np.array_equal(st.vector_ids(run, live_only_corpus=cid), np.delete(ids, 3))
    shuffled = st.create_run(cid, "baseline", {}, 0)  # stored out of id order: still returned by id
    st.write_vectors(shuffled, ids[::-1], vecs[::-1])
    got_ids, got = st.read_vectors(shuffled)
    assert np.array_equal(got_ids, ids) and np.array_equal(got, vecs)


def test_delete_run(workspace, toy_beir):
    workspace.import_corpus(toy_beir, name="toy")
    a = workspace.encode("toy")
    b = workspace.encode("toy", seed=1)
    workspace.delete_run(b)
    assert [r.run_id for r in workspace.runs()] == [a]
    assert workspace.store.read_vectors(b)[0].size == 0


def test_runs_filters_and_splits(workspace, toy_beir):
    workspace.import_corpus(toy_beir, name="toy")
    assert workspace.splits("toy") == {"test": 9, "train": 15}
    run = workspace.encode("toy", branching=3)
    bare = workspace.store.create_run(workspace.store.corpus_id("toy"), "train", {"seed": 0}, 0, status="failed")
    assert [r.run_id for r in workspace.runs("toy")] == [run, bare]
    assert [r.run_id for r in workspace.runs("toy", status="done")] == [run]
    assert [r.run_id for r in workspace.runs("toy", kind="train")] == [bare]
    assert [r.run_id for r in workspace.runs("toy", with_tree=True)] == [run]
    assert [r.run_id for r in workspace.runs("toy", status=RunStatus.FAILED)] == [bare]
    with pytest.raises(ValueError):
        workspace.runs("toy", status="finished")  # not a status: an error, not an empty list


def test_runs_are_typed(workspace, toy_beir):
    """A Run carries typed settings, the lengths it encodes at, its metrics and a JSON form."""
    from hce_engine.training import TrainConfig
    workspace.import_corpus(toy_beir, name="toy")
    run = workspace.encode("toy", branching=3, max_length=128)
    info = workspace.run(run)
    assert info.status is RunStatus.DONE and info.done and not info.is_train
    assert isinstance(info.config, EncodeConfig) and info.config.max_length == 128 and info.config.branching == 3
    assert info.doc_max_length == info.query_max_length == 128 and info.metrics == []
    workspace.evaluate("toy", run=run, split="test")
    info = workspace.run(run)
    assert info.metric("test") == workspace.runs("toy")[0].metric("test") is not None
    assert info.metric("train") is None and info.label.startswith(f"#{run} zero-shot")
    cfg = TrainConfig(query_max_length=48, max_length=96, seed=3).to_dict()
    trained = workspace.store.create_run(workspace.store.corpus_id("toy"), "train", {**cfg, "retired": 1}, 3,
                                         status="cancelled")
    t = workspace.run(trained)
    assert t.config.query_max_length == 48 and t.query_max_length == 48  # a setting since dropped is ignored
    assert t.doc_max_length == 96 and t.status.resumable and not t.status.active
    workspace.store.update_run(trained, summary={"doc_max_length": 256})
    assert workspace.run(trained).doc_max_length == 256  # encoded at its baseline's length, not its training one
    assert json.loads(json.dumps(t.to_dict(), default=str))["status"] == "cancelled"


def test_one_progress_protocol(workspace, toy_beir):
    """Encoding, tree building and adds report Progress events to one callback, in order."""
    from hce_engine.progress import Progress
    workspace.import_corpus(toy_beir, name="toy")
    events: list[Progress] = []
    workspace.encode("toy", branching=3, batch_size=8, progress=events.append)
    assert all(isinstance(e, Progress) for e in events)
    encode = [e for e in events if e.stage == "encode"]
    assert encode[-1].done == encode[-1].total == workspace.corpora()[0]["documents"]
    assert [e.done for e in encode] == sorted(e.done for e in encode)
    assert [(e.stage, e.done, e.total) for e in events[-2:]] == [("tree", 0, 1), ("tree", 1, 1)]


def test_a_repeated_query_is_encoded_once(workspace, toy_beir):
    """A page rerun, or a search followed by its tree route, encodes the query once per run."""
    workspace.import_corpus(toy_beir, name="toy")
    run = workspace.encode("toy", branching=3)
    enc = workspace.run_encoder(workspace.run(run))
    calls = []
    real = enc.encode
    enc.encode = lambda texts, **kw: calls.append(list(texts)) or real(texts, **kw)
    first = workspace.search("toy", "guitar chord melody", run=run)
    again = workspace.search("toy", "guitar chord melody", run=run, index_kind="tree")
    workspace.tree_route("toy", "guitar chord melody", run=run)
    assert calls == [["guitar chord melody"]] and first[0].doc_id == again[0].doc_id
    workspace.search("toy", "drum", run=run)
    assert len(calls) == 2
    workspace.cache.run_deleted(run)
    workspace.search("toy", "drum", run=run)
    assert len(calls) == 3


def test_readers_documents_by_id_judgements_and_tree_rebuilds(workspace, toy_beir):
    """The readers the views use: documents by internal id, the judgements as a frame, a run's stored trees."""
    workspace.import_corpus(toy_beir, name="toy")
    docs = workspace.documents("toy")
    assert list(docs.columns) == ["doc_id", "ext_id", "title", "text", "removed", "added_at", "metadata"]
    ids = [int(docs["doc_id"].iloc[5]), int(docs["doc_id"].iloc[2])]
    some = workspace.documents("toy", doc_ids=[*ids, 10**9])  # an id the corpus does not hold is left out
    assert list(some["doc_id"]) == sorted(ids) and list(some.columns) == list(docs.columns)
    workspace.remove_documents("toy", [str(docs["ext_id"].iloc[5])])
    assert list(workspace.documents("toy", doc_ids=ids)["doc_id"]) == [ids[1]]
    assert list(workspace.documents("toy", include_removed=True, doc_ids=ids)["doc_id"]) == sorted(ids)

    qrels = workspace.qrels("toy")
    assert list(qrels.columns) == ["split", "query_id", "query", "doc_ext_id", "score"]
    assert len(qrels) == 24 and list(qrels["split"].unique()) == ["test", "train"] and qrels["score"].dtype == "int64"
    assert qrels[qrels["query_id"] == "q0"].iloc[0].tolist() == ["train", "q0", "rocket launch orbit space",
                                                                 "space-0", 1]
    test = workspace.qrels("toy", "test")
    assert len(test) == 9 and test.equals(qrels[qrels["split"] == "test"].reset_index(drop=True))
    workspace.judge("toy", "a guitar", ["music-0"], seen=["music-1"], split="dev")
    workspace.store.insert_qrels(workspace.store.corpus_id("toy"), "dev", [("no-text", "space-1", 2)])
    dev = workspace.qrels("toy", "dev")
    assert dev[["doc_ext_id", "score"]].values.tolist() == [["music-0", 1], ["music-1", 0], ["space-1", 2]]
    assert dev["query"].tolist()[:2] == ["a guitar"] * 2 and dev["query"].isna().tolist() == [False, False, True]
    cid = workspace.store.corpus_id("toy")  # stored out of order, read by query id then document id
    workspace.store.insert_qrels(cid, "late", [("q9", "space-2", 1), ("q1", "space-1", 1), ("q1", "music-0", 0)])
    assert workspace.qrels("toy", "late")[["query_id", "doc_ext_id"]].values.tolist() == [
        ["q1", "music-0"], ["q1", "space-1"], ["q9", "space-2"]]
    empty = workspace.qrels("toy", "nope")
    assert empty.empty and list(empty.columns) == list(qrels.columns)
    with pytest.raises(NotFoundError, match="no corpus named"):
        workspace.qrels("missing")

    run = workspace.encode("toy", branching=3)
    [tree] = workspace.tree_rebuilds(run)
    assert (tree["rebuild"], tree["branching"], tree["depth"]) == (0, 3, workspace.tree(run).tree.depth)
    assert isinstance(tree["stats"], dict)
    assert workspace.tree_rebuilds(workspace.encode("toy", tree=False)) == []
