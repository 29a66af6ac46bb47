"""Nothing left behind, nothing half-swapped: what killed processes leave is cleaned when a workspace opens,
folder swaps survive a kill between their renames, and a second Workspace in one process leaves the first
one's running job alone. Kills are real (SIGKILL, or os._exit at the exact point)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile

import numpy as np

from hce_engine.atomic import recover_dir, replace_dir
from hce_engine.workspace import Workspace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_killed_zip_import_leaves_nothing_after_the_next_open(tmp_path, fake_model):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w") as z, z.open("c.txt", "w") as f:  # stored: unpacks at disk speed
        line = (" ".join(f"word{i}" for i in range(40)) + "\n").encode()
        for _ in range(400_000):
            f.write(line)
    env = {**os.environ, "TMPDIR": str(tmp), "HCE_DEFAULT_MODEL": fake_model}
    exe = os.path.join(os.path.dirname(sys.executable), "hce")
    proc = subprocess.Popen([exe, "--workspace", str(tmp_path / "ws"), "import", str(big), "--name", "big"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not any(n.startswith("hce-zip-") for n in os.listdir(tmp)):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [n for n in os.listdir(tmp) if n.startswith("hce-zip-")], "the import was not caught mid-unpack"
    old = tempfile.tempdir
    tempfile.tempdir = str(tmp)
    try:
        ws = Workspace(str(tmp_path / "ws"), default_model=fake_model)
        assert ws.corpora() == []
        ws.close()
    finally:
        tempfile.tempdir = old
    assert os.listdir(tmp) == []


def test_replace_dir_survives_a_kill_between_its_renames(tmp_path):
    final, new = tmp_path / "last", tmp_path / "last.tmp"
    final.mkdir()
    (final / "state").write_text("epoch 1")
    new.mkdir()
    (new / "state").write_text("epoch 2")
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {ROOT!r})
        from hce_engine import atomic
        real = os.replace
        def replace_then_die(src, dst):
            real(src, dst)
            if dst.endswith(".old"):
                os._exit(9)  # killed right after renaming the old folder aside
        atomic.os.replace = replace_then_die
        atomic.replace_dir({str(new)!r}, {str(final)!r})
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    assert not final.exists() and (tmp_path / "last.old").is_dir()
    recover_dir(str(final))
    assert (final / "state").read_text() == "epoch 1"  # the old checkpoint, whole
    replace_dir(str(new), str(final))
    assert (final / "state").read_text() == "epoch 2" and sorted(os.listdir(tmp_path)) == ["last"]


def test_second_workspace_in_one_process_keeps_the_first_ones_job(tmp_path, fake_model, toy_beir):
    ws = Workspace(str(tmp_path / "w"), default_model=fake_model)
    ws.import_corpus(toy_beir, name="toy")
    ws.encode("toy")
    run = ws.start_training("toy", {"epochs": 50, "batch_size": 4, "siblings": 2, "max_length": 32, "device": "cpu"})
    time.sleep(0.5)
    second = Workspace(str(tmp_path / "w"), default_model=fake_model)
    assert run not in second.interrupted_runs
    assert second.run(run).status in ("queued", "running", "done")
    ws.cancel(run)
    ws.jobs.wait(run, 60)
    assert ws.run(run).status in ("cancelled", "done")
    second.close()
    ws.close()


def test_orphan_vectors_of_a_killed_encode_are_dropped(tmp_path, fake_model, toy_beir):
    ws = Workspace(str(tmp_path / "w"), default_model=fake_model)
    ws.import_corpus(toy_beir, name="toy")
    good = ws.encode("toy")
    cid = ws.store.corpus_id("toy")
    dead = ws.store.create_run(cid, "baseline", {}, 0, status="done")
    ids = ws.store.documents(cid)["doc_id"].to_numpy()[:10]
    ws.store.write_vectors(dead, ids, np.ones((10, 16), dtype=np.float32))
    with ws.store.session():  # as a killed encode leaves it
        ws.store.con.execute("UPDATE runs SET status = 'running', pid = NULL WHERE run_id = ?", [dead])
    ws.close()
    ws = Workspace(str(tmp_path / "w"), default_model=fake_model)
    assert ws.run(dead).status == "interrupted"
    assert len(ws.store.vector_ids(dead)) == 0 and len(ws.store.vector_ids(good)) == 36
    ws.close()
