"""Encoding sharded over processes (``hce encode --nproc``): the same rows, in the same order, as one process."""
from __future__ import annotations

import json
import multiprocessing

import numpy as np
import pytest
from conftest import SAMPLE

from hce_engine.encoder import FakeEncoder, default_model_path, load_encoder
from hce_engine.encoder.sharded import check_nproc, encode_sharded, shard_rows

#: Texts of many lengths (the real encoder sorts them by length; the fake one keeps their order).
TEXTS = [" ".join(f"word{(i * 7 + j) % 50}" for j in range(1 + i % 9)) for i in range(37)]


def test_shards_are_contiguous_runs_of_the_batches_in_order():
    batches = FakeEncoder().batches(TEXTS, batch_size=4)  # 10 batches, the last of 1 text
    for world in (1, 2, 3, 4, 10, 12):
        rows = shard_rows(batches, world)
        assert len(rows) == world and np.array_equal(np.concatenate(rows), np.arange(37))
        sizes = [len(r) // 4 + (len(r) % 4 > 0) for r in rows]  # batches per rank
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert [len(r) for r in shard_rows(FakeEncoder().batches(TEXTS[:1]), 2)] == [1, 0]
    assert [len(r) for r in shard_rows([], 2)] == [0, 0]


@pytest.mark.parametrize("n", [37, 1])  # uneven shards (37 texts in 10 batches); fewer texts than processes
def test_two_processes_encode_what_one_does(fake_model, n):
    events = []
    two = encode_sharded(fake_model, TEXTS[:n], 2, batch_size=4, progress=events.append)
    one = load_encoder(fake_model).encode(TEXTS[:n], batch_size=4)
    assert two.dtype == np.float32 and two.shape == one.shape == (n, 32)
    assert np.abs(two - one).max() <= 1e-5
    assert events and events[-1].done == events[-1].total == n
    assert [e.done for e in events] == sorted(e.done for e in events)


def test_cancel_stops_the_processes(fake_model):
    with pytest.raises(InterruptedError):
        encode_sharded(fake_model, TEXTS, 2, cancel=lambda: True)
    assert not multiprocessing.active_children()


def test_nproc_is_checked_against_the_machine():
    check_nproc(1, "cpu")
    for bad, needle in ((0, "--nproc must be an integer >= 1"), (10_000, "--nproc 10000 is more than the")):
        with pytest.raises(ValueError, match=needle):
            check_nproc(bad, "cpu")


@pytest.fixture
def toy_hce(hce, toy_beir):
    """The ``hce`` fixture (conftest) with the toy corpus imported as "toy"."""
    hce("import", toy_beir, "--name", "toy")
    return hce


def test_cli_encode_with_two_processes(toy_hce):
    from hce_engine import Workspace

    code, out, err = toy_hce("encode", "--corpus", "toy", "--nproc", "2", "--batch-size", "5", "--json")
    assert code == 0, err
    sharded = json.loads(out)["run_id"]
    code, out, err = toy_hce("encode", "--corpus", "toy", "--batch-size", "5", "--json")
    assert code == 0, err
    single = json.loads(out)["run_id"]
    ws = Workspace(toy_hce.workspace)
    try:
        run = ws.run(sharded)
        assert run.done and run.config.nproc == 2 and run.summary["documents"] == 36
        (ids2, vecs2), (ids1, vecs1) = ws.vectors(sharded), ws.vectors(single)
        assert np.array_equal(ids2, ids1) and np.abs(vecs2 - vecs1).max() <= 1e-5
        assert ws.tree(sharded).tree.n_docs == 36
    finally:
        ws.close()


@pytest.mark.parametrize("nproc,needle", [("0", "nproc must be an integer >= 1"),
                                          ("10000", "--nproc 10000 is more than the")])
def test_cli_rejects_a_bad_nproc(toy_hce, nproc, needle):
    code, out, err = toy_hce("encode", "--corpus", "toy", "--nproc", nproc)
    assert code == 1 and needle in err and out == ""


@pytest.mark.model
def test_real_model_two_processes_encode_what_one_does():
    with open(SAMPLE) as f:
        texts = [json.loads(line)["text"] for line in f][:40]
    one = load_encoder(None, device="cpu").encode(texts, batch_size=4)
    two = encode_sharded(default_model_path(), texts, 2, batch_size=4, device="cpu")
    assert np.abs(two - one).max() <= 1e-5
