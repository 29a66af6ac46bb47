"""Workspace verbs for the 2-D map: a run's UMAP projection, stored in the store, computed as a background job.

UMAP is slow to start (numba compiles for about a minute per process) and to fit on large corpora, so
:meth:`MapVerbs.ensure_projection` computes a missing map in a background thread and reports its state; the app
polls it and draws the map once it is ``ready``. :meth:`MapVerbs.projection` is the blocking version.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from ..arrays import normalise, rows_of
from ..errors import HCEError, NotFoundError
from .base import WorkspaceBase


class MapVerbs(WorkspaceBase):
    """Mixed into :class:`~hce_engine.workspace.Workspace` (which sets ``_map_jobs`` and ``_map_jobs_lock``)."""

    def projection(self, run_id: int, align_to: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(doc ids int64 ascending, xy float32 (n, 2)) of a finished run's documents; blocking.

        Read from the store when a map covering the run's documents is stored; otherwise computed with UMAP
        (cosine) and stored. With ``align_to`` (another run of the same corpus), a newly computed map starts
        from that run's map (same documents, same places), and the result is Procrustes-aligned onto it, so
        before/after maps can be compared side by side. The stored map is the unaligned one.
        """
        from ..projection import align, project

        info = self.run(run_id, "map")
        ref = None
        if align_to is not None and int(align_to) != int(run_id):
            info.check_same_corpus(self.run(align_to, "map"))
            ref = self.projection(int(align_to), seed=seed)
        got = self._stored_map(run_id)
        if got is None:
            ids, vecs = self.vectors(int(run_id))
            live = self._tree_ids(run_id)
            if live is not None:  # map exactly the documents of the tree when it has one
                rows = rows_of(ids, live)
                ids, vecs = live[rows >= 0], vecs[rows[rows >= 0]]
            init = None
            if ref is not None:
                rows = rows_of(ref[0], ids)
                if (rows >= 0).sum() >= 4:
                    centre = ref[1][rows[rows >= 0]].mean(0)
                    jitter = np.random.default_rng(seed).normal(0, 0.05, size=(len(ids), 2))
                    init = np.where((rows >= 0)[:, None], ref[1][np.maximum(rows, 0)], centre + jitter)
            xy = project(normalise(vecs), seed=seed, init=init)
            self.store.write_projection(int(run_id), ids, xy)
            got = (ids, np.asarray(xy, dtype=np.float32))
        ids, xy = got
        if ref is not None:
            xy = align(xy, ids, ref[1], ref[0])
        return ids, xy

    def projection_status(self, run_id: int, align_to: int | None = None) -> dict:
        """State of the run's map without starting anything: {state: "ready" | "computing" | "failed" |
        "missing", warm: UMAP compiled in this process, error, elapsed_s}."""
        from ..projection import is_warm

        key = (int(run_id), None if align_to is None else int(align_to))
        with self._map_jobs_lock:
            job = self._map_jobs.get(key)
        base = {"warm": is_warm(), "error": None, "elapsed_s": None}
        if job is not None and job["state"] == "computing":
            return {**base, "state": "computing", "elapsed_s": time.monotonic() - job["started"]}
        if self._stored_map(run_id) is not None and (align_to is None or self._stored_map(align_to) is not None):
            return {**base, "state": "ready"}
        if job is not None and job["state"] == "failed":
            return {**base, "state": "failed", "error": job["error"]}
        return {**base, "state": "missing"}

    def ensure_projection(self, run_id: int, align_to: int | None = None, retry: bool = False) -> dict:
        """Make sure the run's map (and ``align_to``'s) exist, computing them in a background thread if not.

        Never blocks on UMAP. Returns :meth:`projection_status`'s dict; ``state`` is "ready" when
        :meth:`projection` will answer at once, "computing" while the thread runs, "failed" (with ``error``)
        when it failed (call again with ``retry=True`` to try again).
        """
        self.run(run_id, "map")
        if align_to is not None:
            self.run(align_to, "map")
        status = self.projection_status(run_id, align_to)
        if status["state"] in ("ready", "computing") or (status["state"] == "failed" and not retry):
            return status
        key = (int(run_id), None if align_to is None else int(align_to))
        job = {"state": "computing", "error": None, "started": time.monotonic()}

        def work():
            try:
                self.projection(run_id, align_to)
                job["state"] = "done"
            except HCEError as exc:
                job.update(state="failed", error=str(exc))
            except Exception as exc:  # noqa: BLE001 - reported to the page, never raised in the thread
                job.update(state="failed", error=f"{type(exc).__name__}: {exc}")

        with self._map_jobs_lock:
            if self._map_jobs.get(key, {}).get("state") == "computing":
                return self.projection_status(run_id, align_to)
            self._map_jobs[key] = job
        threading.Thread(target=work, name=f"projection-{run_id}", daemon=True).start()
        return self.projection_status(run_id, align_to)

    def _tree_ids(self, run_id: int) -> np.ndarray | None:
        """The run's current document ids from its (cached) tree, or None if it has no tree."""
        try:
            tree, _, _ = self.tree(int(run_id))
        except NotFoundError:
            return None
        return np.sort(tree.doc_ids)

    def _stored_map(self, run_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The stored map restricted to the live documents, or None if missing or some live document lacks a
        point (documents were added since it was computed)."""
        ids, xy = self.store.read_projection(int(run_id))
        if len(ids) == 0:
            return None
        live = self._tree_ids(run_id)
        if live is None:
            return ids, xy
        rows = rows_of(ids, live)
        if (rows < 0).any():
            return None
        return live, xy[rows]
