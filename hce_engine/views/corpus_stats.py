"""Corpus statistics for the Corpus and Learn pages: sizes, lengths, duplicates, queries and qrels."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..settings import DEFAULT_MAX_LENGTH
from . import snippet

#: a word: a run of letters, digits and underscores (Python's ``\w+`` on str, in RE2's syntax for Arrow)
_WORD = r"[\p{L}\p{N}_]+"
#: what ``str.split()`` splits on (RE2's ``\s`` is ASCII only)
_SPACE = r"[\s\p{Z}\x{0b}\x{1c}-\x{1f}\x{85}]+"
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
    The document statistics are saved in the workspace and read back until documents are added or removed.
    """
    docs = ws.memo_document_stats(corpus, f"bins={bins},examples={max_examples},tokens={max_tokens}",
                                  lambda: _document_stats(ws, corpus, bins, max_examples, max_tokens))
    qrels = ws.qrels(corpus)
    splits = []
    for split, judged in qrels.groupby("split", sort=False):
        rel = (judged["score"] > 0).groupby(judged["query_id"]).sum()  # relevant documents per query
        splits.append({"split": split, "queries": len(rel), "qrels": len(judged),
                       "relevant_per_query": float(rel.mean())})
    return {"corpus": corpus, **docs,
            "queries": next(c["queries"] for c in ws.corpora() if c["name"] == corpus), "splits": splits}


def _document_stats(ws, corpus: str, bins: int, max_examples: int, max_tokens: int) -> dict:
    """:func:`corpus_stats`'s keys that depend on the documents only (``documents`` ... ``duplicates``)."""
    df = ws.documents(corpus, include_removed=True)
    removed = int(df["removed"].sum()) if len(df) else 0
    df = df[~df["removed"]] if len(df) else df
    n = int(len(df))
    titles = df["title"].fillna("").astype(str)
    texts = df["text"].fillna("").astype(str)
    title_arr, text_arr = _arrow_strings(titles), _arrow_strings(texts)
    words = _word_counts(title_arr) + _word_counts(text_arr)
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

    dups = _duplicate_groups(text_arr)
    ext = df["ext_id"].astype(str)
    examples = [{"ext_ids": ext.iloc[g[:10]].tolist(), "count": len(g), "snippet": snippet(texts.iloc[g[0]], 160)}
                for g in dups[:max_examples]]
    n_dup_docs = int(sum(len(g) - 1 for g in dups))

    long_words = int(max_tokens / TOKENS_PER_WORD)
    return {
        "documents": n, "removed": removed,
        "with_title": int((titles.str.strip() != "").sum()), "empty_title": int((titles.str.strip() == "").sum()),
        "words": wstats, "words_hist": hist, "long_docs": int((words > long_words).sum()), "long_words": long_words,
        "tokens_per_word": TOKENS_PER_WORD, "max_tokens": int(max_tokens),
        "duplicates": {"groups": len(dups), "documents": n_dup_docs, "examples": examples},
    }


def _arrow_strings(values: pd.Series) -> pa.Array:
    """A string Series (no nulls) as one Arrow string array."""
    arr = pa.array(values, type=pa.large_string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _word_counts(texts: pa.Array) -> np.ndarray:
    """Words (:data:`_WORD` runs) in each text, int64 [len(texts)]."""
    return pc.count_substring_regex(texts, _WORD).to_numpy(zero_copy_only=False).astype(np.int64)


def _duplicate_groups(texts: pa.Array) -> list[np.ndarray]:
    """Positions of the texts that are identical after lower-casing and collapsing white space, one array per group
    of two or more non-empty texts, largest group first (ties: first appearance first)."""
    key = pc.utf8_trim(pc.replace_substring_regex(pc.utf8_lower(texts), _SPACE, " "), " ")
    encoded = pc.dictionary_encode(key)  # codes in order of first appearance
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    counts = np.bincount(codes, minlength=len(encoded.dictionary))
    counts[pc.equal(encoded.dictionary, "").to_numpy(zero_copy_only=False)] = 0
    repeated = np.flatnonzero(counts > 1)
    repeated = repeated[np.lexsort((repeated, -counts[repeated]))]
    if not len(repeated):
        return []
    members = np.argsort(codes, kind="stable")
    starts = np.concatenate(([0], np.cumsum(np.bincount(codes, minlength=len(counts)))))
    return [members[starts[c]:starts[c + 1]] for c in repeated]
