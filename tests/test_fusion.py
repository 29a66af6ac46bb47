"""Hybrid search: the fusion functions as pure data, and the hybrid mode through the Workspace."""
from __future__ import annotations

import numpy as np
import pytest

from hce_engine import InputError
from hce_engine.index.fusion import DEFAULT_WEIGHT, fit_weight, fuse, rrf, weighted


def ranked(pairs):
    """[(id, score), ...] best first -> (scores, ids)."""
    return np.array([s for _, s in pairs], np.float32), np.array([i for i, _ in pairs], np.int64)


def test_weighted_normalises_against_the_theoretical_floor():
    dense = ranked([(1, 0.8), (2, 0.6), (3, 0.0)])      # cosine: floor -1 -> 1.0, 0.889, 0.556
    bm25 = ranked([(3, 10.0), (2, 5.0)])               # floor 0 -> 1.0, 0.5
    s, i = weighted(dense, bm25, weight=0.5, k=10)
    expect = {1: 0.5 * 1.0, 2: 0.5 * 1.6 / 1.8 + 0.25, 3: 0.5 * 1.0 / 1.8 + 0.5}
    assert i.tolist() == sorted(expect, key=lambda d: -expect[d])
    assert np.allclose(s, [expect[d] for d in i.tolist()], atol=1e-6)


def test_weight_extremes_reproduce_each_list():
    dense = ranked([(1, 0.9), (2, 0.5), (3, 0.1)])
    bm25 = ranked([(3, 9.0), (4, 8.0), (1, 1.0)])
    assert weighted(dense, bm25, 1.0, 3)[1].tolist() == [1, 2, 3]
    assert weighted(dense, bm25, 0.0, 3)[1].tolist() == [3, 4, 1]
    with pytest.raises(ValueError, match="weight"):
        weighted(dense, bm25, 1.5, 3)


def test_missing_documents_score_the_floor_of_that_list():
    # 9 is only in BM25: its dense part is the floor (0 after normalising), not a crash or a NaN
    s, i = weighted(ranked([(1, 0.5)]), ranked([(9, 3.0)]), 0.5, 5)
    assert i.tolist() == [1, 9] and np.allclose(s, [0.5, 0.5])  # tie: 1 has the better rank (both rank 1) -> id
    s, i = weighted(ranked([]), ranked([(9, 3.0), (8, 0.0)]), 0.5, 5)  # empty dense list (e.g. no vectors)
    assert i.tolist() == [9, 8] and np.isfinite(s).all()


def test_padding_and_non_finite_scores_are_dropped():
    dense = (np.array([0.5, -np.inf, -np.inf], np.float32), np.array([4, -1, -1]))
    bm25 = (np.array([2.0, -np.inf], np.float32), np.array([5, -1]))
    assert sorted(weighted(dense, bm25, 0.5, 10)[1].tolist()) == [4, 5]
    assert sorted(rrf([dense[1], bm25[1]], 10)[1].tolist()) == [4, 5]


def test_ties_break_by_best_rank_then_id():
    # all-equal normalised scores: the better single-list rank wins, then the smaller id
    s, i = weighted(ranked([(5, 1.0), (7, 1.0)]), ranked([(6, 2.0), (2, 2.0)]), 0.5, 4)
    assert i.tolist() == [5, 6, 2, 7] and len(set(np.round(s, 6))) == 1
    assert rrf([np.array([5, 7]), np.array([6, 2])], 4)[1].tolist() == [5, 6, 2, 7]


def test_rrf_scores_and_weights():
    s, i = rrf([np.array([1, 2, 3]), np.array([3, 1])], 3)
    assert i.tolist() == [1, 3, 2]
    assert np.allclose(s, [1 / 61 + 1 / 62, 1 / 63 + 1 / 61, 1 / 62])
    assert rrf([np.array([1, 2]), np.array([2, 1])], 2, weights=[1.0, 3.0])[1].tolist() == [2, 1]
    with pytest.raises(ValueError, match="2 rankings"):
        rrf([np.array([1]), np.array([2])], 2, weights=[1.0])
    assert fuse(ranked([(1, 0.1)]), ranked([(2, 1.0)]), 2, "rrf")[1].tolist() == [1, 2]
    with pytest.raises(ValueError, match="fusion"):
        fuse(ranked([(1, 0.1)]), ranked([]), 2, "max")


def test_fit_weight_finds_the_weight_that_ranks_the_relevant_first():
    # query a: relevant 2 is dense #2 but BM25 #1; query b: relevant 5 is dense #1 and BM25 #3
    dense = [ranked([(1, 0.9), (2, 0.85), (3, 0.1)]), ranked([(5, 0.9), (6, 0.2), (7, 0.1)])]
    bm25 = [ranked([(2, 10.0), (3, 5.0), (1, 1.0)]), ranked([(6, 10.0), (7, 9.0), (5, 8.0)])]
    relevant = {"a": 2, "b": 5}

    def top1(runs):
        return sum(runs[q][0] == d for q, d in relevant.items()) / 2
    best, table = fit_weight(dense, bm25, ["a", "b"], top1)
    assert table[best] == 1.0 and table[0.0] == 0.5 and table[1.0] == 0.5
    assert min(w for w, v in table.items() if v == 1.0) <= best <= max(w for w, v in table.items() if v == 1.0)
    # flat score: the preferred (default) weight wins
    assert fit_weight(dense, bm25, ["a", "b"], lambda runs: 0.0)[0] == DEFAULT_WEIGHT


# -- through the Workspace (fake encoder) -------------------------------------------------------------
@pytest.fixture()
def toy(workspace, toy_beir):
    workspace.import_corpus(toy_beir, name="toy")
    return workspace, workspace.encode("toy", branching=3)


def test_hybrid_search_fuses_and_reports_each_lists_rank(toy):
    ws, run = toy
    dense = ws.search("toy", "guitar chord melody", run=run, k=36)
    bm25 = ws.bm25_search("toy", "guitar chord melody", k=36)
    hits = ws.search("toy", "guitar chord melody", run=run, k=10, mode="hybrid")
    assert len(hits) == 10 and hits[0].ext_id.startswith("music")
    d_rank = {h.doc_id: h.rank for h in dense}
    b_rank = {h.doc_id: h.rank for h in bm25}
    for h in hits:
        assert h.ranks == {"dense": d_rank.get(h.doc_id), "bm25": b_rank.get(h.doc_id)}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # weight 1 is the dense ranking, weight 0 the BM25 ranking (on the documents BM25 matches)
    assert [h.doc_id for h in ws.search("toy", "guitar chord melody", run=run, mode="hybrid", weight=1.0)] == \
        [h.doc_id for h in dense[:10]]
    only_bm25 = ws.search("toy", "guitar chord melody", run=run, mode="hybrid", weight=0.0)
    assert [h.doc_id for h in only_bm25[:len(bm25[:10])]] == [h.doc_id for h in bm25[:10]]
    rrf_hits = ws.search("toy", "guitar chord melody", run=run, mode="hybrid", fusion="rrf")
    assert rrf_hits[0].ranks and len(rrf_hits) == 10
    assert [h.doc_id for h in ws.search("toy", "guitar", mode="bm25")] == [h.doc_id for h in ws.bm25_search("toy", "guitar")]
    with pytest.raises(InputError, match="mode must be one of dense, bm25, hybrid"):
        ws.search("toy", "guitar", mode="sparse")
    with pytest.raises(InputError, match="between 0 and 1"):
        ws.search("toy", "guitar", mode="hybrid", weight=2.0)


def test_hybrid_weight_is_fitted_on_train_and_stored(toy):
    ws, run = toy
    fit = ws.fusion_weight("toy", run)
    assert fit["split"] == "train" and fit["queries"] == 15 and 0.0 <= fit["weight"] <= 1.0
    assert ws.store.fusion_weight(run)["weight"] == fit["weight"]
    out = ws.evaluate("toy", run=run, mode="hybrid")
    assert set(out) >= {"dense", "bm25", "hybrid", "fusion"} and out["fusion"]["split"] == "train"
    assert {m["system"] for m in ws.store.metrics(run)} == {"dense", "bm25", "hybrid"}
    # evaluating the train split itself never fits on it: the default weight is used (no other judged split)
    out = ws.evaluate("toy", run=run, split="train", mode="hybrid")
    assert out["fusion"]["split"] is None and out["fusion"]["weight"] == DEFAULT_WEIGHT
    encoded = []
    real = ws.encode_queries
    ws.encode_queries = lambda info, texts: encoded.append(len(texts)) or real(info, texts)
    out = ws.evaluate("toy", run=run, mode="hybrid", fusion="rrf")
    assert out["fusion"]["fusion"] == "rrf" and "hybrid-rrf" in {m["system"] for m in ws.store.metrics(run)}
    assert encoded == [9]  # the test queries are encoded once for the dense and the hybrid rows
    ws.delete_run(run)
    assert ws.store.fusion_weight(run) is None


def test_hybrid_follows_added_and_removed_documents(toy, tmp_path):
    ws, run = toy
    path = tmp_path / "new.jsonl"
    path.write_text('{"_id": "new-1", "text": "quasar pulsar guitar"}\n')
    ws.add_documents("toy", str(path))
    assert ws.search("toy", "quasar pulsar", run=run, mode="hybrid")[0].ext_id == "new-1"
    ws.remove_documents("toy", ["new-1"])
    assert "new-1" not in [h.ext_id for h in ws.search("toy", "quasar pulsar", run=run, mode="hybrid", k=36)]
