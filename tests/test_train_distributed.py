"""Data-parallel training (``--nproc``): 2 gloo ranks on the CPU give the gradients and runs of one process."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_training import run, toy_corpus, two_level_builder
from test_workspace_training import count_logged_steps

from hce_engine.encoder.fake import FakeEncoder
from hce_engine.encoder.sharded import free_port
from hce_engine.training import HierarchicalContrastiveLoss, HierarchicalSampler, TrainConfig
from hce_engine.training.distributed import ShardedEmbedder, share, share_sizes, sync_grads
from hce_engine.training.gradcache import Embedder, train_step

#: Gradient caching chunks tried: 0 = every text kind embedded at once; 3 = cached in chunks of 3 texts.
CHUNKS = (0, 3)


def _step_setup():
    """The encoder, loss (memory on level 1, sampled documents on level 2, bidirectional) and first batch."""
    docs, pairs = toy_corpus()
    enc = FakeEncoder(dim=32, seed=0)
    tree = two_level_builder()(enc.encode(docs))
    sampler = HierarchicalSampler(tree, pairs, docs, batch_size=16, siblings=3, memory_levels=1, seed=0)
    batch = next(iter(sampler.batches(0)))
    loss_fn = HierarchicalContrastiveLoss(tree, memory_levels=1, tau=0.05, bidirectional=True)
    return enc, loss_fn, batch, TrainConfig(sibling_max_length=8)


def _grads(enc, loss_fn) -> dict[str, torch.Tensor]:
    named = [*enc.named_parameters(), *(("loss." + n, p) for n, p in loss_fn.named_parameters())]
    return {n: p.grad.clone() for n, p in named}


def _step_rank(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        enc, loss_fn, batch, cfg = _step_setup()
        grads = {}
        for chunk in CHUNKS:
            enc.zero_grad(set_to_none=True)
            loss_fn.zero_grad(set_to_none=True)
            train_step(ShardedEmbedder(enc, torch.device("cpu"), chunk), loss_fn, batch, cfg)
            sync_grads(list(enc.parameters()), list(loss_fn.memory.parameters()))
            grads[chunk] = _grads(enc, loss_fn)
        torch.save(grads, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_shares_are_contiguous_and_cover_every_row():
    for n in (0, 1, 5, 16):
        for world in (1, 2, 3):
            sizes = share_sizes(n, world)
            assert sum(sizes) == n and max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
            rows = [list(range(n))[share(n, world, r)] for r in range(world)]
            assert sum(rows, []) == list(range(n))


def test_two_ranks_give_the_one_process_gradient(tmp_path, one_torch_thread):
    """Same global batch: the 2-rank gradient of every encoder weight and memory vector (after sync_grads, on
    each rank) is the 1-process gradient, directly and with gradient caching (relative to the largest entry)."""
    enc, loss_fn, batch, cfg = _step_setup()
    assert batch.n_positive_texts < len(batch.doc_texts)  # queries, positives and negatives are all shared out
    train_step(Embedder(enc, torch.device("cpu"), 0), loss_fn, batch, cfg)
    one = _grads(enc, loss_fn)
    assert any(n.startswith("loss.memory") for n in one)
    mp.spawn(_step_rank, args=(2, free_port(), str(tmp_path)), nprocs=2)
    worst = 0.0
    for rank in (0, 1):
        two = torch.load(tmp_path / f"rank{rank}.pt")
        for chunk in CHUNKS:
            assert two[chunk].keys() == one.keys()
            for name, g in one.items():
                rel = float((two[chunk][name] - g).abs().max() / g.abs().max())
                assert rel <= 1e-5, (rank, chunk, name, rel)
                worst = max(worst, rel)
    print(f"max relative gradient difference, 2 ranks vs 1 process: {worst:.2e}")


def _build(vectors):
    """The 2-level test tree builder as a module-level function: the spawned ranks unpickle it by name."""
    return two_level_builder()(vectors)


@pytest.fixture(scope="module")
def docs_pairs():
    return toy_corpus()


def test_a_two_rank_run_follows_the_one_process_run(docs_pairs, tmp_path, one_torch_thread):
    """``nproc=2`` (with a co-training rebuild): same batches, same steps, and a loss curve and weights equal
    to one process's up to float rounding. Tolerance rtol 1e-4 / atol 1e-5 (the one the tests of gradient
    caching use): each step's gradient differs from one process's only in summation order (about 1e-7
    relative, see the test above), and 2 epochs of AdamW (lr 3e-2) grow that by far less than 1e-4."""
    steps1, steps2, trees = [], [], []
    enc1, one = run(docs_pairs, epochs=2, recluster_every=1, tree_builder=_build, on_step=steps1.append)
    enc2, two = run(docs_pairs, epochs=2, recluster_every=1, nproc=2, tree_builder=_build, on_step=steps2.append,
                    on_tree=lambda n, t, v: trees.append((n, v.shape)), checkpoint_dir=str(tmp_path / "ck"))
    assert two.status == "done" and two.steps == one.steps == len(steps2) and one.rebuilds == two.rebuilds == 1
    assert trees == [(0, (60, 32)), (1, (60, 32))]
    assert [s.step for s in steps2] == [s.step for s in steps1]
    np.testing.assert_allclose(two.losses, one.losses, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([h["mrr_at_10"] for h in two.val_history],
                               [h["mrr_at_10"] for h in one.val_history], rtol=1e-4, atol=1e-5)
    assert two.best_epoch == one.best_epoch and two.improved is True
    for name, p in enc1.state_dict().items():
        np.testing.assert_allclose(enc2.state_dict()[name], p, rtol=1e-4, atol=1e-5, err_msg=name)
    assert torch.equal(FakeEncoder.load(two.checkpoint).proj.weight, enc2.proj.weight)  # rank 0 wrote best/



def test_a_cancel_before_the_first_step_stops_every_rank(docs_pairs, one_torch_thread):
    """Cancelled while rank 0 encodes the corpus (the others wait for its tree): every rank stops, the run is
    "cancelled" with the starting weights."""
    enc, res = run(docs_pairs, nproc=2, tree_builder=_build, should_cancel=lambda: True)
    assert res.status == "cancelled" and res.steps == 0 and res.tree is None
    assert torch.equal(enc.proj.weight, FakeEncoder(dim=32, seed=0).proj.weight)


TINY = {"epochs": 3, "batch_size": 4, "siblings": 3, "branching": 3, "lr": 1e-2, "memory_lr": 1e-2}


@pytest.fixture
def ws(workspace, toy_beir, one_torch_thread, monkeypatch):
    monkeypatch.setattr("hce_engine.workspace.training.LOG_EVERY_S", 0.0)  # every step logged as it comes
    workspace.import_corpus(toy_beir, name="toy")
    return workspace


def test_the_workspace_trains_a_run_on_two_processes(ws):
    """``Workspace.train`` with nproc 2: the ranks run in spawned processes, this process stores what rank 0
    reports (log, trees, vectors, summary): as the 1-process run's up to float rounding."""
    one, two = ws.train("toy", TINY), ws.train("toy", {**TINY, "nproc": 2})
    info = ws.run(two)
    assert info.status == "done" and info.config_dict["nproc"] == 2
    assert info.summary["steps"] == ws.run(one).summary["steps"] == 12
    np.testing.assert_allclose(ws.train_log(two)["loss"], ws.train_log(one)["loss"], rtol=1e-4, atol=1e-5)
    assert [t["rebuild"] for t in ws.store.list_trees(two)] == [0, 1]
    np.testing.assert_allclose(ws.store.read_vectors(two)[1], ws.store.read_vectors(one)[1], rtol=1e-4, atol=1e-5)


def test_a_two_process_run_cancels_and_resumes(ws):
    """The workspace's cancel stops every rank (rank 0 learns it from this process and tells the others; a step
    or two may pass before it lands); resumed from rank 0's last checkpoint, the run ends like one never
    cancelled."""
    cfg = {**TINY, "epochs": 6, "nproc": 2}  # 24 steps: the cancel lands long before the end
    full = ws.train("toy", cfg)
    logged = count_logged_steps(ws)
    run = ws.train("toy", cfg, cancel=lambda: logged["n"] >= 5)  # 4 steps an epoch: after a checkpoint
    info = ws.run(run)
    assert info.status == "cancelled" and 1 <= info.summary["epochs_done"] < 6 and info.summary["steps"] < 24
    ws.resume(run)
    info = ws.run(run)
    assert info.status == "done" and info.summary["epochs_done"] == 6 and info.summary["steps"] == 24
    np.testing.assert_allclose(ws.store.read_vectors(run)[1], ws.store.read_vectors(full)[1], rtol=1e-4, atol=1e-5)


def test_hce_train_nproc_2(tmp_path, fake_model, toy_beir, monkeypatch, capsys):
    from hce_engine.cli import main
    monkeypatch.setenv("HCE_DEFAULT_MODEL", fake_model)
    ws = ["--workspace", str(tmp_path / "ws")]
    assert main([*ws, "import", toy_beir, "--name", "toy"]) == 0
    capsys.readouterr()
    code = main([*ws, "train", "--corpus", "toy", "--nproc", "2", "--epochs", "1", "--batch-size", "8",
                 "--siblings", "2", "--branching", "3", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    run_id = json.loads(out.out)["run_id"]
    assert main([*ws, "runs", "--corpus", "toy", "--json"]) == 0
    run = [r for r in json.loads(capsys.readouterr().out) if r["run_id"] == run_id][0]
    assert run["status"] == "done" and run["config"]["nproc"] == 2
    code = main([*ws, "train", "--corpus", "toy", "--nproc", "10000"])
    assert code == 1 and "--nproc 10000 is more than the" in capsys.readouterr().err


def test_a_run_on_gpus_encodes_on_its_processes(ws, monkeypatch):
    """Where a run's processes pay for encoding (GPUs; forced here on the CPU), its baseline and final encodes run
    on them too (``encode_sharded``): the vectors are the one-process encodes'."""
    from hce_engine.encoder import sharded
    cfg = {**TINY, "nproc": 2, "max_length": 48}  # shorter than the baseline's documents: a final encode
    real, calls = sharded.encode_sharded, []
    monkeypatch.setattr("hce_engine.workspace.training.encode_procs", lambda c: c.nproc)
    monkeypatch.setattr(sharded, "encode_sharded", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    run = ws.train("toy", cfg)
    assert calls == [2, 2]  # the baseline, then the final vectors
    base = [r for r in ws.runs("toy", kind="baseline")][-1]
    assert base.config.nproc == 2
    monkeypatch.undo()
    again = ws.train("toy", cfg)  # one process encodes (the baseline is reused)
    np.testing.assert_allclose(ws.store.read_vectors(run)[1], ws.store.read_vectors(again)[1], rtol=1e-4, atol=1e-5)
