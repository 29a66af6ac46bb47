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
