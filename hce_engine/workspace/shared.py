"""Types and constants shared by the workspace modules."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

# Re-exported: hce_engine.workspace.doc_text, and the progress types for the workspace modules.
from ..corpus.text import doc_text as doc_text
from ..progress import Progress as Progress
from ..progress import ProgressFn as ProgressFn

DB_FILE = "hce.duckdb"
#: The workspace's training slot (:mod:`hce_engine.slot`): one training run at a time.
TRAIN_LOCK = "training.lock"
INDEX_FILE = "index.npz"  # a run's saved approximate index, in models/run-N/
SAMPLES_DIR = os.environ.get("HCE_SAMPLES") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "sample_corpora")
SAMPLE_CORPORA = {"jargon": "jargon_file/corpus.jsonl"}
VECTOR_CACHE_RUNS = 3  # runs whose vectors stay in memory for the explorer views
# When a run's freshness suggests work (measured in benchmarks/README.md, "Incremental updates"):
RETRAIN_SHARE = 0.5  # retrain once this share of the live documents arrived after training
REBUILD_SHARE = 0.25  # rebuild the tree once this share arrived after it was built
FOREIGN_FIT_GAP = 0.15  # or once added documents fit their leaf centroids this much worse than the tree's own


def default_workspace() -> str:
    return os.environ.get("HCE_WORKSPACE") or os.path.abspath("hce-workspace")


@dataclass
class ImportReport:
    corpus: str
    format: str
    documents: int
    skipped_empty: int
    queries: int = 0
    qrels: dict[str, int] = field(default_factory=dict)
    empty_judged: int = 0  # judgements naming an empty (skipped) document: kept, count in nDCG and recall

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Hit:
    rank: int
    doc_id: int
    ext_id: str
    title: str
    snippet: str
    score: float
    path: list[int] = field(default_factory=list)
    path_labels: list[str] = field(default_factory=list)
    ranks: dict[str, int | None] = field(default_factory=dict)  # hybrid: rank in the dense and the BM25 list

    def to_dict(self) -> dict:
        return asdict(self)
