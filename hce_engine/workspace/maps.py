"""Workspace verbs for the 2-D map: a run's UMAP projection, stored in the store, computed as a background job.

UMAP is slow to start (numba compiles for about a minute per process) and to fit on large corpora, so
:meth:`MapVerbs.ensure_projection` computes a missing map in a background job and reports its state
(:class:`MapStatus`); the app polls it and draws the map once it is ``ready``. :meth:`MapVerbs.projection` is the
blocking version.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..arrays import normalise, rows_of
from ..errors import NotFoundError
from ..runs import RunStatus
from .base import WorkspaceBase


@dataclass(frozen=True)
class MapStatus:
    """Where a run's map stands (:meth:`MapVerbs.projection_status`).

    Attributes:
        state: "ready" (stored: :meth:`MapVerbs.projection` answers at once), "computing" (a job of this process
            computes it), "failed" (its last job failed: ``error`` says why) or "missing".
        warm: whether UMAP is compiled in this process (else the first map waits about a minute for it).
        error: why the last job failed, else None.
        elapsed_s: seconds the job has run while computing, else None.
    """
    state: str
    warm: bool
    error: str | None = None
    elapsed_s: float | None = None


class MapVerbs(WorkspaceBase):
    """Mixed into :class:`~hce_engine.workspace.Workspace`."""

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
            self.cache.drop("map", int(run_id))
            got = (ids, np.asarray(xy, dtype=np.float32))
        ids, xy = got
        if ref is not None:
            xy = align(xy, ids, ref[1], ref[0])
        return ids, xy

    def projection_status(self, run_id: int, align_to: int | None = None) -> MapStatus:
        """Where the run's map (and ``align_to``'s) stands, without starting anything."""
        from ..projection import is_warm

        key = _map_key(run_id, align_to)
        job = self.map_jobs.get(key)
        if job is not None:
            return MapStatus("computing", is_warm(), elapsed_s=time.time() - job.started)
        if self._stored_map(run_id) is not None and (align_to is None or self._stored_map(align_to) is not None):
            return MapStatus("ready", is_warm())
        error = self.map_jobs.error(key)
        return MapStatus("failed" if error is not None else "missing", is_warm(), error)

    def ensure_projection(self, run_id: int, align_to: int | None = None, retry: bool = False) -> MapStatus:
        """Make sure the run's map (and ``align_to``'s) exist, computing them in a background job
        (:attr:`map_jobs`) if not. Never blocks on UMAP; a failed map is tried again only with ``retry``."""
        self.run(run_id, "map")
        if align_to is not None:
            self.run(align_to, "map")
        status = self.projection_status(run_id, align_to)
        if status.state in ("ready", "computing") or (status.state == "failed" and not retry):
            return status
        self.map_jobs.start(_map_key(run_id, align_to), "map", lambda job: self.projection(run_id, align_to))
        return self.projection_status(run_id, align_to)

    def maps_missing(self) -> list[int]:
        """Finished runs whose stored map is missing or has fewer points than their corpus has live documents
        (counts only, cheap at a million documents): the maps UMAP will be needed for."""
        points = self.store.projection_counts()
        live = {c["corpus_id"]: int(c["documents"]) for c in self.store.list_corpora()}
        return [r.run_id for r in self.runs(status=RunStatus.DONE, metrics=False)
                if points.get(r.run_id, 0) < live.get(r.corpus_id, 0)]

    def _tree_ids(self, run_id: int) -> np.ndarray | None:
        """The run's current document ids from its (cached) tree, or None if it has no tree."""
        try:
            tree = self.tree_shape(int(run_id)).tree
        except NotFoundError:
            return None
        return np.sort(tree.doc_ids)

    def _stored_map(self, run_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The stored map restricted to the live documents (read-only arrays, cached until the run's documents or
        tree change), or None if missing or some live document lacks a point (documents were added since it was
        computed)."""
        got = self.cache.peek("map", int(run_id))
        if got is not None:
            return got
        ids, xy = self.store.read_projection(int(run_id))
        if len(ids) == 0:
            return None
        live = self._tree_ids(run_id)
        if live is not None:
            rows = rows_of(ids, live)
            if (rows < 0).any():
                return None
            ids, xy = live, xy[rows]
        for a in (ids, xy):
            a.setflags(write=False)
        self.cache.put("map", int(run_id), (ids, xy))
        return ids, xy


def _map_key(run_id: int, align_to: int | None) -> tuple[int, int | None]:
    """A map's key in :attr:`map_jobs`: the run and the run it is aligned to."""
    return int(run_id), None if align_to is None else int(align_to)
