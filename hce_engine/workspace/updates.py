"""Workspace verbs for a living corpus: add and remove documents without retraining."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np

from ..corpus import read_corpus
from ..errors import InputError, NotFoundError
from ..runs import RunStatus, RunTree
from .base import WorkspaceBase
from .shared import FOREIGN_FIT_GAP, REBUILD_SHARE, RETRAIN_SHARE, Progress, ProgressFn, doc_text


@dataclass(frozen=True)
class AddedBatch:
    """One add since a run's tree was built: when (``added_at``, a timestamp), how many ``documents``, and their
    ``fit`` (mean cosine to their leaf centroid)."""
    added_at: Any
    documents: int
    fit: float


@dataclass(frozen=True)
class Freshness:
    """How far the corpus has moved since a run was trained and since its tree was built
    (:meth:`UpdateVerbs.freshness`).

    Attributes:
        run_id, live_documents: the run, and the corpus's live documents now.
        added_since, share_new: documents added after the run finished, and their share of the live ones (0-1).
        tree_rebuild: the rebuild number of the run's latest tree (None without a tree).
        added_since_tree, share_new_tree: the same, after that tree was built.
        fit_tree, fit_added: mean cosine of the tree's own and of the added documents to their leaf centroid
            (None without added documents).
        batches: each add since the tree, with its fit (:class:`AddedBatch`).
        rebuild_suggested: share_new_tree >= ``REBUILD_SHARE``, or a batch fits the tree ``FOREIGN_FIT_GAP``
            worse than its own documents; retrain_suggested: share_new >= ``RETRAIN_SHARE``, or such a batch.
        reasons: why, in words.
    """
    run_id: int
    live_documents: int
    added_since: int
    share_new: float
    tree_rebuild: int | None
    added_since_tree: int
    share_new_tree: float
    fit_tree: float | None
    fit_added: float | None
    batches: tuple[AddedBatch, ...]
    rebuild_suggested: bool
    retrain_suggested: bool
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``hce add --json``, result files): ``run`` for run_id, lists for the tuples."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {"run": out.pop("run_id"), **out, "batches": [asdict(b) for b in self.batches],
                "reasons": list(self.reasons)}


class UpdateVerbs(WorkspaceBase):
    """Mixed into :class:`~hce_engine.workspace.Workspace`."""

    def add_documents(self, corpus: str, path: str, progress: ProgressFn | None = None) -> dict:
        """Add the documents of a file/folder/ZIP to a corpus and to every finished run, without retraining.

        Each run encodes the new documents with its own encoder; they join its vectors, its index and the
        latest tree (under their nearest leaf cluster). Everything is written in one transaction after all
        encoding succeeded, so a failure changes nothing; searches running meanwhile see the old or the new
        state, never half of it. Returns counts and the new store ids.
        """
        from ..tree import add_documents as tree_add
        cid = self.store.corpus_id(corpus)
        parsed = read_corpus(path)
        label = os.path.basename(os.path.normpath(path))
        clash = self.store.existing_ext_ids(cid, [d.ext_id for d in parsed.documents])
        if clash:
            raise InputError(f"{len(clash)} document id(s) already in corpus {corpus!r}, e.g. "
                             f"{sorted(clash)[0]!r}; ids must be new", label)
        docs = parsed.documents
        texts = [doc_text(d.title, d.text) for d in docs]
        runs = self.runs(corpus, status=RunStatus.DONE, metrics=False)
        encoded = {}
        for i, info in enumerate(runs):
            if progress:
                progress(Progress("encode", i, len(runs)))
            encoded[info.run_id] = self.run_encoder(info).encode(texts, max_length=info.doc_max_length)
        new_trees = {}
        with self.cache.lock, self.store.transaction():
            ids = self.store.insert_documents(cid, [d.ext_id for d in docs], [d.title for d in docs],
                                              [d.text for d in docs],
                                              [json.dumps(d.metadata, ensure_ascii=False) if d.metadata else None
                                               for d in docs])
            for run_id, vecs in encoded.items():
                self.store.write_vectors(run_id, ids, vecs)
                trees = self.store.list_trees(run_id)
                if trees:
                    current = self.tree(run_id)  # cached after the first search or view
                    grown = tree_add(current.tree, vecs, ids)
                    self.store.append_tree_docs(run_id, trees[-1]["rebuild"], current.tree, grown)
                    new_trees[run_id] = RunTree(grown, current.terms, current.representatives)
        # in-memory state follows only once the transaction has committed
        self.cache.documents_added(cid, ids, encoded, new_trees)
        return {"corpus": corpus, "added": len(ids), "skipped_empty": parsed.skipped_empty,
                "runs_updated": sorted(encoded), "doc_ids": ids.tolist()}

    def remove_documents(self, corpus: str, ext_ids: Sequence[str]) -> dict:
        """Remove documents (by external id) from the corpus, every run's index and tree; never returned
        again. Unknown ids are an error and nothing is removed."""
        from ..tree import remove_documents as tree_remove
        cid = self.store.corpus_id(corpus)
        ext_ids = list(dict.fromkeys(ext_ids))
        live = self.store.existing_ext_ids(cid, ext_ids, live=True)
        missing = [e for e in ext_ids if e not in live]
        if missing:
            raise NotFoundError(f"not in corpus {corpus!r} (or already removed): {', '.join(missing[:5])}")
        if self.store.live_count(cid) - len(ext_ids) < 1:
            raise InputError("a corpus must keep at least one document")
        runs = [r.run_id for r in self.runs(corpus, status=RunStatus.DONE, metrics=False)]
        new_trees = {}
        with self.cache.lock:
            with self.store.transaction():
                ids = self.store.mark_removed(cid, ext_ids)
                for run_id in runs:
                    trees = self.store.list_trees(run_id)
                    if trees:
                        tree, terms, reps = self.store.read_tree(run_id)
                        new_trees[run_id] = RunTree(tree_remove(tree, ids, strict=False), terms, reps)
                        self.store.write_tree(run_id, trees[-1]["rebuild"], new_trees[run_id].tree, terms, reps,
                                              trees[-1]["stats"])
            self.cache.documents_removed(cid, ids, runs, new_trees)
        return {"corpus": corpus, "removed": len(ids), "runs_updated": runs}

    def rebuild_tree(self, run_id: int) -> int:
        """Cluster a finished run's live documents again (its vectors, branching, builder and seed), so
        documents added since hang under clusters built with them. Stored as the run's next rebuild; the
        encoder and index are untouched. Returns the rebuild number."""
        info = self.run(run_id, "rebuild the tree of")
        trees = self.store.list_trees(run_id)
        ids, vecs = self.vectors(run_id)
        doc_ids, _, texts = self._texts(info.corpus_id)
        keep = np.isin(doc_ids, ids)  # live documents with vectors, in the same (ascending id) order
        cfg = info.config
        rebuild = trees[-1]["rebuild"] + 1 if trees else 0
        self.build_tree(run_id, vecs, ids, [t for t, k in zip(texts, keep, strict=True) if k], rebuild=rebuild,
                        branching=cfg.branching, builder=cfg.builder, seed=cfg.seed or 0)
        return rebuild

    def freshness(self, run_id: int) -> Freshness:
        """How far the corpus has moved since the run was trained and since its tree was built, and whether to
        rebuild its tree or retrain it (:class:`Freshness`; thresholds: benchmarks/README.md)."""
        info = self.run(run_id)
        live = self.store.added_times(info.corpus_id)
        trained_at = info.finished_at or info.created_at
        trees = self.store.list_trees(run_id)
        built_at = trees[-1]["created_at"] if trees else trained_at
        added = int((live["added_at"] > trained_at).sum())
        since_tree = live[live["added_at"] > built_at]
        n = max(1, len(live))
        share_new, share_new_tree = added / n, len(since_tree) / n
        fit_tree, fit_added, batches = self._leaf_fit(run_id, since_tree, trees[-1]["stats"]) \
            if trees and len(since_tree) and info.done else (None, None, [])
        reasons = []
        if share_new >= RETRAIN_SHARE:
            reasons.append(f"{share_new:.0%} of the documents arrived after training "
                           f"(retrain from {RETRAIN_SHARE:.0%})")
        if share_new_tree >= REBUILD_SHARE:
            reasons.append(f"{share_new_tree:.0%} of the documents arrived after the tree was built "
                           f"(rebuild from {REBUILD_SHARE:.0%})")
        foreign = [b for b in batches if fit_tree is not None and fit_tree - b.fit >= FOREIGN_FIT_GAP]
        for b in foreign:
            reasons.append(f"{b.documents:,} documents added {b.added_at:%Y-%m-%d %H:%M} sit at cosine {b.fit:.2f} "
                           f"from their leaf centroid, the tree's own at {fit_tree:.2f}: they look unlike what the "
                           "run was trained on")
        return Freshness(int(run_id), len(live), added, share_new, trees[-1]["rebuild"] if trees else None,
                         len(since_tree), share_new_tree, fit_tree, fit_added, tuple(batches),
                         rebuild_suggested=share_new_tree >= REBUILD_SHARE or bool(foreign),
                         retrain_suggested=share_new >= RETRAIN_SHARE or bool(foreign), reasons=tuple(reasons))

    def _leaf_fit(self, run_id: int, since_tree, tree_stats: dict | None
                  ) -> tuple[float | None, float | None, list[AddedBatch]]:
        """fit_tree, fit_added and per-batch fits (mean leaf-centroid cosine) for the documents of the
        ``since_tree`` frame (doc_id, added_at): one batch per add (they share a transaction's timestamp).
        fit_tree is the tree's own ``intra_cos_leaf``, stored when it was built; only the added documents'
        vectors are read."""
        from ..tree import leaf_fit
        tree = self.tree(run_id).tree
        ids, vecs = self.store.read_vectors(run_id, doc_ids=since_tree["doc_id"].to_numpy(np.int64))
        fit_tree = (tree_stats or {}).get("intra_cos_leaf")
        if fit_tree is None:  # a tree stored without statistics
            all_ids, all_vecs = self.vectors(run_id)
            own = ~np.isin(all_ids, ids)
            fit_tree = leaf_fit(tree, all_ids[own], all_vecs[own])
        batches = []
        for when, group in since_tree.groupby("added_at", sort=True):
            rows = np.isin(ids, group["doc_id"].to_numpy(np.int64))
            fit = leaf_fit(tree, ids[rows], vecs[rows])
            if fit is not None:
                batches.append(AddedBatch(when, int(rows.sum()), fit))
        return fit_tree, leaf_fit(tree, ids, vecs), batches
