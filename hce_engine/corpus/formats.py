"""Document file formats: JSONL (``_id``/``id``, ``title``, ``text``; other fields kept as metadata), CSV/TSV
(header row, columns auto-detected or named), plain ``.txt`` (one document per non-empty line) and a folder
of ``.txt`` files (one document per file); and the line parsers the query formats share (JSON lines, CSV/TSV
rows, column picking). JSON ``NaN``/``Infinity`` are refused.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from typing import Iterator

from ..errors import InputError
from . import limits
from .files import bad_char, check_metadata, clean, read_lines

ID_COLUMNS = ("_id", "id", "doc_id", "docid", "document_id")
TITLE_COLUMNS = ("title", "name", "headline", "heading")
TEXT_COLUMNS = ("text", "body", "content", "abstract", "document", "passage", "contents")


@dataclass(slots=True)
class DocRecord:
    ext_id: str
    title: str
    text: str
    metadata: dict | None = None


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
        ext_id = clean(ext_id, self.label, lineno, "the id")
        if not ext_id:
            raise InputError("the document id is empty", self.label, lineno)
        if ext_id in self.first_line:
            raise InputError(f"duplicate document id {ext_id!r} (first seen on line {self.first_line[ext_id]})",
                             self.label, lineno)
        self.first_line[ext_id] = lineno
        title = clean(title, self.label, lineno, "the title")
        text = clean(text, self.label, lineno, "the text")
        if not text and not title:
            self.skipped_ids.append(ext_id)
            return
        if len(self.records) >= limits.MAX_DOCUMENTS:
            raise InputError(f"more than {limits.MAX_DOCUMENTS:,} documents; the limit per import is "
                             f"{limits.MAX_DOCUMENTS:,} (split the corpus, or raise HCE_MAX_DOCUMENTS)", self.label,
                             lineno)
        if metadata:
            check_metadata(metadata, self.label, lineno)
        self.records.append(DocRecord(ext_id, title, text, metadata or None))


def _no_constant(name: str):
    raise ValueError(f"{name} is not a valid JSON value")


def iter_json_objects(path: str, label: str) -> Iterator[tuple[int, dict]]:
    seen_any = False
    for lineno, line in read_lines(path, label):
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


def pick(keys, wanted: tuple[str, ...], named: str | None, label: str, what: str, required: bool):
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
    docs = jsonl_docs(path, label or path, id_col, title_col, text_col)
    return docs.records, docs.skipped


def jsonl_docs(path: str, label: str, id_col: str | None, title_col: str | None, text_col: str | None) -> _Docs:
    docs = _Docs(label)
    for lineno, obj in iter_json_objects(path, label):
        keys = list(obj)
        idk = pick(keys, ID_COLUMNS, id_col, label, "id", False)
        tk = pick(keys, TITLE_COLUMNS, title_col, label, "title", False)
        xk = pick(keys, TEXT_COLUMNS, text_col, label, "text", False)
        if xk is None:
            raise InputError(f"the record has no text field (expected one of {', '.join(TEXT_COLUMNS)}; "
                             f"fields are {', '.join(keys) or 'none'})", label, lineno)
        ext_id = obj.get(idk) if idk is not None else str(lineno)
        meta = {k: v for k, v in obj.items() if k not in (idk, tk, xk, "metadata")}
        if isinstance(obj.get("metadata"), dict):
            meta = {**obj["metadata"], **meta}
        docs.add(lineno, ext_id, obj.get(tk) if tk else "", obj.get(xk), meta)
    return docs


def csv_rows(path: str, label: str, delimiter: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    csv.field_size_limit(limits.MAX_TEXT_CHARS * 4)
    lines = (line for _, line in read_lines(path, label, keep_ends=True))  # validates encoding line by line
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
        if bad := bad_char(h):
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
    header, rows = csv_rows(path, label, delimiter)
    idk = pick(header, ID_COLUMNS, id_col, label, "id", False)
    tk = pick(header, TITLE_COLUMNS, title_col, label, "title", False)
    xk = pick(header, TEXT_COLUMNS, text_col, label, "text", True)
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
    for lineno, line in read_lines(path, label):
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
        text = "\n".join(line for _, line in read_lines(full, rel)) if os.path.getsize(full) else ""
        docs.label = rel
        docs.add(1, rel, os.path.splitext(os.path.basename(rel))[0], text)
    return docs.records, docs.skipped


def read_file(path: str, label: str, cols: dict) -> tuple[list[DocRecord], int, str]:
    """Documents of one file, read by its extension: (documents, skipped empty count, format name)."""
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
