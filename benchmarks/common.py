"""What the benchmarks share: where the data is, the engine's readers and metrics wired for BEIR folders, the
synthetic data, the machine a number was measured on, and writing a result file.

The scripts run from this folder (``python benchmarks/<name>.py``) and import it as ``from common import ...``.
Importing it puts the repository on ``sys.path`` and keeps Hugging Face offline; it loads nothing heavy (torch,
the workspace) until a function needs it.

Documents are read by the engine (``hce_engine.corpus``: validated, fields stripped, empty documents skipped)
and the text the encoder sees is the engine's ``doc_text`` (title + " " + text), so a benchmark encodes what
the app encodes. Metrics come from ``hce_engine.evaluation``; training pairs from ``hce_engine.training``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hce_engine import provenance  # noqa: E402 - needs the repository on sys.path

RESULTS = HERE / "results"
#: SciFact in BEIR layout (corpus.jsonl, queries.jsonl, qrels/{train,test}.tsv; CC BY-NC 2.0, not shipped):
#: $HCE_SCIFACT when set, else ../shared/data/scifact beside the repository (the rule of tests/conftest.py).
SCIFACT = Path(os.environ.get("HCE_SCIFACT") or ROOT.parent / "shared" / "data" / "scifact")
#: The bundled sample corpus (JSONL, no queries): another domain, and the fallback where SciFact is missing.
JARGON = ROOT / "sample_corpora" / "jargon_file" / "corpus.jsonl"
DIM = 384  # the bundled MiniLM's dimension: the synthetic vectors'


# ------------------------------------------------------------------------------------------ documents
def encoder_texts(docs: Sequence) -> list[str]:
    """The text the engine encodes for each document (``DocRecord``s, or anything with title and text)."""
    from hce_engine.corpus import doc_text
    return [doc_text(d.title, d.text) for d in docs]


def read_docs(path: str | Path, n: int | None = None) -> list:
    """The first ``n`` (all: None) documents of a corpus file or folder, as the engine reads them."""
    from hce_engine.corpus import read_corpus
    return read_corpus(str(path)).documents[:n]


@dataclass
class Beir:
    """A BEIR folder as the engine reads it: ``documents`` (``DocRecord``s in file order), ``queries``
    {id: text} and ``qrels`` {split: {query id: {document id: score}}} in file order."""

    documents: list
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]]

    @property
    def ids(self) -> list[str]:
        return [d.ext_id for d in self.documents]

    @property
    def texts(self) -> list[str]:
        return encoder_texts(self.documents)


def load_beir(folder: str | Path) -> Beir:
    """Read a BEIR folder with ``hce_engine.corpus.read_corpus`` (every problem an InputError)."""
    from hce_engine.corpus import read_corpus
    parsed = read_corpus(str(folder))
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    for split, rows in parsed.qrels.items():
        judged = qrels.setdefault(split, {})
        for q, d, score in rows:
            judged.setdefault(q, {})[d] = score
    return Beir(parsed.documents, parsed.queries, qrels)


def write_jsonl(path: str | Path, records) -> str:
    """One JSON object a line (a corpus file to import or add). Returns the path."""
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return str(path)


def write_beir(folder: str | Path, docs: list[dict], queries: dict[str, str],
               qrels: dict[str, dict[str, dict[str, int]]]) -> str:
    """Write a BEIR folder (``docs``: JSON records with ``_id``); qrels rows naming documents outside ``docs``
    are dropped. Returns the folder."""
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "corpus.jsonl", docs)
    write_jsonl(folder / "queries.jsonl", ({"_id": q, "text": t} for q, t in queries.items()))
    live = {d["_id"] for d in docs}
    for split, rows in qrels.items():
        with open(folder / "qrels" / f"{split}.tsv", "w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for q, judged in rows.items():
                f.writelines(f"{q}\t{d}\t{s}\n" for d, s in judged.items() if d in live)
    return str(folder)


def smoke_beir(dest: str | Path, n_docs: int = 40, test_every: int = 2) -> str:
    """A toy BEIR folder for the scripts' ``--smoke``: ``n_docs`` documents in 4 topics (3 sentences of topic
    words each), one query per document, in the test split for every ``test_every``-th one, else train."""
    rng = np.random.default_rng(0)
    topics = [["rocket", "orbit", "launch", "planet"], ["bread", "oven", "flour", "yeast"],
              ["goal", "match", "league", "striker"], ["violin", "concert", "melody", "chord"]]
    docs, queries, qrels = [], {}, {"train": {}, "test": {}}
    for i in range(n_docs):
        words = topics[i % 4]
        docs.append({"_id": f"d{i}", "title": "", "text": " ".join(
            " ".join(rng.choice(words, 5)) + f" item{i}." for _ in range(3))})
        queries[f"q{i}"] = f"{words[0]} item{i}"
        qrels["train" if i % test_every else "test"][f"q{i}"] = {f"d{i}": 1}
    return write_beir(dest, docs, queries, qrels)


FALLBACK_QUERIES = [
    "a program that never ends", "vitamin d deficiency and bone fractures", "antibiotic resistance in bacteria",
    "how do neural networks learn", "the history of the internet", "protein folding and disease",
    "climate change effects on crops", "memory leaks in long running servers",
]


def real_queries(n: int) -> list[str]:
    """``n`` short real queries: SciFact's claims (repeated as needed), else a few fixed ones."""
    path = SCIFACT / "queries.jsonl"
    if path.is_file():
        from hce_engine.corpus import read_queries
        out = list(read_queries(str(path)).values())
    else:
        out = FALLBACK_QUERIES
    return (out * (n // max(len(out), 1) + 1))[:n]


# ------------------------------------------------------------------------------------------ retrieval
def exact_ranking(qids: Sequence[str], query_vecs: np.ndarray, doc_vecs: np.ndarray, doc_ids: Sequence[str],
                  k: int = 100) -> dict[str, dict[str, float]]:
    """Exact search by inner product: each query's top ``k`` documents as {qid: {document id: score}}, the
    ranking ``hce_engine.evaluation.evaluate`` scores."""
    from hce_engine.evaluation import rankings_from_arrays
    sims = query_vecs @ doc_vecs.T
    top = np.argsort(-sims, axis=1)[:, :k]
    return rankings_from_arrays(qids, top, np.take_along_axis(sims, top, axis=1), doc_ids)


# ------------------------------------------------------------------------------------------ synthetic data
def synthetic(n: int, n_queries: int = 0, d: int = DIM, seed: int = 0):
    """n documents + n_queries queries from one topic mixture (n/500 topics, n/25 subtopics, noise).

    Returns (docs float32 (n, d), queries float32 (n_queries, d), subtopic of each doc, topic of each
    subtopic); rows L2-normalised.
    """
    rng = np.random.default_rng(seed)
    n_top, n_sub = max(2, n // 500), max(4, n // 25)
    top = rng.standard_normal((n_top, d)).astype(np.float32)
    sub_top = rng.integers(n_top, size=n_sub)
    sub = top[sub_top] + 0.7 * rng.standard_normal((n_sub, d)).astype(np.float32)
    lab = rng.integers(n_sub, size=n + n_queries)
    x = sub[lab]
    x += 0.9 * rng.standard_normal(x.shape).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:n], x[n:], lab[:n], sub_top


_SYL = ["ka", "lo", "mi", "ru", "te", "sa", "no", "vi", "de", "po", "an", "el", "or", "ul", "is", "ba",
        "ce", "fi", "go", "hu"]


def synthetic_texts(lab: np.ndarray, sub_top: np.ndarray, seed: int = 0) -> list[str]:
    """Pseudo-word texts for :func:`synthetic`'s documents: 2 words of the topic, 3 of the subtopic, 3 common
    words (8 words a document), so node labels have something to count."""
    rng = np.random.default_rng(seed + 1)
    n_top, n_sub, n_common = int(sub_top.max()) + 1, len(sub_top), 300
    n_words = 4 * n_top + 4 * n_sub + n_common
    width = 4  # syllables per word: as many as the vocabulary needs (4 up to 200k documents, as before)
    while len(_SYL) ** width < n_words:
        width += 1
    codes = rng.permutation(len(_SYL) ** width)[:n_words]
    digits = np.stack([(codes // len(_SYL) ** k) % len(_SYL) for k in range(width)], axis=1)
    vocab = np.array(["".join(_SYL[i] for i in row) for row in digits])
    topic_w = vocab[:4 * n_top].reshape(n_top, 4)
    sub_w = vocab[4 * n_top:4 * n_top + 4 * n_sub].reshape(n_sub, 4)
    common = vocab[4 * n_top + 4 * n_sub:]
    n = len(lab)
    words = np.concatenate([topic_w[sub_top[lab]][np.arange(n)[:, None], rng.integers(4, size=(n, 2))],
                            sub_w[lab][np.arange(n)[:, None], rng.integers(4, size=(n, 3))],
                            common[rng.integers(n_common, size=(n, 3))]], axis=1)
    return [" ".join(r) for r in words.tolist()]


def pct(xs, q) -> float:
    """The ``q``th percentile of ``xs`` (nan when empty)."""
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q)) if len(xs) else float("nan")


# ------------------------------------------------------------------------------------------ results
git_commit, clean_tree, machine = provenance.git_commit, provenance.clean_tree, provenance.machine


#: When this process started (every result file records it with the command that wrote it).
STARTED = time.strftime("%Y-%m-%d %H:%M:%S")


def print_tables(paths: Sequence[str | Path], render) -> None:
    """A script's ``--markdown``: ``render(result)`` printed for each result file (reads them, runs nothing)."""
    for path in paths:
        print(render(json.loads(Path(path).read_text())))


def source_line(result: dict) -> str:
    """One line saying where a result file's numbers come from: its command, commit (and whether the checkout was
    clean), when it ran and on what machine (the ``hardware``, ``meta`` or ``machine`` entry), for a README
    table's head."""
    prov = result.get("provenance", {})
    hw = result.get("hardware") or result.get("meta") or result.get("machine") or {}
    load = hw.get("load_avg_at_end")
    return (f"`{prov.get('command', '?')}` · commit {prov.get('commit')}{'' if prov.get('clean_tree') else ' (dirty)'}"
            f" · {prov.get('started')} to {prov.get('written')} · {hw.get('cpu_model')}, {hw.get('usable_cpus')} cores"
            + (f" · load average at the end {', '.join(f'{v:.2f}' for v in load)}" if load else ""))


def write_result(path: str | Path, result: dict) -> Path:
    """Write a result file whole: to a temporary file beside it, renamed over it, so a script killed while
    writing (they write after every row or phase) leaves the previous file. Every file gets a ``provenance``
    entry: the command line, the commit and whether the checkout was clean, when the process started and when
    this was written, and the package versions (a result that sets its own ``provenance`` keeps it; the machine is
    each script's ``hardware`` entry, from :func:`machine`)."""
    path = Path(path)
    result = {**result, "provenance": result.get("provenance") or {
        "command": " ".join(["python", *sys.argv]), "commit": git_commit(), "clean_tree": clean_tree(),
        "started": STARTED, "written": time.strftime("%Y-%m-%d %H:%M:%S"), "packages": provenance.packages()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str) + "\n")
    os.replace(tmp, path)
    return path


# -- synthetic runs: the one place benchmarks write into a workspace's store --------------------------------------
def seed_corpus(ws, name: str, ext_ids: Sequence[str], titles: Sequence[str], texts: Sequence[str],
                source: str) -> np.ndarray:
    """A corpus of already made texts, stored without an import file (a million synthetic documents would
    otherwise be written out and parsed). Returns their doc ids (int64, input order)."""
    store = ws.store
    cid = store.create_corpus(name, source)
    return store.insert_documents(cid, list(ext_ids), list(titles), list(texts), [None] * len(ext_ids))


def seed_run(ws, corpus: str, ids: np.ndarray, vectors: np.ndarray, texts: Sequence[str], model: str, seed: int = 0,
             branching: int = 10, tree=None, projection: np.ndarray | None = None,
             summary: dict | None = None) -> int:
    """A finished baseline run of ``corpus`` from vectors made outside the engine (synthetic, or computed once and
    reused): what ``Workspace.encode`` would store, without encoding. ``ids`` (n,) the documents' doc ids,
    ``vectors`` (n, d) float32 in the same order, ``texts`` for the tree's labels; ``tree`` a prebuilt
    :class:`~hce_engine.tree.Tree` (else built as ``Workspace.build_tree`` does), ``projection`` (n, 2) the map's
    points. Returns the run id."""
    run = ws._new_baseline_run(corpus, model=model, branching=branching, seed=seed)
    ws.store.write_vectors(run, ids, vectors)
    ws.build_tree(run, vectors, ids, texts, branching=branching, seed=seed, tree=tree)
    if projection is not None:
        ws.store.write_projection(run, ids, projection)
    ws.store.update_run(run, status="done", model_path=model,
                        summary=summary or {"documents": int(len(ids)), "dim": int(vectors.shape[1])})
    return run
