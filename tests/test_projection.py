"""Map alignment (Procrustes on shared documents) and UMAP's trivial-input path."""
from __future__ import annotations

import numpy as np

from hce_engine.projection import align, project


def test_align_recovers_rotation_scale_shift_on_shared_docs():
    rng = np.random.default_rng(0)
    ref_ids = np.arange(0, 40, dtype=np.int64)
    ref = rng.standard_normal((40, 2)).astype(np.float32)
    theta = 1.1
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    ids = np.arange(5, 45, dtype=np.int64)  # 35 shared documents, 5 new ones
    truth = np.vstack([ref[5:], rng.standard_normal((5, 2))]).astype(np.float32)
    moved = (2.5 * truth @ rot.T + np.array([3.0, -1.0])).astype(np.float32)
    out = align(moved, ids, ref, ref_ids)
    assert out.shape == (40, 2) and out.dtype == np.float32
    assert np.allclose(out, truth, atol=1e-4)  # the new documents follow the same transform


def test_align_without_overlap_and_tiny_projection():
    xy = np.ones((3, 2), dtype=np.float32)
    assert np.array_equal(align(xy, np.array([7, 8, 9]), xy, np.array([1, 2, 3])), xy)
    assert project(np.eye(3, 8, dtype=np.float32)).shape == (3, 2)


def test_place_knn_puts_points_among_their_neighbours():
    from hce_engine.projection.umap_projection import place_knn
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((3, 16)).astype(np.float32)
    sample = np.repeat(centres, 20, axis=0) + 0.05 * rng.standard_normal((60, 16)).astype(np.float32)
    sample_xy = np.repeat(np.array([[0, 0], [10, 0], [0, 10]], np.float32), 20, axis=0)
    new = centres[[2, 0, 1]] + 0.05 * rng.standard_normal((3, 16)).astype(np.float32)
    xy = place_knn(sample, sample_xy, new, k=5)
    assert xy.shape == (3, 2) and xy.dtype == np.float32
    np.testing.assert_allclose(xy, [[0, 10], [0, 0], [10, 0]], atol=1e-4)
    exact = place_knn(sample, sample_xy + rng.standard_normal((60, 2)).astype(np.float32), sample[:1], k=5)
    assert np.isfinite(exact).all()  # a point identical to a sample point: finite weights


def test_project_places_points_beyond_the_sample():
    import pytest
    x = np.random.default_rng(2).standard_normal((80, 8)).astype(np.float32)
    a = project(x, seed=0, n_neighbors=5, _sample=40)
    b = project(x, seed=0, n_neighbors=5, _sample=40, place="transform")
    assert a.shape == b.shape == (80, 2) and np.isfinite(a).all() and np.isfinite(b).all()
    np.testing.assert_array_equal(a, project(x, seed=0, n_neighbors=5, _sample=40))  # same seed, same map
    with pytest.raises(ValueError, match="place"):
        project(x, place="nearest")
