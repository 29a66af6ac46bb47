"""The self signal: pseudo-queries taught by the engine's hybrid search (teacher, loss, sampler, runs)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TOY_TOPICS
from hce_engine.encoder.fake import FakeEncoder
from hce_engine.index import BM25Index
from hce_engine.index.fusion import weighted
from hce_engine.training import (HierarchicalSampler, HybridTeacher, TeacherDistillationLoss, TrainConfig, self_pairs,
                                 train)
from hce_engine.tree import build_tree

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _docs() -> list[str]:
    out = []
    for topic, phrases in TOY_TOPICS.items():
        for i in range(8):
            out.append(f"{phrases[i % 4]} {topic} item{i}. Another sentence about {phrases[(i + 1) % 4]} here.")
    return out


def _teacher(docs, weight=0.8, tau=0.05):
    enc = FakeEncoder(dim=32, seed=0)
    vecs = enc.encode(docs, max_length=128)
    bm25 = BM25Index.build(list(range(len(docs))), docs)
    return enc, vecs, bm25, HybridTeacher(vecs, bm25.all_scores, weight=weight, tau=tau)


def test_teacher_scores_are_hybrid_search_fused_scores():
    """For the same candidates, the teacher's scores are exactly weighted fusion's over whole-corpus lists."""
    docs = _docs()
    enc, vecs, bm25, teacher = _teacher(docs, weight=0.7)
    queries = ["rocket launch orbit space", "pasta sauce tomato", "violin orchestra"]
    teacher.prepare(enc, queries, sources=[0, 9, 20], top_k=5)
    cand = np.array([[1, 2, 3, -1], [9, 10, 23, 4], [20, 21, 22, 0]])
    got = teacher.scores(queries, cand)
    n = len(docs)
    for i, q in enumerate(queries):
        qv = enc.encode([q], max_length=64)[0]
        dense = (vecs @ qv, np.arange(n))
        lex = (bm25.all_scores(q), np.arange(n))
        fused_s, fused_ids = weighted(dense, lex, 0.7, k=n)
        fused = dict(zip(fused_ids.tolist(), fused_s.tolist()))
        for j, d in enumerate(cand[i]):
            if d < 0:
                assert np.isnan(got[i, j])
            else:
                assert got[i, j] == pytest.approx(fused[int(d)], abs=1e-6)
        # its top documents are the fused ranking's, the source left out
        top, _ = teacher.top_others(q)
        ranked = [d for d in fused_ids.tolist() if d != [0, 9, 20][i]][:5]
        assert top.tolist() == ranked


def test_auto_temperature_makes_a_dense_only_teacher_the_student():
    """With weight 1 the teacher's softmax equals the starting student's (cos / tau) over any candidates."""
    docs = _docs()
    enc, vecs, _, teacher = _teacher(docs, weight=1.0, tau=0.05)
    teacher.prepare(enc, ["bake bread oven"], top_k=3)
    cand = np.array([[0, 5, 9, 14, 23]])
    t = torch.softmax(torch.as_tensor(teacher.logits(["bake bread oven"], cand)), dim=1)
    qv = enc.encode(["bake bread oven"], max_length=64)[0]
    s = torch.softmax(torch.as_tensor(vecs[cand[0]] @ qv / 0.05)[None], dim=1)
    assert torch.allclose(t, s, atol=1e-5)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def test_distillation_step_pulls_the_students_ranking_towards_the_teachers():
    torch.manual_seed(0)
    B, K, d = 4, 8, 16
    q = torch.nn.Parameter(torch.randn(B, d))
    docs = torch.nn.Parameter(torch.randn(B, K, d))
    teacher = torch.randn(B, K) * 3
    mask = torch.ones(B, K, dtype=torch.bool)
    mask[0, -2:] = False
    loss_fn = TeacherDistillationLoss()
    opt = torch.optim.SGD([q, docs], lr=0.5)

    def student():
        return torch.einsum("bd,bkd->bk", torch.nn.functional.normalize(q, dim=-1),
                            torch.nn.functional.normalize(docs, dim=-1)) / 0.1

    def corr():
        s = student().detach().numpy()
        return np.mean([_spearman(s[i][mask[i].numpy()], teacher[i][mask[i]].numpy()) for i in range(B)])

    before_loss, before = loss_fn(student(), teacher, mask)[0].item(), corr()
    for _ in range(5):
        opt.zero_grad()
        loss, info = loss_fn(student(), teacher, mask)
        loss.backward()
        opt.step()
    after_loss = loss_fn(student(), teacher, mask)[0].item()
    assert after_loss < before_loss and corr() > before
    assert info["queries"] == B
    # masked candidates get no gradient
    opt.zero_grad()
    loss_fn(student(), teacher, mask)[0].backward()
    assert docs.grad[0, -2:].abs().sum() == 0


def test_distillation_ignores_queries_with_one_candidate():
    loss, info = TeacherDistillationLoss()(torch.zeros(2, 3, requires_grad=True), torch.zeros(2, 3),
                                           torch.tensor([[True, False, False], [False, False, False]]))
    assert loss.item() == 0 and info["queries"] == 0


def test_self_pairs_keep_the_source_whole_and_teacher_negatives_leave_it_out():
    docs = _docs()
    pairs = self_pairs(docs, seed=0)
    assert len(pairs) == len(docs) and all(p.kind == "self" and p.doc_text is None for p in pairs)
    assert all(p.query in docs[p.doc_pos] for p in pairs)
    enc, vecs, _, teacher = _teacher(docs)
    teacher.prepare(enc, [p.query for p in pairs], [p.doc_pos for p in pairs], top_k=4)
    mined = np.stack([teacher.top_others(p.query)[0] for p in pairs])
    assert not (mined == np.array([p.doc_pos for p in pairs])[:, None]).any()
    tree = build_tree(vecs, branching=3, seed=0)
    sampler = HierarchicalSampler(tree, pairs, docs, batch_size=6, negatives="teacher", siblings=3,
                                  memory_levels=tree.depth, mined=mined)
    batch = next(sampler.batches(0))
    for i, pi in enumerate(batch.pair_idx):
        assert batch.neg_doc[i].tolist() == mined[pi, :3].tolist()


def test_pseudo_query_choices():
    docs = ["Aspirin lowers fever in young children. We studied this. The trial gave aspirin to children.",
            "Cats sleep a lot every day. Dogs bark at night near the barn.",
            "only one sentence in this document"]
    lead = self_pairs(docs, choice="lead")
    assert [(p.query, p.doc_pos) for p in lead] == [("Aspirin lowers fever in young children.", 0),
                                                    ("Cats sleep a lot every day.", 1)]
    # salient: the sentence whose words are rarest in the corpus and repeated in the document, not the filler
    assert self_pairs(docs, choice="salient")[0].query == "Aspirin lowers fever in young children."
    titled = self_pairs(docs, choice="title", titles=["Aspirin and fever in kids", "Pets", "A title of five words"])
    assert [p.query for p in titled] == ["Aspirin and fever in kids", self_pairs(docs)[1].query,
                                         "A title of five words"]
    assert all(p.kind == "self" and p.doc_text is None for p in lead + titled)
    assert self_pairs(docs, seed=3) == self_pairs(docs, seed=3, choice="sentence")
    with pytest.raises(ValueError, match="pseudo-query choice"):
        self_pairs(docs, choice="keywords")
    with pytest.raises(ValueError, match="pseudo_query"):
        TrainConfig(signal="self", pseudo_query="keywords").validate()


def test_self_run_trains_from_the_teacher_and_reports_label_free_checks():
    docs = _docs()
    enc, vecs, bm25, teacher = _teacher(docs)
    pairs = self_pairs(docs, seed=0)
    cfg = TrainConfig.preset("unsupervised", batch_size=6, siblings=3, branching=3, lr=1e-2, memory_lr=1e-2)
    steps = []
    result = train(enc, docs, pairs, cfg, teacher=teacher, initial_vectors=vecs, initial_max_length=128,
                   on_step=steps.append)
    assert result.status == "done" and steps
    assert all(s.distill_loss is not None and s.loss == pytest.approx(s.distill_loss, rel=1e-5) for s in steps)
    names = [c["name"] for c in result.checks]
    assert names == ["known item (held-out pseudo-queries)", "teacher agreement (held-out pseudo-queries)"]
    assert result.outcome["verdict"] in ("better", "no better", "worse")
    with pytest.raises(ValueError, match="needs a teacher"):
        train(FakeEncoder(dim=32, seed=0), docs, pairs, cfg)


def test_self_settings_are_validated():
    with pytest.raises(ValueError, match="negatives 'teacher' needs the self signal"):
        TrainConfig(negatives="teacher").validate()
    with pytest.raises(ValueError, match="teacher_weight"):
        TrainConfig(signal="self", teacher_weight=1.5).validate()
    with pytest.raises(ValueError, match="explicit teacher_tau"):
        TrainConfig(signal="self", teacher_weight=0.0).validate()
    assert TrainConfig.preset("unsupervised").signal == "self"


def test_workspace_defaults_an_unjudged_corpus_to_the_self_signal(workspace, tmp_path):
    path = tmp_path / "notes.jsonl"
    texts = [d for ps in TOY_TOPICS.values() for d in ps] * 4  # 48 documents: 20+ pseudo-queries to hold out
    path.write_text("".join(f'{{"_id": "d{i}", "text": "{t} {i}. A second sentence on {t} number {i}."}}\n'
                            for i, t in enumerate(texts)))
    workspace.import_corpus(str(path), name="notes")
    cfg = workspace.default_config("notes")
    assert cfg.signal == "self" and cfg == TrainConfig.preset("unsupervised", split="train")
    assert workspace.default_config("notes", "quick").signal == "self"
    run = workspace.train("notes", cfg.replace(batch_size=4, siblings=2, branching=3))
    info = workspace.run(run)
    assert info.status == "done", info.error
    assert info.summary["outcome"]["verdict"] in ("better", "no better", "worse")
    assert [c["name"] for c in info.summary["outcome"]["checks"]][1] == "teacher agreement (held-out pseudo-queries)"
    log = workspace.train_log(run)
    assert len(log) and log["teacher_agree"].between(0, 1).all()  # the teacher's top-1 share, per step
    est = workspace.estimate("notes", cfg)
    assert est.loop.teacher_seconds > 0 and est.total_seconds > est.loop.teacher_seconds
    titled = workspace.training_pairs(workspace.store.corpus_id("notes"), cfg.replace(pseudo_query="title"),
                                      [], workspace._texts(workspace.store.corpus_id("notes"))[2])
    assert titled == self_pairs(workspace._texts(workspace.store.corpus_id("notes"))[2])  # no titles: sentences


def test_workspace_defaults_a_corpus_judged_only_on_test_to_the_self_signal(workspace, tmp_path):
    (tmp_path / "notes.jsonl").write_text('{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": "two"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "one"}\n')
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    workspace.import_corpus(str(tmp_path / "notes.jsonl"), name="notes")
    workspace.import_queries("notes", str(tmp_path / "queries.jsonl"), str(tmp_path / "qrels.tsv"), split="test")
    cfg = workspace.default_config("notes")
    assert cfg.signal == "self" and cfg.split == "train"  # test judgements check runs; no run trains on them


def test_teacher_view_shows_what_a_self_run_was_taught(workspace, tmp_path):
    from hce_engine.views import teacher_view
    texts = [d for ps in TOY_TOPICS.values() for d in ps] * 4
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(f'{{"_id": "d{i}", "text": "{t} {i}. A second sentence on {t} number {i}."}}\n'
                            for i, t in enumerate(texts)))
    workspace.import_corpus(str(path), name="notes")
    run = workspace.train("notes", workspace.default_config("notes", batch_size=4, siblings=2, branching=3))
    v = teacher_view(workspace, run)
    assert v["query"] and v["candidates"] and v["source"]["doc_id"] not in [c["doc_id"] for c in v["candidates"]]
    assert v["query"] in workspace.documents("notes").set_index("doc_id").loc[v["source"]["doc_id"], "text"]
    cands = v["candidates"]
    assert [c["rank_teacher"] for c in cands] == sorted(c["rank_teacher"] for c in cands)
    assert sum(c["p_teacher"] for c in cands) == pytest.approx(1.0, abs=1e-6)  # all siblings listed here
    # the teacher's score is the fused hybrid score of its two parts
    for c in cands:
        assert 0.0 <= c["teacher"] <= 1.0 and c["bm25"] >= 0
    assert v["kl_before"] >= 0 and v["kl_after"] >= 0
    same = teacher_view(workspace, run, doc_id=v["source"]["doc_id"])
    assert same["query"] == v["query"] and same["candidates"] == v["candidates"]


def test_tree_batching_puts_neighbouring_positives_in_one_batch():
    docs = _docs()
    enc, vecs, _, _ = _teacher(docs)
    tree = build_tree(vecs, branching=3, seed=0)
    pairs = self_pairs(docs, seed=0)
    common = dict(batch_size=4, negatives="in-batch", siblings=0, memory_levels=tree.depth, seed=1)
    by_tree = HierarchicalSampler(tree, pairs, docs, batching="tree", **common)
    by_chance = HierarchicalSampler(tree, pairs, docs, **common)

    def spread(sampler, epoch):  # distinct level-1 branches per batch, averaged
        top = tree.paths()[:, 0]
        return np.mean([len(set(top[sampler.pair_doc[b]])) for b in sampler.batch_order(epoch)])

    for epoch in (0, 1):
        order = by_tree.batch_order(epoch)
        assert sorted(np.concatenate(order).tolist()) == list(range(len(pairs)))  # every pair once
        assert spread(by_tree, epoch) < spread(by_chance, epoch)
    assert [b.tolist() for b in by_tree.batch_order(0)] == [b.tolist() for b in by_tree.batch_order(0)]
    assert [b.tolist() for b in by_tree.batch_order(0)] != [b.tolist() for b in by_tree.batch_order(1)]
    with pytest.raises(ValueError, match="batching"):
        HierarchicalSampler(tree, pairs, docs, batching="nope", **common)
