"""The workspace: one folder (a DuckDB file + trained models) and every verb the app and `hce` use.

``core`` holds corpora, baseline runs, search and evaluation; ``training``, ``updates`` and ``exports`` add
the training, living-corpus and export verbs to the same :class:`Workspace` object. The records verbs return
(:class:`RunTree`, :class:`Freshness`, :class:`MapStatus`, :class:`TreeRoute`, :class:`ExperimentStatus`) are
exported here too.
"""
from ..runs import EncodeConfig, Run, RunStatus, RunTree
from .core import Workspace
from .experiments import ExperimentStatus
from .maps import MapStatus
from .search import TreeRoute
from .shared import (
    FOREIGN_FIT_GAP,
    REBUILD_SHARE,
    RETRAIN_SHARE,
    SAMPLE_CORPORA,
    Hit,
    ImportReport,
    default_workspace,
    doc_text,
)
from .updates import Freshness

__all__ = ["Workspace", "Run", "RunStatus", "RunTree", "EncodeConfig",
           "ImportReport", "Hit", "default_workspace", "doc_text", "RETRAIN_SHARE", "REBUILD_SHARE",
           "FOREIGN_FIT_GAP", "SAMPLE_CORPORA", "Freshness", "MapStatus", "TreeRoute", "ExperimentStatus"]
