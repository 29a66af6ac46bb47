"""Thread-safe FAISS inner-product index keyed by int64 document ids.

Three index kinds are supported:

* ``"flat"`` - exact search, ``IndexIDMap2`` over ``IndexFlatIP``; real removal.
* ``"hnsw"`` - approximate, ``IndexHNSWFlat`` (inner product, M=32). FAISS cannot remove from
  HNSW, so removed / replaced vectors are tombstoned and filtered out of results (the search
  over-fetches ``k + #tombstones``, or past :data:`MAX_OVERFETCH` passes faiss a bitmap of live
  vectors). The graph is rebuilt from the live vectors when the tombstones outnumber the live
  vectors (checked after each add/remove) or on :meth:`VectorIndex.compact`. A small add (at most
  :data:`SERIAL_ADD` vectors, a user adding documents) first goes into an exact *pending* buffer that every
  search scans and merges with the graph's hits (so pending vectors are found exactly); a background thread
  folds the buffer into the graph :data:`FOLD_CHUNK` vectors at a time under the index's lock, so the adding
  call does not wait for graph inserts. Pending vectors are saved with the index and folded after a load.
* ``"ivf"`` - approximate, ``IndexIVFFlat`` (inner product) trained on the vectors given to
  :meth:`VectorIndex.build`; real removal.

``"auto"`` picks ``"flat"`` below :data:`APPROX_THRESHOLD` vectors, else ``"hnsw"``.

Scores are raw inner products: normalise vectors yourself if you want cosine similarity.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import threading
import time
from typing import Any, Iterator

import faiss
import numpy as np

log = logging.getLogger(__name__)

__all__ = ["VectorIndex", "APPROX_THRESHOLD", "BLAS_THRESHOLD", "FOLD_CHUNK", "KINDS", "MAX_OVERFETCH",
           "SERIAL_ADD", "SERIAL_SEARCH_WORK"]

#: ``kind="auto"`` uses an exact flat index below this many vectors, HNSW at or above it.
APPROX_THRESHOLD = 100_000

#: HNSW with tombstones: while ``k + #tombstones`` is at most this, search over-fetches and
#: filters; beyond it, faiss filters during the graph walk (``IDSelectorBitmap``).
MAX_OVERFETCH = 2048

#: Value given to ``faiss.cvar.distance_compute_blas_threshold`` at import. faiss 1.14+ ships
#: a very large default (128000 in 1.15.1), which keeps batched flat search off the BLAS path:
#: measured 5-7x slower for 64-256 queries against 50k x 384 vectors on this project's CPUs.
BLAS_THRESHOLD = 20
faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
# NB: the process-wide faiss.omp_set_num_threads is left alone (the caller / environment owns it); small
# searches and adds below only cap the calling thread's OpenMP threads while they run.

#: A search whose work (queries x vectors scanned x d multiply-adds) is at most this runs on one OpenMP
#: thread of the calling Python thread (the setting is per thread and restored afterwards). faiss opens a
#: parallel region even for one query over a flat index; on a busy machine the region waits for a
#: descheduled worker, and the worker then spins on a core the query encoder needs. Measured on the
#: project's 2-core machine under load: one query over 1k vectors 17 ms -> 0.2 ms, over 50k 28 -> 15 ms.
#: 2**25 covers one query over a flat index of up to ~87k vectors of d=384 (flat is used below
#: APPROX_THRESHOLD); bigger batches (evaluation) keep all threads.
SERIAL_SEARCH_WORK = 1 << 25

#: HNSW inserts of at most this many vectors (a user adding documents) run on one OpenMP thread of the
#: calling thread, for the same reason: 1,000 inserts into 100k vectors took 0.42-0.78 s on two threads and
#: 0.19-0.27 s on one on the project's busy 2-core machine. Bulk builds keep all threads.
SERIAL_ADD = 4096

#: HNSW: pending vectors the background fold inserts into the graph per hold of the index's lock (a search waits
#: at most one such chunk: about 16 inserts at a million vectors, tens of milliseconds).
FOLD_CHUNK = 16
#: Whether a pending buffer is folded by a background thread (tests turn it off to look at the buffer).
BACKGROUND_FOLD = True
#: Set at interpreter exit: background folds stop (pending vectors stay pending; ``save`` keeps them).
_STOP_FOLDING = threading.Event()
atexit.register(_STOP_FOLDING.set)

KINDS = ("flat", "hnsw", "ivf", "auto")

_HNSW_M = 32
#: HNSW settings by index size: rows (up to this many vectors, efConstruction, efSearch), the last row for any
#: size. An index follows its size as it grows unless built with explicit values. Recall@10 against exact
#: search on growth.py's vectors (``benchmarks/hnsw_ef.py``, results/hnsw_ef*.json): 0.996 at 200k with (64,
#: 128); at 1M (64, 128) gave 0.953 and no efSearch up to 1024 passed 0.977, while efConstruction 128 gave
#: 0.9998 at efSearch 128 (a build about twice as long).
HNSW_BY_SIZE: tuple[tuple[int | None, int, int], ...] = ((500_000, 64, 128), (None, 128, 128))
_DEFAULT_EF_CONSTRUCTION = HNSW_BY_SIZE[0][1]


def hnsw_settings(n: int) -> tuple[int, int]:
    """(efConstruction, efSearch) for an HNSW index of ``n`` vectors (:data:`HNSW_BY_SIZE`)."""
    for limit, ef_construction, ef_search in HNSW_BY_SIZE:
        if limit is None or n <= limit:
            return ef_construction, ef_search
    raise AssertionError("HNSW_BY_SIZE must end with a row for any size")
_IVF_MIN_POINTS_PER_CENTROID = 39  # below this faiss k-means warns about too few points
_FILE_FORMAT = 1  # bump when the saved layout changes; older files are then rebuilt, not read


def _as_ids(ids: Any) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError("ids must be integers")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError("ids must be >= 0 (-1 is the padding value in search results)")
    return arr


def _as_matrix(x: Any, dim: int | None, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (n, d), got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(
            f"{what} have dimension {arr.shape[1]} but the index has dimension {dim}"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


@contextlib.contextmanager
def _omp_threads(limit: int) -> Iterator[None]:
    """Cap faiss's OpenMP threads for the calling thread (an OpenMP per-thread setting), then restore it."""
    before = faiss.omp_get_max_threads()
    if before <= limit:
        yield
        return
    faiss.omp_set_num_threads(limit)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _dedupe_keep_last(ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop earlier duplicates of an id inside one batch (the last occurrence wins)."""
    if ids.size < 2:
        return ids, vectors
    rev_unique, rev_first = np.unique(ids[::-1], return_index=True)
    if rev_unique.size == ids.size:
        return ids, vectors
    keep = np.sort(ids.size - 1 - rev_first)
    return ids[keep], np.ascontiguousarray(vectors[keep])


class VectorIndex:
    """Inner-product vector index over int64 ids (>= 0), safe to search while mutating.

    Construct with :meth:`build`; mutate with :meth:`add` / :meth:`remove`; query with
    :meth:`search`. Every public method holds one re-entrant lock, so a search racing an
    add/remove never fails and never sees a half-applied batch.
    """

    def __init__(
        self,
        dim: int,
        kind: str = "flat",
        *,
        train_vectors: np.ndarray | None = None,
        ef_search: int | None = None,
        ef_construction: int | None = None,
        nlist: int | None = None,
        nprobe: int | None = None,
    ) -> None:
        """Create an empty index of dimension ``dim``.

        ``kind="ivf"`` needs ``train_vectors`` (float32 (n, dim), n >= 1) to train the coarse
        quantizer; ``nlist`` defaults to ``round(4*sqrt(n))`` capped so that every centroid
        gets >= 39 training points, ``nprobe`` to ``max(8, nlist // 8)`` (capped at ``nlist``).
        ``kind="auto"`` resolves to flat/hnsw from ``len(train_vectors)`` (flat when absent).
        Prefer :meth:`build`, which does all of this from the data.
        """
        if int(dim) <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self._dim = int(dim)
        if train_vectors is not None:
            train_vectors = _as_matrix(train_vectors, self._dim, "train_vectors")
        if kind == "auto":
            n = 0 if train_vectors is None else train_vectors.shape[0]
            kind = "flat" if n < APPROX_THRESHOLD else "hnsw"
        self._kind = kind
        self._lock = threading.RLock()
        # None: by the index's size (hnsw_settings), followed as it grows or shrinks
        self._fixed_ef = (None if ef_construction is None else int(ef_construction),
                          None if ef_search is None else max(1, int(ef_search)))
        self._ef_construction = self._fixed_ef[0] or _DEFAULT_EF_CONSTRUCTION
        # live external id -> slot (HNSW internal label; 0 for the other kinds); HNSW pending ids are not in it
        self._live: dict[int, int] = {}
        self._init_pending()
        self._quantizer = None
        if kind == "flat":
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self._dim))
        elif kind == "hnsw":
            self._index = self._new_hnsw(self._fixed_ef[1] or hnsw_settings(0)[1])
            self._slot_ids = np.empty(0, dtype=np.int64)   # internal label -> external id
            self._alive = np.empty(0, dtype=bool)          # internal label -> not tombstoned
            self._n_slots = 0
            self._n_dead = 0
        else:  # ivf
            if train_vectors is None or train_vectors.shape[0] == 0:
                raise ValueError("kind='ivf' needs non-empty train_vectors to train the quantizer")
            n = train_vectors.shape[0]
            if nlist is None:
                nlist = int(round(4 * math.sqrt(n)))
                nlist = min(nlist, n // _IVF_MIN_POINTS_PER_CENTROID)
            nlist = max(1, min(int(nlist), n))
            self._quantizer = faiss.IndexFlatIP(self._dim)
            index = faiss.IndexIVFFlat(self._quantizer, self._dim, nlist,
                                       faiss.METRIC_INNER_PRODUCT)
            index.cp.verbose = False
            index.cp.min_points_per_centroid = 1  # tiny corpora: no "please provide" warning
            index.train(train_vectors)
            index.nprobe = min(nlist, int(nprobe) if nprobe is not None else max(8, nlist // 8))
            self._index = index

    def _init_pending(self) -> None:
        """HNSW's exact buffer of added vectors not yet in the graph: ids int64 (P,), vectors float32 (P, d), the
        set of their ids; and the background thread folding it into the graph (None when none runs). Empty for
        other kinds."""
        self._pend_ids = np.empty(0, dtype=np.int64)
        self._pend_vecs = np.empty((0, self._dim), dtype=np.float32)
        self._pending: set[int] = set()
        self._folder: threading.Thread | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        ids: np.ndarray,
        vectors: np.ndarray,
        kind: str = "flat",
        **params: Any,
    ) -> "VectorIndex":
        """Build an index from ``ids`` int64 (n,) and ``vectors`` float32 (n, d).

        ``kind``: ``"flat"`` | ``"hnsw"`` | ``"ivf"`` | ``"auto"`` (flat if n < APPROX_THRESHOLD
        else hnsw); HNSW's efConstruction and efSearch follow :func:`hnsw_settings` for the index's size
        unless given. Extra keyword ``params`` (``ef_search``, ``ef_construction``, ``nlist``,
        ``nprobe``) go to the constructor. IVF is trained on ``vectors``. Duplicate ids: the
        last occurrence wins.
        """
        vectors = _as_matrix(vectors, None, "vectors")
        if vectors.shape[1] == 0:
            raise ValueError("vectors must have at least one dimension")
        index = cls(vectors.shape[1], kind,
                    train_vectors=vectors if kind in ("ivf", "auto") else None, **params)
        index._follow_size(len(vectors))  # a bulk build starts with its final size's settings
        index._add(ids, vectors, defer=False)  # straight into the graph, never pending
        return index

    def _new_hnsw(self, ef_search: int):
        index = faiss.IndexHNSWFlat(self._dim, _HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self._ef_construction
        index.hnsw.efSearch = max(1, int(ef_search))
        return index

    # ------------------------------------------------------------------ persistence
    def save(self, path: str) -> None:
        """Write the index to one ``.npz`` file at ``path`` (faiss's own serialisation plus the id
        bookkeeping, no pickle), replacing any older file atomically."""
        with self._lock:
            arrays = {"format": np.int64(_FILE_FORMAT), "kind": np.str_(self._kind), "dim": np.int64(self._dim),
                      "faiss": faiss.serialize_index(self._index)}
            if self._kind == "hnsw":
                arrays["slot_ids"] = self._slot_ids[:self._n_slots].copy()
                arrays["alive"] = self._alive[:self._n_slots].copy()
                arrays["fixed_ef"] = np.array([-1 if v is None else v for v in self._fixed_ef], dtype=np.int64)
                arrays["pending_ids"] = self._pend_ids.copy()
                arrays["pending_vecs"] = self._pend_vecs.copy()
            else:
                arrays["ids"] = np.fromiter(self._live.keys(), dtype=np.int64, count=len(self._live))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> "VectorIndex":
        """Read an index written by :meth:`save`. Raises ``ValueError`` for a file of another format or
        an inconsistent one, ``OSError`` when it cannot be read."""
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z or int(z["format"]) != _FILE_FORMAT:
                raise ValueError(f"{path}: not a saved index of format {_FILE_FORMAT}")
            kind, dim, blob = str(z["kind"]), int(z["dim"]), z["faiss"]
            hnsw = kind == "hnsw"  # the arrays of the other kind stay empty
            slot_ids = z["slot_ids"] if hnsw else np.empty(0, np.int64)
            alive = z["alive"].astype(bool) if hnsw else np.empty(0, bool)
            ids = z["ids"] if not hnsw else np.empty(0, np.int64)
            fixed = z["fixed_ef"].tolist() if "fixed_ef" in z else [-1, -1]  # older files: by size
            pend_ids = z["pending_ids"].astype(np.int64) if hnsw and "pending_ids" in z else np.empty(0, np.int64)
            pend_vecs = (z["pending_vecs"].astype(np.float32) if hnsw and "pending_vecs" in z
                         else np.empty((0, dim), np.float32))
        if kind not in ("flat", "hnsw", "ivf"):
            raise ValueError(f"{path}: unknown index kind {kind!r}")
        index = faiss.deserialize_index(blob)
        if index.d != dim:
            raise ValueError(f"{path}: dimension {index.d} does not match {dim}")
        out = cls.__new__(cls)
        out._dim, out._kind, out._index, out._quantizer = dim, kind, index, None
        out._lock = threading.RLock()
        out._fixed_ef = (None, None)
        out._init_pending()
        if kind == "hnsw":
            out._fixed_ef = (None if fixed[0] < 0 else int(fixed[0]), None if fixed[1] < 0 else int(fixed[1]))
            if index.ntotal != slot_ids.size or alive.size != slot_ids.size:
                raise ValueError(f"{path}: {index.ntotal} vectors but {slot_ids.size} slots")
            out._ef_construction = int(index.hnsw.efConstruction)
            out._n_slots = int(slot_ids.size)
            out._slot_ids, out._alive = slot_ids.astype(np.int64), alive
            out._n_dead = int((~alive).sum())
            live = np.flatnonzero(alive)
            out._live = dict(zip(out._slot_ids[live].tolist(), live.tolist(), strict=True))
            if pend_ids.size != len(pend_vecs) or pend_vecs.shape[1:] != (dim,) \
                    or not set(out._live).isdisjoint(pend_ids.tolist()):
                raise ValueError(f"{path}: inconsistent pending vectors")
            if pend_ids.size:
                out._pend_ids, out._pend_vecs = pend_ids, np.ascontiguousarray(pend_vecs)
                out._pending = set(pend_ids.tolist())
                out._start_folding_locked()
            out._follow_size(len(out))
        else:
            if index.ntotal != ids.size:
                raise ValueError(f"{path}: {index.ntotal} vectors but {ids.size} ids")
            out._ef_construction = _DEFAULT_EF_CONSTRUCTION
            out._live = dict.fromkeys(ids.astype(np.int64).tolist(), 0)
        return out

    # ------------------------------------------------------------------ properties
    @property
    def kind(self) -> str:
        """``"flat"``, ``"hnsw"`` or ``"ivf"`` (``"auto"`` is resolved at construction)."""
        return self._kind

    @property
    def dim(self) -> int:
        """Vector dimension d."""
        return self._dim

    @property
    def ef_search(self) -> int | None:
        """HNSW efSearch (None for other kinds). Settable."""
        return int(self._index.hnsw.efSearch) if self._kind == "hnsw" else None

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        if self._kind != "hnsw":
            raise ValueError(f"ef_search only applies to kind='hnsw' (this index is {self._kind!r})")
        with self._lock:
            self._fixed_ef = (self._fixed_ef[0], max(1, int(value)))
            self._index.hnsw.efSearch = self._fixed_ef[1]

    @property
    def nprobe(self) -> int | None:
        """IVF nprobe (None for other kinds). Settable; clipped to [1, nlist]."""
        return int(self._index.nprobe) if self._kind == "ivf" else None

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self._kind != "ivf":
            raise ValueError(f"nprobe only applies to kind='ivf' (this index is {self._kind!r})")
        with self._lock:
            self._index.nprobe = max(1, min(int(value), int(self._index.nlist)))

    @property
    def nlist(self) -> int | None:
        """Number of IVF lists (None for other kinds)."""
        return int(self._index.nlist) if self._kind == "ivf" else None

    def __len__(self) -> int:
        """Number of live (searchable) vectors."""
        with self._lock:
            return len(self._live) + len(self._pending)

    @property
    def pending(self) -> int:
        """HNSW: added vectors not yet folded into the graph (searched exactly meanwhile); 0 for other kinds."""
        with self._lock:
            return len(self._pending)

    def __contains__(self, doc_id: object) -> bool:
        with self._lock:
            try:
                key = int(doc_id)  # type: ignore[call-overload]
                return key in self._live or key in self._pending
            except (TypeError, ValueError):
                return False

    def ids(self) -> np.ndarray:
        """int64 (len(self),) live ids, sorted ascending."""
        with self._lock:
            out = np.fromiter(self._live.keys(), dtype=np.int64, count=len(self._live))
            if self._pending:
                out = np.concatenate([out, self._pend_ids])
        out.sort()
        return out

    def __repr__(self) -> str:
        return f"VectorIndex(kind={self._kind!r}, dim={self._dim}, n={len(self)})"

    # ------------------------------------------------------------------ mutation
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` float32 (n, d) under ``ids`` int64 (n,).

        An id already present is replaced (its old vector is no longer returned). Within a
        batch, the last occurrence of a duplicated id wins. Atomic with respect to search. HNSW: a batch of at most
        :data:`SERIAL_ADD` vectors goes into the pending buffer (searched exactly, folded into the graph in the
        background); a bigger one is inserted into the graph at once.
        """
        self._add(ids, vectors, defer=True)

    def _add(self, ids: np.ndarray, vectors: np.ndarray, defer: bool) -> None:
        ids = _as_ids(ids)
        vectors = _as_matrix(vectors, self._dim, "vectors")
        if ids.shape[0] != vectors.shape[0]:
            raise ValueError(f"got {ids.shape[0]} ids but {vectors.shape[0]} vectors")
        if ids.size == 0:
            return
        ids, vectors = _dedupe_keep_last(ids, vectors)
        with self._lock:
            existing = [i for i in ids.tolist() if i in self._live or i in self._pending]
            if existing:
                self._remove_locked(np.asarray(existing, dtype=np.int64), allow_compact=False)
            if self._kind == "hnsw":
                if defer and ids.size <= SERIAL_ADD:
                    self._pend_ids = np.concatenate([self._pend_ids, ids])
                    self._pend_vecs = np.concatenate([self._pend_vecs, vectors])
                    self._pending.update(ids.tolist())
                    self._start_folding_locked()
                else:
                    self._insert_graph_locked(ids, vectors)
                self._maybe_compact_locked()
                self._follow_size(len(self))
            else:
                self._index.add_with_ids(vectors, ids)
                self._live.update(dict.fromkeys(ids.tolist(), 0))

    def _insert_graph_locked(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """HNSW: insert ``vectors`` (n, d) under new ``ids`` (n,) into the graph (small batches on one thread)."""
        start = self._n_slots
        with _omp_threads(1 if ids.size <= SERIAL_ADD else 1 << 16):
            self._index.add(vectors)
        self._grow_slots(start + ids.size)
        self._slot_ids[start:start + ids.size] = ids
        self._alive[start:start + ids.size] = True
        self._n_slots = start + ids.size
        self._live.update(zip(ids.tolist(), range(start, start + ids.size), strict=True))

    def _drop_pending_locked(self, keep: np.ndarray) -> None:
        """Keep the pending rows where ``keep`` (bool (P,)) is true."""
        self._pend_ids = self._pend_ids[keep]
        self._pend_vecs = np.ascontiguousarray(self._pend_vecs[keep])
        self._pending = set(self._pend_ids.tolist())

    def _fold_locked(self, n: int) -> None:
        """Move the first ``n`` pending vectors into the graph: O(n), the rest stays where it is (views of the
        same buffer, never written in place, so a search that took the old arrays reads them safely)."""
        n = min(n, self._pend_ids.size)
        if n == 0:
            return
        ids = self._pend_ids[:n].copy()
        self._insert_graph_locked(ids, self._pend_vecs[:n])
        self._pend_ids, self._pend_vecs = self._pend_ids[n:], self._pend_vecs[n:]
        self._pending.difference_update(ids.tolist())

    def _start_folding_locked(self) -> None:
        """Start the background fold of the pending buffer unless one runs (or the interpreter is exiting)."""
        if self._pending and self._folder is None and BACKGROUND_FOLD and not _STOP_FOLDING.is_set():
            self._folder = threading.Thread(target=self._fold_loop, name="hce-index-fold", daemon=True)
            self._folder.start()

    def _fold_loop(self) -> None:
        """The background fold: :data:`FOLD_CHUNK` pending vectors per hold of the lock until none is left."""
        try:
            while not _STOP_FOLDING.is_set():
                with self._lock:
                    if not self._pending:
                        return
                    self._fold_locked(FOLD_CHUNK)
                time.sleep(0.001)  # let waiting searches take the lock between chunks
        except Exception:  # noqa: BLE001 - pending vectors stay searchable; the next add tries again
            log.exception("folding pending vectors into the HNSW graph failed")
        finally:
            with self._lock:
                self._folder = None

    def fold(self) -> None:
        """HNSW: insert every pending vector into the graph now, blocking (the background fold does it anyway)."""
        with self._lock:
            if self._pending:
                self._fold_locked(self._pend_ids.size)

    def _follow_size(self, n: int) -> None:
        """HNSW: the efConstruction (for the next inserts) and efSearch of an index of ``n`` vectors, where the
        index was not built with fixed values."""
        if self._kind != "hnsw":
            return
        ef_construction, ef_search = hnsw_settings(n)
        with self._lock:
            if self._fixed_ef[0] is None:
                self._ef_construction = ef_construction
                self._index.hnsw.efConstruction = ef_construction
            if self._fixed_ef[1] is None:
                self._index.hnsw.efSearch = ef_search

    def _grow_slots(self, needed: int) -> None:
        if needed <= self._slot_ids.size:
            return
        cap = max(needed, 2 * self._slot_ids.size, 1024)
        slot_ids = np.full(cap, -1, dtype=np.int64)
        slot_ids[:self._n_slots] = self._slot_ids[:self._n_slots]
        alive = np.zeros(cap, dtype=bool)
        alive[:self._n_slots] = self._alive[:self._n_slots]
        self._slot_ids, self._alive = slot_ids, alive

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids`` int64 (m,); unknown ids are ignored. Returns how many were removed."""
        ids = _as_ids(ids)
        with self._lock:
            removed = self._remove_locked(ids, allow_compact=True)
            self._follow_size(len(self))
            return removed

    def _remove_locked(self, ids: np.ndarray, allow_compact: bool) -> int:
        wanted = set(ids.tolist())
        n_pending = 0
        if self._pending and not wanted.isdisjoint(self._pending):
            keep = np.fromiter((i not in wanted for i in self._pend_ids.tolist()), dtype=bool,
                               count=self._pend_ids.size)
            n_pending = int((~keep).sum())
            self._drop_pending_locked(keep)
        present = sorted(i for i in wanted if i in self._live)
        if not present:
            return n_pending
        if self._kind == "hnsw":
            slots = np.fromiter((self._live.pop(i) for i in present), dtype=np.int64,
                                count=len(present))
            self._alive[slots] = False
            self._n_dead += len(present)
            if allow_compact:
                self._maybe_compact_locked()
        else:
            arr = np.asarray(present, dtype=np.int64)
            removed = int(self._index.remove_ids(arr))
            if removed != arr.size:  # should never happen: bookkeeping and faiss disagree
                raise RuntimeError(f"faiss removed {removed} of {arr.size} ids")
            for i in present:
                del self._live[i]
        return len(present) + n_pending

    def _maybe_compact_locked(self) -> None:
        if self._n_dead > max(len(self), 1024):
            self._compact_locked()

    def compact(self) -> None:
        """HNSW only (no-op otherwise): rebuild the graph from live vectors, dropping tombstones (pending vectors
        join the rebuilt graph)."""
        with self._lock:
            if self._kind == "hnsw" and self._n_dead:
                self._compact_locked()

    def _compact_locked(self) -> None:
        live_slots = np.flatnonzero(self._alive[:self._n_slots])
        vectors = (self._index.reconstruct_batch(live_slots) if live_slots.size
                   else np.empty((0, self._dim), dtype=np.float32))
        ids = self._slot_ids[live_slots]
        if self._pending:  # the rebuild folds the pending vectors too
            vectors, ids = np.concatenate([vectors, self._pend_vecs]), np.concatenate([ids, self._pend_ids])
            self._drop_pending_locked(np.zeros(self._pend_ids.size, dtype=bool))
        ef_search = int(self._index.hnsw.efSearch)
        self._index = self._new_hnsw(ef_search)
        if ids.size:
            self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        n = ids.size
        self._slot_ids = np.full(max(n, 1024), -1, dtype=np.int64)
        self._slot_ids[:n] = ids
        self._alive = np.zeros(self._slot_ids.size, dtype=bool)
        self._alive[:n] = True
        self._n_slots = n
        self._n_dead = 0
        self._live = dict(zip(ids.tolist(), range(n), strict=True))

    # ------------------------------------------------------------------ search
    def _search_work(self, nq: int, k: int) -> int:
        """Rough multiply-adds of a search: vectors scanned per query x d x queries."""
        n = len(self._live)
        if self._kind == "flat":
            scanned = n
        elif self._kind == "ivf":
            scanned = n * int(self._index.nprobe) // max(1, int(self._index.nlist))
        else:  # hnsw: about efSearch candidates, each with up to 2M neighbours, and the pending vectors
            scanned = max(int(self._index.hnsw.efSearch), k) * 2 * _HNSW_M + len(self._pending)
        return nq * scanned * self._dim

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by inner product for ``queries`` float32 (q, d) (a 1-D (d,) is one query).

        Returns ``(scores float32 (q, k), ids int64 (q, k))``, best first. When fewer than ``k``
        live vectors are found, rows are padded with score ``-inf`` and id ``-1``. HNSW: the graph's hits merged
        with an exact scan of the pending vectors.
        """
        k = int(k)
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        queries = _as_matrix(queries, self._dim, "queries")
        nq = queries.shape[0]
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        ids = np.full((nq, k), -1, dtype=np.int64)
        if nq == 0 or k == 0:
            return scores, ids
        pend = None
        with self._lock, _omp_threads(1 if self._search_work(nq, k) <= SERIAL_SEARCH_WORK else 1 << 16):
            n_live = len(self._live)
            if self._pending:
                pend = self._pend_ids, self._pend_vecs  # replaced, never modified in place: safe after the lock
            if n_live == 0:
                d = np.empty((nq, 0), dtype=np.float32)
                ext = np.empty((nq, 0), dtype=np.int64)
                valid = np.empty((nq, 0), dtype=bool)
            elif self._kind == "hnsw":
                if self._n_dead == 0 or k + self._n_dead <= MAX_OVERFETCH:
                    # over-fetch past the tombstones, filter below
                    d, lab = self._index.search(queries, min(k + self._n_dead, self._n_slots))
                else:
                    # too many tombstones to over-fetch: let faiss skip them during the search
                    bitmap = np.packbits(self._alive[:self._n_slots], bitorder="little")
                    params = faiss.SearchParametersHNSW()
                    params.sel = faiss.IDSelectorBitmap(self._n_slots, faiss.swig_ptr(bitmap))
                    params.efSearch = int(self._index.hnsw.efSearch)
                    d, lab = self._index.search(queries, min(k, n_live), params=params)
                valid = lab >= 0
                valid[valid] = self._alive[lab[valid]]
                ext = np.where(valid, self._slot_ids[np.where(lab >= 0, lab, 0)], -1)
            else:
                kk = min(k, n_live)
                d, ext = self._index.search(queries, kk)
                valid = ext >= 0
        if self._kind == "hnsw" and not valid.all():
            # move live hits to the front of each row, keeping their score order
            order = np.argsort(~valid, axis=1, kind="stable")
            d = np.take_along_axis(d, order, axis=1)
            ext = np.take_along_axis(ext, order, axis=1)
            valid = np.take_along_axis(valid, order, axis=1)
        m = min(k, ext.shape[1])
        valid = valid[:, :m]
        scores[:, :m] = np.where(valid, d[:, :m], -np.inf)
        ids[:, :m] = np.where(valid, ext[:, :m], -1)
        if pend is not None:
            scores, ids = _merge_exact(scores, ids, queries, *pend)
        return scores, ids


def _merge_exact(scores: np.ndarray, ids: np.ndarray, queries: np.ndarray, extra_ids: np.ndarray,
                 extra_vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge top-k ``(scores, ids)`` (q, k) (padded with -inf / -1) with the exact top-k of ``queries`` (q, d) over
    ``extra_vecs`` (P, d) under ``extra_ids`` (P,), none of them among ``ids``. Returns the merged top-k, best
    first."""
    k = scores.shape[1]
    sims = queries @ extra_vecs.T  # (q, P)
    kk = min(k, sims.shape[1])
    top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk] if kk < sims.shape[1] else \
        np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
    all_scores = np.concatenate([scores, np.take_along_axis(sims, top, axis=1).astype(np.float32)], axis=1)
    all_ids = np.concatenate([ids, extra_ids[top]], axis=1)
    order = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(all_scores, order, axis=1), np.take_along_axis(all_ids, order, axis=1)
