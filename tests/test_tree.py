"""Tests for hce_engine.tree: k-means, builders, updates, subtree order, labels, statistics."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from hce_engine.tree import (
    Tree,
    add_documents,
    build_agglomerative,
    build_divisive,
    build_tree,
    node_label,
    node_terms,
    place_documents,
    remove_documents,
    representative_docs,
    spherical_kmeans,
    subtree_docs,
    tree_stats,
)
from hce_engine.tree import builders as builders_mod

BUILDERS = [build_agglomerative, build_divisive]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _groups(n_per=9, n_groups=3, d=16, noise=0.05, seed=0):
    """n_groups well-separated groups (orthogonal centres), n_per docs each; returns (x, group labels)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(d, dtype=np.float32)[:n_groups]
    lab = np.repeat(np.arange(n_groups), n_per)
    x = centres[lab] + noise * rng.standard_normal((len(lab), d)).astype(np.float32)
    return _unit(x), lab


def _clustered(n, d=16, g=12, noise=0.4, seed=0):
    rng = np.random.default_rng(seed)
    c = _unit(rng.standard_normal((g, d)))
    return _unit(c[rng.integers(g, size=n)] + noise / np.sqrt(d) * rng.standard_normal((n, d)))


def _partition(labels):
    """Set of frozensets: the partition of positions induced by labels."""
    labels = np.asarray(labels)
    return {frozenset(np.flatnonzero(labels == v).tolist()) for v in np.unique(labels)}


def _check_tree(t: Tree, n_docs: int):
    t.validate()
    assert t.n_docs == n_docs and t.depth >= 1
    paths = t.paths()
    assert paths.shape == (n_docs, t.depth)
    for col in range(t.depth):  # every path steps one level at a time
        assert (t.level[paths[:, col]] == col + 1).all()
    assert (t.parent[paths[:, 0]] == 0).all()
    assert np.array_equal(paths[:, -1], t.doc_leaf)
    assert t.size[0] == n_docs
    for node in range(t.n_nodes):  # node size = sum of children's sizes
        kids = t.children(node)
        if len(kids):
            assert t.size[node] == t.size[kids].sum()
    assert np.allclose(np.linalg.norm(t.centroid, axis=1), 1.0, atol=1e-4)
    # node ids are level-ordered
    assert (np.diff(t.level) >= 0).all()


# ------------------------------------------------------------------------------------------ k-means

def test_kmeans_recovers_groups_and_returns_nonempty_clusters():
    x, lab = _groups(n_per=20)
    c, a = spherical_kmeans(x, 3, seed=0)
    assert c.dtype == np.float32 and a.dtype == np.int64 and c.shape == (3, 16)
    assert _partition(a) == _partition(lab)
    assert np.allclose(np.linalg.norm(c, axis=1), 1, atol=1e-5)
    # k larger than the number of distinct points: empty clusters are dropped
    dup = np.repeat(x[:4], 5, axis=0)
    c, a = spherical_kmeans(dup, 15, seed=1)
    assert len(c) <= 4 and np.bincount(a).min() >= 1 and a.max() == len(c) - 1
    c, a = spherical_kmeans(x[:1], 5)
    assert c.shape == (1, 16) and a.tolist() == [0]
    import torch

    c, a = spherical_kmeans(torch.from_numpy(x), 3, seed=0)  # tensors are accepted too
    assert isinstance(c, np.ndarray) and _partition(a) == _partition(lab)


def test_kmeans_centroids_are_normalised_member_means():
    x = _clustered(400, g=8)
    c, a = spherical_kmeans(x, 8, seed=3)
    for j in range(len(c)):
        m = x[a == j].sum(0)
        assert np.allclose(c[j], m / np.linalg.norm(m), atol=1e-4)


def test_kmeans_deterministic_and_seed_dependent():
    x = _clustered(500, g=30, noise=1.0)
    c1, a1 = spherical_kmeans(x, 20, seed=5)
    c2, a2 = spherical_kmeans(x, 20, seed=5)
    assert np.array_equal(a1, a2) and np.array_equal(c1, c2)
    others = [spherical_kmeans(x, 20, seed=s)[1] for s in (6, 7, 8)]
    assert any(not np.array_equal(a1, o) for o in others)


@pytest.mark.parametrize("k", [10, 80])  # one-hot sums / sorted segment sums
def test_kmeans_blocked_assignment_matches_unblocked(monkeypatch, k):
    from hce_engine.tree import kmeans as km

    x = _clustered(300, g=10)
    c1, a1 = spherical_kmeans(x, k, seed=2)
    monkeypatch.setattr(km, "_BLOCK_ELEMS", 370)  # forces many small row blocks
    monkeypatch.setattr(km, "_SUM_CHUNK", 50)
    c2, a2 = spherical_kmeans(x, k, seed=2)
    assert np.array_equal(a1, a2) and np.allclose(c1, c2, atol=1e-5)


def test_accelerator_code_paths_agree_with_cpu_paths(monkeypatch):
    """Runs the non-CPU branches (float64 index_add_ sums, torch k-means++ steps) on CPU tensors."""
    from hce_engine.tree import kmeans as km

    x = _clustered(400, g=12)
    ref = [spherical_kmeans(x, 80, seed=1), spherical_kmeans(x, 7, seed=1)]
    t_ref = build_divisive(x, branching=4, seed=0)
    monkeypatch.setattr(km, "_is_cpu", lambda t: False)
    for (c0, a0), k in zip(ref, (80, 7)):
        c1, a1 = spherical_kmeans(x, k, seed=1)
        assert np.array_equal(a0, a1) and np.allclose(c0, c1, atol=1e-5)
    t = build_divisive(x, branching=4, seed=0)
    assert np.array_equal(t.doc_leaf, t_ref.doc_leaf) and np.allclose(t.centroid, t_ref.centroid, atol=1e-5)


def test_kmeans_quality_matches_faiss():
    faiss = pytest.importorskip("faiss")
    x = _clustered(3000, d=32, g=60, noise=1.0, seed=1)
    k = 50
    c, a = spherical_kmeans(x, k, seed=0)
    ours = float((x * c[a]).sum(1).mean())
    km = faiss.Kmeans(32, k, niter=20, seed=1, spherical=True, verbose=False)
    km.train(x)
    cf = _unit(km.centroids)
    _, idx = km.index.search(x, 1)
    theirs = float((x * cf[idx[:, 0]]).sum(1).mean())
    assert ours >= theirs * 0.98, (ours, theirs)


# ------------------------------------------------------------------------------------------ builders

@pytest.mark.parametrize("build", BUILDERS)
def test_builders_recover_groups_at_level_one(build):
    x, lab = _groups(n_per=9)
    t = build(x, branching=3, seed=0)
    _check_tree(t, len(x))
    assert len(t.nodes_at(1)) == 3
    assert _partition(t.paths()[:, 0]) == _partition(lab)
    # leaf clusters never mix groups
    for leaf in t.nodes_at(t.depth):
        assert len(set(lab[t.leaf_docs(leaf)].tolist())) <= 1


def test_agglomerative_level_counts_follow_ceil_n_over_b_power():
    x = _clustered(1000, g=40)
    t = build_agglomerative(x, branching=10, seed=0)
    _check_tree(t, 1000)
    assert t.depth == 2 and t.builder == "agglomerative" and t.branching == 10
    assert len(t.nodes_at(2)) <= 100 and len(t.nodes_at(1)) <= 10
    # centroids are normalised means of the documents below (not centroids of centroids)
    for node in (0, *t.nodes_at(1)[:3], *t.nodes_at(2)[:3]):
        m = x[t.subtree_docs(node)].sum(0)
        assert np.allclose(t.centroid[node], m / np.linalg.norm(m), atol=1e-4)


@pytest.mark.parametrize("leaf_size", [None, 1, 4, 25])
def test_divisive_equal_depth_and_leaf_sizes(leaf_size):
    x = _clustered(600, g=15)
    t = build_divisive(x, branching=4, seed=0, leaf_size=leaf_size)
    _check_tree(t, 600)
    limit = 4 if leaf_size is None else leaf_size
    assert t.size[t.nodes_at(t.depth)].max() <= limit
    assert t.builder == "divisive"
    # pass-through chain nodes have one child with the same documents
    for node in range(1, t.n_nodes):
        kids = t.children(node)
        if len(kids) == 1:
            assert t.size[kids[0]] == t.size[node]


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("n", [1, 2, 7, 10])
def test_small_corpora_give_one_leaf_cluster(build, n):
    x = _clustered(n, g=3)
    t = build(x, branching=10)
    _check_tree(t, n)
    assert t.depth == 1 and t.n_nodes == 2 and t.doc_leaf.tolist() == [1] * n


@pytest.mark.parametrize("build", BUILDERS)
def test_duplicate_vectors(build):
    rng = np.random.default_rng(0)
    x = np.concatenate([np.repeat(_unit(rng.standard_normal((1, 16))), 60, axis=0), _clustered(40, g=4)])
    t = build(x, branching=5, seed=0)
    _check_tree(t, 100)
    if build is build_divisive:
        assert t.size[t.nodes_at(t.depth)].max() <= 5
    same = np.repeat(x[:1], 30, axis=0)
    _check_tree(build(same, branching=4), 30)


@pytest.mark.parametrize("build", BUILDERS)
def test_builders_deterministic_with_seed(build):
    x = _clustered(400, g=10, noise=1.5)
    t1, t2 = build(x, branching=5, seed=3), build(x, branching=5, seed=3)
    for f in ("parent", "level", "size", "doc_leaf", "centroid"):
        assert np.array_equal(getattr(t1, f), getattr(t2, f)), f
    others = [build(x, branching=5, seed=s) for s in (4, 5)]
    assert any(o.n_nodes != t1.n_nodes or not np.array_equal(o.doc_leaf, t1.doc_leaf) for o in others)


def test_build_tree_dispatch(monkeypatch):
    x = _clustered(120, g=5)
    assert build_tree(x, "agglomerative", leaf_size=3).builder == "agglomerative"
    assert build_tree(x, "divisive", branching=4, leaf_size=3).builder == "divisive"
    assert build_tree(x, "auto").builder == "agglomerative"
    monkeypatch.setattr(builders_mod, "DIVISIVE_THRESHOLD", 100)
    assert build_tree(x, "auto").builder == "divisive"
    with pytest.raises(ValueError):
        build_tree(x, "nope")
    t = build_tree(x, doc_ids=np.arange(1000, 1120))
    assert t.doc_ids[0] == 1000 and t.positions_of([1005, 7]).tolist() == [5, -1]


# ------------------------------------------------------------------------------------------ subtrees

@pytest.mark.parametrize("build", BUILDERS)
def test_subtree_docs_are_contiguous_and_complete(build):
    x = _clustered(300, g=10)
    t = build(x, branching=4, seed=1)
    order, start, end = t.euler()
    assert sorted(order.tolist()) == list(range(300))
    paths = t.paths()
    for node in range(t.n_nodes):
        got = t.subtree_docs(node)
        want = np.arange(300) if node == 0 else np.flatnonzero((paths == node).any(1))
        assert sorted(got.tolist()) == want.tolist()
        assert end[node] - start[node] == t.size[node]
    assert np.array_equal(subtree_docs(t, 1), t.subtree_docs(1))
    for leaf in t.nodes_at(t.depth):
        assert np.array_equal(t.subtree_docs(leaf), t.leaf_docs(leaf))


# ------------------------------------------------------------------------------------------ save / load

@pytest.mark.parametrize("build", BUILDERS)
def test_tree_save_load_round_trip(build, tmp_path):
    t = build(_clustered(120, g=6), branching=5, seed=2)
    t.doc_ids = np.arange(120, dtype=np.int64)[::-1] * 7 + 3  # store ids other than the positions
    t.save(tmp_path / "tree.npz")
    with np.load(tmp_path / "tree.npz", allow_pickle=False) as z:  # plain arrays: no pickle needed
        assert set(z.files) == {"parent", "level", "centroid", "size", "doc_leaf", "doc_ids", "builder",
                                "branching"}
    back = Tree.load(tmp_path / "tree.npz")
    back.validate()
    for name in ("parent", "level", "centroid", "size", "doc_leaf", "doc_ids"):
        a, b = getattr(t, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert (back.builder, back.branching) == (t.builder, 5) and isinstance(back.branching, int)
    assert np.array_equal(back.positions_of(t.doc_ids[[5, 0]]), [5, 0])
    for x, y in zip(back.euler(), t.euler()):
        assert np.array_equal(x, y)


# ------------------------------------------------------------------------------------------ updates

def test_add_and_remove_documents():
    x, lab = _groups(n_per=9)
    t = build_agglomerative(x, branching=3, seed=0, doc_ids=np.arange(100, 127))
    top_of_group = {int(g): int(t.paths()[lab == g][0, 0]) for g in range(3)}
    new, _ = _groups(n_per=2, seed=9)  # 2 new docs per group
    leaves = place_documents(t, new)
    assert (t.level[leaves] == t.depth).all()
    t2 = add_documents(t, new, doc_ids=[500, 501, 502, 503, 504, 505])
    _check_tree(t2, 33)
    assert t.n_docs == 27 and t.size[0] == 27  # the original is untouched
    p2 = t2.paths()
    for i, g in enumerate([0, 0, 1, 1, 2, 2]):
        assert p2[27 + i, 0] == top_of_group[g]
    assert np.array_equal(t2.centroid, t.centroid)
    with pytest.raises(ValueError):
        add_documents(t2, new[:1], doc_ids=[500])


    # remove a whole leaf cluster's documents: the node stays, with size 0
    leaf = int(t2.doc_leaf[0])
    gone = t2.doc_ids[t2.doc_leaf == leaf]
    t3 = remove_documents(t2, gone)
    _check_tree(t3, 33 - len(gone))
    assert t3.size[leaf] == 0 and t3.n_nodes == t2.n_nodes
    assert not np.isin(gone, t3.doc_ids).any()
    assert len(t3.subtree_docs(leaf)) == 0
    with pytest.raises(KeyError):
        remove_documents(t3, [99999])
    assert remove_documents(t3, [99999], strict=False).n_docs == t3.n_docs
    # the emptied leaf can be refilled
    t4 = add_documents(t3, x[:1], doc_ids=[777])
    _check_tree(t4, t3.n_docs + 1)
    assert t4.doc_leaf[-1] == leaf and t4.size[leaf] == 1


# ------------------------------------------------------------------------------------------ labels

def test_node_terms_pick_planted_words():
    x, lab = _groups(n_per=9)
    t = build_agglomerative(x, branching=3, seed=0)
    planted = {0: ["gene", "protein"], 1: ["galaxy", "star"], 2: ["football", "goal"]}
    rng = np.random.default_rng(0)
    filler = ["report", "study", "result", "method", "data"]
    texts = [" ".join(planted[int(g)] * 2 + list(rng.choice(filler, 4)) + ["the", "and", "2024"])
             for g in lab]
    terms = node_terms(t, texts, top_n=2)
    assert len(terms) == t.n_nodes
    for g in range(3):
        node = int(t.paths()[lab == g][0, 0])
        assert sorted(terms[node]) == sorted(planted[g])
    for leaf in t.nodes_at(t.depth):
        g = int(lab[t.leaf_docs(leaf)][0])
        assert set(terms[leaf]) <= set(planted[g])
    assert len(terms[0]) == 2 and "the" not in terms[0] and "2024" not in terms[0]
    assert node_label(["gene", "protein", "cell", "dna"]) == "gene · protein · cell"
    assert node_label([], fallback="node 3") == "node 3"
    assert node_terms(t, ["the and"] * 27) == [[] for _ in range(t.n_nodes)]
    with pytest.raises(ValueError):
        node_terms(t, texts[:3])


def test_representative_docs():
    x = _clustered(200, g=6)
    t = build_divisive(x, branching=4, seed=0)
    t = remove_documents(t, t.doc_ids[t.doc_leaf == t.doc_leaf[0]])  # leaves an empty leaf
    xv = x[np.isin(np.arange(200), t.doc_ids)]
    rep = representative_docs(t, xv)
    for node in range(t.n_nodes):
        docs = t.subtree_docs(node)
        if len(docs) == 0:
            assert rep[node] == -1
        else:
            sims = xv[docs] @ t.centroid[node]
            assert rep[node] in docs and np.isclose(xv[rep[node]] @ t.centroid[node], sims.max(), atol=1e-6)


# ------------------------------------------------------------------------------------------ stats

def test_tree_stats_keys_ranges_and_silhouette():
    from sklearn.metrics import silhouette_score

    x = _clustered(300, g=8)
    t = build_agglomerative(x, branching=5, seed=0)
    st = tree_stats(t, x, sample=300)
    json.dumps(st)
    assert {"n_docs", "depth", "n_nodes", "levels", "silhouette", "intra_cos_leaf"} <= set(st)
    assert st["n_docs"] == 300 and st["depth"] == t.depth == len(st["levels"])
    for lv in st["levels"]:
        assert lv["size_min"] <= lv["size_median"] <= lv["size_max"]
        assert -1 <= lv["intra_cos"] <= 1
        assert lv["n_nodes"] == len(t.nodes_at(lv["level"]))
    # deeper levels are tighter
    assert st["levels"][-1]["intra_cos"] >= st["levels"][0]["intra_cos"]
    ref = silhouette_score(x, t.doc_leaf, metric="cosine")
    assert abs(st["silhouette"] - ref) < 1e-4
    small = tree_stats(t, x, sample=50, seed=1)
    assert small["silhouette_sample"] == 50 and -1 <= small["silhouette"] <= 1
    one = build_agglomerative(x[:5])
    assert tree_stats(one, x[:5])["silhouette"] is None


def _assert_python_runs(code: str) -> None:
    """``code`` run in a fresh interpreter (what a module imports shows only there) exits 0."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compute_core_imports_only_numpy_and_torch():
    code = ("import sys; import hce_engine.tree, hce_engine.tree.kmeans, hce_engine.tree.builders, "
            "hce_engine.tree.quality; bad = [m for m in ('faiss', 'sklearn', 'scipy', 'duckdb') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    _assert_python_runs(code)


def test_placement_by_descent_finds_the_nearest_leaf_when_its_beam_holds_every_node_and_mostly_with_a_small_one():
    rng = np.random.default_rng(3)
    x = _unit(rng.standard_normal((30, 24)).repeat(40, axis=0) + 0.4 * rng.standard_normal((1200, 24)))
    t = build_divisive(x.astype(np.float32), branching=4, seed=0)
    new = _unit(x[rng.choice(1200, 300)] + 0.3 * rng.standard_normal((300, 24))).astype(np.float32)
    exact = place_documents(t, new)
    assert t.depth >= 3  # the descent passes several levels
    assert np.array_equal(place_documents(t, new, beam=t.n_nodes), exact)
    small = place_documents(t, new, beam=4)
    assert (t.level[small] == t.depth).all()
    assert (small == exact).mean() >= 0.8
    leaf_sim = lambda leaves: (new * t.centroid[leaves]).sum(1)  # noqa: E731
    assert (leaf_sim(small) <= leaf_sim(exact) + 1e-6).all()  # never better than the exact nearest


def test_a_large_tree_places_by_descent(monkeypatch):
    x, _ = _groups(n_per=20, n_groups=4)
    t = build_divisive(x, branching=3, seed=0)
    new, _ = _groups(n_per=3, n_groups=4, seed=5)
    calls = []
    real = builders_mod._place_by_descent
    monkeypatch.setattr(builders_mod, "_place_by_descent", lambda *a: calls.append(a[2]) or real(*a))
    place_documents(t, new)
    assert calls == []  # small: every leaf scored
    monkeypatch.setattr(builders_mod, "EXACT_PLACE_LEAVES", 2)
    grown = add_documents(t, new, doc_ids=np.arange(1000, 1000 + len(new)))
    assert calls == [builders_mod.PLACE_BEAM] and grown.n_docs == t.n_docs + len(new)


def test_reading_a_stored_tree_does_not_import_torch():
    """The Map page's first view reads a tree; torch (seconds to import) waits until a builder is used."""
    code = ("import sys; import hce_engine.tree, hce_engine.tree.tree; from hce_engine.tree import Tree, node_label; "
            "from hce_engine.store import Store; assert 'torch' not in sys.modules, 'torch'; "
            "from hce_engine.tree import build_divisive; assert 'torch' in sys.modules")
    _assert_python_runs(code)
