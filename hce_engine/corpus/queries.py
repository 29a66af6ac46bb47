"""Query formats: queries (JSONL or TSV), judgements (qrels: BEIR TSV or TREC) and training pairs (CSV/TSV
or JSONL), each checked line by line like the documents.
"""
from __future__ import annotations

from ..errors import InputError
from .files import bad_char, clean, read_lines
from .formats import ID_COLUMNS, csv_rows, iter_json_objects, pick

MAX_SCORE = 2**31 - 1  # qrels scores are stored as 32-bit integers
QUERY_TEXT_COLUMNS = ("text", "query", "question", "claim")


def read_queries(path: str, label: str | None = None) -> dict[str, str]:
    """Queries from JSONL (``_id``, ``text``) or TSV (``id<TAB>text``, optional header)."""
    label = label or path
    out: dict[str, str] = {}
    first: dict[str, int] = {}

    def add(lineno: int, qid, text) -> None:
        qid = clean(qid, label, lineno, "the query id")
        text = clean(text, label, lineno, "the query text")
        if not qid:
            raise InputError("the query id is empty", label, lineno)
        if qid in first:
            raise InputError(f"duplicate query id {qid!r} (first seen on line {first[qid]})", label, lineno)
        first[qid] = lineno
        if text:
            out[qid] = text

    if path.lower().endswith((".jsonl", ".json")):
        for lineno, obj in iter_json_objects(path, label):
            keys = list(obj)
            idk = pick(keys, ID_COLUMNS + ("query_id", "qid"), None, label, "id", False)
            xk = pick(keys, QUERY_TEXT_COLUMNS, None, label, "text", False)
            if idk is None or xk is None:
                raise InputError("a query needs an id (_id) and a text field", label, lineno)
            add(lineno, obj[idk], obj[xk])
    else:
        for lineno, line in read_lines(path, label):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2:
                raise InputError("expected 'query id<TAB>text'", label, lineno)
            if lineno == 1 and parts[0].lower() in ("id", "_id", "query-id", "query_id", "qid"):
                continue
            add(lineno, parts[0], "\t".join(parts[1:]))
    return out


def _score(s: str, label: str, lineno: int) -> int:
    """A qrels score: a whole number (``2`` or ``2.0``) that fits 32 bits."""
    try:
        score = int(s)
    except ValueError:
        try:
            f = float(s)
        except ValueError:
            raise InputError(f"the score {s!r} is not a number", label, lineno) from None
        if f in (float("inf"), float("-inf")):
            raise InputError(f"the score {s[:20]!r} is out of range (at most {MAX_SCORE:,} either side of 0)",
                             label, lineno) from None
        if not f.is_integer():  # also nan
            raise InputError(f"the score {s!r} is not a whole number (relevance grades are 0, 1, 2, ...)",
                             label, lineno) from None
        score = int(f)
    if abs(score) > MAX_SCORE:
        raise InputError(f"the score {s[:20]!r} is out of range (at most {MAX_SCORE:,} either side of 0)",
                         label, lineno)
    return score


def read_qrels(path: str, label: str | None = None, known_docs: set[str] | None = None,
               known_queries: set[str] | dict | None = None) -> list[tuple[str, str, int]]:
    """Judgements from BEIR TSV (``query-id corpus-id score`` with header) or TREC (``q 0 doc rel``).

    With ``known_docs`` / ``known_queries``, a row naming an unknown id is an error with its line.
    """
    label = label or path
    rows: list[tuple[str, str, int]] = []
    seen: dict[tuple[str, str], int] = {}
    for lineno, line in read_lines(path, label):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if lineno == 1 and parts and parts[0].lower() in ("query-id", "query_id", "qid", "query"):
            continue
        if len(parts) == 4:  # TREC qrels: qid iter docid rel
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            raise InputError(f"expected 3 columns (query id, document id, score), found {len(parts)}", label,
                             lineno)
        q, d, s = (p.strip() for p in parts)
        score = _score(s, label, lineno)
        for what, value in (("query id", q), ("document id", d)):
            if not value:
                raise InputError(f"the {what} is empty", label, lineno)
            if bad := bad_char(value):
                raise InputError(f"the {what} holds {bad}", label, lineno)
        if known_docs is not None and d not in known_docs:
            raise InputError(f"document id {d!r} is not in the corpus", label, lineno)
        if known_queries is not None and q not in known_queries:
            raise InputError(f"query id {q!r} has no query text", label, lineno)
        if (q, d) in seen:
            raise InputError(f"duplicate judgement for query {q!r} and document {d!r} (first on line "
                             f"{seen[(q, d)]})", label, lineno)
        seen[(q, d)] = lineno
        rows.append((q, d, score))
    if not rows:
        raise InputError("the qrels file has no judgements", label)
    return rows


def read_pairs(path: str, label: str | None = None) -> list[tuple[str, str]]:
    """Training pairs (query text, document id) from a two-column CSV/TSV with a header, or JSONL with
    ``query`` and ``doc_id`` (or ``_id``/``id``) fields."""
    label = label or path
    pairs: list[tuple[str, str]] = []
    if path.lower().endswith((".jsonl", ".json")):
        for lineno, obj in iter_json_objects(path, label):
            q = clean(obj.get("query"), label, lineno, "the query")
            d = clean(next((obj[k] for k in ("doc_id",) + ID_COLUMNS if k in obj), None), label, lineno,
                       "the document id")
            if not q or not d:
                raise InputError("a pair needs 'query' and 'doc_id'", label, lineno)
            pairs.append((q, d))
        return pairs
    header, rows = csv_rows(path, label, "\t" if path.lower().endswith((".tsv", ".tab")) else ",")
    if len(header) != 2:
        raise InputError(f"a pairs file has two columns (query, document id); found {len(header)}", label, 1)
    for lineno, row in rows:
        if not row:
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise InputError("expected a query and a document id", label, lineno)
        pairs.append((row[0].strip(), row[1].strip()))
    if not pairs:
        raise InputError("the pairs file has no rows", label)
    return pairs
