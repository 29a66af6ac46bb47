"""Corpus readers: files, folders and archives -> validated records (nothing stored here)."""
from .readers import (
    MAX_FILE_BYTES,
    MAX_TEXT_CHARS,
    DocRecord,
    ParsedCorpus,
    read_corpus,
    read_pairs,
    read_qrels,
    read_queries,
)
from .text import SNIPPET_CHARS, doc_text, snippet

__all__ = ["DocRecord", "ParsedCorpus", "read_corpus", "read_queries", "read_qrels", "read_pairs",
           "MAX_FILE_BYTES", "MAX_TEXT_CHARS", "doc_text", "snippet", "SNIPPET_CHARS"]
