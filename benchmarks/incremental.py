"""Incremental updates without retraining (the paper's check against IncDSI), on SciFact.

Part 1, hold-out 10%:
  * pick a seeded random subset of the test queries (--new-query-share, default half of them); hold out every
    document relevant to them, plus random documents relevant to no test query, up to --hold (10%) of the
    corpus;
  * workspace A: import the other 90% (train qrels restricted to it), train HCE-S with ``Workspace.train``
    (preset --preset, default "quick"), then ``Workspace.add_documents`` the held-out 10% (no retraining);
  * workspace F: the full corpus, trained with the same preset and seed (the "retrained" reference);
  * recall@10 and nDCG@10 of both (and of the zero-shot starting encoder) on "new" test queries (at least one
    relevant document was added) and "old" ones (all relevant documents were there at training time).
Part 2, drift curve:
  * workspace D: hold out --drift-hold (50%) the same way, train on the other 50%, then add the held-out
    documents back in steps so that 10%, 25%, 50% of the live corpus is new (``Workspace.freshness``
    share_new), measuring after each step: the incremental run, the zero-shot encoder and the full-corpus
    retrained encoder, all on the same live documents and the test queries whose relevant documents are all
    live; "gain retained" = (incremental - zero-shot) / (retrained - zero-shot) on nDCG@10; and how well the
    stale tree fits the added documents (cosine to their leaf centroid vs the original documents').

The zero-shot vectors of the first workspace's baseline run are reused for the others' baseline runs (same
model and texts; --no-reuse-baseline encodes each corpus again). Expensive on CPU (three trainings, three
final encodes of up to 5k documents): run it when asked; --smoke runs the whole pipeline in seconds on a tiny
synthetic corpus with the fake encoder.

Usage:
    python benchmarks/incremental.py                         # SciFact, quick preset, seed 0
    python benchmarks/incremental.py --preset full --device cuda
    python benchmarks/incremental.py --smoke --out /tmp/inc.json --plot /tmp/inc.png
Writes benchmarks/results/incremental.json (after every phase, so partial results survive) and
benchmarks/results/incremental_drift.png.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

# common first: it puts the repository on sys.path
from common import (
    JARGON,
    RESULTS,
    SCIFACT,
    exact_ranking,
    load_beir,
    machine,
    print_tables,
    read_docs,
    seed_run,
    source_line,
    write_beir,
    write_jsonl,
    write_result,
)

METRIC_KEYS = ("ndcg_at_10", "recall_at_10", "recall_at_100", "mrr_at_10", "queries")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------------------ data
def read_beir(folder: str | Path) -> tuple[list[dict], dict[str, str], dict[str, dict[str, dict[str, int]]]]:
    """A BEIR folder as the engine reads it, its documents as JSON records to write again (``write_beir``,
    ``write_jsonl``) for the workspaces to import."""
    data = load_beir(folder)
    return [doc_record(d) for d in data.documents], data.queries, data.qrels


def doc_record(doc, prefix: str = "") -> dict:
    """A ``DocRecord`` as a JSON corpus record (its id prefixed by ``prefix``)."""
    return {"_id": prefix + doc.ext_id, "title": doc.title, "text": doc.text,
            **({"metadata": doc.metadata} if doc.metadata else {})}


def relevant(judged: dict[str, int]) -> set[str]:
    return {d for d, s in judged.items() if s > 0}


def choose_holdout(doc_ids: list[str], test_qrels: dict, share: float, new_query_share: float,
                   seed: int) -> list[str]:
    """Held-out document ids, in the (seeded, random) order they are added back.

    The relevant documents of a random ``new_query_share`` of the test queries (fewer queries if those alone
    exceed the budget), then random documents relevant to no test query, up to ``share`` of the corpus.
    """
    rng = np.random.default_rng(seed)
    budget = int(round(share * len(doc_ids)))
    known = set(doc_ids)
    qids = sorted(q for q in test_qrels if relevant(test_qrels[q]) & known)
    picked = [qids[i] for i in rng.permutation(len(qids))[:int(round(new_query_share * len(qids)))]]
    held: list[str] = []
    seen: set[str] = set()
    for q in picked:
        rel = sorted(relevant(test_qrels[q]) & known - seen)
        if len(held) + len(rel) > budget:
            continue
        held += rel
        seen.update(rel)
    test_rel = set().union(*(relevant(j) for j in test_qrels.values())) if test_qrels else set()
    others = [d for d in doc_ids if d not in test_rel and d not in seen]
    held += [others[i] for i in rng.permutation(len(others))[:max(0, budget - len(held))]]
    return [held[i] for i in rng.permutation(len(held))]


def query_groups(test_qrels: dict, live: set[str], initial: set[str]) -> dict[str, list[str]]:
    """Test queries whose relevant documents are all live: 'new' (some arrived after training), 'old'."""
    new, old = [], []
    for q in sorted(test_qrels):
        rel = relevant(test_qrels[q])
        if not rel or not rel <= live:
            continue
        (old if rel <= initial else new).append(q)
    return {"all": sorted(new + old), "new": new, "old": old}


# ------------------------------------------------------------------------------------------ workspaces
def ext_ids(ws, corpus: str) -> dict[int, str]:
    """Store id -> the document's own id, for the corpus's live documents."""
    df = ws.documents(corpus)
    return dict(zip(df["doc_id"].astype(int), df["ext_id"]))


def seed_baseline(ws, corpus: str, model: str, zero: dict[str, np.ndarray], seed: int) -> int:
    """A finished zero-shot baseline run built from already computed vectors (what ``Workspace.encode``
    would store for this model at 256 tokens), so training does not encode the corpus again."""
    from hce_engine.corpus import doc_text
    df = ws.documents(corpus)
    ids = df["doc_id"].to_numpy(np.int64)
    texts = [doc_text(t, x) for t, x in zip(df["title"], df["text"])]
    vecs = np.stack([zero[e] for e in df["ext_id"]]).astype(np.float32)
    return seed_run(ws, corpus, ids, vecs, texts, model=model, seed=seed,
                    summary={"documents": int(len(ids)), "dim": int(vecs.shape[1]), "seeded": True})


def baseline_run(ws, corpus: str) -> int:
    return ws.runs(corpus, status="done", kind="baseline")[-1].run_id


def zero_vectors(ws, corpus: str, run: int) -> dict[str, np.ndarray]:
    ids, vecs = ws.vectors(run)
    ext = ext_ids(ws, corpus)
    return {ext[int(i)]: v for i, v in zip(ids, vecs)}


def ranking_ws(ws, corpus: str, run: int, qids: list[str], queries: dict[str, str], k: int = 100) -> dict:
    """The served path: Workspace.search_many (the run's encoder and cached index, with added documents)."""
    if not qids:
        return {}
    hits = ws.search_many(corpus, [queries[q] for q in qids], run=run, k=k, with_paths=False)
    return {q: {h.ext_id: h.score for h in hs} for q, hs in zip(qids, hits)}


class Reference:
    """A finished run's document and query vectors, searchable over any subset of the documents."""

    def __init__(self, ws, corpus: str, run: int, queries: dict[str, str], qids: list[str]):
        info = ws.run(run)
        ids, self.vecs = ws.vectors(run)
        ext = ext_ids(ws, corpus)
        self.ext = np.asarray([ext[int(i)] for i in ids])
        self.qids = list(qids)
        self.qv = ws.encode_queries(info, [queries[q] for q in self.qids])
        self.row = {q: i for i, q in enumerate(self.qids)}

    def ranking(self, qids: list[str], live: set[str], k: int = 100) -> dict:
        if not qids:
            return {}
        mask = np.isin(self.ext, np.asarray(sorted(live)))
        return exact_ranking(qids, self.qv[[self.row[q] for q in qids]], self.vecs[mask], self.ext[mask], k)


def metrics(ranking: dict, qrels: dict, qids: list[str]) -> dict:
    from hce_engine.evaluation import evaluate
    if not qids:
        return {"queries": 0}
    m = evaluate({q: ranking[q] for q in qids}, {q: qrels[q] for q in qids})
    return {k: (round(m[k], 4) if k != "queries" else m[k]) for k in METRIC_KEYS}


def grouped(ranking: dict, qrels: dict, groups: dict[str, list[str]]) -> dict:
    return {g: metrics(ranking, qrels, qids) for g, qids in groups.items()}


def tree_fit(ws, corpus: str, run: int, added: set[str]) -> dict:
    """How the run's (stale) tree holds the documents: cosine to their leaf centroid, new vs original."""
    from hce_engine.tree import leaf_fit
    tree = ws.tree(run).tree
    ids, vecs = ws.vectors(run)
    ext = ext_ids(ws, corpus)
    new = np.asarray([ext[int(i)] in added for i in ids], dtype=bool)
    fits = {"cos_leaf_original": leaf_fit(tree, ids[~new], vecs[~new]),
            "cos_leaf_added": leaf_fit(tree, ids[new], vecs[new])}
    leaves = tree.size[tree.nodes_at(tree.depth)]
    return {**{k: (round(v, 4) if v is not None else None) for k, v in fits.items()},
            "leaf_size_p99": float(np.percentile(leaves, 99)), "leaf_size_max": int(leaves.max()),
            "branching": int(tree.branching)}


def foreign_phase(ws, corpus: str, runs: dict[str, int], path: str, n: int, added: set[str], test: dict,
                  queries: dict[str, str], qids: list[str], workdir: Path) -> dict:
    """Add ``n`` documents of another domain (``path``, JSONL) to the hold-out workspace and measure, per run:
    how they fit the tree (cosine to their leaf centroid) against the tree's own documents and the same-domain
    documents added before, the freshness signal, and test nDCG@10 before/after (they are distractors)."""
    from hce_engine.tree import leaf_fit
    docs = [doc_record(d, prefix="foreign-") for d in read_docs(path, n)]
    before = {name: ranking_ws(ws, corpus, run, qids, queries) for name, run in runs.items()}
    ws.add_documents(corpus, write_jsonl(workdir / "foreign.jsonl", docs))
    out: dict = {"source": str(path), "documents": len(docs)}
    ext = ext_ids(ws, corpus)
    for name, run in runs.items():
        tree = ws.tree(run).tree
        ids, vecs = ws.vectors(run)
        kind = np.asarray(["foreign" if ext[int(i)].startswith("foreign-") else
                           "same_domain" if ext[int(i)] in added else "original" for i in ids])
        after = ranking_ws(ws, corpus, run, qids, queries)
        top10 = [sorted(after[q], key=after[q].get, reverse=True)[:10] for q in qids]
        out[name] = {f"cos_leaf_{k}": round(leaf_fit(tree, ids[kind == k], vecs[kind == k]), 4)
                     for k in ("original", "same_domain", "foreign")}
        out[name].update({"ndcg_at_10_before": metrics(before[name], test, qids)["ndcg_at_10"],
                          "ndcg_at_10_after": metrics(after, test, qids)["ndcg_at_10"],
                          "queries_with_foreign_in_top10": sum(any(d.startswith("foreign-") for d in t)
                                                               for t in top10),
                          "freshness": ws.freshness(run).to_dict()})
    return out


# ------------------------------------------------------------------------------------------------ run
class Experiment:
    def __init__(self, args):
        self.args = args
        self.t0 = time.perf_counter()
        self.result: dict = {"meta": {}, "phases_s": {}}
        self.zero: dict[str, np.ndarray] | None = None

    def phase(self, name: str, started: float) -> None:
        self.result["phases_s"][name] = round(time.perf_counter() - started, 1)
        log(f"{name}: {self.result['phases_s'][name]} s")
        self.save()

    def save(self) -> None:
        self.result["meta"]["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        write_result(self.args.out, self.result)

    def config(self) -> dict:
        from hce_engine.training import TrainConfig
        over = {"seed": self.args.seed, "device": self.args.device}
        if self.args.model:
            over["model"] = self.args.model
        over.update(self.args.overrides)
        return TrainConfig.preset(self.args.preset, **over).to_dict()

    def workspace(self, name: str, docs: list[dict], queries: dict, train_qrels: dict):
        """Import ``docs`` (with all queries and the train qrels on them) into a new workspace; reuse the
        zero-shot vectors when known. Returns (workspace, corpus name)."""
        from hce_engine import Workspace
        root = Path(self.args.workdir) / name
        ws = Workspace(str(root / "ws"), default_model=self.args.model)
        ws.import_corpus(write_beir(root / "data", docs, queries, {"train": train_qrels}), name=name)
        if self.zero is not None and self.args.reuse_baseline:
            seed_baseline(ws, name, ws.model_for(None), self.zero, self.args.seed)
        return ws, name

    def train(self, ws, corpus: str) -> int:
        t = time.perf_counter()
        est = ws.estimate(corpus, self.config())
        log(f"{corpus}: training ({self.args.preset}), estimated {est.total_seconds:.0f} s "
            f"(+ a baseline encode if none)")
        last = [0.0]

        def progress(ev):
            if time.perf_counter() - last[0] > 30:
                last[0] = time.perf_counter()
                log(f"  {corpus}: {ev.stage} {ev.done}/{ev.total}" + (f", eta {ev.eta_s:.0f} s" if ev.eta_s else ""))

        run = ws.train(corpus, self.config(), progress=progress)
        self.result.setdefault("training", {})[corpus] = {
            "estimate_s": round(est.total_seconds, 1), "actual_s": round(time.perf_counter() - t, 1),
            "pairs": est.pairs, "summary_seconds": (ws.run(run).summary or {}).get("seconds")}
        return run

    def main(self) -> dict:
        a = self.args
        docs, queries, qrels = read_beir(a.data)
        doc_ids = [d["_id"] for d in docs]
        by_id = {d["_id"]: d for d in docs}
        test = {q: j for q, j in qrels["test"].items() if q in queries and relevant(j)}
        self.result["meta"] = {
            "data": str(a.data), "documents": len(docs), "test_queries": len(test), "preset": a.preset,
            "train_config": self.config(), "seed": a.seed, "hold": a.hold, "drift_hold": a.drift_hold,
            "drift_steps": a.drift_steps, "new_query_share": a.new_query_share, "smoke": a.smoke,
            "reuse_baseline": a.reuse_baseline, **machine(), "load_avg_start": [round(v, 2) for v in os.getloadavg()],
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        all_ids = set(doc_ids)

        # -- F: the full corpus, trained (the retrained reference for both parts)
        t = time.perf_counter()
        ws_f, cf = self.workspace("full", docs, queries, qrels["train"])
        run_f = self.train(ws_f, cf)
        self.zero = zero_vectors(ws_f, cf, baseline_run(ws_f, cf))
        ref_full = Reference(ws_f, cf, run_f, queries, sorted(test))
        self.phase("full_corpus_train", t)

        if not a.skip_holdout:
            t = time.perf_counter()
            held = choose_holdout(doc_ids, test, a.hold, a.new_query_share, a.seed)
            initial = all_ids - set(held)
            ws_a, ca = self.workspace("holdout", [by_id[d] for d in doc_ids if d in initial], queries,
                                      qrels["train"])
            run_a = self.train(ws_a, ca)
            t_add = time.perf_counter()
            ws_a.add_documents(ca, write_jsonl(Path(a.workdir) / "holdout" / "added.jsonl",
                                              [by_id[d] for d in held]))
            add_s = time.perf_counter() - t_add
            groups = query_groups(test, all_ids, initial)
            base_a = baseline_run(ws_a, ca)
            part = {
                "documents": len(docs), "held_out": len(held), "initial": len(initial),
                "train_pairs_lost": sum(len(relevant(j) & set(held)) for j in qrels["train"].values()),
                "queries": {g: len(v) for g, v in groups.items()},
                "freshness": ws_a.freshness(run_a).to_dict(), "add_documents_s": round(add_s, 1),
                "incremental": grouped(ranking_ws(ws_a, ca, run_a, groups["all"], queries), test, groups),
                "retrained_full": grouped(ref_full.ranking(groups["all"], all_ids), test, groups),
                "zero_shot": grouped(ranking_ws(ws_a, ca, base_a, groups["all"], queries), test, groups),
            }
            part["gap_incremental_minus_retrained"] = {
                g: {m: round(part["incremental"][g][m] - part["retrained_full"][g][m], 4)
                    for m in ("ndcg_at_10", "recall_at_10")} for g in groups if groups[g]}
            self.result["holdout"] = part
            if a.foreign:
                part["foreign"] = foreign_phase(ws_a, ca, {"incremental": run_a, "zero_shot": base_a}, a.foreign,
                                                a.foreign_docs, set(held), test, queries, groups["all"],
                                                Path(a.workdir) / "holdout")
            ws_a.close()
            self.phase("holdout_10", t)
            print_holdout(part)
            if a.foreign:
                print_foreign(part["foreign"])

        if not a.skip_drift:
            t = time.perf_counter()
            held = choose_holdout(doc_ids, test, a.drift_hold, a.new_query_share, a.seed + 1)
            initial = all_ids - set(held)
            ws_d, cd = self.workspace("drift", [by_id[d] for d in doc_ids if d in initial], queries,
                                      qrels["train"])
            run_d = self.train(ws_d, cd)
            base_d = baseline_run(ws_d, cd)
            curve = []
            added: list[str] = []
            for i, share in enumerate([0.0] + list(a.drift_steps)):
                target = min(len(held), int(round(share / (1 - share) * len(initial)))) if share < 1 else len(held)
                batch = held[len(added):target]
                if batch:
                    ws_d.add_documents(cd, write_jsonl(Path(a.workdir) / "drift" / f"add-{i}.jsonl",
                                                      [by_id[d] for d in batch]))
                    added += batch
                live = initial | set(added)
                groups = query_groups(test, live, initial)
                point = {"share_new_target": share, "added": len(added), "live": len(live),
                         "freshness": ws_d.freshness(run_d).to_dict(),
                         "queries": {g: len(v) for g, v in groups.items()},
                         "incremental": grouped(ranking_ws(ws_d, cd, run_d, groups["all"], queries), test, groups),
                         "retrained_full": grouped(ref_full.ranking(groups["all"], live), test, groups),
                         "zero_shot": grouped(ranking_ws(ws_d, cd, base_d, groups["all"], queries), test, groups),
                         "tree": tree_fit(ws_d, cd, run_d, set(added))}
                point["gain_retained"] = gain_retained(point)
                curve.append(point)
                log(f"drift: share_new {point['freshness']['share_new']:.3f}, nDCG@10 incremental "
                    f"{point['incremental']['all'].get('ndcg_at_10')}, retrained "
                    f"{point['retrained_full']['all'].get('ndcg_at_10')}, zero-shot "
                    f"{point['zero_shot']['all'].get('ndcg_at_10')}, gain retained {point['gain_retained']}")
                self.result["drift"] = curve
                self.save()
            ws_d.close()
            self.result["recommendation"] = recommend(curve, a.tolerance)
            self.phase("drift_50", t)
            plot(curve, self.result.get("holdout"), a.plot, a.preset, a.tolerance)
            log(f"wrote {a.plot}")
        ws_f.close()
        self.result["meta"]["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
        self.save()
        log(f"wrote {a.out}")
        return self.result


def gain_retained(point: dict) -> float | None:
    """(incremental - zero-shot) / (retrained - zero-shot), nDCG@10 over all answerable queries."""
    inc, full, zero = (point[k]["all"].get("ndcg_at_10") for k in ("incremental", "retrained_full", "zero_shot"))
    if None in (inc, full, zero) or abs(full - zero) < 1e-3:
        return None
    return round((inc - zero) / (full - zero), 3)


def recommend(curve: list[dict], tolerance: float) -> dict:
    """The smallest measured share of new documents at which the incremental run falls more than
    ``tolerance`` nDCG@10 below the retrained reference (all answerable queries), or None if it never does."""
    for p in curve:
        inc, full = p["incremental"]["all"].get("ndcg_at_10"), p["retrained_full"]["all"].get("ndcg_at_10")
        if inc is not None and full is not None and full - inc > tolerance:
            return {"retrain_share": round(p["freshness"]["share_new"], 3), "tolerance_ndcg": tolerance,
                    "reason": f"nDCG@10 {full - inc:.3f} below the retrained run at this share"}
    return {"retrain_share": None, "tolerance_ndcg": tolerance,
            "reason": "within tolerance at every measured share: search quality alone does not ask for "
                      "retraining up to the largest share measured"}


def foreign_only(a) -> dict:
    """Run :func:`foreign_phase` on the hold-out workspace left in ``--workdir``; merge it into ``--out``."""
    from hce_engine import Workspace
    docs, queries, qrels = read_beir(a.data)
    test = {q: j for q, j in qrels["test"].items() if q in queries and relevant(j)}
    root = Path(a.workdir) / "holdout"
    added = {json.loads(line)["_id"] for line in open(root / "added.jsonl") if line.strip()}
    all_ids = {d["_id"] for d in docs}
    ws = Workspace(str(root / "ws"), default_model=a.model)
    trained = [r.run_id for r in ws.runs("holdout", status="done", kind="train")]
    runs = {"incremental": trained[-1], "zero_shot": baseline_run(ws, "holdout")}
    qids = query_groups(test, all_ids, all_ids - added)["all"]
    result = json.loads(Path(a.out).read_text()) if Path(a.out).exists() else {"holdout": {}}
    result["holdout"]["foreign"] = foreign_phase(ws, "holdout", runs, a.foreign, a.foreign_docs, added, test,
                                                 queries, qids, root)
    ws.close()
    write_result(a.out, result)
    print_foreign(result["holdout"]["foreign"])
    return result


def print_foreign(part: dict) -> None:
    print(f"\n{part['documents']} foreign documents added ({part['source']})")
    print(f"{'run':<12}{'cos own':>9}{'cos same':>10}{'cos foreign':>12}{'nDCG before':>12}{'after':>8}"
          f"{'q w/ foreign@10':>16}{'rebuild?':>10}{'retrain?':>10}")
    for name in ("incremental", "zero_shot"):
        r = part[name]
        print(f"{name:<12}{r['cos_leaf_original']:>9.4f}{r['cos_leaf_same_domain']:>10.4f}"
              f"{r['cos_leaf_foreign']:>12.4f}{r['ndcg_at_10_before']:>12.4f}{r['ndcg_at_10_after']:>8.4f}"
              f"{r['queries_with_foreign_in_top10']:>16}{r['freshness']['rebuild_suggested']!s:>10}"
              f"{r['freshness']['retrain_suggested']!s:>10}")


def print_holdout(part: dict) -> None:
    print(f"\nhold-out: {part['held_out']} of {part['documents']} documents added after training "
          f"({part['queries']['new']} new / {part['queries']['old']} old test queries)")
    print(f"{'system':<18}{'new nDCG@10':>12}{'new R@10':>10}{'old nDCG@10':>12}{'old R@10':>10}")
    for name in ("incremental", "retrained_full", "zero_shot"):
        m = part[name]
        print(f"{name:<18}{m['new'].get('ndcg_at_10', float('nan')):>12.4f}{m['new'].get('recall_at_10', float('nan')):>10.4f}"
              f"{m['old'].get('ndcg_at_10', float('nan')):>12.4f}{m['old'].get('recall_at_10', float('nan')):>10.4f}")


def markdown(result: dict) -> str:
    """A result file as the README shows it: where it comes from, the hold-out table, the foreign batch and the
    drift curve (nDCG@10; "new" queries have a relevant document added after training)."""
    meta, phases, hold = result["meta"], result.get("phases_s", {}), result.get("holdout")
    names = {"incremental": "incremental (trained without them, then added)", "retrained_full":
             "retrained on the full corpus", "zero_shot": "zero-shot starting encoder"}
    out = [f"{source_line(result)} · preset {meta['preset']}, seed {meta['seed']} · minutes per phase: "
           + ", ".join(f"{k} {v / 60:.1f}" for k, v in phases.items())]
    cells = [("new", "ndcg_at_10"), ("new", "recall_at_10"), ("old", "ndcg_at_10"), ("old", "recall_at_10"),
             ("all", "ndcg_at_10")]
    if hold:
        out += ["", f"Hold-out: {hold['held_out']:,} of {hold['documents']:,} documents added after training in "
                f"{hold['add_documents_s']} s ({hold['queries']['new']} new and {hold['queries']['old']} old test "
                "queries):", "", "| system | new nDCG@10 | new R@10 | old nDCG@10 | old R@10 | all nDCG@10 |",
                "|---|---|---|---|---|---|"]
        for key, label in names.items():
            m = hold[key]
            out.append(f"| {label} | " + " | ".join(f"{m[g][k]:.4f}" for g, k in cells) + " |")
        gap = hold["gap_incremental_minus_retrained"]
        out.append("| incremental − retrained | " + " | ".join(f"{gap[g][k]:+.4f}" for g, k in cells) + " |")
        foreign = hold.get("foreign")
        if foreign:
            out += ["", f"Then {foreign['documents']} foreign documents (Jargon File entries) added to the same runs:",
                    "",
                    "| run | cos to leaf: tree's own | same-domain added | foreign added | nDCG@10 before / after | "
                    "queries with a foreign doc in top 10 | rebuild / retrain suggested |",
                    "|---|---|---|---|---|---|---|"]
            for key in ("incremental", "zero_shot"):
                r = foreign[key]
                out.append(f"| {names[key]} | {r['cos_leaf_original']:.3f} | {r['cos_leaf_same_domain']:.3f} | "
                           f"{r['cos_leaf_foreign']:.3f} | "
                           f"{r['ndcg_at_10_before']:.4f} / {r['ndcg_at_10_after']:.4f} | "
                           f"{r['queries_with_foreign_in_top10']} of {hold['queries']['all']} | "
                           f"{r['freshness'].get('rebuild_suggested')} / {r['freshness'].get('retrain_suggested')} |")
    curve = result.get("drift") or []
    if curve:
        out += ["", "Drift: trained on the rest, the held-out documents added in steps (nDCG@10 on the test queries "
                "whose relevant documents are all live):", "",
                "| share new | live docs | queries (new) | incremental | retrained | zero-shot | "
                "incr. − retrained (new queries) | leaf p99 / max | cos to leaf: original / added |",
                "|---|---|---|---|---|---|---|---|---|"]
        for pt in curve:
            inc, ret = pt["incremental"], pt["retrained_full"]
            new_gap = (f"{inc['new']['ndcg_at_10'] - ret['new']['ndcg_at_10']:+.4f}"
                       if "ndcg_at_10" in inc["new"] else "-")
            added = pt["tree"]["cos_leaf_added"]
            out.append(f"| {pt['freshness']['share_new']:.0%} | {pt['live']:,} | {pt['queries']['all']} "
                       f"({pt['queries']['new']}) | {inc['all']['ndcg_at_10']:.4f} | {ret['all']['ndcg_at_10']:.4f} | "
                       f"{pt['zero_shot']['all']['ndcg_at_10']:.4f} | "
                       f"{inc['all']['ndcg_at_10'] - ret['all']['ndcg_at_10']:+.4f} ({new_gap}) | "
                       f"{pt['tree']['leaf_size_p99']:.1f} / {pt['tree']['leaf_size_max']} | "
                       f"{pt['tree']['cos_leaf_original']:.3f} / {'-' if added is None else f'{added:.3f}'} |")
        rec = result.get("recommendation") or {}
        if rec:
            out += ["", f"Recommendation (tolerance {rec.get('tolerance_ndcg')} nDCG@10): {rec.get('reason')}"]
    return "\n".join(out)


def plot(curve: list[dict], holdout: dict | None, path: str, preset: str, tolerance: float = 0.01) -> None:
    """Left: nDCG@10 of the incremental run and the zero-shot encoder minus the retrained run's, on the same
    live documents and queries, against the share of documents added after training. Right: the stale tree
    (99th-percentile leaf size; cosine of original and added documents to their leaf centroid)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [p["freshness"]["share_new"] for p in curve]

    def gap(system: str, group: str):
        return [p[system][group]["ndcg_at_10"] - p["retrained_full"][group]["ndcg_at_10"]
                if p[system][group].get("queries") else np.nan for p in curve]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.axhspan(-tolerance, tolerance, color="#2b8a3e", alpha=0.08, label=f"within {tolerance} of retrained")
    ax1.axhline(0, color="#2b8a3e", lw=0.8)
    ax1.plot(x, gap("incremental", "all"), "o-", color="#3b5bdb", label="incremental (trained on 50%), all queries")
    ax1.plot(x, gap("incremental", "new"), "s--", color="#3b5bdb", alpha=0.6, label="incremental, new queries")
    ax1.plot(x, gap("zero_shot", "all"), "o:", color="#868e96", label="zero-shot encoder, all queries")
    if holdout:
        ax1.plot([holdout["freshness"]["share_new"]], [holdout["gap_incremental_minus_retrained"]["new"]["ndcg_at_10"]],
                 "*", ms=12, color="#e8590c", label="incremental (trained on 90%), new queries")
    ax1.set_xlabel("share of live documents added after training")
    ax1.set_ylabel("nDCG@10 minus the retrained run's")
    ax1.set_title(f"Search quality against a retrained run ({preset} preset)")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    p99 = [p["tree"]["leaf_size_p99"] for p in curve]
    ax2.plot(x, [v / p99[0] for v in p99], "o-", color="#3b5bdb", label="leaf size p99 / at training")
    ax2.plot(x, [1 / (1 - s) for s in x], ":", color="#3b5bdb", alpha=0.5, label="1 / (1 - share)")
    ax2.set_xlabel("share of live documents added after training")
    ax2.set_ylabel("leaf size p99, relative")
    ax2.set_title("The stale tree")
    ax2.grid(alpha=0.3)
    ax3 = ax2.twinx()
    ax3.plot(x, [p["tree"]["cos_leaf_original"] for p in curve], "o:", color="#868e96",
             label="cos to leaf centroid, original docs")
    ax3.plot(x, [p["tree"]["cos_leaf_added"] if p["tree"]["cos_leaf_added"] is not None else np.nan
                 for p in curve], "s--", color="#e8590c", label="cos to leaf centroid, added docs")
    ax3.set_ylabel("mean cosine to leaf centroid")
    lines = ax2.get_lines() + ax3.get_lines()
    ax2.legend(lines, [ln.get_label() for ln in lines], fontsize=7, loc="upper left")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- smoke
_TOPICS = {
    "space": "rocket orbit planet star telescope astronaut moon galaxy nebula comet",
    "cooking": "bread oven pasta sauce tomato knife onion soup broth spice",
    "music": "guitar chord melody drum rhythm piano sonata violin orchestra tempo",
    "sport": "football goal referee tennis racket sprint marathon swimmer coach medal",
}


def smoke_corpus(folder: Path, per_topic: int = 24, seed: int = 0) -> str:
    """A tiny BEIR folder: 4 topics x ``per_topic`` documents, one train or test query per document."""
    rng = np.random.default_rng(seed)
    docs, queries, qrels = [], {}, {"train": {}, "test": {}}
    for topic, words in _TOPICS.items():
        w = words.split()
        for i in range(per_topic):
            pick = [w[j] for j in rng.choice(len(w), 4, replace=False)]
            docs.append({"_id": f"{topic}-{i}", "title": f"{topic} {pick[0]}",
                         "text": f"{' '.join(pick)} note {topic}{i}. More about {pick[1]} and {pick[2]} here."})
            qid = f"q-{topic}-{i}"
            queries[qid] = f"{pick[0]} {pick[1]} {pick[3]}"
            qrels["train" if i % 3 else "test"][qid] = {f"{topic}-{i}": 1}
    return write_beir(folder, docs, queries, qrels)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SCIFACT), help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    ap.add_argument("--preset", default="quick", choices=["quick", "full"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default=None, help="starting encoder folder (default: the bundled MiniLM)")
    ap.add_argument("--hold", type=float, default=0.10, help="share of the corpus held out in part 1")
    ap.add_argument("--drift-hold", type=float, default=0.50, help="share held out for the drift curve")
    ap.add_argument("--drift-steps", type=float, nargs="+", default=[0.10, 0.25, 0.50],
                    help="shares of the live corpus that are new after each add step")
    ap.add_argument("--new-query-share", type=float, default=0.5,
                    help="share of test queries whose relevant documents are held out")
    ap.add_argument("--tolerance", type=float, default=0.01,
                    help="nDCG@10 drop against the retrained run that asks for retraining")
    ap.add_argument("--no-reuse-baseline", dest="reuse_baseline", action="store_false")
    ap.add_argument("--skip-holdout", action="store_true")
    ap.add_argument("--skip-drift", action="store_true")
    ap.add_argument("--foreign", default=str(JARGON),
                    help="JSONL of another domain added after part 1 ('' to skip)")
    ap.add_argument("--foreign-docs", type=int, default=500)
    ap.add_argument("--foreign-only", action="store_true",
                    help="only the foreign-documents step, on the hold-out workspace a previous run left in "
                         "--workdir; merged into --out")
    ap.add_argument("--replot", action="store_true", help="only redraw --plot from the results in --out")
    ap.add_argument("--workdir", default=None, help="keep the workspaces here (default: a temp folder, removed)")
    ap.add_argument("--smoke", action="store_true", help="seconds: tiny synthetic corpus, fake encoder")
    ap.add_argument("--out", default=str(RESULTS / "incremental.json"))
    ap.add_argument("--plot", default=str(RESULTS / "incremental_drift.png"))
    ap.add_argument("--markdown", nargs="+", metavar="RESULT", help="print result files' tables, run nothing")
    args = ap.parse_args(argv)
    if args.markdown:
        print_tables(args.markdown, markdown)
        return {}
    args.overrides = {}
    if args.replot:
        res = json.loads(Path(args.out).read_text())
        plot(res["drift"], res.get("holdout"), args.plot, res["meta"]["preset"], args.tolerance)
        return res
    tmp = tempfile.mkdtemp(prefix="hce-incremental-")
    args.workdir = args.workdir or os.path.join(tmp, "work")
    try:
        if args.smoke:
            from hce_engine.encoder import FakeEncoder
            args.model = os.path.join(tmp, "fake-model")
            FakeEncoder(dim=32, seed=0).save(args.model)
            args.data = smoke_corpus(Path(tmp) / "smoke-data")
            args.overrides = {"batch_size": 8, "val_pool": 20, "branching": 4}
        return foreign_only(args) if args.foreign_only else Experiment(args).main()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # a --workdir outside it is kept


if __name__ == "__main__":
    main()
