"""2-D maps of document vectors with UMAP, aligned across runs so before/after can be compared.

umap-learn compiles its numba kernels on first use in each process (about a minute on 2 cores): call
:func:`warm_up` once in a background thread at start, so no user click pays for it.
"""
from __future__ import annotations

import threading

import numpy as np

FIT_SAMPLE = 20_000  # above this many points, fit on a seeded sample and place the rest (see ``place``)
PLACE_NEIGHBOURS = 10  # sample neighbours averaged by place="knn"
_warm = threading.Event()
_warm_lock = threading.Lock()


def warm_up() -> None:
    """Compile UMAP's kernels (fit and transform) on tiny data; idempotent, thread-safe."""
    with _warm_lock:
        if _warm.is_set():
            return
        rng = np.random.default_rng(0)
        x = rng.standard_normal((64, 8)).astype(np.float32)
        project(x, seed=0, n_neighbors=5, _sample=32)
        _warm.set()


def is_warm() -> bool:
    return _warm.is_set()


def is_warming() -> bool:
    """Whether :func:`warm_up` is compiling right now (it takes a CPU core for about a minute)."""
    return _warm_lock.locked() and not _warm.is_set()


def place_knn(sample_vectors: np.ndarray, sample_xy: np.ndarray, vectors: np.ndarray,
              k: int = PLACE_NEIGHBOURS, chunk: int = 8192) -> np.ndarray:
    """Place points on an existing map: each at the mean position of its ``k`` most cosine-similar sample
    points, weighted by 1 / cosine distance (UMAP's own transform() starts from such an average, then
    optimises it). float32 (m, d) ``vectors``, sample (s, d) with map (s, 2) -> float32 (m, 2)."""
    import faiss

    def unit(x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    index = faiss.IndexFlatIP(sample_vectors.shape[1])
    index.add(unit(sample_vectors))
    k = int(min(k, len(sample_vectors)))
    out = np.empty((len(vectors), 2), dtype=np.float32)
    for start in range(0, len(vectors), chunk):
        sims, nn = index.search(unit(vectors[start:start + chunk]), k)
        w = 1.0 / np.maximum(1.0 - sims, 1e-4)
        out[start:start + chunk] = np.einsum("mk,mkc->mc", w, sample_xy[nn]) / w.sum(1, keepdims=True)
    return out


def project(vectors: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1,
            init: np.ndarray | None = None, place: str = "transform", _sample: int = FIT_SAMPLE) -> np.ndarray:
    """UMAP (cosine) of float32 (n, d) vectors -> float32 (n, 2).

    Args:
        vectors: the document vectors.
        seed: UMAP's random_state; the same seed and data give the same map on the same machine.
        init: optional float (n, 2) starting layout (e.g. the baseline run's map), so a trained run's map
            starts from the same arrangement.
        place: above ``FIT_SAMPLE`` points UMAP is fitted on a seeded sample and the rest are placed:
            ``"transform"`` (default) with UMAP's transform(), which optimises each placement; ``"knn"``
            with :func:`place_knn`, 3x faster at 50k and never optimised (benchmarks/umap_placement.py:
            transform kept more of the real SciFact neighbourhoods, knn more of the synthetic ones).
    """
    if place not in ("knn", "transform"):
        raise ValueError(f"place must be 'knn' or 'transform', got {place!r}")
    import umap

    n = len(vectors)
    if n < 4:  # UMAP needs a few neighbours; tiny inputs get a trivial layout
        return np.column_stack([np.arange(n, dtype=np.float32), np.zeros(n, dtype=np.float32)])
    k = int(min(n_neighbors, n - 1))
    fit_idx = np.arange(n) if n <= _sample else np.sort(np.random.default_rng(seed).choice(n, _sample, False))
    init_arg: str | np.ndarray = "spectral" if n > k + 1 else "random"
    if init is not None:
        init_arg = np.asarray(init, dtype=np.float64)[fit_idx]
    reducer = umap.UMAP(n_neighbors=k, min_dist=min_dist, metric="cosine", random_state=seed, init=init_arg,
                        n_components=2, low_memory=True, verbose=False, n_jobs=1)
    xy = np.empty((n, 2), dtype=np.float32)
    xy[fit_idx] = reducer.fit_transform(vectors[fit_idx])
    if len(fit_idx) < n:
        rest = np.setdiff1d(np.arange(n), fit_idx)
        xy[rest] = (place_knn(vectors[fit_idx], xy[fit_idx], vectors[rest]) if place == "knn"
                    else reducer.transform(vectors[rest]))
    return xy


def align(xy: np.ndarray, ids: np.ndarray, reference: np.ndarray, ref_ids: np.ndarray) -> np.ndarray:
    """Rotate/reflect, scale and shift the map ``xy`` (n, 2) of documents ``ids`` to best match the map
    ``reference`` of documents ``ref_ids`` (ascending) on the documents both hold (orthogonal Procrustes).
    Returns float32 (n, 2); unchanged when fewer than 3 documents are shared."""
    ids = np.asarray(ids, dtype=np.int64)
    pos = np.clip(np.searchsorted(ref_ids, ids), 0, max(len(ref_ids) - 1, 0))
    m = (ref_ids[pos] == ids) if len(ref_ids) else np.zeros(len(ids), dtype=bool)
    if m.sum() < 3:
        return np.asarray(xy, dtype=np.float32)
    a, b = xy[m].astype(np.float64), reference[pos[m]].astype(np.float64)
    ma, mb = a.mean(0), b.mean(0)
    u, s, vt = np.linalg.svd((a - ma).T @ (b - mb))
    scale = s.sum() / max(((a - ma) ** 2).sum(), 1e-12)
    return (scale * (xy - ma) @ (u @ vt) + mb).astype(np.float32)
