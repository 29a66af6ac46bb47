"""Corpus readers: files, folders and archives -> validated records (nothing stored here)."""
from .formats import DocRecord
from .limits import MAX_FILE_BYTES, MAX_TEXT_CHARS
from .queries import read_pairs, read_qrels, read_queries
from .readers import ParsedCorpus, read_corpus
from .text import SNIPPET_CHARS, doc_text, snippet

__all__ = ["DocRecord", "ParsedCorpus", "read_corpus", "read_queries", "read_qrels", "read_pairs",
           "MAX_FILE_BYTES", "MAX_TEXT_CHARS", "doc_text", "snippet", "SNIPPET_CHARS"]
