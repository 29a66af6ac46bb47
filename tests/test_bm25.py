"""BM25Index: ranking sanity, stemming, padding, bm25s edge cases (k > n, stop-word queries)."""
from __future__ import annotations

import numpy as np
import pytest

from hce_engine.index import BM25Index

DOCS = {
    101: "The cat sat on the mat.",
    102: "Dogs run fast in the park every morning.",
    103: "I was running late for the quantum physics lecture.",
    104: "A recipe for tomato soup with basil.",
    105: "Cats and dogs are popular pets; the cat is independent.",
    106: "Stock markets fell sharply on Monday.",
}


@pytest.fixture(scope="module")
def index() -> BM25Index:
    return BM25Index.build(list(DOCS), list(DOCS.values()))


def test_exact_term_match_ranks_first(index):
    scores, ids = index.search(["tomato soup", "quantum physics", "stock markets monday"], 3)
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and ids.shape == (3, 3)
    assert ids[:, 0].tolist() == [104, 103, 106]
    # only one doc matches each query: the rest is padding
    assert (ids[:, 1:] == -1).all() and np.isneginf(scores[:, 1:]).all()
    assert (scores[:, 0] > 0).all()


def test_stemming_running_matches_run(index):
    _, ids = index.search(["running"], 6)
    got = [i for i in ids[0].tolist() if i != -1]
    assert set(got) == {102, 103}  # "run" (102) and "running" (103) share the stem
    _, ids = index.search(["cat"], 6)
    hits = [i for i in ids[0].tolist() if i != -1]
    assert hits[0] == 105 or hits[0] == 101
    assert set(hits) == {101, 105}  # "Cats" stems to "cat" too


def test_scores_sorted_and_ties_by_build_order():
    idx = BM25Index.build([7, 3, 9], ["apple banana", "apple banana", "cherry"])
    scores, ids = idx.search(["apple"], 3)
    assert ids[0].tolist() == [7, 3, -1]  # identical docs tie: build order
    assert scores[0, 0] == scores[0, 1] > 0


def test_k_larger_than_corpus(index):
    scores, ids = index.search(["cat dogs tomato stock quantum run"], 50)
    assert ids.shape == (1, 50)
    assert set(ids[0, :6].tolist()) == set(DOCS)
    assert (ids[0, 6:] == -1).all() and np.isneginf(scores[0, 6:]).all()
    assert np.all(np.diff(scores[0, :6]) <= 0)


def test_stop_word_only_empty_and_unknown_queries(index):
    scores, ids = index.search(["the and of a", "", "zzzunknownword", "cat"], 4)
    assert (ids[:3] == -1).all() and np.isneginf(scores[:3]).all()
    assert ids[3, 0] in (101, 105)


def test_degenerate_corpora():
    only_stop = BM25Index.build([1, 2], ["the of and", ""])  # bm25s.index would crash here
    assert (only_stop.search(["the cat"], 3)[1] == -1).all()
    empty = BM25Index.build([], [])
    assert len(empty) == 0 and empty.search(["cat"], 2)[1].shape == (1, 2)
    with pytest.raises(ValueError):
        BM25Index.build([1, 1], ["a b", "c d"])
    idx = BM25Index.build([5], ["hello world"])
    assert idx.search("hello", 1)[1].tolist() == [[5]]  # a bare string is one query
    assert idx.search(["hello"], 0)[1].shape == (1, 0)


def test_quiet(capsys):
    BM25Index.build([1, 2], ["alpha beta", "gamma"]).search(["alpha"], 2)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_top_is_the_best_matches_by_score_then_position_whatever_the_ties_and_zeros():
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 60))
        scores = rng.choice([0.0, 0.0, 0.0, 0.5, 1.0, 1.5, -0.0], size=n).astype(np.float32)
        k = int(rng.integers(0, n + 3))
        want = sorted((i for i in range(n) if scores[i] > 0), key=lambda i: (-scores[i], i))[:k]
        assert BM25Index._top(scores, k).tolist() == want, (trial, scores.tolist(), k)
