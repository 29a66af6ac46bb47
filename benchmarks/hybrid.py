"""Hybrid search quality: BM25, dense and their fusion on two collections, through the engine.

Collections (each imported into one workspace with the engine's readers, encoded by the bundled MiniLM):

* ``scifact`` - SciFact in BEIR layout (`../shared/data/scifact`, CC BY-NC 2.0): 300 test claims; the weight
  is fitted on the 809 train claims.
* ``scifact-titles`` - derived from the same abstracts (no other collection is reachable offline here): the
  documents are the abstracts *without* their titles, each title is a query judging its own abstract
  (known-item search, a different task from claim verification). Every fifth title is a train query (the
  weight is fitted there), the other four fifths are the test queries. Same license as SciFact.

Per collection and run it reports nDCG@10 on the test queries of BM25, dense, weighted hybrid with the weight
fitted on the train queries (what `hce search --mode hybrid` uses), weighted hybrid at the default weight
(what a corpus without train qrels gets), and reciprocal rank fusion, plus the whole weight sweep on test
(for reading only: choosing a weight there would be tuning on the test set). ``--train-preset`` adds a run
trained on SciFact's train pairs (the trained run's weight is fitted on the same train queries it trained on;
the table shows the default weight's row beside it).

Usage:
    python benchmarks/hybrid.py                                  # zero-shot rows (about 5 minutes)
    python benchmarks/hybrid.py --train-preset standard          # + a standard-preset run (about 30 minutes)
    python benchmarks/hybrid.py --workspace /tmp/hyb-ws          # keep (and reuse) the encoded workspace
    python benchmarks/hybrid.py --smoke                          # seconds: toy data, fake encoder
    python benchmarks/hybrid.py --markdown benchmarks/results/hybrid.json   # the README table, runs nothing

Prints one table and writes benchmarks/results/hybrid.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# common first: it puts the repository on sys.path
from common import RESULTS, ROOT, SCIFACT, machine, read_docs, write_beir, write_result


def titles_collection(scifact: Path, dest: Path) -> str:
    """The derived known-item collection: abstracts without titles; titles as queries (every 5th: train)."""
    docs = read_docs(scifact / "corpus.jsonl")
    titled = [i for i, d in enumerate(docs) if d.title.strip()]
    qrels = {split: {f"t{i}": {docs[i].ext_id: 1} for i in titled if keep(i)}
             for split, keep in (("train", lambda i: i % 5 == 0), ("test", lambda i: i % 5 != 0))}
    return write_beir(dest, [{"_id": d.ext_id, "title": "", "text": d.text} for d in docs],
                      {f"t{i}": docs[i].title for i in titled}, qrels)


def measure(ws, corpus: str, run: int, label: str) -> dict:
    from hce_engine.index.fusion import DEFAULT_WEIGHT
    t0 = time.perf_counter()
    fitted = ws.evaluate(corpus, run=run, mode="hybrid")
    default = ws.evaluate(corpus, run=run, mode="hybrid", weight=DEFAULT_WEIGHT)["hybrid"]
    rrf = ws.evaluate(corpus, run=run, mode="hybrid", fusion="rrf")["hybrid"]
    sweep = ws.hybrid_sweep(corpus, run, "test")
    best = max(sweep, key=sweep.get)
    row = {"collection": corpus, "run": label, "run_id": run, "queries": fitted["dense"]["queries"],
           "bm25": fitted["bm25"], "dense": fitted["dense"], "hybrid_fitted": fitted["hybrid"],
           "fit": fitted["fusion"], "hybrid_default": default, "default_weight": DEFAULT_WEIGHT, "rrf": rrf,
           "test_sweep": sweep, "test_best_weight": best, "seconds": round(time.perf_counter() - t0, 1)}
    nd = {k: row[k]["ndcg_at_10"] for k in ("bm25", "dense", "hybrid_fitted", "hybrid_default", "rrf")}
    row["hybrid_above_both"] = nd["hybrid_fitted"] > max(nd["bm25"], nd["dense"])
    print(f"[{corpus} / {label}] " + "  ".join(f"{k} {v:.4f}" for k, v in nd.items())
          + f"  (fitted weight {row['fit']['weight']}, test-best {best})", flush=True)
    return row


def table(rows: list[dict]) -> str:
    head = (f"{'collection':16s}{'run':12s}{'BM25':>8s}{'dense':>8s}{'hybrid':>8s}{'(w)':>6s}{'default':>9s}"
            f"{'RRF':>8s}{'+/- best part':>14s}{'test-best w':>12s}")
    lines = [head]
    for r in rows:
        nd = {k: r[k]["ndcg_at_10"] for k in ("bm25", "dense", "hybrid_fitted", "hybrid_default", "rrf")}
        gain = nd["hybrid_fitted"] - max(nd["bm25"], nd["dense"])
        lines.append(f"{r['collection']:16s}{r['run']:12s}{nd['bm25']:8.4f}{nd['dense']:8.4f}"
                     f"{nd['hybrid_fitted']:8.4f}{r['fit']['weight']:6.2f}{nd['hybrid_default']:9.4f}{nd['rrf']:8.4f}"
                     f"{gain:+14.4f}{r['test_best_weight']:12.2f}")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    """The README's table of a result file: nDCG@10 (and R@100) on the test queries, with the provenance."""
    prov = result["provenance"]
    clean = "" if prov["clean_tree"] else " (uncommitted changes)"
    m = result["machine"]
    out = [f"Commit {prov['commit']}{clean}, {prov['started']} to {prov['written']}; "
           f"machine: {m['cpu_model']}, {m['cpus']} cores, load {m['load_avg']}"
           + (f"; the trained run took {result['train_seconds'] / 60:.1f} min" if result.get("train_seconds") else "")
           + ".", "",
           "| collection | run | queries | BM25 | dense | hybrid (fitted w) | hybrid, default w | RRF "
           "| hybrid - best part | R@100 BM25 / dense / hybrid | test-best w |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        nd = {k: r[k]["ndcg_at_10"] for k in ("bm25", "dense", "hybrid_fitted", "hybrid_default", "rrf")}
        gain = nd["hybrid_fitted"] - max(nd["bm25"], nd["dense"])
        r100 = " / ".join(f"{r[k]['recall_at_100']:.3f}" for k in ("bm25", "dense", "hybrid_fitted"))
        out.append(f"| {r['collection']} | {r['run']} | {r['queries']:,} | {nd['bm25']:.4f} | {nd['dense']:.4f} | "
                   f"{nd['hybrid_fitted']:.4f} ({r['fit']['weight']:.2f}) | {nd['hybrid_default']:.4f} "
                   f"({r['default_weight']:.2f}) | {nd['rrf']:.4f} | {gain:+.4f} | {r100} | "
                   f"{r['test_best_weight']:.2f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SCIFACT))
    ap.add_argument("--workspace", help="workspace folder to use and keep (default: a temporary one)")
    ap.add_argument("--train-preset", choices=("quick", "standard", "full"), help="also train a SciFact run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "hybrid.json"))
    ap.add_argument("--smoke", action="store_true", help="toy BEIR data and the fake encoder (seconds)")
    ap.add_argument("--markdown", metavar="RESULT", help="print a result file as the README's table, run nothing")
    args = ap.parse_args(argv)
    if args.markdown:
        result = json.loads(Path(args.markdown).read_text())
        print(markdown(result))
        return result

    from hce_engine import Workspace
    from hce_engine.training import TrainConfig
    tmp = tempfile.TemporaryDirectory(prefix="hce-hybrid-")
    data = Path(args.data)
    model = None
    if args.smoke:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import write_toy_beir

        from hce_engine.encoder.fake import FakeEncoder
        data = Path(write_toy_beir(Path(tmp.name) / "toy"))
        model = str(Path(tmp.name) / "fake")
        FakeEncoder(dim=32, seed=0).save(model)
    ws = Workspace(args.workspace or os.path.join(tmp.name, "ws"), default_model=model)
    result = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), "smoke": args.smoke,
              "rows": []}
    try:
        have = {c["name"] for c in ws.corpora()}
        if "scifact" not in have:
            ws.import_corpus(str(data), name="scifact")
        if "scifact-titles" not in have:
            ws.import_corpus(titles_collection(data, Path(tmp.name) / "titles"), name="scifact-titles")
        for corpus in ("scifact", "scifact-titles"):
            base = next((r.run_id for r in ws.runs(corpus, status="done", kind="baseline")),
                        None) or ws.encode(corpus)
            result["rows"].append(measure(ws, corpus, base, "zero-shot"))
        if args.train_preset:
            done = [r for r in ws.runs("scifact", status="done", kind="train") if r.seed == args.seed]
            t0 = time.perf_counter()
            run = done[-1].run_id if done else ws.train("scifact", TrainConfig.preset(
                args.train_preset, seed=args.seed, signal="supervised", split="train"))
            result["train_seconds"] = round(time.perf_counter() - t0, 1)
            result["rows"].append(measure(ws, "scifact", run, f"{args.train_preset} #{run}"))
    finally:
        ws.close()
        tmp.cleanup()
    write_result(args.out, result)
    print(table(result["rows"]))
    return result


if __name__ == "__main__":
    main()
