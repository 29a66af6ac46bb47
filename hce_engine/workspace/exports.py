"""Workspace verbs that export a run: its encoder, its vectors (Parquet) and TREC run files."""
from __future__ import annotations

import os

from ..errors import HCEError, InputError, NotFoundError
from .base import WorkspaceBase


class ExportVerbs(WorkspaceBase):
    """Mixed into :class:`~hce_engine.workspace.Workspace`."""

    def export_model(self, run_id: int, dest: str) -> str:
        """Copy the run's encoder (a sentence-transformers folder) to ``dest``; returns ``dest``."""
        import shutil
        info = self.run(run_id, "export")
        if not info.model_path:
            raise HCEError(f"run {run_id} has no encoder folder to export")
        if os.path.exists(dest):
            raise InputError(f"{dest} already exists")
        shutil.copytree(info.model_path, dest)
        return dest

    def export_vectors(self, run_id: int, path: str) -> str:
        """Parquet of the run's documents: doc_id, ext_id, title, vector, leaf path and map x/y (if any)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from ..store.store import _float_list_array
        cid = self.run(run_id).corpus_id
        ids, vecs = self.store.read_vectors(run_id, live_only_corpus=cid)
        docs = self.store.documents(cid, doc_ids=ids).set_index("doc_id").loc[ids]
        cols = {"doc_id": pa.array(ids), "ext_id": pa.array(list(docs["ext_id"])),
                "title": pa.array(list(docs["title"])), "vector": _float_list_array(vecs)}
        try:
            tree = self.tree(run_id).tree
            pos = {int(d): p for p, d in enumerate(tree.doc_ids)}
            paths = tree.paths()
            cols["tree_path"] = pa.array([paths[pos[int(d)]].tolist() if int(d) in pos else None for d in ids],
                                         pa.list_(pa.int64()))
        except NotFoundError:
            pass
        pids, xy = self.store.read_projection(run_id)
        if len(pids):
            where = {int(d): i for i, d in enumerate(pids)}
            cols["x"] = pa.array([float(xy[where[int(d)], 0]) if int(d) in where else None for d in ids], pa.float32())
            cols["y"] = pa.array([float(xy[where[int(d)], 1]) if int(d) in where else None for d in ids], pa.float32())
        pq.write_table(pa.table(cols), path)
        return path

    def export_trec(self, run_id: int, split: str, path: str, k: int = 100) -> str:
        """A TREC run file (``qid Q0 docid rank score tag``) of the run on a split's queries."""
        from ..evaluation import rankings_from_arrays, write_trec_run
        info = self.run(run_id)
        cid = info.corpus_id
        queries = self.store.queries(cid)
        qids = [q for q in self.store.qrels(cid, split) if q in queries]
        if not qids:
            raise NotFoundError(f"corpus {info.corpus!r} has no queries with qrels in split {split!r}")
        scores, ids = self.index(run_id).search(self.encode_queries(info, [queries[q] for q in qids]), k)
        docs = self.store.documents(cid, include_removed=True)
        ext_of = dict(zip(docs["doc_id"].astype(int), docs["ext_id"], strict=True))
        ranking = rankings_from_arrays(qids, ids, scores, ext_of)
        write_trec_run(ranking, path, tag=f"hce-run{run_id}")
        return path
