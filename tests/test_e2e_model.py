"""The real bundled MiniLM end to end (slower; marked `model`)."""
from __future__ import annotations

import json
import os

import pytest
import torch

from conftest import SCIFACT, needs_scifact
from hce_engine import Workspace
from hce_engine.cli import main

pytestmark = pytest.mark.model


@needs_scifact
def test_scifact_zero_shot_reproduces_published_figure(tmp_path, capsys, monkeypatch):
    """`hce import` of the BEIR folder, then `hce eval --json`: nDCG@10 = 0.645 +- 0.005 (title + text, 256)."""
    monkeypatch.delenv("HCE_DEFAULT_MODEL", raising=False)
    ws = str(tmp_path / "ws")
    assert main(["--workspace", ws, "import", SCIFACT, "--name", "scifact"]) == 0
    capsys.readouterr()
    assert main(["--workspace", ws, "eval", "--corpus", "scifact", "--split", "test", "--with-bm25", "--json"]) == 0
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
                               "query_max_length": 32, "branching": 5, "val_fraction": 0.2})
        info = ws.run(run)
        assert info.status == "done", info.error
        s = info.summary
        assert s["start_val"]["n_queries"] > 0 and s["best_val"] is not None
        assert s["start_val"]["pool"] == 300  # ranked against the whole corpus
        assert os.path.isfile(os.path.join(info.model_path, "modules.json"))  # a sentence-transformers folder
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer(info.model_path, device="cpu")
        mine = ws.encoder(info.model_path).encode(["vitamin D deficiency"], max_length=64)
        theirs = st.encode(["vitamin D deficiency"], normalize_embeddings=True)
        assert float((mine * theirs).sum()) > 0.9999
        hits = ws.search("sub", chosen[0]["title"], run=run, k=5)
        assert len(hits) == 5 and hits[0].path
        # an exported run encodes like the run: its documents at the length of the stored vectors (256), not
        # its training length (64); vectors stored in bf16 where the CPU has it, so cosine >= 0.999 not 1.0
        exported = ws.export_model(run, str(tmp_path / "exported"))
        ids, vecs = ws.store.read_vectors(run)
        docs50 = ws.store.documents(ws.store.corpus_id("sub"), doc_ids=ids[:50]).set_index("doc_id").loc[ids[:50]]
        texts50 = [f"{t} {x}".strip() for t, x in zip(docs50["title"], docs50["text"])]
        again = SentenceTransformer(exported, device="cpu").encode(texts50, normalize_embeddings=True)
        assert SentenceTransformer(exported, device="cpu").max_seq_length == 256
        assert float((again * vecs[:50]).sum(1).min()) >= 0.999
        # the weights moved
        from hce_engine.encoder import load_encoder
        start, trained = load_encoder(None, device="cpu"), load_encoder(info.model_path, device="cpu")
        w0 = start.model.encoder.layer[5].output.dense.weight
        w1 = trained.model.encoder.layer[5].output.dense.weight
        assert not torch.equal(w0, w1) and float((w0 - w1).detach().abs().max()) > 1e-5
        # a run made to degrade (a learning rate 500x the default) is reported as worse, not as an improvement
        bad = ws.train("sub", {"epochs": 1, "batch_size": 16, "siblings": 2, "max_length": 64, "lr": 1e-2,
                               "query_max_length": 32, "branching": 5, "val_fraction": 0.25})
        s = ws.run(bad).summary
        assert s["outcome"]["verdict"] == "worse" and s["improved"] is False, s["outcome"]
        assert s["outcome"]["checks"][0]["end"] < s["outcome"]["checks"][0]["start"] - 0.05
    finally:
        ws.close()


def test_gradient_caching_matches_a_plain_step_on_the_real_model():
    """GradCache (chunks embedded without gradient, then re-embedded with replayed dropout) gives the loss and
    gradients of a plain step that embeds the same chunks with gradient, on MiniLM with dropout on."""
    import numpy as np
    from hce_engine.encoder import load_encoder
    from hce_engine.training import HierarchicalContrastiveLoss, HierarchicalSampler, Pair, TrainConfig
    from hce_engine.training.gradcache import Embedder, train_step
    from hce_engine.tree.builders import build_tree
    texts = [f"Document {i} about {topic} and {topic} research number {i}." for i, topic in
             enumerate(["vitamin D", "bone density", "protein folding", "gene expression"] * 6)]
    pairs = [Pair(f"what about {t.split(' about ')[1][:20]}", i) for i, t in enumerate(texts[:8])]
    cfg = TrainConfig(batch_size=8, siblings=3, max_length=32, query_max_length=16, sibling_max_length=24,
                      precision="fp32")
    enc = load_encoder(None, device="cpu", precision="fp32")
    tree = build_tree(enc.encode(texts, max_length=32), branching=4, seed=0)
    batch = next(HierarchicalSampler(tree, pairs, texts, batch_size=8, siblings=3, memory_levels=tree.depth,
                                     seed=0).batches(0))

    class PlainChunks(Embedder):
        """Embeds the same length-sorted chunks, in the same order, with gradient (no cache, no replay)."""

        def forward(self, texts, max_length):
            if len(texts) <= self.chunk:
                return self._call(texts, max_length), None
            order = np.argsort(-np.fromiter(map(len, texts), np.int64), kind="stable")
            parts = [self._call([texts[i] for i in order[s:s + self.chunk]], max_length)
                     for s in range(0, len(texts), self.chunk)]
            return torch.cat(parts)[torch.as_tensor(np.argsort(order))], None

    enc.train()
    assert enc.model.training and enc.model.config.hidden_dropout_prob > 0
    results = []
    for embedder in (Embedder(enc, torch.device("cpu"), 3), PlainChunks(enc, torch.device("cpu"), 3)):
        loss_fn = HierarchicalContrastiveLoss(tree, tree.depth, 0.05, True, False)
        enc.zero_grad(set_to_none=True)
        torch.manual_seed(123)
        details = train_step(embedder, loss_fn, batch, cfg)
        results.append((details["loss"], {n: p.grad.clone() for n, p in enc.named_parameters()
                                          if p.grad is not None}))
    (l0, g0), (l1, g1) = results
    assert l0 == pytest.approx(l1, rel=1e-5)
    assert g0.keys() == g1.keys() and len(g0) > 50
    for name in g0:
        torch.testing.assert_close(g0[name], g1[name], rtol=1e-3, atol=1e-6, msg=name)
    # and dropout really is on: the same step with another seed gives another loss
    torch.manual_seed(7)
    other = train_step(Embedder(enc, torch.device("cpu"), 3),
                       HierarchicalContrastiveLoss(tree, tree.depth, 0.05, True, False), batch, cfg)["loss"]
    assert other != pytest.approx(l0, rel=1e-4)


@needs_scifact
def test_unlabelled_run_on_the_real_model_reports_an_outcome(tmp_path):
    """A corpus without a single judged query: `hce train`'s default (the self signal) with the real encoder
    completes, is taught by the hybrid teacher and judges itself by its label-free checks."""
    docs = [json.loads(line) for line in open(os.path.join(SCIFACT, "corpus.jsonl"))][:240]
    path = tmp_path / "abstracts.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    ws = Workspace(str(tmp_path / "ws"))
    try:
        ws.import_corpus(str(path), name="abstracts")
        cfg = ws.default_config("abstracts", max_pairs=48, batch_size=16, siblings=3, max_length=64,
                                query_max_length=32, branching=5)
        assert cfg.signal == "self"
        run = ws.train("abstracts", cfg)
        info = ws.run(run)
        assert info.status == "done", info.error
        checks = info.summary["outcome"]["checks"]
        assert [c["name"] for c in checks] == ["known item (held-out pseudo-queries)",
                                               "teacher agreement (held-out pseudo-queries)"]
        assert info.summary["outcome"]["verdict"] in ("better", "no better", "worse")
        assert checks[1]["n_queries"] >= 20 and 0 < checks[1]["start"] < 1
        log = ws.train_log(run)
        assert len(log) == 2 * 3 and log["loss"].notna().all()  # 2 epochs of 48 pseudo-queries by 16
    finally:
        ws.close()
