"""Hypothesis strategies for malformed corpus inputs, and one checker shared by the fuzz tests and
``benchmarks/import_fuzz.py``.

Each importer gets files built from mostly-valid structure with hostile pieces: random JSON values (NaN,
huge or deep ones), text with NUL, lone surrogates, CR-only and mixed line endings, quotes and delimiters,
invalid UTF-8 bytes, and ZIPs with random names and corrupted bytes. :func:`check_import` reads the input
into a workspace and returns the outcome ("ok" or "input error"); anything else (another exception, a
workspace changed by a failed import) fails.
"""
from __future__ import annotations

import csv
import io
import json
import os
import zipfile

from hypothesis import strategies as st

from hce_engine import InputError

EOLS = st.sampled_from(["\n", "\r\n", "\r", ""])
HOSTILE = st.sampled_from(["\x00", "\ud800", "\udfff", "\r", "\n", '"', ",", "\t", "\\", "\ufeff", "\u2028",
                           "NaN", "Infinity", "é", "𝄞", "<b>x</b>", "![t](http://x/y.png)"])
#: whole JSON lines that once broke the reader: NaN ids, huge integers, deep nesting, escaped NUL/surrogates
RAW_JSON = st.sampled_from(['{"_id": NaN, "text": "x"}', '{"_id": 1' + "0" * 4400 + ', "text": "x"}',
                            '{"text": ' + "[" * 1200 + "]" * 1200 + "}", '{"_id": "a", "text": "\\ud800"}',
                            '{"_id": "\\u0000", "text": "x"}', '{"_id": 1.5e400, "text": "x"}'])
TEXT = st.one_of(st.text(max_size=40), HOSTILE, st.builds(lambda a, b: a + b, st.text(max_size=20), HOSTILE))
JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8)
FIELD = st.sampled_from(["_id", "id", "title", "text", "body", "query", "doc_id", "metadata", "x"])


def _jsonl_line(obj) -> str:
    try:
        return json.dumps(obj, allow_nan=True)
    except (ValueError, RecursionError):
        return "{"


#: text that is valid (no NUL, no lone surrogates) but otherwise anything
PLAIN = st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
DOC_ID = st.integers(0, 20).map(lambda i: f"d{i}")  # a small range: qrels name documents that exist
DOC_ROW = st.tuples(DOC_ID, PLAIN, PLAIN.filter(str.strip))
json_record = st.dictionaries(st.one_of(FIELD, TEXT), JSON_VALUE, max_size=5).map(_jsonl_line)
def _json_doc(row) -> str:
    return json.dumps({"_id": row[0], "title": row[1], "text": row[2]})


valid_record = DOC_ROW.map(_json_doc)
# valid lines weigh most, so that accepted inputs (and how they are stored) get fuzzed too
raw_line = st.one_of(valid_record, json_record, RAW_JSON, TEXT)


def _join(lines, eols) -> str:
    return "".join(line + eols[i % len(eols)] for i, line in enumerate(lines))


def _encode(text: str, garbage: bytes | None, at: int) -> bytes:
    data = text.encode("utf-8", "surrogatepass")  # lone surrogates become invalid UTF-8 bytes
    if garbage is not None:
        at = at % (len(data) + 1)
        data = data[:at] + garbage + data[at:]
    return data


def _file(lines_strategy, valid=None, eols=st.lists(EOLS, min_size=1, max_size=3)):
    """A file of lines: hostile ones mixed in (with stray bytes sometimes), or, when ``valid`` = (strategy of
    (id, *fields) tuples, formatter) is given, as often a file of valid lines with unique ids (so that
    accepted inputs, and how they are stored, get fuzzed too)."""
    garbage = st.one_of(st.none(), st.binary(min_size=1, max_size=4))
    hostile = st.builds(lambda lines, e, g, at: _encode(_join(lines, e), g, at),
                        st.lists(lines_strategy, max_size=8), eols, garbage, st.integers(0, 10_000))
    if valid is None:
        return hostile
    rows, fmt = valid
    clean = st.builds(lambda lines, e: _encode(_join([fmt(r) for r in lines], e), None, 0),
                      st.lists(rows, min_size=1, max_size=8, unique_by=lambda r: r[0]),
                      st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=1, max_size=2))
    return st.one_of(clean, hostile)


def _csv_line(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(cells)
    return buf.getvalue()


jsonl_file = _file(raw_line, (DOC_ROW, _json_doc))
valid_csv_row = DOC_ROW.map(_csv_line)
csv_row = st.one_of(valid_csv_row, st.lists(TEXT, min_size=1, max_size=4).map(
                        lambda cells: ",".join(f'"{c}"' if i % 2 else c for i, c in enumerate(cells))))
csv_file = st.builds(lambda header, body: header + body,
                     st.sampled_from([b"id,title,text\n", b"id,title,text\r\n", b"text\n", b""]),
                     _file(csv_row, (DOC_ROW, _csv_line)))


def _tsv_line(row) -> str:
    return "\t".join(c.replace("\t", " ").replace("\n", " ").replace("\r", " ") for c in row)


valid_tsv_row = DOC_ROW.map(_tsv_line)
tsv_row = st.one_of(valid_tsv_row, st.lists(TEXT, min_size=1, max_size=4).map("\t".join))
tsv_file = st.builds(lambda header, body: header + body, st.sampled_from([b"id\ttitle\ttext\n", b""]),
                     _file(tsv_row, (DOC_ROW, _tsv_line)))
txt_file = _file(TEXT, (st.tuples(PLAIN), lambda r: r[0]))
qrels_line = st.lists(st.one_of(TEXT, st.sampled_from(["q1", "d1", "1", "0.5", "inf", "1e400", "2147483648",
                                                        "-1", "nan"])), min_size=1, max_size=5).map("\t".join)
QREL = st.tuples(st.tuples(st.sampled_from(["q1", "q2"]), DOC_ID), st.integers(-1, 3))
valid_qrels_line = QREL.map(lambda r: f"{r[0][0]}\t{r[0][1]}\t{r[1]}")
qrels_file = st.builds(lambda body: b"query-id\tcorpus-id\tscore\n" + body,
                       _file(st.one_of(valid_qrels_line, qrels_line), (QREL, lambda r: f"{r[0][0]}\t{r[0][1]}\t{r[1]}")))
QUERY = st.tuples(st.sampled_from(["q1", "q2", "q3"]), PLAIN)
queries_file = _file(st.one_of(QUERY.map(lambda r: json.dumps({"_id": r[0], "text": r[1]})), raw_line),
                     (QUERY, lambda r: json.dumps({"_id": r[0], "text": r[1]})))
def _consistent_beir(docs, queries, judged, eol) -> dict[str, bytes]:
    """A BEIR folder whose qrels name queries and documents that exist (some documents empty)."""
    corpus = [json.dumps({"_id": f"d{i}", "title": t, "text": x}) for i, (t, x) in enumerate(docs)]
    qs = [json.dumps({"_id": f"q{i}", "text": q}) for i, q in enumerate(queries)]
    rels = {(q % len(queries), d % len(docs)): s for q, d, s in judged}
    lines = ["query-id\tcorpus-id\tscore"] + [f"q{q}\td{d}\t{s}" for (q, d), s in rels.items()]
    out = {"corpus.jsonl": corpus, "queries.jsonl": qs, "qrels/test.tsv": lines}
    return {k: (eol.join(v) + eol).encode("utf-8") for k, v in out.items()}


beir_folder = st.one_of(
    st.builds(_consistent_beir, st.lists(st.tuples(PLAIN, PLAIN), min_size=1, max_size=8),
              st.lists(PLAIN.filter(str.strip), min_size=1, max_size=3),
              st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(-1, 3)), min_size=1, max_size=6),
              st.sampled_from(["\n", "\r\n", "\r"])),
    st.fixed_dictionaries({"corpus.jsonl": jsonl_file, "queries.jsonl": queries_file, "qrels/test.tsv": qrels_file}))
member_name = st.one_of(st.sampled_from(["corpus.jsonl", "queries.jsonl", "qrels/test.tsv", "qrels/.tsv",
                                         "a.txt", "b.txt", "d/c.txt", "d", "../x.txt", "/abs.txt", "c.csv"]),
                        TEXT.filter(lambda s: "\x00" not in s))
members = st.one_of(
    st.lists(st.tuples(member_name, st.one_of(jsonl_file, txt_file, csv_file, qrels_file)), min_size=1, max_size=5),
    st.tuples(st.sampled_from(["c.jsonl", "top/c.jsonl"]), jsonl_file).map(lambda m: [m]),
    beir_folder.map(lambda files: [(f"b/{name}", data) for name, data in files.items()]))


def _zip(entries, compression, flips) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in entries:
            try:
                z.writestr(name, data)
            except (UnicodeError, ValueError, IndexError):  # names zipfile itself cannot write
                pass
    data = bytearray(buf.getvalue())
    for pos, value in flips:
        if data:
            data[pos % len(data)] = value
    return bytes(data)


zip_file = st.builds(_zip, members, st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                                     zipfile.ZIP_LZMA]),
                     st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3))
txt_folder = st.dictionaries(st.sampled_from(["a.txt", "b.txt", "s/c.txt", ".hidden.txt"]), txt_file,
                             min_size=1, max_size=4)

#: importer name -> (file name or None for a folder, strategy of bytes or of {relative path: bytes})
IMPORTERS = {
    "jsonl": ("c.jsonl", jsonl_file),
    "csv": ("c.csv", csv_file),
    "tsv": ("c.tsv", tsv_file),
    "txt": ("c.txt", txt_file),
    "zip": ("c.zip", zip_file),
    "beir-folder": (None, beir_folder),
    "txt-folder": (None, txt_folder),
}


def materialise(root: str, name: str | None, content) -> str:
    """Write one generated input under ``root``; return the path to import."""
    if name is not None:
        path = os.path.join(root, name)
        with open(path, "wb") as f:
            f.write(content)
        return path
    folder = os.path.join(root, "input")
    for rel, data in content.items():
        full = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
    return folder


def state(ws) -> tuple:
    """What a failed import must leave unchanged."""
    with ws.store.session():
        return ws.store.con.execute(
            "SELECT (SELECT list(name ORDER BY name) FROM corpora), (SELECT count(*) FROM documents), "
            "(SELECT count(*) FROM queries), (SELECT count(*) FROM qrels)").fetchall()[0]


def check_import(ws, path: str, name: str) -> str:
    """Import ``path`` as corpus ``name``: "ok" (then it is deleted again) or "input error" (the workspace
    unchanged). Any other exception propagates."""
    before = state(ws)
    try:
        ws.import_corpus(path, name=name)
    except InputError as exc:
        assert str(exc), "an InputError needs a message"
        after = state(ws)
        assert after == before, f"a failed import changed the workspace: {before} -> {after}"
        return "input error"
    docs = ws.store.documents(ws.store.corpus_id(name))
    assert len(docs) > 0 and all(isinstance(t, str) for t in docs["text"])
    ws.delete_corpus(name)
    assert state(ws) == before
    return "ok"
