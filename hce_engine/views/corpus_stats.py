"""Corpus statistics for the Corpus and Learn pages: sizes, lengths, duplicates, queries and qrels."""
from __future__ import annotations

import re

import numpy as np

from ..settings import DEFAULT_MAX_LENGTH
from . import snippet

_WORD = re.compile(r"\w+", re.UNICODE)
#: WordPiece tokens per word (``\w+`` run) of the bundled all-MiniLM-L6-v2 tokenizer, measured on the Jargon File
#: sample (1.40); technical text has more. Words are counted, not tokenized, so that statistics need no model.
TOKENS_PER_WORD = 1.4


def corpus_stats(ws, corpus: str, bins: int = 30, max_examples: int = 5,
                 max_tokens: int = DEFAULT_MAX_LENGTH) -> dict:
    """Statistics of a corpus's live documents and its queries.

    Returns a JSON-friendly dict:
        corpus, documents (live), removed, with_title, empty_title,
        words: {min, p05, p25, median, p75, p95, max, mean} of words per document (title + text),
        words_hist: {edges: [bins + 1 floats], counts: [bins ints]} (at most ``bins`` bins over [min, p99], the
            last bin also holds everything longer),
        long_docs: documents estimated to exceed the encoder's ``max_tokens`` (its default window,
            ``DEFAULT_MAX_LENGTH``; their ends are cut): more than ``long_words`` words, at
            :data:`TOKENS_PER_WORD` tokens per word,
        long_words, tokens_per_word, max_tokens: that estimate's threshold, ratio and window,
        duplicates: {groups, documents (copies beyond the first of each group), examples: [{ext_ids, snippet,
            count}]} - documents whose text is identical after lower-casing and collapsing white space,
        queries, splits: [{split, queries, qrels, relevant_per_query}].
    """
    df = ws.documents(corpus, include_removed=True)
    removed = int(df["removed"].sum()) if len(df) else 0
    df = df[~df["removed"]] if len(df) else df
    n = int(len(df))
    titles = df["title"].fillna("").astype(str)
    texts = df["text"].fillna("").astype(str)
    words = np.asarray([len(_WORD.findall(t)) + len(_WORD.findall(x)) for t, x in zip(titles, texts, strict=True)],
                       dtype=np.int64)
    if n:
        q = np.percentile(words, [0, 5, 25, 50, 75, 95, 100])
        wstats = {"min": int(q[0]), "p05": float(q[1]), "p25": float(q[2]), "median": float(q[3]),
                  "p75": float(q[4]), "p95": float(q[5]), "max": int(q[6]), "mean": float(words.mean())}
        lo = float(words.min())
        hi = max(float(np.percentile(words, 99)), lo + 1.0)
        edges = np.linspace(lo, hi, max(1, min(int(bins), int(np.ceil(hi - lo)))) + 1)
        counts, _ = np.histogram(np.minimum(words, hi), bins=edges)
        hist = {"edges": edges.round(2).tolist(), "counts": counts.astype(int).tolist()}
    else:
        wstats = {k: 0 for k in ("min", "p05", "p25", "median", "p75", "p95", "max", "mean")}
        hist = {"edges": [], "counts": []}

    norm = [" ".join(x.lower().split()) for x in texts]
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(norm):
        if key:
            groups.setdefault(key, []).append(i)
    dups = [g for g in groups.values() if len(g) > 1]
    dups.sort(key=lambda g: (-len(g), g[0]))
    ext = df["ext_id"].astype(str).tolist()
    examples = [{"ext_ids": [ext[i] for i in g[:10]], "count": len(g), "snippet": snippet(texts.iloc[g[0]], 160)}
                for g in dups[:max_examples]]

    long_words = int(max_tokens / TOKENS_PER_WORD)
    qrels = ws.qrels(corpus)
    splits = []
    for split, judged in qrels.groupby("split", sort=False):
        rel = (judged["score"] > 0).groupby(judged["query_id"]).sum()  # relevant documents per query
        splits.append({"split": split, "queries": len(rel), "qrels": len(judged),
                       "relevant_per_query": float(rel.mean())})
    return {
        "corpus": corpus, "documents": n, "removed": removed,
        "with_title": int((titles.str.strip() != "").sum()), "empty_title": int((titles.str.strip() == "").sum()),
        "words": wstats, "words_hist": hist, "long_docs": int((words > long_words).sum()), "long_words": long_words,
        "tokens_per_word": TOKENS_PER_WORD, "max_tokens": int(max_tokens),
        "duplicates": {"groups": len(dups), "documents": int(sum(len(g) - 1 for g in dups)), "examples": examples},
        "queries": next(c["queries"] for c in ws.corpora() if c["name"] == corpus), "splits": splits,
    }
