"""Adding and removing documents without retraining (fake encoder), including a search racing updates."""
from __future__ import annotations

import json
import threading

import pytest

from hce_engine import InputError, NotFoundError
from hce_engine.cli import main


@pytest.fixture
def ws(workspace, toy_beir):
    workspace.import_corpus(toy_beir, name="toy")
    workspace.encode("toy", branching=3)
    return workspace


def write_docs(path, docs):
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return str(path)


def test_add_documents_reach_index_tree_and_bm25(ws, tmp_path):
    run = ws.latest_run("toy")
    ws.search("toy", "warm up the cached index")
    new = write_docs(tmp_path / "new.jsonl", [{"_id": "new-1", "title": "Zither", "text": "zither zither strings"},
                                              {"_id": "new-2", "text": "quasar pulsar quasar"}])
    out = ws.add_documents("toy", new)
    assert out["added"] == 2 and out["runs_updated"] == [run]
    assert ws.search("toy", "zither zither strings")[0].ext_id == "new-1"
    assert ws.bm25_search("toy", "quasar")[0].ext_id == "new-2"
    tree = ws.tree(run).tree
    assert tree.n_docs == 38 and tree.size[0] == 38
    hit = ws.search("toy", "quasar pulsar")[0]
    assert hit.ext_id == "new-2" and len(hit.path) == tree.depth
    assert len(ws.store.read_vectors(run)[0]) == 38
    with pytest.raises(InputError, match="already in corpus"):
        ws.add_documents("toy", new)


def test_remove_documents_never_returned(ws):
    run = ws.latest_run("toy")
    first = ws.search("toy", "guitar chord melody")[0].ext_id
    out = ws.remove_documents("toy", [first])
    assert out["removed"] == 1
    assert first not in [h.ext_id for h in ws.search("toy", "guitar chord melody", k=36)]
    assert first not in [h.ext_id for h in ws.bm25_search("toy", "guitar chord melody", k=36)]
    tree = ws.tree(run).tree
    assert tree.n_docs == 35
    ws.cache.drop("index", run)  # a fresh index built from the store also leaves it out
    assert first not in [h.ext_id for h in ws.search("toy", "guitar chord melody", k=36)]
    with pytest.raises(NotFoundError, match="already removed"):
        ws.remove_documents("toy", [first])


def test_failed_add_changes_nothing(ws, tmp_path):
    before = ws.corpora()[0]["documents"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "x1", "text": "ok"}\n{"_id": "x2", "text": \n')
    with pytest.raises(InputError, match="line 2"):
        ws.add_documents("toy", str(bad))
    assert ws.corpora()[0]["documents"] == before
    run = ws.latest_run("toy")
    enc = ws.run_encoder(ws.run(run))
    orig = enc.encode

    def boom(*a, **k):
        raise RuntimeError("encoder crashed")
    enc.encode = boom
    good = write_docs(tmp_path / "good.jsonl", [{"_id": "g1", "text": "fine"}])
    with pytest.raises(RuntimeError):
        ws.add_documents("toy", good)
    enc.encode = orig
    assert ws.corpora()[0]["documents"] == before and len(ws.store.read_vectors(run)[0]) == 36


def test_search_racing_updates(ws, tmp_path):
    ws.search("toy", "prime the index")
    errors, seen = [], set()
    stop = threading.Event()

    def searcher():
        while not stop.is_set():
            try:
                for h in ws.search("toy", "zither quasar guitar", k=40):
                    assert h.title is not None and h.snippet is not None
                    seen.add(h.ext_id)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
    t = threading.Thread(target=searcher)
    t.start()
    try:
        for i in range(6):
            path = write_docs(tmp_path / f"b{i}.jsonl", [{"_id": f"b{i}-{j}", "text": f"zither quasar {i} {j}"}
                                                          for j in range(5)])
            ws.add_documents("toy", path)
            ws.remove_documents("toy", [f"b{i}-0"])
    finally:
        stop.set()
        t.join()
    assert not errors, errors[:1]
    final = {h.ext_id for h in ws.search("toy", "zither quasar", k=60)}
    assert not any(e.endswith("-0") and e.startswith("b") for e in final)
    assert ws.corpora()[0]["documents"] == 36 + 6 * 4


def test_freshness_and_cli(ws, tmp_path, fake_model, monkeypatch, capsys):
    run = ws.latest_run("toy")
    assert ws.freshness(run).added_since == 0
    texts, old_ids = ws.documents("toy")["text"], list(ws.documents("toy")["ext_id"])  # same topics, new ids
    ws.add_documents("toy", write_docs(tmp_path / "n.jsonl", [{"_id": f"n{i}", "text": texts[i]}
                                                              for i in range(12)]))
    f = ws.freshness(run)
    assert f.added_since == f.added_since_tree == 12 and f.share_new == 12 / 48
    assert f.rebuild_suggested is True and f.retrain_suggested is False  # 25% new: rebuild, not retrain
    path = ws.path
    ws.close()
    monkeypatch.setenv("HCE_DEFAULT_MODEL", fake_model)
    assert main(["--workspace", path, "remove", "--corpus", "toy", *old_ids[:2], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 2
    assert main(["--workspace", path, "add", "--corpus", "toy",
                 write_docs(tmp_path / "m.jsonl", [{"_id": "m1", "text": texts[20]}])]) == 0
    out = capsys.readouterr().out
    assert "added 1 documents" in out and f"run {run}: rebuild the tree suggested" in out
    assert main(["--workspace", path, "freshness", "--corpus", "toy", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["added_since_tree"] == 13 and row["rebuild_suggested"] is True
    assert list(row) == ["run_id", "live_documents", "added_since", "share_new", "tree_rebuild", "added_since_tree",
                         "share_new_tree", "fit_tree", "fit_added", "batches", "rebuild_suggested",
                         "retrain_suggested", "reasons"] and list(row["batches"][0]) == ["added_at", "documents", "fit"]
    assert main(["--workspace", path, "rebuild-tree", "--corpus", "toy", "--json"]) == 0
    rebuilt = json.loads(capsys.readouterr().out)
    assert (rebuilt["run_id"], rebuilt["rebuild"], rebuilt["documents"]) == (run, 1, 47)
    assert main(["--workspace", path, "freshness", "--corpus", "toy", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["added_since_tree"] == 0 and row["tree_rebuild"] == 1 and row["rebuild_suggested"] is False
    assert main(["--workspace", path, "remove", "--corpus", "toy", "nope"]) == 1


def test_saved_approximate_index_follows_the_store_across_restarts(workspace, toy_beir, fake_model, tmp_path,
                                                                   monkeypatch, caplog):
    import os

    import hce_engine.index.vector_index as vi_mod
    from hce_engine import Workspace
    monkeypatch.setattr(vi_mod, "APPROX_THRESHOLD", 10)  # the toy corpus gets an HNSW index
    workspace.import_corpus(toy_beir, name="toy")
    run = workspace.encode("toy", branching=3)
    path = os.path.join(workspace.models_dir, f"run-{run}", "index.npz")
    top = workspace.search("toy", "guitar chord melody")[0].ext_id
    assert workspace.index(run).kind == "hnsw" and os.path.exists(path)
    workspace.add_documents("toy", write_docs(tmp_path / "new.jsonl",
                                              [{"_id": "new-1", "text": "zither zither strings"}]))
    workspace.remove_documents("toy", [top])
    saved_at = os.path.getmtime(path)
    workspace.close()

    def reopen():
        ws = Workspace(workspace.path, default_model=fake_model)
        hits = [h.ext_id for h in ws.search("toy", "guitar chord melody", k=36)]
        return ws, hits

    ws, hits = reopen()  # the saved index is read and brought up to date: +new-1, -top
    assert ws.index(run).kind == "hnsw" and len(ws.index(run)) == 36
    assert "new-1" in hits and top not in hits
    assert ws.search("toy", "zither zither strings")[0].ext_id == "new-1"
    assert os.path.getmtime(path) > saved_at  # re-saved after catching up
    ws.close()
    with open(path, "rb") as f:
        whole = f.read()
    with open(path, "wb") as f:
        f.write(whole[:len(whole) // 2])  # a truncated file
    with caplog.at_level("WARNING"):
        ws, hits = reopen()  # an unreadable file is rebuilt from the store, not trusted
    assert "unreadable" in caplog.text and top not in hits and len(ws.index(run)) == 36
    ws.delete_corpus("toy")
    assert not os.path.exists(os.path.dirname(path))
    ws.close()


def test_rebuild_tree_and_foreign_documents(ws, tmp_path):
    run = ws.latest_run("toy")
    f = ws.freshness(run)
    assert f.added_since_tree == 0 and f.fit_added is None and f.reasons == ()
    # same-topic documents (new ids, the toy corpus's phrases) fit the tree about as well as its own
    like = [{"_id": f"like-{i}", "text": d} for i, d in enumerate(ws.documents("toy")["text"][:4])]
    ws.add_documents("toy", write_docs(tmp_path / "like.jsonl", like))
    f = ws.freshness(run)
    assert f.fit_tree - f.fit_added < 0.05 and not f.rebuild_suggested and not f.retrain_suggested
    # documents of words the corpus never used hang under leaves they do not resemble
    foreign = [{"_id": f"far-{i}", "text": f"zyx{i} quorble vantex plimsoll grendle {i}"} for i in range(4)]
    ws.add_documents("toy", write_docs(tmp_path / "far.jsonl", foreign))
    f = ws.freshness(run)
    assert f.share_new_tree == 8 / 44 < 0.25  # few documents, yet:
    assert f.rebuild_suggested and f.retrain_suggested and "unlike" in f.reasons[0]
    like_batch, far_batch = f.batches  # judged per add, so a small foreign batch is not averaged away
    assert (like_batch.documents, far_batch.documents) == (4, 4) and far_batch.fit < like_batch.fit
    assert f.reasons[0].startswith("4 documents added") and len(f.reasons) == 1
    before = ws.tree(run).tree
    assert ws.rebuild_tree(run) == 1
    run_tree = ws.tree(run)
    tree, terms = run_tree.tree, run_tree.terms
    assert tree.n_docs == 44 and before.n_docs == 44 and len(terms) == tree.n_nodes
    assert [t["rebuild"] for t in ws.store.list_trees(run)] == [0, 1]
    f = ws.freshness(run)
    assert f.added_since_tree == 0 and f.tree_rebuild == 1 and not f.rebuild_suggested
    assert f.added_since == 8  # still new to the encoder


def test_tree_shape_reads_no_centroids_and_follows_updates(ws, tmp_path):
    """Maps read the tree without centroids (cached apart); adds, removals and rebuilds replace it."""
    run = ws.latest_run("toy")
    full = ws.store.read_tree(run)[0]
    shape = ws.tree_shape(run).tree
    assert shape.centroid.shape == (full.n_nodes, 0)
    for name in ("parent", "level", "size", "doc_leaf", "doc_ids"):
        assert (getattr(shape, name) == getattr(full, name)).all(), name
    assert ws.cache.peek("tree", run) is None and ws.tree_shape(run) is ws.cache.peek("tree_shape", run)
    ws.add_documents("toy", write_docs(tmp_path / "new.jsonl", [{"_id": "new-1", "text": "zither strings"}]))
    assert ws.tree_shape(run).tree.n_docs == 37
    ws.remove_documents("toy", ["new-1"])
    assert ws.tree_shape(run).tree.n_docs == 36
    ws.rebuild_tree(run)
    assert ws.tree_shape(run).tree.n_docs == 36
    full = ws.tree(run)
    assert ws.tree_shape(run) is full  # the full tree, once read
    ws.cache.run_deleted(run)
    assert ws.cache.peek("tree_shape", run) is None


def test_stored_map_is_cached_until_the_documents_change(ws, tmp_path, monkeypatch):
    run = ws.latest_run("toy")
    assert ws.maps_missing() == [run]
    ws.projection(run)  # computed and stored
    assert ws.projection_status(run).state == "ready" and ws.maps_missing() == []
    ids, xy = ws.projection(run)
    reads = []
    real = ws.store.read_projection
    monkeypatch.setattr(ws.store, "read_projection", lambda r: reads.append(r) or real(r))
    again = ws.projection(run)
    assert again[0] is ids and reads == [] and not again[1].flags.writeable  # cached, shared read-only
    ws.add_documents("toy", write_docs(tmp_path / "new.jsonl", [{"_id": "new-1", "text": "zither strings"}]))
    assert ws.projection_status(run).state == "missing" and ws.maps_missing() == [run]  # not the stale map
    assert reads == [run]
