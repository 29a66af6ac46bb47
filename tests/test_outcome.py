"""Validation that can see a worse encoder, the run's outcome, the reference schedule and negatives' length."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hce_engine.encoder.fake import FakeEncoder
from hce_engine.evaluation import check, outcome
from hce_engine.precision import resolve_precision
from hce_engine.training import Pair, TrainConfig, train
from hce_engine.training.validation import hold_out
from hce_engine.training.validation import Validator, removed_text, validation_pool
from hce_engine.tree.tree import Tree
from test_training import two_level_builder, toy_corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_outcome_verdicts():
    up, flat, down = (check("v", "mrr_at_10", 0.5, e, 10) for e in (0.6, 0.503, 0.4))
    assert (up["verdict"], flat["verdict"], down["verdict"]) == ("better", "no better", "worse")
    assert outcome([up, flat])["verdict"] == "better"
    assert outcome([up, down])["verdict"] == "worse"  # judged queries that got worse always win
    assert outcome([flat])["verdict"] == "no better"
    assert outcome([])["verdict"] == "unknown"
    assert "WARNING" in outcome([down])["text"] and "0.5000 -> 0.4000" in outcome([down])["text"]


def test_precision_setting():
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", "cpu")


def test_ict_validation_scores_the_sentence_removed_text():
    docs = ["Cats purr loudly at night. Dogs bark at the mailman every day.",
            "Rockets launch into orbit quickly. Satellites circle the earth at speed."]
    p = Pair("Cats purr loudly at night.", 0, None, "ict")
    assert removed_text(p, docs) == "Dogs bark at the mailman every day."
    seen: list[str] = []

    class Recording(FakeEncoder):
        def encode(self, texts, **kw):
            seen.extend(texts)
            return super().encode(texts, **kw)

    enc = Recording(dim=32)
    v = Validator(docs, [p], TrainConfig(val_pool=10))
    res = v.run(enc)
    assert "Dogs bark at the mailman every day." in seen  # the positive without its sentence was scored
    # the stored text still holds the query word for word: scoring it would be an easy, false success
    q = enc.encode([p.query])[0]
    removed = enc.encode([removed_text(p, docs)])[0]
    full, other = enc.encode(docs)
    expect_rank1 = float(q @ removed) > float(q @ other)
    assert res["mrr_at_10"] == (1.0 if expect_rank1 else 0.5) and res["pool"] == 2 and res["n_queries"] == 1


def test_validation_pool_is_the_positives_tree_neighbourhood():
    # 4 leaves of 25 documents under 2 parents; positives in leaf 0
    doc_leaf = np.repeat([3, 4, 5, 6], 25)
    parent = np.array([-1, 0, 0, 1, 1, 2, 2])
    tree = Tree(parent=parent, level=np.array([0, 1, 1, 2, 2, 2, 2]), centroid=np.zeros((7, 4)),
                size=np.array([100, 50, 50, 25, 25, 25, 25]), doc_leaf=doc_leaf)
    assert len(validation_pool(100, np.array([1]), 200, tree, 0)) == 100  # small corpus: all of it
    pool = validation_pool(100, np.array([1, 2]), 40, tree, 0)
    assert len(pool) == 40 and {1, 2} <= set(pool.tolist())
    assert set(range(25)) <= set(pool.tolist())  # the whole leaf first
    assert (doc_leaf[pool] <= 4).all()  # then the parent's other leaf, not random documents


def test_ict_runs_hold_out_pseudo_queries_even_without_val_fraction():
    pairs = [Pair(f"sentence {i} words here", i, f"rest {i}", "ict") for i in range(300)]
    tr, val = hold_out(pairs, TrainConfig(val_fraction=0.0))
    assert len(val) == 30 and len(tr) == 270
    sup = [Pair(f"q{i}", i) for i in range(300)]
    assert hold_out(sup, TrainConfig(val_fraction=0.0)) == (sup, [])


def test_select_last_keeps_the_final_epoch_and_validates_start_and_end():
    docs, pairs = toy_corpus()
    cfg = TrainConfig(epochs=3, batch_size=8, siblings=3, lr=3e-2, memory_lr=3e-2, val_fraction=0.2, seed=0)
    assert (cfg.select, cfg.lr_schedule, cfg.grad_clip) == ("last", "constant", 0.0)
    enc = FakeEncoder(dim=32, seed=0)
    res = train(enc, docs, pairs, cfg, tree_builder=two_level_builder())
    assert [h["epoch"] for h in res.val_history] == [0, 3] and res.best_epoch == 3
    assert res.outcome["verdict"] == "better"
    np.testing.assert_allclose(res.corpus_vectors, enc.encode(docs, max_length=cfg.max_length), atol=1e-6)


def test_training_on_wrong_pairs_is_reported_worse():
    docs, pairs = toy_corpus()
    rng = np.random.default_rng(0)
    wrong = [Pair(p.query, int(d)) for p, d in zip(pairs, rng.permutation([p.doc_pos for p in pairs]))]
    cfg = TrainConfig(epochs=3, batch_size=8, siblings=3, lr=3e-2, memory_lr=3e-2, seed=0)
    res = train(FakeEncoder(dim=32, seed=0), docs, wrong, cfg, val_pairs=pairs[::3],
                tree_builder=two_level_builder())
    assert res.outcome["verdict"] == "worse" and res.improved is False
    assert res.checks[0]["end"] < res.checks[0]["start"]


def test_negatives_are_embedded_at_their_own_length():
    docs, pairs = toy_corpus()
    lengths: list[tuple[int, int]] = []

    class Recording(FakeEncoder):
        def embed(self, texts, max_length=None):
            if torch.is_grad_enabled():  # training passes only (not corpus encodes)
                lengths.append((len(texts), max_length))
            return super().embed(texts, max_length)

    cfg = TrainConfig(epochs=1, batch_size=8, siblings=3, val_fraction=0.0, max_length=64,
                      sibling_max_length=8, query_max_length=16, seed=0)
    train(Recording(dim=32), docs, pairs, cfg, tree_builder=two_level_builder())
    used = {m for _, m in lengths}
    assert used == {64, 8, 16}
    # positives at 64 tokens: at most one per pair; negatives at 8 tokens: the rest of the batch
    assert all(n <= 8 for n, m in lengths if m == 64)
