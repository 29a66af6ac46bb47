"""How a document is shown to the encoder and to people: one rule each, used by the engine and benchmarks."""
from __future__ import annotations

#: Characters of a document's text shown beside a hit or a tree node (cut at a word).
SNIPPET_CHARS = 240


def doc_text(title: str, text: str) -> str:
    """The text the encoder sees for a document (BEIR convention: title + " " + text)."""
    return f"{title} {text}".strip() if title else text


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` on one line, at most ``limit`` characters, cut at a word with " …"."""
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"
