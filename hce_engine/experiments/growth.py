"""The growth stress test: documents arrive in steps without retraining. How do the judged queries hold up, and
when does rebuilding the tree or retraining pay?

HCE discards the tree at inference (plain vector search over the run's encoder), so documents can be added to a
trained run without retraining (:meth:`~hce_engine.workspace.Workspace.add_documents`). :func:`run_growth`
measures what that costs on a corpus with judged queries:

* a seeded share ``hold`` of the documents is held out; a copy of the rest (``<corpus>-growth-<seed>``, made with
  ``subset_corpus``: the original corpus is never written) is encoded (the zero-shot run) and trained on;
* judged queries whose relevant documents were all kept are the "old" queries, the others "new";
* the held-out documents come back in steps (``add_documents``, with their judgements) until the share of new
  documents in the live corpus reaches each of ``steps``; after each step the trained and the zero-shot run are
  scored on the old queries and on every judged query whose relevant documents are live, with the trained run's
  ``freshness`` (how well its stale tree fits the added documents) and its tree-index recall;
* at the last step the trained run's tree is rebuilt (``rebuild_tree``) and its tree-index recall measured again;
  a run retrained on the grown corpus (same settings and seed) is the reference: "gain retained" =
  (incremental - zero-shot) / (retrained - zero-shot), nDCG@10 on the old queries.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from .. import tempfiles
from ..errors import InputError
from ..progress import Progress, ProgressFn

if TYPE_CHECKING:
    from ..workspace import Freshness

#: The metrics of every row.
METRICS = ("ndcg_at_10", "recall_at_10", "recall_at_100")
#: Query groups: all relevant documents there at training ("old"), some added later and all live now ("new"),
#: every judged query whose relevant documents are live ("all").
GROUPS = ("old", "new", "all")
#: A difference (nDCG@10 or recall) at least this large is one that pays.
PAYS = 0.01
#: The trained run "kept its gain" while at least this share of its starting gain over zero-shot is left.
KEEPS = 0.8


def hold_out(doc_ids: Sequence[str], judged: Mapping[str, Mapping[str, int]], hold: float,
             seed: int) -> dict[str, list[str]]:
    """Which documents are held out and which judged queries are old.

    Args:
        doc_ids: the corpus's live document ids.
        judged: {query id: {document id: relevance}} of the split the queries are scored on.
        hold: the share of documents held out (rounded; at least one kept and one held).
        seed: the seed of the draw.

    Returns ``{"kept": [...] (corpus order), "held": [...] (the order they are added back in), "old": [...],
    "new": [...]}``: old queries have every relevant document kept, new ones at least one held out (queries with
    no relevant live document are in neither).
    """
    if not 0 < hold < 1:
        raise InputError(f"hold must be a share between 0 and 1 (got {hold})")
    n_held = int(round(hold * len(doc_ids)))
    if not 0 < n_held < len(doc_ids):
        raise InputError(f"holding out {hold:.0%} of {len(doc_ids)} documents leaves no document to hold or keep")
    order = np.random.default_rng(seed).permutation(len(doc_ids))
    held = [doc_ids[i] for i in order[:n_held]]
    gone = set(held)
    live = set(doc_ids)
    old: list[str] = []
    new: list[str] = []
    for q in sorted(judged):
        rel = {d for d, v in judged[q].items() if v > 0} & live
        if rel:
            (new if rel & gone else old).append(q)
    return {"kept": [d for d in doc_ids if d not in gone], "held": held, "old": old, "new": new}


def step_sizes(kept: int, held: int, steps: Sequence[float]) -> list[int]:
    """How many held-out documents are live after each step, so that the share of new documents in the live
    corpus reaches each of ``steps`` (all the held-out ones at most)."""
    return [min(held, int(round(s / (1 - s) * kept))) for s in steps]


def check_steps(steps: Sequence[float]) -> list[float]:
    """``steps`` as floats; InputError unless they are increasing shares strictly between 0 and 1."""
    out = [float(s) for s in steps]
    if not out or any(not 0 < s < 1 for s in out) or any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise InputError(f"steps must be increasing shares of new documents between 0 and 1, e.g. 0.1,0.25,0.5 "
                         f"(got {', '.join(map(str, steps)) or 'none'})")
    return out


def growth_name(existing: Sequence[str], corpus: str, seed: int) -> str:
    """``<corpus>-growth-<seed>``, with ``-2``, ``-3``... when a corpus of that name exists."""
    base = f"{corpus[:80]}-growth-{seed}"
    name, n = base, 1
    while name in existing:
        n += 1
        name = f"{base}-{n}"
    return name


def run_growth(ws, corpus: str, steps: Sequence[float] = (0.1, 0.25, 0.5), hold: float = 0.5,
               preset: str = "quick", settings: Mapping[str, Any] | None = None, seed: int = 0,
               split: str = "test", progress: ProgressFn | None = None,
               cancel: Callable[[], bool] | None = None) -> dict:
    """Run the growth stress test on ``corpus`` (see the module's docstring); the original corpus is not written.

    Args:
        ws: the :class:`~hce_engine.workspace.Workspace`.
        corpus: a corpus with judged queries in ``split``.
        steps: the shares of new documents in the live corpus after each step (increasing, < 1; a share above
            what ``hold`` allows is capped at every held-out document).
        hold: the share of documents held out before training.
        preset, settings: the training settings (``Workspace.default_config``); ``seed`` is the training seed
            and the seed of the hold-out draw.
        split: the judged queries scored (never trained on).
        progress: receives :class:`~hce_engine.progress.Progress` events, stages prefixed by the phase.
        cancel: polled during training and between steps (InterruptedError when it returns True).

    Returns a JSON-ready dict: ``corpus``, ``growth_corpus``, ``split``, ``preset``, ``settings`` (the full
    training config), ``overrides``, ``seed``, ``hold``, ``steps_requested``, ``documents`` ({total, kept,
    held}), ``queries`` ({old, new}), ``runs`` ({zero_shot, trained, retrained}), ``steps`` (one row per step,
    the first before any add: target_share, share_new, added, live, queries per group, ``trained`` /
    ``zero_shot`` / ``tree`` ({group: {metric..., queries}}), ``gain`` (trained - zero-shot, nDCG@10 old),
    ``gain_kept`` (that gain over the first step's), ``freshness``), ``rebuild`` (tree-index scores of the last
    step before and after ``rebuild_tree``, exact search's, the freshness after), ``retrained`` ({dense, tree}
    scores), ``gain_retained`` ({group: share}), ``conclusions`` (sentences) and ``seconds`` per phase.
    """
    steps = check_steps(steps)
    settings = dict(settings or {})
    if "seed" in settings:
        raise InputError("the seed is set with seed (--seed), not in the settings")
    qrels = ws.qrels(corpus, split)
    judged = {q: dict(zip(rel["doc_ext_id"], map(int, rel["score"]), strict=True))
              for q, rel in qrels.groupby("query_id", sort=False)}
    if not judged:
        have = ", ".join(ws.splits(corpus)) or "none"
        raise InputError(f"corpus {corpus!r} has no judged queries in split {split!r} (splits: {have})")
    cfg = ws.default_config(corpus, preset, **settings, seed=seed)
    if cfg.signal in ("supervised", "joint") and cfg.split == split:
        raise InputError(f"the runs would train on split {split!r}, the split they are scored on")
    docs = ws.documents(corpus)
    split_ = hold_out(list(docs["ext_id"]), judged, hold, seed)
    kept, held = split_["kept"], split_["held"]
    sizes = step_sizes(len(kept), len(held), steps)
    original = set(docs["ext_id"])
    relevant = {q: {d for d, v in j.items() if v > 0} & original for q, j in judged.items()}
    old_queries = set(split_["old"])
    name = growth_name([c["name"] for c in ws.corpora()], corpus, seed)
    report = progress or (lambda ev: None)
    timer = {"t": time.perf_counter()}
    seconds: dict[str, float] = {}

    def lap(phase: str) -> None:
        now = time.perf_counter()
        seconds[phase] = round(seconds.get(phase, 0.0) + now - timer["t"], 1)
        timer["t"] = now

    def staged(phase: str) -> ProgressFn:
        return lambda ev: report(replace(ev, stage=f"{phase}: {ev.stage}"))

    def stop() -> None:
        if cancel is not None and cancel():
            raise InterruptedError("the growth stress test was cancelled")

    ws.subset_corpus(corpus, kept, name)
    base = ws.encode(name, progress=staged("zero-shot"), cancel=cancel, model=cfg.model, device=cfg.device,
                     branching=cfg.branching, seed=seed)
    lap("encode")
    trained = ws.train(name, cfg, progress=staged("train"), cancel=cancel)
    lap("train")

    def groups(live: set[str]) -> dict[str, list[str]]:
        every = [q for q in sorted(relevant) if relevant[q] and relevant[q] <= live]
        return {"old": [q for q in every if q in old_queries], "new": [q for q in every if q not in old_queries],
                "all": every}

    def scores(run: int, qids: dict[str, list[str]], index_kind: str = "auto") -> dict:
        per = ws.evaluate(name, run=run, split=split, index_kind=index_kind, per_query=True)["per_query"]["dense"]
        return group_means(per, qids)

    rows: list[dict] = []
    done = 0  # held-out documents added back so far
    folder = tempfiles.make("add")
    try:
        for i, (share, n) in enumerate(zip([0.0] + steps, [0] + sizes, strict=True)):
            stop()
            phase = f"step {i}/{len(steps)}"
            if n > done:
                add_back(ws, corpus, name, held[done:n], os.path.join(folder, f"step-{i}"), staged(phase))
                done = n
            live = set(kept) | set(held[:n])
            qids = groups(live)
            report(Progress(f"{phase}: evaluate", 0, 3))
            row: dict[str, Any] = {
                "step": i, "target_share": share, "added": n, "live": len(live), "share_new": round(n / len(live), 4),
                "queries": {g: len(v) for g, v in qids.items()}, "trained": scores(trained, qids),
                "zero_shot": scores(base, qids), "tree": scores(trained, qids, "tree"),
                "freshness": freshness_view(ws.freshness(trained))}
            report(Progress(f"{phase}: evaluate", 3, 3))
            row["gain"] = _diff(row["trained"]["old"], row["zero_shot"]["old"])
            rows.append(row)
            lap("steps")
        first = rows[0]["gain"]
        for row in rows:  # the share of the starting gain left (None without a starting gain to keep)
            row["gain_kept"] = (round(row["gain"] / first, 3) if row["gain"] is not None and first is not None
                                and first >= PAYS else None)
        stop()
        report(Progress("rebuild tree", 0, 1))
        rebuild = {"share_new": rows[-1]["share_new"], "before": rows[-1]["tree"], "exact": rows[-1]["trained"],
                   "rebuild": ws.rebuild_tree(trained)}
        rebuild["after"] = scores(trained, qids, "tree")
        rebuild["freshness_after"] = freshness_view(ws.freshness(trained))
        report(Progress("rebuild tree", 1, 1))
        lap("rebuild")
        retrained = ws.train(name, cfg, progress=staged("retrain"), cancel=cancel)
        lap("retrain")
        final = {"dense": scores(retrained, qids), "tree": scores(retrained, qids, "tree")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    last = rows[-1]
    result: dict[str, Any] = {
        "corpus": corpus, "growth_corpus": name, "split": split, "preset": preset, "settings": cfg.to_dict(),
        "overrides": settings, "seed": seed, "hold": hold, "steps_requested": steps,
        "documents": {"total": len(docs), "kept": len(kept), "held": len(held)},
        "queries": {"old": len(split_["old"]), "new": len(split_["new"])},
        "runs": {"zero_shot": base, "trained": trained, "retrained": retrained},
        "steps": rows, "rebuild": rebuild, "retrained": final,
        "gain_retained": {g: gain_retained(last["trained"][g], last["zero_shot"][g], final["dense"][g])
                          for g in GROUPS},
        "seconds": seconds}
    result["conclusions"] = conclusions(result)
    return result


def add_back(ws, source: str, corpus: str, ext_ids: Sequence[str], folder: str, progress: ProgressFn) -> None:
    """Add documents of ``source`` to ``corpus`` (``add_documents``, from a JSONL file in ``folder``), then the
    judgements of ``source`` that name them, with their queries (``import_queries``, per split)."""
    os.makedirs(folder, exist_ok=True)
    docs = ws.documents(source)
    docs = docs[docs["ext_id"].isin(set(ext_ids))].set_index("ext_id").loc[list(ext_ids)]
    path = os.path.join(folder, "docs.jsonl")
    with open(path, "w") as f:
        for ext, r in docs.iterrows():
            meta = json.loads(r["metadata"]) if isinstance(r["metadata"], str) else None
            f.write(json.dumps({"_id": ext, "title": r["title"], "text": r["text"],
                                **({"metadata": meta} if meta else {})}, ensure_ascii=False) + "\n")
    ws.add_documents(corpus, path, progress=progress)
    qrels = ws.qrels(source)
    for split, rows in qrels[qrels["doc_ext_id"].isin(set(ext_ids))].groupby("split", sort=False):
        rows = rows[rows["query"].notna()]
        texts = dict(zip(rows["query_id"], rows["query"], strict=True))
        qpath, rpath = os.path.join(folder, f"queries-{split}.jsonl"), os.path.join(folder, f"qrels-{split}.tsv")
        with open(qpath, "w") as f:
            f.writelines(json.dumps({"_id": q, "text": texts[q]}, ensure_ascii=False) + "\n" for q in sorted(texts))
        with open(rpath, "w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            f.writelines(f"{q}\t{d}\t{v}\n"
                         for q, d, v in zip(rows["query_id"], rows["doc_ext_id"], rows["score"], strict=True))
        ws.import_queries(corpus, qpath, rpath, split)


def group_means(per_query: Mapping[str, Mapping[str, float]], groups: Mapping[str, Sequence[str]]) -> dict:
    """{group: {metric: mean over the group's queries (None when it has none), "queries": n}}."""
    out = {}
    for g, qids in groups.items():
        have = [per_query[q] for q in qids if q in per_query]
        out[g] = {**{m: round(float(np.mean([h[m] for h in have])), 4) if have else None for m in METRICS},
                  "queries": len(have)}
    return out


def freshness_view(fresh: Freshness) -> dict:
    """The parts of ``Workspace.freshness`` a growth row keeps (no per-batch timestamps)."""
    keys = ("share_new", "share_new_tree", "fit_tree", "fit_added", "rebuild_suggested", "retrain_suggested",
            "reasons")
    data = fresh.to_dict()
    return {k: round(data[k], 4) if isinstance(data[k], float) else data[k] for k in keys}


def _diff(a: dict, b: dict, metric: str = "ndcg_at_10") -> float | None:
    return round(a[metric] - b[metric], 4) if a.get(metric) is not None and b.get(metric) is not None else None


def gain_retained(incremental: dict, zero: dict, retrained: dict, metric: str = "ndcg_at_10") -> float | None:
    """(incremental - zero-shot) / (retrained - zero-shot) on ``metric``; None when the retrained run is less than
    ``PAYS`` above zero-shot (no gain to retain: the ratio would be noise or change sign)."""
    inc, z, full = incremental.get(metric), zero.get(metric), retrained.get(metric)
    if inc is None or z is None or full is None or full - z < PAYS:
        return None
    return round((inc - z) / (full - z), 3)


def conclusions(result: dict) -> list[str]:
    """One sentence each: whether the trained run kept its gain on the old queries, when ``freshness`` called
    the tree stale, whether rebuilding the tree and retraining paid."""
    rows, out = result["steps"], []
    first, last = rows[0], rows[-1]
    n_old = first["queries"]["old"]
    if first["gain"] is None:
        out.append("No judged query had all its relevant documents kept, so there are no old queries to follow.")
    elif first["gain"] < PAYS:
        out.append(f"Training did not lift the {n_old} old queries above zero-shot ({first['gain']:+.3f} nDCG@10 "
                   "at the start), so there was no gain to keep.")
    else:
        lost = next((r for r in rows if r["gain_kept"] is not None and r["gain_kept"] < KEEPS), None)
        if lost is None:
            out.append(f"The trained run kept its gain on the {n_old} old queries at every step: {first['gain']:+.3f} "
                       f"nDCG@10 over zero-shot at the start, {last['gain']:+.3f} with {last['share_new']:.0%} of "
                       "the documents new.")
        else:
            before = rows[rows.index(lost) - 1]
            out.append(f"The trained run kept its gain on the {n_old} old queries up to {before['share_new']:.0%} "
                       f"new documents; at {lost['share_new']:.0%} only {lost['gain_kept']:.0%} of it was left "
                       f"({lost['gain']:+.3f} nDCG@10 over zero-shot, {first['gain']:+.3f} at the start).")
    rebuild_at = next((r["share_new"] for r in rows if r["freshness"]["rebuild_suggested"]), None)
    retrain_at = next((r["share_new"] for r in rows if r["freshness"]["retrain_suggested"]), None)
    fit = last["freshness"]
    fit_text = (f" (the added documents' cosine to their leaf centroid {fit['fit_added']:.3f} against the tree's "
                f"own {fit['fit_tree']:.3f} at the last step)" if fit["fit_added"] is not None
                and fit["fit_tree"] is not None else "")
    if rebuild_at is None and retrain_at is None:
        out.append(f"Freshness called the tree fresh at every step up to {last['share_new']:.0%} new documents"
                   f"{fit_text}.")
    else:
        parts = [f"rebuilding the tree from {rebuild_at:.0%} new documents" if rebuild_at is not None else "",
                 f"retraining from {retrain_at:.0%}" if retrain_at is not None else ""]
        out.append(f"Freshness suggested {' and '.join(p for p in parts if p)}{fit_text}.")
    rb = result["rebuild"]
    before, after, exact = (rb[k]["all"].get("recall_at_10") for k in ("before", "after", "exact"))
    start_gap = _diff(first["trained"]["all"], first["tree"]["all"], "recall_at_10")
    if before is not None and after is not None and exact is not None:
        verdict = ("it paid" if after - before >= PAYS else "it cost recall" if before - after >= PAYS
                   else "it did not pay (less than 0.01)")
        out.append(f"Rebuilding the stale tree at {rb['share_new']:.0%} new documents moved tree-index search's "
                   f"R@10 on all live queries from {before:.3f} to {after:.3f} (exact search {exact:.3f}"
                   + (f"; the tree index was {start_gap:.3f} below exact search at the start" if start_gap is not None
                      else "") + f"): {verdict}.")
    inc, full, zero = last["trained"], result["retrained"]["dense"], last["zero_shot"]
    d_old, d_all = _diff(full["old"], inc["old"]), _diff(full["all"], inc["all"])
    if d_old is not None and d_all is not None:
        kept = result["gain_retained"]["old"]
        paid = [g for g, d in (("old", d_old), ("all live", d_all)) if d >= PAYS]
        out.append(f"Retraining on the grown corpus scored {full['old']['ndcg_at_10']:.3f} nDCG@10 on the old "
                   f"queries against {inc['old']['ndcg_at_10']:.3f} for the run trained before the growth and "
                   f"{zero['old']['ndcg_at_10']:.3f} zero-shot ({full['all']['ndcg_at_10']:.3f} against "
                   f"{inc['all']['ndcg_at_10']:.3f} on all live queries"
                   + (f"; gain retained {kept:.0%}" if kept is not None else "") + "): "
                   + (f"retraining paid on the {' and '.join(paid)} queries." if paid
                      else "retraining did not pay (less than 0.01 nDCG@10)."))
    return out


def table_rows(result: dict) -> list[dict]:
    """One flat row per step, one for the rebuilt tree and one for the retrained run (a table, a CSV)."""
    def row(label: str, r: dict, tree: dict, fresh: dict | None, zero: dict) -> dict:
        out: dict[str, Any] = {"step": label, "new share": r["share_new"], "documents": r["live"],
                               "old queries": r["queries"]["old"], "all queries": r["queries"]["all"]}
        out["nDCG@10 old"] = r["scores"]["old"]["ndcg_at_10"]
        out["zero-shot nDCG@10 old"] = zero["old"]["ndcg_at_10"]
        out["R@10 old"] = r["scores"]["old"]["recall_at_10"]
        out["R@100 old"] = r["scores"]["old"]["recall_at_100"]
        out["nDCG@10 all"] = r["scores"]["all"]["ndcg_at_10"]
        out["zero-shot nDCG@10 all"] = zero["all"]["ndcg_at_10"]
        out["R@100 all"] = r["scores"]["all"]["recall_at_100"]
        out["tree R@10 all"] = tree["all"]["recall_at_10"]
        out["fit added/own"] = (f"{fresh['fit_added']:.3f}/{fresh['fit_tree']:.3f}" if fresh and fresh["fit_added"]
                                is not None and fresh["fit_tree"] is not None else "")
        out["suggests"] = (" + ".join(k for k in ("rebuild", "retrain") if fresh[f"{k}_suggested"]) or "-"
                           if fresh else "")
        return out

    rows = [row("start" if r["step"] == 0 else f"step {r['step']}", {**r, "scores": r["trained"]}, r["tree"],
                r["freshness"], r["zero_shot"]) for r in result["steps"]]
    last = result["steps"][-1]
    rows.append(row("tree rebuilt", {**last, "scores": last["trained"]}, result["rebuild"]["after"],
                    result["rebuild"]["freshness_after"], last["zero_shot"]))
    rows.append(row("retrained", {**last, "scores": result["retrained"]["dense"]}, result["retrained"]["tree"],
                    None, last["zero_shot"]))
    return rows
