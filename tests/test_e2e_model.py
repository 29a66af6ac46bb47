"""The real bundled MiniLM end to end (slower; marked `model`)."""
from __future__ import annotations

import json
import os

import pytest

from conftest import SCIFACT
from hce_engine import Workspace
from hce_engine.cli import main

pytestmark = pytest.mark.model
needs_scifact = pytest.mark.skipif(not os.path.isdir(SCIFACT), reason=f"SciFact not found at {SCIFACT}")


@needs_scifact
def test_scifact_zero_shot_reproduces_published_figure(tmp_path, capsys, monkeypatch):
    """`hce import` of the BEIR folder, then `hce eval --json`: nDCG@10 = 0.645 +- 0.005 (title + text, 256)."""
    monkeypatch.delenv("HCE_DEFAULT_MODEL", raising=False)
    ws = str(tmp_path / "ws")
    assert main(["--workspace", ws, "import", SCIFACT, "--name", "scifact"]) == 0
    capsys.readouterr()
    assert main(["--workspace", ws, "eval", "--corpus", "scifact", "--split", "test", "--bm25", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["queries"] == 300
    assert abs(m["ndcg_at_10"] - 0.645) <= 0.005, m
    assert 0.67 <= m["bm25"]["ndcg_at_10"] <= 0.70, m["bm25"]  # bm25s, stemmed, English stop words


@needs_scifact
def test_real_model_trains_and_serves(tmp_path):
    """A tiny HCE run with the real encoder: 300 SciFact abstracts, their train queries, one short epoch."""
    import shutil
    sub = tmp_path / "sub"
    (sub / "qrels").mkdir(parents=True)
    qrels = [line.rstrip("\n").split("\t") for line in open(os.path.join(SCIFACT, "qrels", "train.tsv"))][1:]
    keep_docs = {d for _, d, _ in qrels[:120]}
    docs = [json.loads(line) for line in open(os.path.join(SCIFACT, "corpus.jsonl"))]
    chosen = [d for d in docs if d["_id"] in keep_docs] + [d for d in docs if d["_id"] not in keep_docs][:300 - len(keep_docs)]
    (sub / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in chosen))
    shutil.copy(os.path.join(SCIFACT, "queries.jsonl"), sub / "queries.jsonl")
    (sub / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{s}\n" for q, d, s in qrels[:120]))
    ws = Workspace(str(tmp_path / "ws"))
    try:
        ws.import_corpus(str(sub), name="sub")
        run = ws.train("sub", {"epochs": 1, "batch_size": 16, "siblings": 2, "max_length": 64,
                               "query_max_length": 32, "branching": 5})
        info = ws.run(run)
        assert info["status"] == "done", info["error"]
        s = info["summary"]
        assert s["start_val"]["n_queries"] > 0 and s["best_val"] is not None
        assert os.path.isfile(os.path.join(info["model_path"], "modules.json"))  # a sentence-transformers folder
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer(info["model_path"], device="cpu")
        mine = ws.encoder(info["model_path"]).encode(["vitamin D deficiency"], max_length=64)
        theirs = st.encode(["vitamin D deficiency"], normalize_embeddings=True)
        assert float((mine * theirs).sum()) > 0.9999
        hits = ws.search("sub", chosen[0]["title"], run=run, k=5)
        assert len(hits) == 5 and hits[0].path
    finally:
        ws.close()
