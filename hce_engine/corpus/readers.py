"""Read user corpora into plain records, validating everything before anything is stored.

Formats: JSONL (``_id``/``id``, ``title``, ``text``; other fields kept as metadata), CSV/TSV (header row,
columns auto-detected or named), plain ``.txt`` (one document per non-empty line), a folder of ``.txt``
files (one document per file), a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``)
and a ZIP of any of these. Every problem raises :class:`~hce_engine.errors.InputError` naming the file,
the line and the problem; nothing is returned half-read.

Line breaks may be ``\n``, ``\r\n`` or a lone ``\r``. Text must be valid Unicode: no NUL characters and no
lone surrogates (``"\ud800"`` in JSON), whether raw or escaped. JSON ``NaN``/``Infinity`` are refused.
Folders: symbolic links must stay inside the folder; file names must be UTF-8.

Limits (module constants, each settable through the environment variable in brackets): a file may be at
most ``MAX_FILE_BYTES`` [HCE_MAX_FILE_MIB] and ``MAX_LINES`` lines; a document's text at most
``MAX_TEXT_CHARS`` characters (longer means a broken file, e.g. missing line breaks, and is an error); an
import at most ``MAX_DOCUMENTS`` documents [HCE_MAX_DOCUMENTS]; a ZIP may unpack to at most ``MAX_ZIP_BYTES``
[HCE_MAX_UNPACKED_MIB] in ``MAX_ZIP_MEMBERS`` files, and a member larger than ``ZIP_RATIO_MIN_BYTES`` may
unpack to at most ``MAX_ZIP_RATIO`` times its packed size (more is a ZIP bomb).
"""
from __future__ import annotations

import csv
import io
import json
import lzma
import os
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Iterator

from .. import tempfiles
from ..errors import InputError


def _env_int(name: str, default: int, scale: int = 1) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) * scale if value else default
    except ValueError:
        raise InputError(f"the environment variable {name}={value!r} is not a whole number") from None


MAX_FILE_BYTES = _env_int("HCE_MAX_FILE_MIB", 1 << 30, 1 << 20)         # 1 GiB per file
MAX_LINES = 5_000_000                                                     # per file
MAX_TEXT_CHARS = 1_000_000                                                # per document text
MAX_DOCUMENTS = _env_int("HCE_MAX_DOCUMENTS", 1_000_000)                  # per import
MAX_ZIP_BYTES = _env_int("HCE_MAX_UNPACKED_MIB", 2 << 30, 1 << 20)       # 2 GiB unpacked
MAX_ZIP_MEMBERS = 200_000
MAX_ZIP_RATIO = 100               # unpacked / packed size of one member, checked above ZIP_RATIO_MIN_BYTES
ZIP_RATIO_MIN_BYTES = 16 << 20
MAX_SCORE = 2**31 - 1             # qrels scores are stored as 32-bit integers
ID_COLUMNS = ("_id", "id", "doc_id", "docid", "document_id")
TITLE_COLUMNS = ("title", "name", "headline", "heading")
TEXT_COLUMNS = ("text", "body", "content", "abstract", "document", "passage", "contents")
QUERY_TEXT_COLUMNS = ("text", "query", "question", "claim")


@dataclass(slots=True)
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
        empty_judged: judgements (all splits) naming such an empty document: kept (they count in nDCG's ideal
            ranking and in recall) though the document cannot be retrieved.
        source: the path that was read.
        format: what it was read as ("jsonl", "csv", "tsv", "txt", "txt-folder", "beir", "zip:...").
    """

    documents: list[DocRecord] = field(default_factory=list)
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)
    skipped_empty: int = 0
    empty_judged: int = 0
    source: str = ""
    format: str = ""


# -- low-level file reading -------------------------------------------------------------------
def _check_file(path: str, label: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError("file not found" + (" (a broken symbolic link)" if os.path.islink(path) else ""),
                         label) from None
    except OSError as exc:  # symlink loop, name too long, permission
        raise InputError(f"cannot read the file: {exc.strerror or exc}", label) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file", label)
    if st.st_size == 0:
        raise InputError("the file is empty", label)
    if st.st_size > MAX_FILE_BYTES:
        raise InputError(f"the file is {st.st_size / 2**20:.0f} MiB; the limit is {MAX_FILE_BYTES >> 20} MiB "
                         "(split it, import a ZIP of smaller files, or raise HCE_MAX_FILE_MIB)", label)


def _bad_char(value: str) -> str | None:
    """Why ``value`` is not storable text (a NUL or a lone surrogate), or None."""
    if "\x00" in value:
        return f"a NUL character (at character {value.index(chr(0)) + 1})"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate {value[exc.start]!r} (at character {exc.start + 1}), which is not valid Unicode"
    return None


def _read_lines(path: str, label: str, keep_ends: bool = False) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, decoded line); binary, non-UTF-8 and oversize files are errors.

    Lines end at ``\n``, ``\r\n`` or a lone ``\r``; ``keep_ends`` keeps the line break (as the csv
    module wants, so a quoted field keeps its line breaks), else it is stripped. A UTF-8 BOM is dropped.
    """
    _check_file(path, label)
    with open(path, "rb") as raw:
        if b"\x00" in raw.read(8192):
            raise InputError("this is a binary file, not UTF-8 text", label)
        raw.seek(0)
        # surrogateescape: an invalid byte becomes a lone surrogate, found per line below with its line number
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        limit = 4 * MAX_TEXT_CHARS + 2
        lineno = 0
        while line := text.readline(limit):
            lineno += 1
            if lineno > MAX_LINES:
                raise InputError(f"the file has more than {MAX_LINES:,} lines; the limit is {MAX_LINES:,}",
                                 label, lineno)
            if len(line) >= limit and not line.endswith(("\n", "\r")):
                raise InputError(f"the line is over {limit - 2:,} characters (a missing line break?)", label, lineno)
            if "\x00" in line:
                raise InputError("NUL byte: this looks like a binary file", label, lineno)
            try:
                line.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InputError(f"not valid UTF-8 (character {exc.start + 1} of the line); save the file as UTF-8",
                                 label, lineno) from None
            yield lineno, (line if keep_ends else line.rstrip("\r\n"))


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
    bad = _bad_char(value)
    if bad:
        raise InputError(f"{what} holds {bad}", label, lineno)
    return value


def _check_metadata(meta: dict, label: str, lineno: int) -> None:
    """Metadata is stored as JSON text: its keys and string values must be storable too."""
    stack: list[dict | list] = [meta]
    while stack:
        item = stack.pop()
        values = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
        for k, v in values:
            for s in (k, v):
                if isinstance(s, str) and (bad := _bad_char(s)):
                    raise InputError(f"the field {str(k)[:40]!r} holds {bad}", label, lineno)
            if isinstance(v, (dict, list)):
                stack.append(v)


class _Docs:
    """Collects documents, rejecting duplicate ids and counting empties."""

    def __init__(self, label: str):
        self.label = label
        self.records: list[DocRecord] = []
        self.first_line: dict[str, int] = {}  # document id -> the line it was first seen on
        self.skipped_ids: list[str] = []

    @property
    def skipped(self) -> int:
        return len(self.skipped_ids)

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
            self.skipped_ids.append(ext_id)
            return
        if len(self.records) >= MAX_DOCUMENTS:
            raise InputError(f"more than {MAX_DOCUMENTS:,} documents; the limit per import is {MAX_DOCUMENTS:,} "
                             "(split the corpus, or raise HCE_MAX_DOCUMENTS)", self.label, lineno)
        if metadata:
            _check_metadata(metadata, self.label, lineno)
        self.records.append(DocRecord(ext_id, title, text, metadata or None))


# -- formats ----------------------------------------------------------------------------------
def _no_constant(name: str):
    raise ValueError(f"{name} is not a valid JSON value")


def _iter_json_objects(path: str, label: str) -> Iterator[tuple[int, dict]]:
    seen_any = False
    for lineno, line in _read_lines(path, label):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON: {exc.msg} (column {exc.colno})", label, lineno) from None
        except ValueError as exc:  # NaN/Infinity, integers over Python's digit limit
            raise InputError(f"unsupported JSON: {exc}", label, lineno) from None
        except RecursionError:
            raise InputError("JSON nested too deeply", label, lineno) from None
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
    docs = _jsonl_docs(path, label or path, id_col, title_col, text_col)
    return docs.records, docs.skipped


def _jsonl_docs(path: str, label: str, id_col: str | None, title_col: str | None, text_col: str | None) -> _Docs:
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
    return docs


def _csv_rows(path: str, label: str, delimiter: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    csv.field_size_limit(MAX_TEXT_CHARS * 4)
    lines = (line for _, line in _read_lines(path, label, keep_ends=True))  # validates encoding line by line
    reader = csv.reader(lines, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE)
    kind = "CSV" if delimiter == "," else "TSV"
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("the file is empty", label) from None
    except csv.Error as exc:
        raise InputError(f"malformed {kind} header: {exc}", label, max(reader.line_num, 1)) from None
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise InputError(f"duplicate column names in the header: {header}", label, 1)
    for h in header:
        if bad := _bad_char(h):
            raise InputError(f"a column name holds {bad}", label, 1)

    def rows():
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as exc:
            raise InputError(f"malformed {kind}: {exc}", label, reader.line_num) from None

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
        score = _score(s, label, lineno)
        for what, value in (("query id", q), ("document id", d)):
            if not value:
                raise InputError(f"the {what} is empty", label, lineno)
            if bad := _bad_char(value):
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
    def rel(*p: str) -> str:
        return os.path.join(prefix, *p) if prefix else os.path.join(*p)

    _check_inside(folder, "corpus.jsonl", prefix)
    docs = _jsonl_docs(os.path.join(folder, "corpus.jsonl"), rel("corpus.jsonl"), **cols)
    out = ParsedCorpus(documents=docs.records, skipped_empty=docs.skipped, format="beir")
    qpath = os.path.join(folder, "queries.jsonl")
    if os.path.lexists(qpath):
        _check_inside(folder, "queries.jsonl", prefix)
        out.queries = read_queries(qpath, rel("queries.jsonl"))
    qdir = os.path.join(folder, "qrels")
    if os.path.isdir(qdir):
        _check_inside(folder, "qrels", prefix)
        doc_ids = set(docs.first_line)  # empty documents too: their judgements count (see ParsedCorpus)
        empty = set(docs.skipped_ids)
        for name in sorted(os.listdir(qdir)):
            if name.endswith(".tsv") and not name.startswith("."):
                _check_inside(folder, os.path.join("qrels", name), prefix)
                rows = read_qrels(os.path.join(qdir, name), rel("qrels", name), doc_ids, out.queries)
                out.qrels[name[:-4]] = rows
                out.empty_judged += sum(d in empty for _, d, _ in rows)
    if out.qrels and not out.queries:
        raise InputError("qrels given but no queries.jsonl", rel("qrels"))
    return out


def _check_inside(folder: str, rel: str, label: str) -> None:
    """Refuse a folder entry whose name is not UTF-8 or that is a symbolic link leading outside the folder
    (or nowhere)."""
    shown = os.path.join(label, rel)
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"the file name {rel!r} is not valid UTF-8; rename it", label) from None
    full = os.path.join(folder, rel)
    if not os.path.islink(full):
        return
    try:
        target = os.path.realpath(full, strict=True)
    except (OSError, RuntimeError):  # dangling, or a loop
        raise InputError("a broken symbolic link (its target does not exist, or it loops)", shown) from None
    root = os.path.realpath(folder)
    if os.path.commonpath([root, target]) != root:
        raise InputError("a symbolic link to a file outside the imported folder; copy the file in instead",
                         shown)


def _read_folder(folder: str, label: str, cols: dict) -> ParsedCorpus:
    if os.path.lexists(os.path.join(folder, "corpus.jsonl")):
        return _read_beir(folder, label, cols)
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        files += [os.path.relpath(os.path.join(root, n), folder) for n in sorted(names) if not n.startswith(".")]
    for rel in files:
        _check_inside(folder, rel, label)
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


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError,
               ValueError, UnicodeError, zlib.error, lzma.LZMAError)  # bz2 raises OSError/ValueError


def _safe_extract(zpath: str, label: str, dest: str) -> None:
    """Unpack a ZIP after checking every member: no absolute or '..' paths, links, duplicate or clashing
    names, encrypted members or oversize content (by size and by compression ratio). Any read error of the
    archive or a member is an :class:`InputError` naming the member."""
    try:
        zf = zipfile.ZipFile(zpath)
        members = zf.infolist()
    except _ZIP_ERRORS as exc:
        raise InputError(f"not a valid ZIP archive ({exc})", label) from None
    with zf:
        if len(members) > MAX_ZIP_MEMBERS:
            raise InputError(f"the archive has {len(members):,} entries; the limit is {MAX_ZIP_MEMBERS:,}", label)
        total = 0
        files: set[str] = set()
        folders: set[str] = set()
        for m in members:
            name = m.filename
            if not name:
                raise InputError("the archive holds a member with an empty name", label)
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
                raise InputError(f"unsafe path in archive: {name!r} (absolute or with '..')", label)
            if stat.S_ISLNK(m.external_attr >> 16):
                raise InputError(f"the archive holds a symbolic link: {name!r}", label)
            if m.flag_bits & 0x1:
                raise InputError(f"{name}: the member is encrypted; unpack it first", label)
            if m.file_size > MAX_FILE_BYTES:
                raise InputError(f"{name}: unpacks to {m.file_size >> 20} MiB; the limit is "
                                 f"{MAX_FILE_BYTES >> 20} MiB per file", label)
            if m.file_size > ZIP_RATIO_MIN_BYTES and m.file_size > MAX_ZIP_RATIO * max(m.compress_size, 1):
                raise InputError(f"{name}: unpacks to {m.file_size >> 20} MiB from {m.compress_size:,} bytes "
                                 f"(over {MAX_ZIP_RATIO}:1); this looks like a ZIP bomb", label)
            total += m.file_size
            key = "/".join(p for p in parts if p and p != ".").casefold()
            if not m.is_dir():
                if key in files:
                    raise InputError(f"the archive holds {name!r} twice", label)
                files.add(key)
            folders.update("/".join(key.split("/")[:i]) for i in range(1, key.count("/") + 1 + m.is_dir()))
        clash = files & folders
        if clash:
            raise InputError(f"the archive holds a file and a folder both named {sorted(clash)[0]!r}", label)
        if total > MAX_ZIP_BYTES:
            raise InputError(f"the archive unpacks to {total >> 20} MiB; the limit is {MAX_ZIP_BYTES >> 20} MiB "
                             "(raise HCE_MAX_UNPACKED_MIB)", label)
        for m in members:
            target = os.path.realpath(os.path.join(dest, m.filename))
            if not target.startswith(os.path.realpath(dest) + os.sep):
                raise InputError(f"unsafe path in archive: {m.filename!r}", label)
            try:
                if m.is_dir():
                    os.makedirs(target, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                # ZipExtFile never returns more than the header's file_size (checked above), and a member
                # whose data disagrees with its header fails its CRC check: BadZipFile below.
                with zf.open(m) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
            except _ZIP_ERRORS as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
                raise InputError(f"{m.filename}: cannot unpack this member ({reason})", label) from None


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
        with tempfile.TemporaryDirectory(prefix=tempfiles.prefix("zip")) as tmp:
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
