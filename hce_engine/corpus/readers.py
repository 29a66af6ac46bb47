"""Read user corpora into plain records, validating everything before anything is stored.

A corpus is a document file (see ``formats``), a folder (a BEIR folder: ``corpus.jsonl``, ``queries.jsonl``,
``qrels/<split>.tsv``; a folder of ``.txt`` files; or a folder holding one corpus file) or a ZIP of any of
these (see ``archives``). Every problem raises :class:`~hce_engine.errors.InputError` naming the file, the
line and the problem; nothing is returned half-read. File access and its checks are in ``files``, the limits
in ``limits``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import InputError
from . import archives
from .files import check_inside
from .formats import DocRecord, jsonl_docs, read_file, read_txt_folder
from .queries import read_qrels, read_queries


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


def _read_beir(folder: str, prefix: str, cols: dict) -> ParsedCorpus:
    def rel(*p: str) -> str:
        return os.path.join(prefix, *p) if prefix else os.path.join(*p)

    check_inside(folder, "corpus.jsonl", prefix)
    docs = jsonl_docs(os.path.join(folder, "corpus.jsonl"), rel("corpus.jsonl"), **cols)
    out = ParsedCorpus(documents=docs.records, skipped_empty=docs.skipped, format="beir")
    qpath = os.path.join(folder, "queries.jsonl")
    if os.path.lexists(qpath):
        check_inside(folder, "queries.jsonl", prefix)
        out.queries = read_queries(qpath, rel("queries.jsonl"))
    qdir = os.path.join(folder, "qrels")
    if os.path.isdir(qdir):
        check_inside(folder, "qrels", prefix)
        doc_ids = set(docs.first_line)  # empty documents too: their judgements count (see ParsedCorpus)
        empty = set(docs.skipped_ids)
        for name in sorted(os.listdir(qdir)):
            if name.endswith(".tsv") and not name.startswith("."):
                check_inside(folder, os.path.join("qrels", name), prefix)
                rows = read_qrels(os.path.join(qdir, name), rel("qrels", name), doc_ids, out.queries)
                out.qrels[name[:-4]] = rows
                out.empty_judged += sum(d in empty for _, d, _ in rows)
    if out.qrels and not out.queries:
        raise InputError("qrels given but no queries.jsonl", rel("qrels"))
    return out


def _read_folder(folder: str, label: str, cols: dict) -> ParsedCorpus:
    if os.path.lexists(os.path.join(folder, "corpus.jsonl")):
        return _read_beir(folder, label, cols)
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        files += [os.path.relpath(os.path.join(root, n), folder) for n in sorted(names) if not n.startswith(".")]
    for rel in files:
        check_inside(folder, rel, label)
    if not files:
        raise InputError("the folder holds no files", label)
    if all(f.lower().endswith(".txt") for f in files) and len(files) > 1:
        docs, skipped = read_txt_folder(folder, files)
        return ParsedCorpus(documents=docs, skipped_empty=skipped, format="txt-folder")
    if len(files) == 1:
        docs, skipped, fmt = read_file(os.path.join(folder, files[0]), os.path.join(label, files[0]), cols)
        return ParsedCorpus(documents=docs, skipped_empty=skipped, format=fmt)
    raise InputError("a folder must be a BEIR folder (corpus.jsonl, queries.jsonl, qrels/), a folder of .txt "
                     f"files, or hold a single corpus file; found {', '.join(files[:5])}"
                     f"{'…' if len(files) > 5 else ''}", label)


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
        with archives.unpacked(path, label) as (root, inner):
            out = _read_folder(root, inner, cols)
            out.format = f"zip:{out.format}"
    else:
        docs, skipped, fmt = read_file(path, label, cols)
        out = ParsedCorpus(documents=docs, skipped_empty=skipped, format=fmt)
    if not out.documents:
        raise InputError(f"no documents with text ({out.skipped_empty} empty ones skipped)", label)
    out.source = os.path.abspath(path)
    return out
