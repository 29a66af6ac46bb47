"""VectorIndex: exactness, add/remove semantics, ANN recall, concurrency, padding, validation."""
from __future__ import annotations

import threading
import time

import faiss
import numpy as np
import pytest

import hce_engine.index.vector_index as vi_mod
from hce_engine.index import BLAS_THRESHOLD, VectorIndex

KINDS = ["flat", "hnsw", "ivf"]


def _random(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _clustered(n: int, d: int, n_clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, d)).astype(np.float32)
    x = centers[rng.integers(0, n_clusters, n)] + 0.35 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_blas_threshold_set_at_import():
    assert faiss.cvar.distance_compute_blas_threshold == BLAS_THRESHOLD == 20


def test_flat_matches_numpy_brute_force():
    x, q = _random(2000, 32, 1), _random(64, 32, 2)
    ids = np.arange(2000, dtype=np.int64) * 7 + 3
    index = VectorIndex.build(ids, x, "flat")
    scores, got = index.search(q, 10)
    assert scores.dtype == np.float32 and got.dtype == np.int64 and got.shape == (64, 10)
    sims = q @ x.T
    top = np.argsort(-sims, axis=1)[:, :10]
    np.testing.assert_array_equal(got, ids[top])
    np.testing.assert_allclose(scores, np.take_along_axis(sims, top, axis=1), rtol=1e-5, atol=1e-5)
    assert len(index) == 2000 and index.dim == 32 and index.kind == "flat"
    np.testing.assert_array_equal(index.ids(), ids)


@pytest.mark.parametrize("kind", KINDS)
def test_add_remove_replace(kind):
    x = _clustered(600, 16, 8, seed=3)
    ids = np.arange(600, dtype=np.int64)
    index = VectorIndex.build(ids, x, kind)
    if kind == "ivf":
        index.nprobe = index.nlist  # exhaustive, so the checks below are exact
    removed_ids = ids[::3]
    assert index.remove(np.concatenate([removed_ids, [10_000]])) == removed_ids.size  # unknown id ignored
    assert index.remove(removed_ids) == 0  # already gone
    assert len(index) == 600 - removed_ids.size
    _, got = index.search(x, 600)
    assert not np.isin(got, removed_ids).any()
    np.testing.assert_array_equal(index.ids(), np.setdiff1d(ids, removed_ids))
    # every live vector is its own nearest neighbour (normalised, distinct)
    live = np.setdiff1d(ids, removed_ids)
    _, top1 = index.search(x[live], 1)
    assert (top1[:, 0] == live).mean() > 0.95

    # re-adding a live id replaces its vector; re-adding a removed id revives it
    target = int(live[0])
    new_vec = -x[target]
    index.add([target, int(removed_ids[1])], np.stack([new_vec, x[removed_ids[1]]]))
    assert len(index) == 600 - removed_ids.size + 1
    scores, got = index.search(new_vec, 600)
    assert got[0, 0] == target
    assert np.count_nonzero(got == target) == 1  # old copy is gone
    assert scores[0, 0] == pytest.approx(float(new_vec @ new_vec), rel=1e-5)
    _, got = index.search(x[target], 600)
    row = got[0][got[0] >= 0]
    if target in row:  # if returned at all, it is with the new (opposite) vector: last place
        assert row[-1] == target
    assert int(removed_ids[1]) in index.search(x[removed_ids[1]], 1)[1]


def test_duplicate_ids_in_one_batch_last_wins():
    index = VectorIndex.build([1, 2, 1], np.eye(3, dtype=np.float32), "flat")
    assert len(index) == 2
    scores, got = index.search(np.eye(3, dtype=np.float32)[2], 1)
    assert got[0, 0] == 1 and scores[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_vs_flat(kind):
    x = _clustered(5000, 32, 50, seed=4)
    q = _clustered(200, 32, 50, seed=5)
    ids = np.arange(5000, dtype=np.int64) + 100
    _, exact = VectorIndex.build(ids, x, "flat").search(q, 10)
    index = VectorIndex.build(ids, x, kind)
    _, approx = index.search(q, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall > 0.9, recall


@pytest.mark.parametrize("max_overfetch", [vi_mod.MAX_OVERFETCH, 0])  # over-fetch / bitmap filter
def test_hnsw_tombstones_and_compaction(monkeypatch, max_overfetch):
    monkeypatch.setattr(vi_mod, "MAX_OVERFETCH", max_overfetch)
    x = _clustered(3000, 16, 20, seed=6)
    ids = np.arange(3000, dtype=np.int64)
    index = VectorIndex.build(ids, x, "hnsw", ef_search=128)
    assert index.ef_search == 128
    gone = ids[:1000]
    index.remove(gone)
    assert index._n_dead == 1000  # tombstoned, not compacted yet (dead <= live)
    scores, got = index.search(x[:50], 20)
    assert not np.isin(got, gone).any() and (got >= 0).all()
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # still sorted after filtering
    index.remove(ids[1000:2100])  # now dead > live -> graph rebuilt
    assert index._n_dead == 0 and len(index) == 900
    _, got = index.search(x[2100:2200], 1)
    assert (got[:, 0] == ids[2100:2200]).mean() > 0.95
    assert index.ef_search == 128


@pytest.mark.parametrize("kind", KINDS)
def test_padding_when_fewer_than_k(kind):
    x = _random(3, 8, 7)
    index = VectorIndex.build([5, 6, 7], x, kind)
    scores, got = index.search(x, 5)
    assert got.shape == scores.shape == (3, 5)
    assert (got[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    assert set(got[:, :3].ravel()) <= {5, 6, 7}
    index.remove([5, 6, 7])
    scores, got = index.search(x, 4)
    assert (got == -1).all() and np.isneginf(scores).all()
    assert index.search(x, 0)[1].shape == (3, 0)


def test_empty_index_and_auto_kind(monkeypatch):
    empty = VectorIndex.build(np.empty(0, np.int64), np.empty((0, 4), np.float32), "auto")
    assert empty.kind == "flat" and len(empty) == 0
    assert (empty.search(np.ones((2, 4), np.float32), 3)[1] == -1).all()
    monkeypatch.setattr(vi_mod, "APPROX_THRESHOLD", 50)
    assert VectorIndex.build(np.arange(49), _random(49, 4), "auto").kind == "flat"
    assert VectorIndex.build(np.arange(50), _random(50, 4), "auto").kind == "hnsw"


def test_validation_and_conversion():
    x64 = np.asfortranarray(_clustered(100, 8, 100, seed=8).astype(np.float64))  # unit norm
    index = VectorIndex.build(np.arange(100, dtype=np.int32), x64, "flat")
    q = x64[::2, :]  # float64, non-contiguous
    _, got = index.search(q, 1)
    np.testing.assert_array_equal(got[:, 0], np.arange(0, 100, 2))
    with pytest.raises(ValueError, match="dimension 9 but the index has dimension 8"):
        index.search(np.zeros((1, 9), np.float32), 1)
    with pytest.raises(ValueError, match="dimension"):
        index.add([1000], np.zeros((1, 7), np.float32))
    with pytest.raises(ValueError, match="ids"):
        index.add([1, 2], np.zeros((1, 8), np.float32))
    with pytest.raises(ValueError, match=">= 0"):
        index.add([-1], np.zeros((1, 8), np.float32))
    with pytest.raises(ValueError, match="kind"):
        VectorIndex.build([1], np.zeros((1, 8), np.float32), "lsh")
    with pytest.raises(ValueError, match="nprobe"):
        index.nprobe = 4


@pytest.mark.parametrize("kind", KINDS)
def test_search_racing_add_remove(kind):
    """A searcher racing a writer never raises, never sees unknown ids nor half a batch."""
    d, batch = 32, 8
    base = _clustered(400, d, 10, seed=10)
    index = VectorIndex.build(np.arange(400), base, kind)
    ever_added = set(range(400))
    latest: list[tuple[int, np.ndarray]] = []  # (start id, shared vector) of the newest batch
    stop = threading.Event()
    errors: list[BaseException] = []
    checks = {"searches": 0, "atomic": 0}

    def writer():
        try:
            rng = np.random.default_rng(9)
            live_batches: list[int] = []
            next_id = 1000
            while not stop.is_set():
                v = rng.standard_normal(d).astype(np.float32)
                v /= np.linalg.norm(v)
                new = np.arange(next_id, next_id + batch)
                ever_added.update(new.tolist())  # before add: a reader may see them right after
                latest.append((next_id, v))  # published before add: reader may see 0 of it
                index.add(new, np.repeat(v[None], batch, axis=0))
                live_batches.append(next_id)
                next_id += batch
                if len(live_batches) > 5:  # drop an old batch as a whole
                    old = live_batches.pop(0)
                    index.remove(np.arange(old, old + batch))
                index.remove(rng.integers(0, 400, 3))  # and some base docs
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader():
        try:
            rng = np.random.default_rng(11)
            while not stop.is_set():
                q = base[rng.integers(0, 400, 4)]
                _, got = index.search(q, 10)
                assert got.shape == (4, 10)
                assert set(got[got >= 0].tolist()) <= ever_added
                checks["searches"] += 1
                if kind == "flat" and latest:
                    start, v = latest[-1]
                    _, got = index.search(v, batch)
                    n_in = np.count_nonzero((got >= start) & (got < start + batch))
                    assert n_in in (0, batch), f"saw {n_in}/{batch} of a batch"
                    checks["atomic"] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    time.sleep(0.4)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert not errors, errors
    assert checks["searches"] > 5
    if kind == "flat":
        assert checks["atomic"] > 5


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(tmp_path, kind):
    x = _clustered(1500, 16, 12, seed=9)
    index = VectorIndex.build(np.arange(1500) * 3, x, kind)
    index.remove([0, 3, 6])  # HNSW keeps these as tombstones, which must survive the round trip
    path = str(tmp_path / "run" / "index.npz")
    index.save(path)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["index.npz"]  # no temp file left
    loaded = VectorIndex.load(path)
    assert loaded.kind == index.kind and loaded.dim == 16 and len(loaded) == 1497
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    s1, i1 = index.search(x[:40], 10)
    s2, i2 = loaded.search(x[:40], 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2)
    assert not np.isin(i2, [0, 3, 6]).any()
    loaded.add([7], x[:1])  # and it stays mutable
    assert loaded.search(x[:1], 1)[1][0, 0] == 7  # the vector of removed id 0, now under id 7


def test_load_rejects_foreign_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not an index")
    with pytest.raises((ValueError, OSError)):
        VectorIndex.load(str(junk))
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved index"):
        VectorIndex.load(str(tmp_path / "other.npz"))


def test_hnsw_settings_follow_the_index_size_unless_given(monkeypatch, tmp_path):
    monkeypatch.setattr(vi_mod, "HNSW_BY_SIZE", ((100, 40, 50), (None, 80, 300)))
    assert vi_mod.hnsw_settings(100) == (40, 50) and vi_mod.hnsw_settings(101) == (80, 300)
    x = _random(160, 8, 1)
    small = VectorIndex.build(np.arange(90), x[:90], "hnsw")
    assert small.ef_search == 50 and small._index.hnsw.efConstruction == 40
    small.add(np.arange(90, 160), x[90:])  # grew past 100: the next inserts and searches use the next row
    assert small.ef_search == 300 and small._index.hnsw.efConstruction == 80
    small.remove(np.arange(100, 160))
    assert small.ef_search == 50
    big = VectorIndex.build(np.arange(160), x, "hnsw")
    assert big._index.hnsw.efConstruction == 80  # a bulk build uses its final size's graph setting
    fixed = VectorIndex.build(np.arange(90), x[:90], "hnsw", ef_search=7)
    fixed.add(np.arange(90, 160), x[90:])
    assert fixed.ef_search == 7 and fixed._index.hnsw.efConstruction == 80
    fixed.save(str(tmp_path / "f.npz"))
    big.ef_search = 9
    big.save(str(tmp_path / "b.npz"))
    small.save(str(tmp_path / "s.npz"))
    assert VectorIndex.load(str(tmp_path / "f.npz")).ef_search == 7  # a value given is kept
    assert VectorIndex.load(str(tmp_path / "b.npz")).ef_search == 9
    monkeypatch.setattr(vi_mod, "HNSW_BY_SIZE", ((None, 64, 123),))
    assert VectorIndex.load(str(tmp_path / "s.npz")).ef_search == 123  # by size: today's table
