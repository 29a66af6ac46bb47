"""VectorIndex HNSW pending buffer: small adds are searched exactly at once and folded into the graph later."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import hce_engine.index.vector_index as vi_mod
from hce_engine.index import VectorIndex


def _clustered(n: int, d: int, n_clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, d)).astype(np.float32)
    x = centers[rng.integers(0, n_clusters, n)] + 0.35 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def no_background(monkeypatch):
    monkeypatch.setattr(vi_mod, "BACKGROUND_FOLD", False)


def _wait_folded(index: VectorIndex, timeout: float = 20.0) -> None:
    end = time.time() + timeout
    while index.pending and time.time() < end:
        time.sleep(0.01)
    assert index.pending == 0


def test_small_add_is_pending_and_exact(no_background):
    x = _clustered(400, 16, 8, seed=1)
    index = VectorIndex.build(np.arange(300), x[:300], "hnsw", ef_search=400)  # graph search exhaustive here
    index.add(np.arange(300, 400), x[300:])
    assert index.pending == 100 and len(index) == 400 and 350 in index
    np.testing.assert_array_equal(index.ids(), np.arange(400))
    q = _clustered(30, 16, 8, seed=2)
    flat = VectorIndex.build(np.arange(400), x, "flat")
    s_flat, i_flat = flat.search(q, 20)
    s, i = index.search(q, 20)
    np.testing.assert_array_equal(i, i_flat)
    np.testing.assert_allclose(s, s_flat, rtol=1e-5, atol=1e-5)
    _, top1 = index.search(x[300:], 1)  # every pending vector is its own nearest neighbour
    np.testing.assert_array_equal(top1[:, 0], np.arange(300, 400))
    index.fold()
    assert index.pending == 0 and len(index) == 400
    np.testing.assert_array_equal(index.search(q, 20)[1], i_flat)


def test_pending_remove_replace_and_padding(no_background):
    x = _clustered(60, 8, 4, seed=3)
    index = VectorIndex.build(np.arange(40), x[:40], "hnsw")
    index.add(np.arange(40, 60), x[40:])
    assert index.remove([41, 42, 5, 999]) == 3  # two pending, one in the graph, one unknown
    assert len(index) == 57 and 41 not in index and index.pending == 18
    _, got = index.search(x, 60)
    assert not np.isin(got, [41, 42, 5]).any()
    assert (got[:, 57:] == -1).all() and (got[:, :57] >= 0).all()
    index.add([7, 43], np.stack([-x[7], -x[43]]))  # replaces a graph id and a pending id
    assert len(index) == 57 and index.pending == 19  # the replaced graph id now waits in the buffer
    scores, got = index.search(-x[7], 60)
    assert got[0, 0] == 7 and np.count_nonzero(got == 7) == 1 and np.count_nonzero(got == 43) == 1
    assert scores[0, 0] == pytest.approx(1.0, rel=1e-5)
    # a pending-only index (everything removed from the graph) still answers
    index.remove(np.arange(40))
    assert index.search(x[50], 3)[1][0, 0] == 50


def test_save_load_keeps_pending(no_background, tmp_path):
    x = _clustered(300, 16, 6, seed=4)
    index = VectorIndex.build(np.arange(250), x[:250], "hnsw")
    index.add(np.arange(250, 300) + 1000, x[250:])
    path = str(tmp_path / "index.npz")
    index.save(path)
    loaded = VectorIndex.load(path)
    assert loaded.pending == 50 and len(loaded) == 300
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    s1, i1 = index.search(x[:40], 10)
    s2, i2 = loaded.search(x[:40], 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2)
    loaded.fold()
    loaded.save(path)
    assert VectorIndex.load(path).pending == 0 and len(VectorIndex.load(path)) == 300


def test_background_fold_races_searches(monkeypatch):
    """While the background fold moves vectors into the graph, every search finds each added vector exactly
    once; the buffer empties by itself."""
    monkeypatch.setattr(vi_mod, "FOLD_CHUNK", 2)
    x = _clustered(700, 16, 10, seed=5)
    index = VectorIndex.build(np.arange(500), x[:500], "hnsw", ef_search=200)
    seen_pending, errors = [], []
    stop, added = threading.Event(), threading.Event()

    def reader():
        try:
            added.wait(10)
            while not stop.is_set():
                seen_pending.append(index.pending)
                _, got = index.search(x[500:520], 5)
                assert all(np.count_nonzero(row == i) == 1 for row, i in zip(got, range(500, 520), strict=True)), got
                _, got = index.search(x[510], 50)
                assert np.count_nonzero(got == 510) == 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    index.add(np.arange(500, 700), x[500:])
    added.set()
    _wait_folded(index)
    stop.set()
    t.join(10)
    assert not errors, errors
    assert len(index) == 700 and index._n_slots == 700  # all in the graph now
    assert max(seen_pending) > 0
    _, got = index.search(x[500:700], 1)
    assert (got[:, 0] == np.arange(500, 700)).mean() > 0.95


def test_big_batch_goes_straight_to_the_graph(no_background, monkeypatch):
    monkeypatch.setattr(vi_mod, "SERIAL_ADD", 10)
    x = _clustered(100, 8, 4, seed=6)
    index = VectorIndex.build(np.arange(50), x[:50], "hnsw")
    index.add(np.arange(50, 100), x[50:])
    assert index.pending == 0 and index._n_slots == 100
