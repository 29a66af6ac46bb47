"""``hce train`` under ``torchrun`` (several machines' entry): rank 0 runs the command on its workspace, the other
ranks follow without one. Two ranks on this machine with gloo, launched as on several machines."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_workspace_training import count_logged_steps

from hce_engine import Workspace
from hce_engine.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--epochs", "1", "--batch-size", "8", "--siblings", "2", "--branching", "3"]


def torchrun(workspace: str, model: str, *args: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 -m hce_engine.cli -- --workspace WS train ARGS`` (the README's
    ``--``: without it torchrun's parser takes ``--signal`` and ``--nproc`` for abbreviations of its own flags)."""
    env = {**os.environ, "HCE_DEFAULT_MODEL": model, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc-per-node", "2"]
    return subprocess.run([*launch, "-m", "hce_engine.cli", "--", "--workspace", workspace, "train", *args], env=env,
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.fixture
def toy(tmp_path, fake_model, toy_beir):
    path = str(tmp_path / "ws")
    ws = Workspace(path, default_model=fake_model)
    ws.import_corpus(toy_beir, name="toy")
    ws.close()
    return path


def test_a_torchrun_run_is_the_spawned_run(toy, fake_model, monkeypatch, capsys):
    done = torchrun(toy, fake_model, "--corpus", "toy", *TINY, "--signal", "supervised", "--nproc", "2", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    launched = json.loads(done.stdout.strip().splitlines()[-1])["run_id"]
    monkeypatch.setenv("HCE_DEFAULT_MODEL", fake_model)
    assert main(["--workspace", toy, "train", "--corpus", "toy", *TINY, "--nproc", "2", "--json"]) == 0
    spawned = json.loads(capsys.readouterr().out)["run_id"]
    ws = Workspace(toy)
    try:
        assert ws.run(launched).status == "done" and ws.run(launched).config_dict["nproc"] == 2  # the ranks' count
        np.testing.assert_allclose(ws.train_log(launched)["loss"], ws.train_log(spawned)["loss"], rtol=1e-5)
        np.testing.assert_allclose(ws.store.read_vectors(launched)[1], ws.store.read_vectors(spawned)[1], atol=1e-6)
    finally:
        ws.close()


def test_a_cancelled_run_resumes_under_torchrun(toy, fake_model, one_torch_thread, monkeypatch):
    monkeypatch.setattr("hce_engine.workspace.training.LOG_EVERY_S", 0.0)
    cfg = {"epochs": 6, "batch_size": 8, "siblings": 2, "branching": 3, "nproc": 2}
    ws = Workspace(toy, default_model=fake_model)
    try:
        full = ws.train("toy", cfg)
        logged = count_logged_steps(ws)
        run = ws.train("toy", cfg, cancel=lambda: logged["n"] >= 5)
        assert ws.run(run).status == "cancelled"
        full_vectors = ws.store.read_vectors(full)[1]
    finally:
        ws.close()
    done = torchrun(toy, fake_model, "--corpus", "toy", "--resume", str(run), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    ws = Workspace(toy)
    try:
        info = ws.run(run)
        assert info.status == "done" and info.summary["epochs_done"] == 6
        np.testing.assert_allclose(ws.store.read_vectors(run)[1], full_vectors, rtol=1e-4, atol=1e-5)
    finally:
        ws.close()


def test_a_failing_rank_0_stops_the_others(toy, fake_model):
    done = torchrun(toy, fake_model, "--corpus", "nosuch")
    assert done.returncode != 0
    assert "no corpus named 'nosuch'" in done.stderr
    assert "hce train (rank 1): rank 0 stopped before training" in done.stderr


def test_other_ranks_open_no_workspace(tmp_path, toy, fake_model, monkeypatch):
    """A rank other than 0 may run on a machine without the workspace: it follows rank 0 without opening one. Rank
    0's run takes torchrun's process count, and refuses another."""
    from hce_engine import InputError
    from hce_engine.training import torchrun as tr
    followed = []
    monkeypatch.setattr(tr, "follow", lambda: followed.append(1) or True)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    absent = tmp_path / "not-here"
    assert main(["--workspace", str(absent), "train", "--corpus", "toy"]) == 0
    assert followed == [1] and not absent.exists()
    monkeypatch.setenv("RANK", "0")
    ws = Workspace(toy, default_model=fake_model)
    try:
        with pytest.raises(InputError, match="--nproc is 3, but torchrun started 2 processes"):
            ws.train("toy", {"epochs": 1, "nproc": 3})
    finally:
        ws.close()
