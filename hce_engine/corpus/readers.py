"""Read user corpora into plain records, validating everything before anything is stored.

Formats: JSONL (``_id``/``id``, ``title``, ``text``; other fields kept as metadata), CSV/TSV (header row,
columns auto-detected or named), plain ``.txt`` (one document per non-empty line), a folder of ``.txt``
files (one document per file), a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``)
and a ZIP of any of these. Every problem raises :class:`~hce_engine.errors.InputError` naming the file,
the line and the problem; nothing is returned half-read.

Limits (module constants): a file may be at most ``MAX_FILE_BYTES``; a document's text at most
``MAX_TEXT_CHARS`` characters (longer means a broken file, e.g. missing line breaks, and is an error);
a ZIP may unpack to at most ``MAX_ZIP_BYTES`` and ``MAX_ZIP_MEMBERS`` files.
"""
from __future__ import annotations

import csv
import json
import os
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import InputError

MAX_FILE_BYTES = 1 << 30          # 1 GiB per file
MAX_TEXT_CHARS = 1_000_000        # per document text
MAX_ZIP_BYTES = 2 << 30           # 2 GiB unpacked
MAX_ZIP_MEMBERS = 200_000
ID_COLUMNS = ("_id", "id", "doc_id", "docid", "document_id")
TITLE_COLUMNS = ("title", "name", "headline", "heading")
TEXT_COLUMNS = ("text", "body", "content", "abstract", "document", "passage", "contents")
QUERY_TEXT_COLUMNS = ("text", "query", "question", "claim")


@dataclass
class DocRecord:
    ext_id: str
    title: str
    text: str
    metadata: dict | None = None


@dataclass
class ParsedCorpus:
    """Everything read from one import, ready to store in one transaction.

    Attributes:
        documents: the non-empty documents, in file order.
        queries: query id -> text.
        qrels: split -> list of (query id, document id, score).
        skipped_empty: documents dropped because title and text were empty.
        source: the path that was read.
        format: what it was read as ("jsonl", "csv", "tsv", "txt", "txt-folder", "beir", "zip:...").
    """

    documents: list[DocRecord] = field(default_factory=list)
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)
    skipped_empty: int = 0
    source: str = ""
    format: str = ""


# -- low-level file reading -------------------------------------------------------------------
def _check_file(path: str, label: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError("file not found", label) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file", label)
    if st.st_size == 0:
        raise InputError("the file is empty", label)
    if st.st_size > MAX_FILE_BYTES:
        raise InputError(f"the file is {st.st_size / 2**20:.0f} MiB; the limit is {MAX_FILE_BYTES >> 20} MiB "
                         "(split it, or import a ZIP of smaller files)", label)


def _read_lines(path: str, label: str) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, decoded line without newline); binary and non-UTF-8 are errors."""
    _check_file(path, label)
    with open(path, "rb") as f:
        head = f.read(8192)
        if b"\x00" in head:
            raise InputError("this is a binary file, not UTF-8 text", label)
        f.seek(0)
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if b"\x00" in raw:
                raise InputError("NUL byte: this looks like a binary file", label, lineno)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"not valid UTF-8 (byte {exc.start + 1} of the line); save the file as UTF-8",
                                 label, lineno) from None
            yield lineno, line.rstrip("\r\n")


def _clean(value, label: str, lineno: int, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        else:
            raise InputError(f"{what} must be a string, got {type(value).__name__}", label, lineno)
    value = value.strip()
    if len(value) > MAX_TEXT_CHARS:
        raise InputError(f"{what} is {len(value):,} characters; the limit is {MAX_TEXT_CHARS:,} "
                         "(a missing line break?)", label, lineno)
    return value


class _Docs:
    """Collects documents, rejecting duplicate ids and counting empties."""

    def __init__(self, label: str):
        self.label, self.records, self.first_line, self.skipped = label, [], {}, 0

    def add(self, lineno: int, ext_id, title, text, metadata=None) -> None:
        ext_id = _clean(ext_id, self.label, lineno, "the id")
        if not ext_id:
            raise InputError("the document id is empty", self.label, lineno)
        if ext_id in self.first_line:
            raise InputError(f"duplicate document id {ext_id!r} (first seen on line {self.first_line[ext_id]})",
                             self.label, lineno)
        self.first_line[ext_id] = lineno
        title = _clean(title, self.label, lineno, "the title")
        text = _clean(text, self.label, lineno, "the text")
        if not text and not title:
            self.skipped += 1
            return
        self.records.append(DocRecord(ext_id, title, text, metadata or None))


# -- formats ----------------------------------------------------------------------------------
def _iter_json_objects(path: str, label: str) -> Iterator[tuple[int, dict]]:
    seen_any = False
    for lineno, line in _read_lines(path, label):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON: {exc.msg} (column {exc.colno})", label, lineno) from None
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", label, lineno)
        seen_any = True
        yield lineno, obj
    if not seen_any:
        raise InputError("the file has no records", label)


def _pick(keys, wanted: tuple[str, ...], named: str | None, label: str, what: str, required: bool):
    if named:
        if named not in keys:
            raise InputError(f"no {what} column {named!r}; columns are {', '.join(map(str, keys))}", label, 1)
        return named
    lower = {str(k).lower(): k for k in keys}
    for w in wanted:
        if w in lower:
            return lower[w]
    if required:
        raise InputError(f"no {what} column: expected one of {', '.join(wanted)} (or name it with "
                         f"--{what}-col); columns are {', '.join(map(str, keys))}", label, 1)
    return None


def read_jsonl(path: str, label: str | None = None, id_col: str | None = None, title_col: str | None = None,
               text_col: str | None = None) -> tuple[list[DocRecord], int]:
    """Documents from JSON lines. Returns (documents, skipped empty count)."""
    label = label or path
    docs = _Docs(label)
    for lineno, obj in _iter_json_objects(path, label):
        keys = list(obj)
        idk = _pick(keys, ID_COLUMNS, id_col, label, "id", False)
        tk = _pick(keys, TITLE_COLUMNS, title_col, label, "title", False)
        xk = _pick(keys, TEXT_COLUMNS, text_col, label, "text", False)
        if xk is None:
            raise InputError(f"the record has no text field (expected one of {', '.join(TEXT_COLUMNS)}; "
                             f"fields are {', '.join(keys) or 'none'})", label, lineno)
        ext_id = obj.get(idk) if idk is not None else str(lineno)
        meta = {k: v for k, v in obj.items() if k not in (idk, tk, xk, "metadata")}
        if isinstance(obj.get("metadata"), dict):
            meta = {**obj["metadata"], **meta}
        docs.add(lineno, ext_id, obj.get(tk) if tk else "", obj.get(xk), meta)
    return docs.records, docs.skipped


def _csv_rows(path: str, label: str, delimiter: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    csv.field_size_limit(MAX_TEXT_CHARS * 4)
    lines = (line for _, line in _read_lines(path, label))  # validates encoding line by line
    reader = csv.reader(lines, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("the file is empty", label) from None
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise InputError(f"duplicate column names in the header: {header}", label, 1)

    def rows():
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as exc:
            raise InputError(f"malformed {'CSV' if delimiter == ',' else 'TSV'}: {exc}", label,
                             reader.line_num) from None

    return header, rows()


def read_delimited(path: str, label: str | None = None, delimiter: str = ",", id_col: str | None = None,
                   title_col: str | None = None, text_col: str | None = None) -> tuple[list[DocRecord], int]:
    """Documents from CSV (delimiter ",") or TSV ("\\t") with a header row."""
    label = label or path
    header, rows = _csv_rows(path, label, delimiter)
    idk = _pick(header, ID_COLUMNS, id_col, label, "id", False)
    tk = _pick(header, TITLE_COLUMNS, title_col, label, "title", False)
    xk = _pick(header, TEXT_COLUMNS, text_col, label, "text", True)
    col = {h: i for i, h in enumerate(header)}
    docs = _Docs(label)
    n = 0
    for lineno, row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise InputError(f"expected {len(header)} columns, found {len(row)}", label, lineno)
        n += 1
        meta = {h: row[i] for h, i in col.items() if h not in (idk, tk, xk)}
        docs.add(lineno, row[col[idk]] if idk else str(n), row[col[tk]] if tk else "", row[col[xk]], meta)
    if n == 0:
        raise InputError("the file has a header but no rows", label)
    return docs.records, docs.skipped


def read_txt(path: str, label: str | None = None) -> tuple[list[DocRecord], int]:
    """One document per non-empty line; ids are line numbers."""
    label = label or path
    docs = _Docs(label)
    for lineno, line in _read_lines(path, label):
        if line.strip():
            docs.add(lineno, str(lineno), "", line)
    if not docs.records:
        raise InputError("the file has no non-empty lines", label)
    return docs.records, docs.skipped


def read_txt_folder(folder: str, files: list[str]) -> tuple[list[DocRecord], int]:
    """One document per ``.txt`` file; the id is the path relative to the folder, the title the file stem."""
    docs = _Docs(folder)
    for rel in files:
        full = os.path.join(folder, rel)
        text = "\n".join(line for _, line in _read_lines(full, rel)) if os.path.getsize(full) else ""
        docs.label = rel
        docs.add(1, rel, os.path.splitext(os.path.basename(rel))[0], text)
    return docs.records, docs.skipped


def read_queries(path: str, label: str | None = None) -> dict[str, str]:
    """Queries from JSONL (``_id``, ``text``) or TSV (``id<TAB>text``, optional header)."""
    label = label or path
    out: dict[str, str] = {}
    first: dict[str, int] = {}

    def add(lineno: int, qid, text) -> None:
        qid = _clean(qid, label, lineno, "the query id")
        text = _clean(text, label, lineno, "the query text")
        if not qid:
            raise InputError("the query id is empty", label, lineno)
        if qid in first:
            raise InputError(f"duplicate query id {qid!r} (first seen on line {first[qid]})", label, lineno)
        first[qid] = lineno
        if text:
            out[qid] = text

    if path.lower().endswith((".jsonl", ".json")):
        for lineno, obj in _iter_json_objects(path, label):
            keys = list(obj)
            idk = _pick(keys, ID_COLUMNS + ("query_id", "qid"), None, label, "id", False)
            xk = _pick(keys, QUERY_TEXT_COLUMNS, None, label, "text", False)
            if idk is None or xk is None:
                raise InputError("a query needs an id (_id) and a text field", label, lineno)
            add(lineno, obj[idk], obj[xk])
    else:
        for lineno, line in _read_lines(path, label):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2:
                raise InputError("expected 'query id<TAB>text'", label, lineno)
            if lineno == 1 and parts[0].lower() in ("id", "_id", "query-id", "query_id", "qid"):
                continue
            add(lineno, parts[0], "\t".join(parts[1:]))
    return out


def read_qrels(path: str, label: str | None = None, known_docs: set[str] | None = None,
               known_queries: set[str] | dict | None = None) -> list[tuple[str, str, int]]:
    """Judgements from BEIR TSV (``query-id corpus-id score`` with header) or TREC (``q 0 doc rel``).

    With ``known_docs`` / ``known_queries``, a row naming an unknown id is an error with its line.
    """
    label = label or path
    rows: list[tuple[str, str, int]] = []
    seen: dict[tuple[str, str], int] = {}
    for lineno, line in _read_lines(path, label):
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
        try:
            score = int(float(s))
        except ValueError:
            raise InputError(f"the score {s!r} is not a number", label, lineno) from None
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


# -- dispatch ---------------------------------------------------------------------------------
def _read_file(path: str, label: str, cols: dict) -> tuple[list[DocRecord], int, str]:
    low = path.lower()
    if low.endswith((".jsonl", ".json", ".ndjson")):
        return (*read_jsonl(path, label, **cols), "jsonl")
    if low.endswith(".csv"):
        return (*read_delimited(path, label, ",", **cols), "csv")
    if low.endswith((".tsv", ".tab")):
        return (*read_delimited(path, label, "\t", **cols), "tsv")
    if low.endswith((".txt", ".text", ".md")):
        return (*read_txt(path, label), "txt")
    raise InputError("unsupported file type: use .jsonl, .csv, .tsv, .txt, a folder or a .zip", label)


def _read_beir(folder: str, prefix: str, cols: dict) -> ParsedCorpus:
    rel = lambda *p: os.path.join(prefix, *p) if prefix else os.path.join(*p)  # noqa: E731
    docs, skipped = read_jsonl(os.path.join(folder, "corpus.jsonl"), rel("corpus.jsonl"), **cols)
    out = ParsedCorpus(documents=docs, skipped_empty=skipped, format="beir")
    qpath = os.path.join(folder, "queries.jsonl")
    if os.path.exists(qpath):
        out.queries = read_queries(qpath, rel("queries.jsonl"))
    qdir = os.path.join(folder, "qrels")
    if os.path.isdir(qdir):
        doc_ids = {d.ext_id for d in docs}
        for name in sorted(os.listdir(qdir)):
            if name.endswith(".tsv"):
                out.qrels[name[:-4]] = read_qrels(os.path.join(qdir, name), rel("qrels", name), doc_ids,
                                                  out.queries)
    if out.qrels and not out.queries:
        raise InputError("qrels given but no queries.jsonl", rel("qrels"))
    return out


def _read_folder(folder: str, label: str, cols: dict) -> ParsedCorpus:
    if os.path.exists(os.path.join(folder, "corpus.jsonl")):
        return _read_beir(folder, label, cols)
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        files += [os.path.relpath(os.path.join(root, n), folder) for n in sorted(names) if not n.startswith(".")]
    if not files:
        raise InputError("the folder holds no files", label)
    if all(f.lower().endswith(".txt") for f in files) and len(files) > 1:
        docs, skipped = read_txt_folder(folder, files)
        return ParsedCorpus(documents=docs, skipped_empty=skipped, format="txt-folder")
    if len(files) == 1:
        docs, skipped, fmt = _read_file(os.path.join(folder, files[0]), os.path.join(label, files[0]), cols)
        return ParsedCorpus(documents=docs, skipped_empty=skipped, format=fmt)
    raise InputError("a folder must be a BEIR folder (corpus.jsonl, queries.jsonl, qrels/), a folder of .txt "
                     f"files, or hold a single corpus file; found {', '.join(files[:5])}"
                     f"{'…' if len(files) > 5 else ''}", label)


def _safe_extract(zpath: str, label: str, dest: str) -> None:
    """Unpack a ZIP after checking every member: no absolute or '..' paths, links, or oversize content."""
    try:
        zf = zipfile.ZipFile(zpath)
    except zipfile.BadZipFile:
        raise InputError("not a valid ZIP archive", label) from None
    with zf:
        members = zf.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise InputError(f"the archive has {len(members):,} entries; the limit is {MAX_ZIP_MEMBERS:,}", label)
        total = 0
        for m in members:
            name = m.filename
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
                raise InputError(f"unsafe path in archive: {name!r} (absolute or with '..')", label)
            if stat.S_ISLNK(m.external_attr >> 16):
                raise InputError(f"the archive holds a symbolic link: {name!r}", label)
            if m.file_size > MAX_FILE_BYTES:
                raise InputError(f"{name}: unpacks to {m.file_size >> 20} MiB; the limit is "
                                 f"{MAX_FILE_BYTES >> 20} MiB per file", label)
            total += m.file_size
        if total > MAX_ZIP_BYTES:
            raise InputError(f"the archive unpacks to {total >> 20} MiB; the limit is {MAX_ZIP_BYTES >> 20} MiB",
                             label)
        for m in members:
            target = os.path.realpath(os.path.join(dest, m.filename))
            if not target.startswith(os.path.realpath(dest) + os.sep):
                raise InputError(f"unsafe path in archive: {m.filename!r}", label)
            if m.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            written = 0
            with zf.open(m) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > m.file_size:  # lying header: a zip bomb
                        raise InputError(f"{m.filename}: unpacks to more than its header says", label)
                    out.write(chunk)


def read_corpus(path: str, id_col: str | None = None, title_col: str | None = None,
                text_col: str | None = None) -> ParsedCorpus:
    """Read and validate a corpus file, folder or ZIP.

    Args:
        path: a .jsonl/.csv/.tsv/.txt file, a folder (BEIR, or of .txt files) or a .zip of any of these.
        id_col, title_col, text_col: column or field names, when auto-detection does not fit.
    Returns:
        A :class:`ParsedCorpus`. Raises :class:`InputError` on any problem, before anything is stored.
    """
    cols = {"id_col": id_col, "title_col": title_col, "text_col": text_col}
    label = os.path.basename(os.path.normpath(path)) or path
    if os.path.isdir(path):
        out = _read_folder(path, label, cols)
    elif path.lower().endswith(".zip"):
        _check_file(path, label)
        with tempfile.TemporaryDirectory(prefix="hce-zip-") as tmp:
            _safe_extract(path, label, tmp)
            entries = [e for e in os.listdir(tmp) if not e.startswith(".") and e != "__MACOSX"]
            root = os.path.join(tmp, entries[0]) if len(entries) == 1 and os.path.isdir(
                os.path.join(tmp, entries[0])) else tmp
            inner = label + (f"/{entries[0]}" if root != tmp else "")
            out = _read_folder(root, inner, cols)
            out.format = f"zip:{out.format}"
    else:
        docs, skipped, fmt = _read_file(path, label, cols)
        out = ParsedCorpus(documents=docs, skipped_empty=skipped, format=fmt)
    if not out.documents:
        raise InputError(f"no documents with text ({out.skipped_empty} empty ones skipped)", label)
    out.source = os.path.abspath(path)
    return out


def read_pairs(path: str, label: str | None = None) -> list[tuple[str, str]]:
    """Training pairs (query text, document id) from a two-column CSV/TSV with a header, or JSONL with
    ``query`` and ``doc_id`` (or ``_id``/``id``) fields."""
    label = label or path
    pairs: list[tuple[str, str]] = []
    if path.lower().endswith((".jsonl", ".json")):
        for lineno, obj in _iter_json_objects(path, label):
            q = _clean(obj.get("query"), label, lineno, "the query")
            d = _clean(next((obj[k] for k in ("doc_id",) + ID_COLUMNS if k in obj), None), label, lineno,
                       "the document id")
            if not q or not d:
                raise InputError("a pair needs 'query' and 'doc_id'", label, lineno)
            pairs.append((q, d))
        return pairs
    header, rows = _csv_rows(path, label, "\t" if path.lower().endswith((".tsv", ".tab")) else ",")
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
