"""Two real processes on one workspace: `hce train` in one, search, runs and the app's pages in this one,
while the training progresses and after it finishes. And a process that holds the database too long is named
in a clear error, on the page too."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from streamlit.testing.v1 import AppTest

from hce_engine import Workspace
from hce_engine.errors import WorkspaceBusyError
from hce_engine.store import Store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from ui.common import get_workspace  # noqa: E402

HCE = shutil.which("hce", path=os.path.dirname(sys.executable)) or "hce"
APP = os.path.join(ROOT, "ui", "app.py")


def test_search_runs_and_pages_work_while_another_process_trains(tmp_path, fake_model, toy_beir, monkeypatch):
    path = str(tmp_path / "ws")
    ws = Workspace(path, default_model=fake_model)
    ws.import_corpus(toy_beir, name="toy")
    base = ws.encode("toy")
    ws.close()
    env = dict(os.environ, HCE_DEFAULT_MODEL=fake_model)
    trainer = subprocess.Popen([HCE, "--workspace", path, "train", "--corpus", "toy", "--epochs", "60",
                                "--batch-size", "4", "--siblings", "3", "--branching", "3", "--device", "cpu",
                                "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    monkeypatch.setenv("HCE_WORKSPACE", path)
    monkeypatch.setenv("HCE_DEFAULT_MODEL", fake_model)
    monkeypatch.setenv("HCE_WARM_UMAP", "0")
    get_workspace.clear()
    ws = Workspace(path, default_model=fake_model)
    seen_running, rounds = set(), 0
    try:
        deadline = time.time() + 240
        while trainer.poll() is None and time.time() < deadline:
            assert ws.search("toy", "bread oven", run=base)[0].ext_id  # reads vectors and the index
            runs = {r.run_id: r for r in ws.runs("toy")}
            seen_running |= {rid for rid, r in runs.items() if r.kind == "train" and r.status == "running"}
            for page in ("search", "runs"):
                at = AppTest.from_file(APP, default_timeout=60)
                at.switch_page(f"app_pages/{page}.py").run()
                assert not at.exception and not at.error, (page, at.exception, [e.value for e in at.error])
            rounds += 1
        out, err = trainer.communicate(timeout=120)
        assert trainer.returncode == 0, err
        assert seen_running and rounds >= 2, (seen_running, rounds)
        run = json.loads(out.strip().splitlines()[-1])["run_id"]
        assert run in seen_running
        assert ws.run(run).status == "done"  # this process never took it for a dead process's run
        assert len(ws.train_log(run)) == ws.run(run).summary["steps"]
        assert ws.search("toy", "bread oven", run=run)
    finally:
        if trainer.poll() is None:
            trainer.kill()
        ws.close()
        get_workspace().close()  # the pages' workspace (st.cache_resource)
        get_workspace.clear()


def test_a_long_hold_is_reported_with_its_process(tmp_path, monkeypatch):
    """Another process keeps the database open: opening waits (with backoff) up to the timeout, then names it;
    the app shows that message on its page."""
    db = str(tmp_path / "ws" / "hce.duckdb")
    os.makedirs(os.path.dirname(db))
    Store(db).close()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(60)", db], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.time()
        with pytest.raises(WorkspaceBusyError, match=rf"held by process {holder.pid} \(python"):
            Store(db, lock_timeout=1.5)
        assert 1.4 < time.time() - t0 < 10
        monkeypatch.setenv("HCE_WORKSPACE", str(tmp_path / "ws"))
        monkeypatch.setenv("HCE_LOCK_TIMEOUT", "1")
        monkeypatch.setenv("HCE_WARM_UMAP", "0")
        monkeypatch.setattr("hce_engine.store.locks.LOCK_TIMEOUT", 1.0)
        get_workspace.clear()
        at = AppTest.from_file(APP, default_timeout=60).run()
        assert not at.exception
        assert at.error and f"held by process {holder.pid}" in at.error[0].value.replace("\\", "")
    finally:
        holder.kill()
        get_workspace.clear()
    Store(db).close()  # free again once it is gone
