"""Training pairs: supervised (from qrels) and unsupervised (Inverse Cloze Task), and the validation split.

Documents are addressed by their *position* ``0..n_docs-1`` in the corpus array the tree is built from.
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class Pair:
    """One training example.

    Attributes:
        query: query text.
        doc_pos: corpus position of the relevant (positive) document.
        doc_text: text to encode for the positive instead of the stored document (ICT: the document with
            the pseudo-query sentence removed); None = the stored text.
        kind: "supervised", "ict" or "self" (a pseudo-query scored by a teacher; validation prefers
            supervised pairs).
    """

    query: str
    doc_pos: int
    doc_text: str | None = None
    kind: str = "supervised"


def supervised_pairs(qrels: Mapping[str, Mapping[str, int]], queries: Mapping[str, str],
                     doc_pos: Mapping[str, int]) -> list[Pair]:
    """One pair per (query, relevant document) in ``qrels``.

    Judgements with relevance <= 0, unknown query ids, empty queries and unknown document ids are
    skipped. Order: qrels order (deterministic for ordered inputs).
    """
    out: list[Pair] = []
    for qid, judged in qrels.items():
        text = queries.get(qid)
        if not text or not str(text).strip():
            continue
        for did, rel in judged.items():
            if rel is None or rel <= 0 or did not in doc_pos:
                continue
            out.append(Pair(str(text), int(doc_pos[did]), None, "supervised"))
    return out


# A sentence ends at . ! or ? (optionally followed by closing quotes/brackets) before whitespace, or at
# a line break. Simple on purpose: abbreviations ("e.g. ") may split, which only makes shorter sentences.
_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\s*\n+\s*")
_WORD = re.compile(r"\w+")


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into non-empty, stripped sentences (regex splitter, see ``_SENT_END``)."""
    return [s.strip() for s in _SENT_END.split(text or "") if s and s.strip()]


def ict_pairs(texts: Sequence[str], seed: int = 0, remove_prob: float = 0.9, min_words: int = 4,
              kind: str = "ict") -> list[Pair]:
    """Inverse Cloze Task pairs: one per document with at least two sentences.

    For each such document a random sentence with at least ``min_words`` words becomes the pseudo-query;
    with probability ``remove_prob`` the positive is the document with that sentence removed (returned in
    ``Pair.doc_text``), otherwise the unchanged document (``doc_text=None``). Documents with one sentence,
    or with no sentence long enough, yield no pair. Deterministic for a given seed. ``kind`` labels the
    pairs (:func:`self_pairs` makes the same draw labelled "self").
    """
    rng = random.Random(seed)
    out: list[Pair] = []
    for pos, text in enumerate(texts):
        sents = split_sentences(text)
        if len(sents) < 2:
            continue
        eligible = [i for i, s in enumerate(sents) if len(_WORD.findall(s)) >= min_words]
        if not eligible:
            continue
        k = eligible[rng.randrange(len(eligible))]
        remove = rng.random() < remove_prob
        doc_text = " ".join(s for i, s in enumerate(sents) if i != k) if remove else None
        out.append(Pair(sents[k], pos, doc_text, kind))
    return out


#: How the self signal picks each document's pseudo-query (``TrainConfig.pseudo_query``).
PSEUDO_QUERIES = ("sentence", "lead", "salient", "title")


def self_pairs(texts: Sequence[str], seed: int = 0, min_words: int = 4, choice: str = "sentence",
               titles: Sequence[str] | None = None) -> list[Pair]:
    """Pseudo-queries of the self signal, one per document, paired with their source (kept whole: the teacher
    scores stored texts, and the distillation loss never asks the source to be found).

    Args:
        texts: the documents' encoder texts, by corpus position.
        seed: seeds the random draw of ``choice="sentence"`` (the same draw as :func:`ict_pairs`).
        min_words: a sentence needs at least this many words to be a pseudo-query.
        choice: "sentence" (a random one; documents need two sentences), "lead" (the first long enough one),
            "salient" (the one whose distinct words weigh most in the document by BM25, on average: see
            :func:`salient_sentences`) or "title" (``titles[i]`` where it has ``min_words`` words, else the
            random sentence).
        titles: the documents' titles (``choice="title"`` only).
    """
    if choice not in PSEUDO_QUERIES:
        raise ValueError(f"unknown pseudo-query choice {choice!r} ({', '.join(PSEUDO_QUERIES)})")
    drawn = ict_pairs(texts, seed=seed, remove_prob=0.0, min_words=min_words, kind="self")
    if choice == "sentence":
        return drawn
    if choice == "title":
        by_pos = {p.doc_pos: p for p in drawn}
        titles = list(titles or [])
        out = []
        for pos in range(len(texts)):
            title = titles[pos].strip() if pos < len(titles) and titles[pos] else ""
            if len(_WORD.findall(title)) >= min_words:
                out.append(Pair(title, pos, None, "self"))
            elif pos in by_pos:
                out.append(by_pos[pos])
        return out
    picked = salient_sentences(texts, min_words) if choice == "salient" else [
        next((s for s in split_sentences(t) if len(_WORD.findall(s)) >= min_words), None)
        if len(split_sentences(t)) >= 2 else None for t in texts]
    return [Pair(s, pos, None, "self") for pos, s in enumerate(picked) if s]


def salient_sentences(texts: Sequence[str], min_words: int = 4, k1: float = 1.2, b: float = 0.75) -> list[str | None]:
    """Per document (with two sentences or more), its sentence of at least ``min_words`` words whose distinct
    lower-cased words have the highest mean BM25 weight in that document against ``texts`` (Okapi idf, ``k1``,
    ``b``): the sentence most characteristic of it. None where a document has no such sentence."""
    tokens = [_WORD.findall(t.lower()) for t in texts]
    df: dict[str, int] = {}
    for toks in tokens:
        for w in set(toks):
            df[w] = df.get(w, 0) + 1
    n = len(texts)
    avgdl = max(1e-9, sum(len(t) for t in tokens) / max(1, n))
    out: list[str | None] = []
    for text, toks in zip(texts, tokens, strict=True):
        sents = split_sentences(text)
        eligible = [s for s in sents if len(_WORD.findall(s)) >= min_words] if len(sents) >= 2 else []
        if not eligible:
            out.append(None)
            continue
        tf: dict[str, int] = {}
        for w in toks:
            tf[w] = tf.get(w, 0) + 1
        norm = k1 * (1 - b + b * len(toks) / avgdl)

        def weight(w: str, tf: dict[str, int] = tf, norm: float = norm) -> float:  # binds this document's tf and norm
            idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
            return idf * tf[w] * (k1 + 1) / (tf[w] + norm)

        def salience(s: str) -> float:
            words = sorted(set(_WORD.findall(s.lower())))  # a set's order (so the float sum) varies by process
            return sum(weight(w) for w in words) / len(words)

        out.append(max(eligible, key=salience))  # first of equals
    return out


def mix_pairs(supervised: Sequence[Pair], ict: Sequence[Pair], ict_ratio: float, seed: int = 0) -> list[Pair]:
    """Joint signal: all supervised pairs plus a seeded sample of ICT pairs making up ``ict_ratio`` of the mix.

    The mix is shuffled every epoch by the sampler, so each batch holds both kinds. With no supervised
    pairs, all ICT pairs are returned.
    """
    sup = list(supervised)
    if not sup:
        return list(ict)
    want = int(round(len(sup) * ict_ratio / max(1e-9, 1.0 - ict_ratio)))
    want = min(want, len(ict))
    idx = sorted(np.random.default_rng(seed).choice(len(ict), size=want, replace=False).tolist()) if want else []
    return sup + [ict[i] for i in idx]


def split_validation(pairs: Sequence[Pair], fraction: float, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """Hold out ``fraction`` of the distinct query texts (and all their pairs) for validation.

    Grouped by query text, so a query never lands in both parts. At least one query is held out when
    ``fraction > 0`` and there are at least two distinct queries; at least one stays for training.
    Both parts keep the input order.
    """
    pairs = list(pairs)
    if fraction <= 0 or not pairs:
        return pairs, []
    queries = list(dict.fromkeys(p.query for p in pairs))
    if len(queries) < 2:
        return pairs, []
    n_val = min(len(queries) - 1, max(1, int(math.ceil(fraction * len(queries)))))
    order = np.random.default_rng(seed).permutation(len(queries))
    val_q = {queries[i] for i in order[:n_val]}
    train = [p for p in pairs if p.query not in val_q]
    val = [p for p in pairs if p.query in val_q]
    return train, val


def make_pairs(signal: str, texts: Sequence[str], *, qrels: Mapping[str, Mapping[str, int]] | None = None,
               queries: Mapping[str, str] | None = None, doc_pos: Mapping[str, int] | None = None,
               seed: int = 0, ict_remove_prob: float = 0.9, ict_min_words: int = 4,
               joint_ict_ratio: float = 0.5, pseudo_query: str = "sentence",
               titles: Sequence[str] | None = None) -> list[Pair]:
    """The training pairs of a signal: "supervised" (qrels), "ict" (from ``texts``) or "joint" (both, see
    :func:`mix_pairs`). ``TrainConfig`` fields map one to one:
    ``make_pairs(c.signal, texts, qrels=..., queries=..., doc_pos=..., seed=c.seed,
    ict_remove_prob=c.ict_remove_prob, ict_min_words=c.ict_min_words, joint_ict_ratio=c.joint_ict_ratio,
    pseudo_query=c.pseudo_query, titles=...)``.
    Raises ValueError when the signal needs qrels that are missing or yields no pair.
    """
    if signal not in ("supervised", "ict", "joint", "self"):
        raise ValueError(f"unknown signal {signal!r} (supervised, ict, joint or self)")
    if signal == "self":
        out = self_pairs(texts, seed=seed, min_words=ict_min_words, choice=pseudo_query, titles=titles)
        if not out:
            raise ValueError("no document has two sentences with a long enough one: no pseudo-query")
        return out
    sup: list[Pair] = []
    if signal in ("supervised", "joint"):
        if not qrels or queries is None or doc_pos is None:
            raise ValueError(f"signal {signal!r} needs qrels, queries and document ids")
        sup = supervised_pairs(qrels, queries, doc_pos)
        if not sup:
            raise ValueError("the qrels yield no (query, relevant document) pair for this corpus")
    if signal == "supervised":
        return sup
    ict = ict_pairs(texts, seed=seed, remove_prob=ict_remove_prob, min_words=ict_min_words)
    if not ict and signal == "ict":
        raise ValueError("no document has two sentences with a long enough one: ICT yields no pair")
    return ict if signal == "ict" else mix_pairs(sup, ict, joint_ict_ratio, seed=seed)
