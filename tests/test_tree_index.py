"""The tree as the index: beam routing, exactness at full probe, recall against exact search, add/remove."""
from __future__ import annotations

import numpy as np
import pytest

from hce_engine import InputError
from hce_engine.index.tree_index import TreeIndex
from hce_engine.tree import build_agglomerative


def clustered(n: int, d: int = 16, topics: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(topics, d))
    x = centers[rng.integers(0, topics, n)] + 0.35 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact(x: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return ids[np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :k]]


@pytest.fixture(scope="module")
def data():
    x = clustered(1500)
    ids = np.arange(100, 1600, dtype=np.int64)
    tree = build_agglomerative(x, branching=4, seed=0)
    tree.doc_ids = ids
    return x, ids, tree, clustered(40, seed=1)


def test_full_probe_is_exact_search(data):
    x, ids, tree, q = data
    index = TreeIndex.build(tree, ids, x, beam=tree.n_nodes, probe=tree.n_nodes)
    assert len(index) == 1500 and index.n_leaves == len(tree.nodes_at(tree.depth))
    scores, got = index.search(q, 10)
    assert (got == exact(x, ids, q, 10)).all()
    assert np.allclose(scores, np.sort(q @ x.T, axis=1)[:, ::-1][:, :10], atol=1e-5)


def test_routing_cost_and_recall(data):
    x, ids, tree, q = data
    index = TreeIndex.build(tree, ids, x, beam=8, probe=24)
    leaves, cost = index.route(q)
    assert leaves.shape == (40, 24) and (np.isin(leaves[leaves >= 0], tree.nodes_at(tree.depth))).all()
    in_leaves = np.asarray([sum(int((tree.doc_leaf == lf).sum()) for lf in row if lf >= 0) for row in leaves])
    assert (cost > in_leaves).all() and (cost < 1500).all()  # centroids scored + documents scanned
    _, got = index.search(q, 10)
    want = exact(x, ids, q, 10)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
    assert recall >= 0.9
    # every hit lies in a probed leaf
    for row, lv in zip(got, leaves):
        assert np.isin(index.leaf_of(row[row >= 0]), lv).all()


def test_centroids_are_recentred_on_the_given_vectors(data):
    x, ids, tree, _ = data
    moved = clustered(1500, seed=7)  # "the trained encoder's vectors": same tree, different vectors
    index = TreeIndex.build(tree, ids, moved)
    leaf = int(tree.doc_leaf[0])
    members = moved[tree.doc_leaf == leaf].sum(axis=0)
    assert np.allclose(index._centroid[leaf], members / np.linalg.norm(members), atol=1e-5)
    root_dir = moved.sum(axis=0) / np.linalg.norm(moved.sum(axis=0))
    assert np.allclose(index._centroid[0], root_dir, atol=1e-5)


def test_add_and_remove(data):
    x, ids, tree, q = data
    index = TreeIndex.build(tree, ids, x, beam=tree.n_nodes, probe=tree.n_nodes)
    new = clustered(5, seed=3)
    index.add(np.arange(5000, 5005), new)  # no leaf given: placed by descent
    assert len(index) == 1505 and (index.leaf_of(np.arange(5000, 5005)) >= 0).all()
    assert index.search(new[:1], 1)[1][0, 0] == 5000
    assert index.remove(np.array([5000, 100, 424242])) == 2
    got = index.search(new[:1], 1505)[1][0]
    assert 5000 not in got and 100 not in got and (got >= 0).sum() == 1503
    # removing everything under a leaf leaves it empty but searchable around it
    leaf = int(tree.doc_leaf[5])
    index.remove(ids[tree.doc_leaf == leaf])
    assert index.search(q, 10)[1].min() >= 0
    # re-adding an id replaces it (no duplicates)
    index.add(np.array([5001]), new[1:2])
    assert len(index) == len(set(index.ids().tolist()))
    with pytest.raises(ValueError, match="leaf clusters"):
        index.add(np.array([9999]), new[:1], leaves=np.array([0]))  # the root is not a leaf


def test_empty_and_padding(data):
    x, ids, tree, q = data
    index = TreeIndex.build(tree, ids[:0], x[:0])
    assert len(index) == 0 and (index.search(q[:2], 5)[1] == -1).all()
    small = TreeIndex.build(tree, ids[:3], x[:3], beam=tree.n_nodes, probe=tree.n_nodes)
    s, i = small.search(q[:1], 5)
    assert (i[0, :3] >= 0).all() and (i[0, 3:] == -1).all() and np.isinf(s[0, 3:]).all()


# -- through the Workspace (fake encoder) -------------------------------------------------------------
def test_workspace_tree_index_search_route_and_updates(workspace, toy_beir, tmp_path):
    ws = workspace
    ws.import_corpus(toy_beir, name="toy")
    run = ws.encode("toy", branching=3)
    index = ws.tree_index(run)
    assert len(index) == 36 and ws.tree_index(run) is index  # cached
    full = ws.search("toy", "guitar chord melody", run=run, k=5)
    via_tree = ws.search("toy", "guitar chord melody", run=run, k=5, index_kind="tree")
    assert via_tree[0].ext_id == full[0].ext_id and via_tree[0].path
    route = ws.tree_route("toy", "guitar chord melody", run=run)
    assert route.documents == 36 and 0 < route.distance_computations and route.run_id == run
    assert route.leaves and all(leaf.label and leaf.size >= 0 for leaf in route.leaves)
    assert list(route.to_dict()) == ["run", "distance_computations", "documents", "leaves"]
    sims = [leaf.similarity for leaf in route.leaves]
    assert sims == sorted(sims, reverse=True)
    assert ws.search("toy", "guitar", run=run, mode="hybrid", index_kind="tree")
    out = ws.evaluate("toy", run=run, index_kind="tree")
    assert "dense-tree" in {m["system"] for m in ws.store.metrics(run)} and out["dense"]["queries"] == 9
    with pytest.raises(InputError, match="index must be one of auto, tree"):
        ws.search("toy", "guitar", run=run, index_kind="ivf")
    # adds and removes reach the cached tree index in place, under the leaf the tree gave them
    path = tmp_path / "new.jsonl"
    path.write_text('{"_id": "new-1", "text": "quasar pulsar guitar"}\n')
    new_id = ws.add_documents("toy", str(path))["doc_ids"][0]
    assert ws.tree_index(run) is index and len(index) == 37
    tree = ws.tree(run).tree
    assert index.leaf_of([new_id])[0] == tree.doc_leaf[tree.positions_of([new_id])[0]]
    assert ws.search("toy", "quasar pulsar guitar", run=run, index_kind="tree", k=1)[0].ext_id == "new-1"
    ws.remove_documents("toy", ["new-1"])
    assert ws.tree_index(run) is index and len(index) == 36
    assert "new-1" not in [h.ext_id for h in ws.search("toy", "quasar pulsar", run=run, index_kind="tree", k=36)]
    # a rebuilt tree gets a fresh index
    ws.rebuild_tree(run)
    assert ws.tree_index(run) is not index and len(ws.tree_index(run)) == 36
