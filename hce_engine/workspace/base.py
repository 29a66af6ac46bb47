"""What the verb mixins (search, updates, training, experiments, exports, maps) use of the :class:`Workspace`
they are part of.

Each mixin is one part of a single class, :class:`~hce_engine.workspace.Workspace`: it uses the attributes
``Workspace.__init__`` sets and methods defined in ``core`` or in another mixin. :class:`WorkspaceBase`
declares those, with their types, so every mixin type-checks on its own. It adds nothing at run time: the
attributes are annotations only and the methods exist for the type checker alone.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ..settings import DEFAULT_MAX_LENGTH

if TYPE_CHECKING:
    from ..encoder import TextEncoder
    from ..index.bm25 import BM25Index
    from ..index.vector_index import VectorIndex
    from ..jobs import JobRegistry
    from ..runs import Run, RunStatus, RunTree
    from ..store import Store
    from ..training import TrainConfig
    from ..tree.tree import Tree
    from .cache import WorkspaceCache
    from .shared import ProgressFn


class WorkspaceBase:
    """The attributes and helper methods the mixins share (set and defined by ``core`` and the mixins)."""

    path: str
    store: Store
    cache: WorkspaceCache
    jobs: JobRegistry[int]
    experiment_jobs: JobRegistry[int]
    map_jobs: JobRegistry[tuple[int, int | None]]
    models_dir: str

    if TYPE_CHECKING:
        # core.Workspace
        def model_for(self, model: str | None) -> str: ...

        def encoder(self, model: str | None = None, device: str = "auto",
                    max_length: int = DEFAULT_MAX_LENGTH) -> TextEncoder: ...

        def run_encoder(self, run: Run) -> TextEncoder: ...

        def encode(self, corpus: str, progress: ProgressFn | None = None, cancel: Callable[[], bool] | None = None,
                   **settings) -> int: ...

        def encode_queries(self, run: Run, texts: Sequence[str]) -> np.ndarray: ...

        def _texts(self, corpus_id: int) -> tuple[np.ndarray, list[str], list[str]]: ...

        def run(self, run_id: int, purpose: str | None = None, corpus: str | None = None) -> Run: ...

        def runs(self, corpus: str | None = None, status: RunStatus | str | None = None, kind: str | None = None,
                 with_tree: bool = False, metrics: bool = True) -> list[Run]: ...

        def ensure_run(self, corpus: str, progress: ProgressFn | None = None) -> int: ...

        def _fail(self, run_id: int, exc: BaseException) -> None: ...

        def build_tree(self, run_id: int, vectors: np.ndarray, doc_ids: np.ndarray, texts: Sequence[str],
                       rebuild: int = 0, branching: int = 10, builder: str = "auto", seed: int = 0,
                       tree: Tree | None = None) -> Tree: ...

        def index(self, run_id: int) -> VectorIndex: ...

        def vectors(self, run_id: int) -> tuple[np.ndarray, np.ndarray]: ...

        def tree(self, run_id: int, rebuild: int | None = None) -> RunTree: ...

        def tree_shape(self, run_id: int) -> RunTree: ...

        def delete_run(self, run_id: int) -> None: ...

        # training.TrainingVerbs
        def default_config(self, corpus: str, preset: str | None = None, **overrides) -> TrainConfig: ...

        def _train_config(self, corpus_id: int, config) -> TrainConfig: ...

        def _execute_train(self, run_id: int, progress: ProgressFn | None, cancel: Callable[[], bool] | None,
                           resume: bool = False) -> None: ...

        def resume(self, run_id: int, background: bool = False, progress: ProgressFn | None = None,
                   cancel: Callable[[], bool] | None = None) -> int: ...

        # search.SearchVerbs
        def bm25(self, corpus: str) -> BM25Index: ...

        def evaluate(self, corpus: str, run: int | None = None, split: str = "test", bm25: bool = False,
                     k: int = 100, progress: ProgressFn | None = None, mode: str = "dense", fusion: str = "weighted",
                     weight: float | None = None, index_kind: str = "auto", per_query: bool = False) -> dict: ...
