"""One rule each: a run's starting run, its headline metric, the default token length and the device
setting are each decided by one function that every caller uses; the views never import the layers above."""
from __future__ import annotations

import ast
import inspect
import pathlib

import pytest

from hce_engine.runs import EncodeConfig, Run, RunStatus
from hce_engine.settings import DEFAULT_MAX_LENGTH, device_error

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(kind="train", summary=None, metrics=()):
    return Run(run_id=7, corpus="c", corpus_id=1, kind=kind, status=RunStatus.DONE, config_dict={},
               summary=summary, metrics=list(metrics))


def _row(split, system="dense", ndcg=0.5):
    return {"split": split, "system": system, "ndcg_at_10": ndcg, "recall_at_10": 0.0, "recall_at_100": 0.0,
            "mrr_at_10": 0.0, "queries": 3}


def test_headline_prefers_the_test_split_for_the_runs_page_and_the_cli(monkeypatch, capsys):
    run = _run(metrics=[_row("dev", "bm25", 0.9), _row("dev", ndcg=0.4), _row("test", ndcg=0.6)])
    assert run.headline()["split"] == "test"
    assert _run(metrics=[_row("dev", "bm25"), _row("dev", ndcg=0.4)]).headline()["ndcg_at_10"] == 0.4
    assert _run(metrics=[_row("dev", "bm25")]).headline() is None
    # hce runs shows that row (it used to show the first dense row, here dev's)
    from hce_engine.cli.runs import cmd_runs

    class FakeWs:
        def runs(self, corpus):
            return [run]
    cmd_runs(FakeWs(), type("A", (), {"corpus": None, "json": False})())
    out = capsys.readouterr().out
    assert "0.6000 (test)" in out and "(dev)" not in out


def test_starting_run_is_the_recorded_one_everywhere(toy_ws):
    from hce_engine import views
    ws = toy_ws
    run = ws.train("toy", {"epochs": 1, "batch_size": 4, "siblings": 2, "branching": 3})
    start = ws.run(run).starting_run
    assert start is not None and ws.run(start).kind == "baseline"
    assert ws.run(start).starting_run is None and _run(summary={}).starting_run is None
    newer = ws.encode("toy", max_length=64)  # a newer zero-shot run of the same encoder
    assert newer != start
    assert views.default_compare_run(ws, run) == start  # the run's own start, not the newest baseline


def test_one_default_token_length():
    from hce_engine.encoder import FakeEncoder, encoder
    from hce_engine.training import TrainConfig
    from hce_engine.training.gradcache import auto_grad_chunk
    from hce_engine.views.corpus_stats import corpus_stats
    from hce_engine.workspace import Workspace
    assert encoder.DEFAULT_MAX_LENGTH is DEFAULT_MAX_LENGTH
    assert EncodeConfig().max_length == TrainConfig().max_length == FakeEncoder().max_length == DEFAULT_MAX_LENGTH
    for fn, arg in ((Workspace.encoder, "max_length"), (corpus_stats, "max_tokens"),
                    (auto_grad_chunk, "max_length")):
        assert inspect.signature(fn).parameters[arg].default == DEFAULT_MAX_LENGTH
    assert _run("baseline").doc_max_length == _run("baseline").query_max_length == DEFAULT_MAX_LENGTH


@pytest.mark.parametrize("device,ok", [("auto", True), ("cpu", True), ("cuda", True), ("cuda:1", True),
                                       ("mps", True), ("cuda:", False), ("gpu", False), ("CPU", False),
                                       (3, False), (None, False)])
def test_one_device_rule(device, ok):
    from hce_engine.encoder import resolve_device
    from hce_engine.training import TrainConfig
    assert (device_error(device) is None) == ok
    if ok:
        TrainConfig(device=device).validate()
        EncodeConfig(device=device).validate()
        return
    with pytest.raises(ValueError, match="device must be"):
        TrainConfig(device=device).validate()
    with pytest.raises(ValueError, match="device must be"):
        EncodeConfig(device=device).validate()
    if isinstance(device, str):
        with pytest.raises(ValueError, match="device must be"):
            resolve_device(device)


# -- import direction: stages <- workspace <- views <- plotting <- ui / cli ----------------------------------
def _imported_modules(source: str, package: str) -> list[str]:
    """Every module a file of ``package`` imports (absolute names; relative imports resolved against the
    package), at any depth of the file (a lazy import inside a function counts too)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            out += [base] + [f"{base}.{a.name}" for a in node.names]
    return out


def _forbidden(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in ("hce_engine.plotting", "hce_engine.cli", "ui"))


def test_views_never_import_plotting_ui_or_cli():
    files = sorted((ROOT / "hce_engine" / "views").glob("*.py"))
    assert len(files) > 5
    bad = {f.name: [m for m in _imported_modules(f.read_text(), "hce_engine.views") if _forbidden(m)]
           for f in files}
    assert not {k: v for k, v in bad.items() if v}, bad


def test_the_import_check_sees_relative_lazy_and_absolute_imports():
    """The check above would catch the import it was written for (and its other spellings), not the allowed."""
    for src in ("from ..plotting.map import default_level\n", "def f():\n    from ..plotting import map\n",
                "import hce_engine.plotting.map\n", "from hce_engine import cli\n", "from ui.common import x\n",
                "from .. import plotting\n", "from ..cli.render import table\n"):
        assert any(_forbidden(m) for m in _imported_modules(src, "hce_engine.views")), src
    for src in ("from .map import default_level\n", "from ..workspace import Workspace\n", "import numpy\n"):
        assert not any(_forbidden(m) for m in _imported_modules(src, "hce_engine.views")), src


# -- one metric vocabulary: the labels are written in hce_engine.evaluation.metrics and nowhere else -------------
def _label_literals(source: str, labels: set[str]) -> set[str]:
    """The metric labels ``source`` writes as a string literal of its own (an f-string's text parts count)."""
    return {n.value.strip() for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.strip() in labels}


def test_metric_labels_are_written_once():
    from hce_engine.evaluation import METRIC_LABELS
    labels = set(METRIC_LABELS.values())
    assert "nDCG@10" in labels
    files = sorted(ROOT.glob("hce_engine/**/*.py")) + sorted(ROOT.glob("ui/**/*.py"))
    found = {f.relative_to(ROOT).as_posix(): _label_literals(f.read_text(), labels) for f in files}
    writers = {f for f, hits in found.items() if hits}
    assert writers == {"hce_engine/evaluation/metrics.py"}, {f: found[f] for f in writers}
    assert {"nDCG@10", "R@10"} <= _label_literals('x = {"a": "nDCG@10"}\ny = f"R@10 {x}"\n', labels)
    assert not _label_literals('"""nDCG@10 of a run."""\nx = "nDCG@10 on the old queries"\n', labels)


# -- the storage layer: only the workspace (and the store itself) reaches a workspace's ``store`` --------------
def _store_uses(source: str) -> list[int]:
    """Lines of a file that touch an attribute named ``store`` (``ws.store``, ``self.ws.store``, ...)."""
    return sorted({n.lineno for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute) and n.attr == "store"})


def test_only_the_workspace_reaches_the_store():
    """Views, experiments, plotting, the CLI and the app read through the workspace's own methods."""
    inside = (ROOT / "hce_engine" / "workspace", ROOT / "hce_engine" / "store")
    files = [f for top in ("hce_engine", "ui") for f in sorted((ROOT / top).rglob("*.py"))
             if not any(f.is_relative_to(d) for d in inside)]
    assert len(files) > 30
    bad = {str(f.relative_to(ROOT)): lines for f in files if (lines := _store_uses(f.read_text()))}
    assert not bad, bad


def test_benchmarks_reach_the_store_only_to_seed_synthetic_runs():
    """Benchmarks read through the workspace too. Two files may write the store: common.py's documented
    ``seed_corpus`` / ``seed_run`` (runs from vectors made outside the engine), and growth.py, which times the
    store's own writes and reads."""
    allowed = {"benchmarks/common.py", "benchmarks/growth.py"}
    files = sorted((ROOT / "benchmarks").glob("*.py"))
    assert len(files) > 15
    bad = {str(f.relative_to(ROOT)): lines for f in files
           if str(f.relative_to(ROOT)) not in allowed and (lines := _store_uses(f.read_text()))}
    assert not bad, bad


def test_the_store_check_sees_each_spelling():
    for src in ("ws.store.documents(1)\n", "x = self.ws.store\n", "def f(w):\n    return w.store.qrels(1, 's')\n"):
        assert _store_uses(src), src
    for src in ("ws.documents('c')\n", "store = 1\n", "from ..store import Store\n", "import hce_engine.store\n"):
        assert not _store_uses(src), src
