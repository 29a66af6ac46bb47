"""Tests for hce_engine.training: config, pairs, sampler, estimate and the training loop (FakeEncoder)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from hce_engine.encoder.fake import FakeEncoder
from hce_engine.training import (
    PRESETS,
    HierarchicalSampler,
    Pair,
    TrainConfig,
    estimate_seconds,
    ict_pairs,
    lr_factor,
    make_pairs,
    measure_seconds_per_sequence,
    mix_pairs,
    split_sentences,
    split_validation,
    supervised_pairs,
    train,
    tree_shape,
)
from hce_engine.training.validation import hold_out
from hce_engine.tree.tree import Tree


# ---------------------------------------------------------------------------------------------- fixtures
def toy_corpus(n_topics=6, per_topic=10, seed=0):
    """60 documents in 6 topics; each has 4 unique words, 3 topic words and 10 filler words shared by all.

    Each document has 2 queries: 2 of its unique words plus 6 filler words. At the start the fillers
    dominate the bag-of-words vectors; training must learn to rely on the unique words.
    """
    rng = np.random.default_rng(seed)
    filler = [f"fill{i}" for i in range(12)]
    docs, pairs = [], []
    for t in range(n_topics):
        topic = [f"topic{t}w{i}" for i in range(6)]
        for j in range(per_topic):
            uniq = [f"d{t}x{j}u{i}" for i in range(4)]
            words = uniq + list(rng.choice(topic, 3)) + list(rng.choice(filler, 10))
            rng.shuffle(words)
            docs.append(" ".join(words))
            for _ in range(2):
                q = list(rng.choice(uniq, 2, replace=False)) + list(rng.choice(filler, 6))
                rng.shuffle(q)
                pairs.append(Pair(" ".join(q), len(docs) - 1))
    return docs, pairs


def _kmeans(x, k, seed):
    rng = np.random.default_rng(seed)
    c = x[rng.choice(len(x), k, replace=False)].copy()
    for _ in range(10):
        a = np.argmax(x @ c.T, 1)
        for j in range(k):
            if (a == j).any():
                m = x[a == j].sum(0)
                c[j] = m / (np.linalg.norm(m) + 1e-9)
    a = np.argmax(x @ c.T, 1)
    used = np.unique(a)
    return np.searchsorted(used, a), c[used]


def two_level_builder(branching=4, seed=0, calls=None):
    """A small deterministic 2-level spherical k-means tree builder (independent of hce_engine.tree)."""
    def build(vectors):
        if calls is not None:
            calls.append(np.array(vectors))
        v = np.asarray(vectors, np.float32)
        leaf_of_doc, leaf_c = _kmeans(v, int(np.ceil(len(v) / branching)), seed)
        top_of_leaf, top_c = _kmeans(leaf_c, int(np.ceil(len(leaf_c) / branching)), seed)
        nt, nl = len(top_c), len(leaf_c)
        parent = np.concatenate([[-1], np.zeros(nt, int), 1 + top_of_leaf])
        level = np.concatenate([[0], np.ones(nt, int), np.full(nl, 2)])
        root = v.mean(0) / np.linalg.norm(v.mean(0))
        doc_leaf = 1 + nt + leaf_of_doc
        size = np.zeros(len(parent), int)
        for d in doc_leaf:
            n = d
            while n >= 0:
                size[n] += 1
                n = parent[n]
        return Tree(parent, level, np.vstack([root, top_c, leaf_c]), size, doc_leaf, branching=branching)
    return build


pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = dict(epochs=3, batch_size=8, siblings=3, lr=3e-2, memory_lr=3e-2, val_fraction=0.2, val_pool=100,
            select="best", lr_schedule="linear", grad_clip=1.0)


@pytest.fixture(scope="module")
def toy():
    return toy_corpus()


def run(toy, seed=0, **kw):
    docs, pairs = toy
    cfg_kw = {k: v for k, v in kw.items() if k in TrainConfig.help()}
    rest = {k: v for k, v in kw.items() if k not in cfg_kw}
    cfg = TrainConfig(**{**FAST, "seed": seed, **cfg_kw})
    enc = FakeEncoder(dim=32, seed=0)
    rest.setdefault("tree_builder", two_level_builder())
    res = train(enc, docs, pairs, cfg, **rest)
    return enc, res


# ---------------------------------------------------------------------------------------------- config
def test_config_round_trip_presets_and_help():
    cfg = TrainConfig()
    assert (cfg.signal, cfg.negatives, cfg.siblings, cfg.branching, cfg.tau, cfg.lr, cfg.memory_lr) == \
        ("supervised", "siblings", 15, 10, 0.05, 2e-5, 1e-3)
    assert (cfg.max_length, cfg.query_max_length, cfg.epochs, cfg.batch_size) == (256, 64, 3, 32)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert TrainConfig.from_dict(data) == cfg
    assert TrainConfig.from_dict({"lr": 1, "epochs": 2.0}).lr == 1.0
    help_ = TrainConfig.help()
    assert set(help_) == set(cfg.to_dict()) and all(h and "\n" not in h for h in help_.values())
    quick = TrainConfig.preset("quick", seed=3)
    assert (quick.epochs, quick.siblings, quick.max_length, quick.query_max_length, quick.seed) == (1, 3, 128, 32, 3)
    assert TrainConfig.preset("full") == TrainConfig()
    assert set(PRESETS) == {"quick", "standard", "full", "unsupervised"}
    std = TrainConfig.preset("standard")
    assert (std.siblings, std.sibling_max_length, std.negative_max_length, std.precision) == (15, 96, 96, "auto")
    full = TrainConfig.preset("full")
    assert (full.lr_schedule, full.grad_clip, full.val_fraction, full.select) == ("constant", 0.0, 0.0, "last")
    assert TrainConfig.choices()["negatives"] == ("siblings", "random", "in-batch", "teacher")
    for name in PRESETS:
        TrainConfig.preset(name).validate()


def test_config_rejects_unknown_and_invalid_settings():
    with pytest.raises(ValueError, match="unknown training setting.*bogus"):
        TrainConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig.preset("slow")
    with pytest.raises(ValueError) as e:
        TrainConfig(signal="x", tau=0, epochs=0, memory_levels=-1, val_fraction=0.9, device="gpu").validate()
    msg = str(e.value)
    for name in ("signal", "tau", "epochs", "memory_levels", "val_fraction", "device"):
        assert name in msg
    assert TrainConfig().resolve_memory_levels(3, 1000) == 3
    assert TrainConfig().resolve_memory_levels(4, 60_000) == 0
    assert TrainConfig(memory_levels=9).resolve_memory_levels(3, 10) == 3


# ---------------------------------------------------------------------------------------------- pairs
def test_supervised_pairs_skip_unjudged_and_unknown():
    qrels = {"q1": {"a": 1, "b": 0, "zz": 2}, "q2": {"c": 2}, "q3": {"a": 1}}
    out = supervised_pairs(qrels, {"q1": "first", "q2": "second"}, {"a": 0, "b": 1, "c": 2})
    assert out == [Pair("first", 0), Pair("second", 2)]


def test_ict_pairs():
    assert split_sentences("One two three four. Five six! Seven?\nEight nine") == \
        ["One two three four.", "Five six!", "Seven?", "Eight nine"]
    texts = ["Only one sentence here with words.", "Short. Tiny.", ""] + [
        f"The first sentence of doc {i} is here. A second sentence {i} follows now. Third one {i} ends it."
        for i in range(400)]
    pairs = ict_pairs(texts, seed=0, remove_prob=0.9, min_words=4)
    assert len(pairs) == 400 and all(p.doc_pos >= 3 and p.kind == "ict" for p in pairs)
    removed = 0
    for p in pairs:
        assert len(p.query.split()) >= 4 and p.query in texts[p.doc_pos]
        if p.doc_text is not None:
            removed += 1
            assert p.query not in p.doc_text and len(split_sentences(p.doc_text)) == 2
    assert 0.85 < removed / 400 < 0.95
    assert ict_pairs(texts, seed=0) == pairs and ict_pairs(texts, seed=1) != pairs
    assert all(p.doc_text is None for p in ict_pairs(texts, remove_prob=0.0))


def test_split_validation_and_mix():
    pairs = [Pair(f"q{i % 30}", i) for i in range(60)]  # 30 queries, 2 pairs each
    tr, val = split_validation(pairs, 0.2, seed=0)
    assert len({p.query for p in val}) == 6 and len(tr) + len(val) == 60
    assert not {p.query for p in tr} & {p.query for p in val}
    assert split_validation(pairs, 0.2, seed=0) == (tr, val)
    assert split_validation(pairs, 0.0) == (pairs, [])
    ict = [Pair(f"s{i}", i, f"t{i}", "ict") for i in range(100)]
    mix = mix_pairs(pairs[:10], ict, 0.5, seed=0)
    assert len(mix) == 20 and sum(p.kind == "ict" for p in mix) == 10
    # in a joint mix only supervised queries are held out for validation
    tr, val = hold_out(mix, TrainConfig(val_fraction=0.2))
    assert val and all(p.kind == "supervised" for p in val) and len(tr) + len(val) == 20

    texts = ["Alpha beta gamma delta. Epsilon zeta eta theta iota."] * 4
    qrels, queries, ids = {"q": {"a": 1}}, {"q": "alpha"}, {"a": 0}
    assert make_pairs("supervised", texts, qrels=qrels, queries=queries, doc_pos=ids) == [Pair("alpha", 0)]
    assert len(make_pairs("ict", texts)) == 4
    joint = make_pairs("joint", texts, qrels=qrels, queries=queries, doc_pos=ids, joint_ict_ratio=0.5)
    assert [p.kind for p in joint] == ["supervised", "ict"]
    with pytest.raises(ValueError, match="needs qrels"):
        make_pairs("supervised", texts)


# ---------------------------------------------------------------------------------------------- sampler
def test_sibling_negatives_come_from_the_leaf_and_are_deterministic(toy):
    docs, pairs = toy
    tree = two_level_builder()(FakeEncoder(dim=32).encode(docs))
    s = HierarchicalSampler(tree, pairs, docs, batch_size=8, siblings=3, memory_levels=2, seed=4)
    n_masked = 0
    for batch in s.batches(0):
        for i in range(batch.size):
            leaf = tree.doc_leaf[batch.pos_doc[i]]
            neg = batch.neg_doc[i]
            drawn = neg[neg >= 0]
            assert batch.pos_doc[i] not in drawn
            assert (tree.doc_leaf[drawn] == leaf).all()
            assert len(drawn) == min(3, len(tree.leaf_docs(leaf)) - 1)
            n_masked += (neg < 0).sum()
    a = [(b.pair_idx.tolist(), b.leaf_idx.tolist(), b.doc_pos.tolist()) for b in s.batches(1)]
    b = [(b.pair_idx.tolist(), b.leaf_idx.tolist(), b.doc_pos.tolist()) for b in s.batches(1)]
    c = [(b.pair_idx.tolist(), b.leaf_idx.tolist(), b.doc_pos.tolist()) for b in s.batches(2)]
    assert a == b and a != c
    rnd = HierarchicalSampler(tree, pairs, docs, batch_size=8, siblings=3, memory_levels=2, negatives="random")
    for batch in rnd.batches(0):
        assert (batch.neg_doc >= 0).all() and batch.neg_doc.shape[1] == 3
        assert not (batch.neg_doc == batch.pos_doc[:, None]).any()
    inb = HierarchicalSampler(tree, pairs, docs, batch_size=8, siblings=3, memory_levels=2, negatives="in-batch")
    assert next(inb.batches(0)).n_neg == 0


def test_batches_cover_every_pair_once_and_separate_same_document(toy):
    docs, pairs = toy
    tree = two_level_builder()(FakeEncoder(dim=32).encode(docs))
    s = HierarchicalSampler(tree, pairs, docs, batch_size=8, siblings=2, memory_levels=2)
    order = s.batch_order(0)
    flat = np.concatenate(order)
    assert sorted(flat.tolist()) == list(range(len(pairs))) and len(order) == len(s)
    for idx in order:  # every document has 2 pairs; they never share a batch here
        assert len(set(s.pair_doc[idx].tolist())) == len(idx)
    # when only one document is left the duplicates are accepted (and masked by the sampler)
    tiny = HierarchicalSampler(tree, [Pair("a", 0), Pair("b", 0), Pair("c", 0)], docs, batch_size=2,
                               siblings=2, memory_levels=2)
    assert [len(b) for b in tiny.batch_order(0)] == [2, 1]


@pytest.mark.parametrize("batching", ["random", "tree"])
def test_an_epoch_has_exactly_len_batches(toy, batching):
    """The learning-rate schedule and the ETA count len(sampler) steps per epoch: the batches yielded must be
    exactly that many, also when many pairs share a document and the look-ahead runs out."""
    docs, _ = toy
    tree = two_level_builder()(FakeEncoder(dim=32).encode(docs))
    for seed in range(12):
        rng = np.random.default_rng(seed)
        n, B = int(rng.integers(5, 120)), int(rng.integers(1, 12))
        skew = np.r_[[0.5], np.full(len(docs) - 1, 0.5 / (len(docs) - 1))]  # half the pairs on one document
        pairs = [Pair(f"q{i}", int(d)) for i, d in enumerate(rng.choice(len(docs), n, p=skew))]
        s = HierarchicalSampler(tree, pairs, docs, batch_size=B, siblings=2, memory_levels=1, seed=seed,
                                batching=batching)
        for epoch in range(2):
            order = s.batch_order(epoch)
            assert len(order) == len(s) == len(list(s.batches(epoch))), (seed, n, B)
            assert sorted(np.concatenate(order).tolist()) == list(range(n))
            assert all(len(b) == B for b in order[:-1]) if batching == "random" else True


# ---------------------------------------------------------------------------------------------- estimate
def test_estimate_seconds():
    base = TrainConfig(val_fraction=0.1)
    e15 = estimate_seconds(base, n_pairs=920, n_docs=5183, seconds_per_sequence=0.01)
    e3 = estimate_seconds(base.replace(siblings=3), n_pairs=920, n_docs=5183, seconds_per_sequence=0.01)
    e0 = estimate_seconds(base.replace(negatives="in-batch"), n_pairs=920, n_docs=5183, seconds_per_sequence=0.01)
    assert e15.train_seconds > e3.train_seconds > e0.train_seconds > 0
    assert e15.steps == 3 * int(np.ceil((920 - 92) / 32)) and e15.depth == len(tree_shape(5183, 10)) == 3
    assert e15.memory_levels == 3 and e15.reps_per_step == 0
    e_m0 = estimate_seconds(base.replace(memory_levels=0), n_pairs=920, n_docs=5183, seconds_per_sequence=0.01)
    assert e_m0.reps_per_step > 0 and e_m0.train_seconds > e15.train_seconds
    assert e15.total_seconds == pytest.approx(e15.train_seconds + e15.tree_seconds + e15.validation_seconds)
    co = estimate_seconds(base.replace(recluster_every=1), n_pairs=920, n_docs=5183, seconds_per_sequence=0.01)
    assert co.rebuilds == 2 and co.tree_seconds == pytest.approx(3 * e15.tree_seconds)
    sps = measure_seconds_per_sequence(FakeEncoder(), ["some words here"] * 8, max_length=16)
    assert 0 < sps < 1
    assert [lr_factor(s, 10, 0.2, "linear") for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 0.125]
    assert [lr_factor(s, 10, 0.2) for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]  # constant: the reference
    cheap = estimate_seconds(base.replace(sibling_max_length=128), n_pairs=920, n_docs=5183,
                             seconds_per_sequence=0.01)
    assert cheap.train_seconds < 0.75 * e15.train_seconds
    # corpus and validation encodes at encode's own (sorted, packed) speed; the steps keep the padded one
    sorted_speed = estimate_seconds(base.replace(recluster_every=1), n_pairs=920, n_docs=5183,
                                    seconds_per_sequence=0.01, encode_seconds_per_sequence=0.004)
    assert sorted_speed.train_seconds == pytest.approx(co.train_seconds)
    assert sorted_speed.validation_seconds < 0.5 * co.validation_seconds
    assert sorted_speed.tree_seconds == pytest.approx(0.4 * co.tree_seconds)
    # a small corpus: a step's documents are the distinct ones among its draws, never more than the corpus
    small = estimate_seconds(base, n_pairs=300, n_docs=100, seconds_per_sequence=0.01)
    assert small.sequences_per_step - 32 < 100 and small.sequences_per_step - 32 > 32
    # the negatives' own (shorter) length has its own forward+backward factor; the query/positive part keeps its
    kw = dict(n_pairs=920, n_docs=5183, seconds_per_sequence=0.01, grad_chunk=0, train_factor=6.0)
    same = estimate_seconds(base, **kw, negative_train_factor=6.0)
    cheaper = estimate_seconds(base, **kw, negative_train_factor=3.0)
    assert same.train_seconds == pytest.approx(estimate_seconds(base, **kw).train_seconds)
    neg_part = same.train_seconds - estimate_seconds(base.replace(negatives="in-batch"), **kw).train_seconds
    assert same.train_seconds - cheaper.train_seconds == pytest.approx(neg_part / 2)


# ---------------------------------------------------------------------------------------------- train
def test_train_improves_validation_and_writes_checkpoints(toy, tmp_path):
    steps, epochs, trees = [], [], []
    enc, res = run(toy, on_step=steps.append, on_epoch=epochs.append,
                   on_tree=lambda n, t, v: trees.append((n, t.n_docs, v.shape)),
                   checkpoint_dir=str(tmp_path / "ck"))
    assert res.status == "done" and res.improved is True
    assert res.best_val["mrr_at_10"] > res.start_val["mrr_at_10"] + 0.1
    assert res.outcome["verdict"] == "better" and res.checks[0]["name"] == "validation"
    assert [h["epoch"] for h in res.val_history] == [0, 1, 2, 3]
    assert res.steps == len(steps) == steps[-1].total_steps == 3 * steps[0].batches
    assert trees == [(0, 60, (60, 32))]
    ev = steps[-1]
    assert len(ev.level_loss) == len(ev.level_acc) == res.tree.depth == 2
    assert 0 <= ev.leaf_acc <= 1 and ev.eta_s >= 0 and ev.examples_per_s > 0 and ev.epoch == 3
    assert [e.epoch for e in epochs] == [0, 1, 2, 3] and epochs[0].mean_loss is None
    json.dumps([e.to_dict() for e in steps[:2]])  # JSON-safe events
    # the encoder holds the best epoch's weights; best/ is loadable
    assert res.checkpoint and os.path.isfile(os.path.join(res.checkpoint, "hce_best.json"))
    assert os.path.isfile(os.path.join(res.last_checkpoint, "state.pt"))
    best = FakeEncoder.load(res.checkpoint)
    assert torch.equal(best.proj.weight, enc.proj.weight)
    assert res.n_train_pairs + res.n_val_pairs == 120 and res.memory_levels == 2


def test_train_is_deterministic_and_gradient_caching_matches(toy):
    docs, _ = toy
    enc1, r1 = run(toy, epochs=2, grad_chunk=0)
    enc2, r2 = run(toy, epochs=2, grad_chunk=0)
    assert r1.losses == r2.losses
    np.testing.assert_array_equal(enc1.encode(docs), enc2.encode(docs))
    enc3, r3 = run(toy, epochs=2, grad_chunk=8)  # gradient caching: same gradients up to float rounding
    np.testing.assert_allclose(r3.losses, r1.losses, rtol=1e-4, atol=1e-5)
    _, r4 = run(toy, seed=1, epochs=2)
    assert r4.losses != r1.losses


def test_cancel_takes_effect_within_one_step(toy):
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 7

    steps = []
    enc, res = run(toy, on_step=steps.append, should_cancel=cancel, tree_builder=two_level_builder())
    # the cancel callable is also polled by the corpus/validation encodes before training starts
    assert res.status == "cancelled" and 0 < res.steps < 7 and len(steps) == res.steps
    assert res.best_epoch == 0  # the starting weights are kept
    np.testing.assert_array_equal(enc.encode(toy[0][:5]), FakeEncoder(dim=32, seed=0).encode(toy[0][:5]))


@pytest.mark.parametrize("select,validate", [("last", True), ("last", False), ("best", False)])
def test_a_cancelled_run_hands_back_the_starting_weights_not_an_unvalidated_epoch(toy, tmp_path, select, validate):
    """Cancelled in its second epoch, a run whose epochs are not validated (select="last", or no validation
    queries) hands back the starting weights, never the first epoch's half-trained ones as if finished."""
    steps = []
    kw = {} if validate else {"val_pairs": []}
    _, full = run(toy, epochs=2, select=select, **kw)
    n_per_epoch = full.steps // 2
    enc, res = run(toy, epochs=2, select=select, checkpoint_dir=str(tmp_path / "ck"), on_step=steps.append,
                   should_cancel=lambda: len(steps) >= n_per_epoch + 1, **kw)
    assert res.status == "cancelled" and res.epochs_done == 1 and res.best_epoch == 0
    start = FakeEncoder(dim=32, seed=0)
    np.testing.assert_array_equal(enc.encode(toy[0][:5]), start.encode(toy[0][:5]))
    assert torch.equal(FakeEncoder.load(res.checkpoint).proj.weight, start.proj.weight)  # best/ too
    # resumed, the run ends with the last epoch's weights (select="last") like one never cancelled
    enc2, resumed = run(toy, epochs=2, select=select, resume_from=str(tmp_path / "ck"), **kw)
    assert resumed.status == "done" and resumed.best_epoch == 2
    enc_full, _ = run(toy, epochs=2, select=select, **kw)
    np.testing.assert_allclose(enc2.encode(toy[0][:5]), enc_full.encode(toy[0][:5]), rtol=1e-5, atol=1e-6)


def test_resume_continues_from_the_last_epoch(toy, tmp_path):
    _, full = run(toy, epochs=3)
    n_per_epoch = full.steps // 3
    ck = str(tmp_path / "ck")
    steps = []

    def cancel():  # stop a few steps into the third epoch
        return len(steps) >= 2 * n_per_epoch + 2

    _, part = run(toy, epochs=3, checkpoint_dir=ck, on_step=steps.append, should_cancel=cancel)
    assert part.status == "cancelled" and part.epochs_done == 2
    steps2, trees = [], []
    enc, resumed = run(toy, epochs=3, resume_from=ck, on_step=steps2.append,
                       on_tree=lambda *a: trees.append(a[0]))
    assert resumed.status == "done" and resumed.epochs_done == 3 and not trees
    assert [s.step for s in steps2] == list(range(2 * n_per_epoch + 1, 3 * n_per_epoch + 1))
    np.testing.assert_allclose(resumed.losses, full.losses[2 * n_per_epoch:], rtol=1e-6)
    assert [h["epoch"] for h in resumed.val_history] == [0, 1, 2, 3]
    assert resumed.val_history[:3] == part.val_history[:3]
    with pytest.raises(ValueError, match="no checkpoint"):
        run(toy, resume_from=str(tmp_path / "nothing"))


def test_co_training_rebuilds_the_tree(toy):
    calls, trees = [], []
    steps = []
    _, res = run(toy, epochs=3, recluster_every=1, tree_builder=two_level_builder(calls=calls),
                 on_tree=lambda n, t, v: trees.append((n, v.copy())), on_step=steps.append)
    assert [n for n, _ in trees] == [0, 1, 2] and res.rebuilds == 2 and len(calls) == 3
    assert not np.allclose(trees[0][1], trees[2][1])  # re-encoded with the trained encoder
    assert {s.rebuild for s in steps} == {0, 1, 2}


def test_ict_signal_without_validation_and_default_builder():
    texts = [f"Topic {t} sentence one about item {i} and more. Another line on subject {t} with words {i}. "
             f"Final remark {i} for topic {t} here." for t in range(4) for i in range(8)]
    pairs = ict_pairs(texts, seed=0)
    cfg = TrainConfig(epochs=1, batch_size=8, siblings=2, lr=1e-2, val_fraction=0.0, branching=4, seed=0)
    res = train(FakeEncoder(dim=16), texts, pairs, cfg, val_pairs=[])
    assert res.status == "done" and res.improved is None and res.start_val is None and res.steps == 4
    assert res.tree.n_docs == 32 and res.best_epoch == 1


def test_measure_train_factor_leaves_the_encoder_as_it_was():
    from hce_engine.training import measure_train_factor
    enc = FakeEncoder(dim=32, seed=0)
    before = [p.detach().clone() for p in enc.parameters()]
    factor = measure_train_factor(enc, [f"text number {i} about things" for i in range(16)], max_length=32)
    assert factor >= 1.0
    assert all(p.grad is None for p in enc.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, enc.parameters()))


def test_training_imports_only_the_compute_core():
    """Every training module imports with faiss, duckdb, umap, streamlit and scikit-learn unimportable."""
    code = ("import sys, importlib, pkgutil\n"
            "for m in ('faiss', 'duckdb', 'umap', 'streamlit', 'sklearn'): sys.modules[m] = None\n"
            "import hce_engine.training as t\n"
            "for m in pkgutil.iter_modules(t.__path__): importlib.import_module('hce_engine.training.' + m.name)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
