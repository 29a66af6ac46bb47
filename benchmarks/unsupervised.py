"""Training without labels: does `hce train --preset unsupervised` hand back a better encoder?

Each row is what a user without judged queries gets. Per collection the corpus alone is imported into a fresh
workspace and encoded by the starting encoder (timed: the baseline a first `hce train` also makes); every
row (an arm of settings on top of the ``unsupervised`` preset, and a seed) trains on a copy of that workspace
through the engine (`Workspace.train`, exactly what `hce train` runs), its verdict coming from its own
label-free checks. Only then are the collection's queries and qrels imported, as two splits:

* ``dev``  - queries for choosing among arms (SciFact: its 809 *train* claims; the derived collections: every
  fifth query). Training never sees them.
* ``test`` - the final table (SciFact: the 300 test claims).

and the starting and the trained encoder are scored on both, dense and hybrid (BM25 + dense, weighted fusion at
the default weight 0.8: no judged query tunes anything).

Collections:

* ``scifact`` - SciFact (`../shared/data/scifact`, CC BY-NC 2.0).
* ``scifact-titles`` - the known-item collection of benchmarks/hybrid.py: abstracts without their titles, each
  title a query for its own abstract.
* ``jargon`` - the Jargon File sample (public domain): each headword a query for its entry, the entry stored
  with the headword removed from its text (and no title).

Arms (settings over the ``unsupervised`` preset): see :data:`ARMS`.

Usage:
    python benchmarks/unsupervised.py --collection scifact --arms self --seeds 0 1
    python benchmarks/unsupervised.py --collection jargon --arms self --seeds 0
    python benchmarks/unsupervised.py --smoke        # seconds: toy corpus, fake encoder (tests run this)

Writes benchmarks/results/unsupervised_<collection>.json after every row (``--resume`` keeps its rows), with
the commit (and whether the tree was clean), the machine, every row's full settings, seed, start and end.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

# common first: it puts the repository on sys.path
from common import JARGON, RESULTS, ROOT, SCIFACT, clean_tree, machine, read_docs, smoke_beir, write_beir, write_result

#: Settings over the ``unsupervised`` preset, one lever each. A row's full settings are
#: in its result file: rows named ``self`` before the preset became tree batches ran ``self-siblings``.
ARMS: dict[str, dict] = {
    "self": {},                                           # the preset (tree batches)
    "self-siblings": {"negatives": "siblings", "batching": "random", "siblings": 7, "max_pairs": 2000,
                      "epochs": 1},                       # the first preset: 7 leaf siblings per pseudo-query
    "self-teacher-negs": {"negatives": "teacher"},        # the teacher's own top 15 instead of the siblings
    "self-random": {"negatives": "random"},               # 15 random documents
    "self-in-batch": {"negatives": "in-batch"},           # the batch's other documents only
    # the batch is the candidate set: pairs of neighbouring leaves share it, every pseudo-query, 2 epochs
    "self-tree-batch": {"negatives": "in-batch", "batching": "tree", "max_pairs": 0, "epochs": 2},
    "self-tree-batch-lr5e-5": {"negatives": "in-batch", "batching": "tree", "max_pairs": 0, "epochs": 2,
                               "lr": 5e-5},
    "self-levels": {"level_loss": True},                  # + HCE's level terms for the pseudo-query's source
    "self-title": {"pseudo_query": "title"},              # the title as pseudo-query where there is one
    "self-title-w0.6": {"pseudo_query": "title", "teacher_weight": 0.6},  # the title, a teacher leaning on BM25
    "self-title-3ep": {"pseudo_query": "title", "epochs": 3},             # the title, a third epoch
    "self-salient": {"pseudo_query": "salient"},          # the sentence whose words weigh most (BM25)
    "self-anchor": {"anchor": 0.1},                       # + L2 towards the starting weights
    "self-lr5e-5": {"lr": 5e-5},                          # a higher rate (63 steps move the encoder little)
    "self-w0.6": {"teacher_weight": 0.6},                 # a teacher leaning more on BM25
    "self-dense-only": {"teacher_weight": 1.0},           # control: the teacher is the starting encoder
    "ict": {"signal": "ict", "negatives": "siblings"},    # plain contrastive on pseudo-pairs (ICT)
    "self-harm": {"lr": 5e-4, "max_pairs": 320},          # control: a rate 25x too high; do the checks see it?
}
HYBRID_WEIGHT = 0.8  # hce_engine.index.fusion.DEFAULT_WEIGHT: what a corpus without judged queries gets


# ------------------------------------------------------------------------------------------ collections
def collection(name: str, dest: Path) -> tuple[str, dict[str, tuple[str, str]]]:
    """(corpus file to import, {split: (queries file, qrels file)}) of a collection, written under ``dest``."""
    if name == "scifact":
        q = str(SCIFACT / "queries.jsonl")
        return str(SCIFACT / "corpus.jsonl"), {"dev": (q, str(SCIFACT / "qrels" / "train.tsv")),
                                               "test": (q, str(SCIFACT / "qrels" / "test.tsv"))}
    if name == "scifact-titles":
        from hybrid import titles_collection
        folder = Path(titles_collection(SCIFACT, dest / "titles"))
    elif name == "jargon":
        folder = Path(jargon_collection(JARGON, dest / "jargon"))
    else:
        raise SystemExit(f"unknown collection {name!r}")
    q = str(folder / "queries.jsonl")
    return str(folder / "corpus.jsonl"), {"dev": (q, str(folder / "qrels" / "train.tsv")),
                                          "test": (q, str(folder / "qrels" / "test.tsv"))}


def jargon_collection(path: Path, dest: Path) -> str:
    """Headword -> entry known-item search: entries without title, the headword cut from their text (whole
    words, any case); every fifth headword is a dev query, the rest test. Entries whose text is the headword
    alone are dropped."""
    docs = read_docs(path)
    records, queries, qrels = [], {}, {"train": {}, "test": {}}
    for i, d in enumerate(docs):
        head = d.title.strip()
        text = re.sub(rf"(?<!\w){re.escape(head)}(?!\w)", " ", d.text, flags=re.IGNORECASE) if head else d.text
        text = re.sub(r"\s+", " ", text).strip()
        if not text:
            continue
        records.append({"_id": d.ext_id, "title": "", "text": text})
        if head:
            queries[f"h{i}"] = head
            qrels["train" if i % 5 == 0 else "test"][f"h{i}"] = {d.ext_id: 1}
    return write_beir(dest, records, queries, qrels)


class Ticker:
    """Prints the run's progress events, at most one every 30 s (and every stage change)."""

    def __init__(self, label: str):
        self.label, self.last, self.stage = label, 0.0, None

    def __call__(self, ev) -> None:
        if ev.stage == self.stage and time.time() - self.last < 30:
            return
        self.last, self.stage = time.time(), ev.stage
        eta = f", eta {ev.eta_s / 60:.1f} min" if getattr(ev, "eta_s", None) else ""
        print(f"  [{time.strftime('%T')}] {self.label}: {ev.stage} {ev.done}/{ev.total}{eta}", flush=True)


# ------------------------------------------------------------------------------------------ one row
def measure(ws, corpus: str, run: int, split: str) -> dict:
    """nDCG@10 etc. of ``run`` on ``split``: dense and hybrid at the default weight."""
    out = ws.evaluate(corpus, run=run, split=split, mode="hybrid", weight=HYBRID_WEIGHT)
    return {"dense": out["dense"], "hybrid": out["hybrid"], "bm25": out["bm25"]}


def run_row(base_ws: Path, work: Path, corpus: str, splits: dict, arm: str, seed: int, args) -> dict:
    """Train one arm x seed on a copy of the encoded, unjudged workspace; then judge it."""
    from hce_engine import Workspace
    from hce_engine.training import TrainConfig
    ws_dir = work / f"ws-{arm}-{seed}"
    shutil.rmtree(ws_dir, ignore_errors=True)
    shutil.copytree(base_ws, ws_dir)
    overrides = {**ARMS[arm], "seed": seed, "device": args.device}
    if args.smoke:
        overrides.update(batch_size=4, siblings=3, branching=3, max_pairs=24)
    cfg = TrainConfig.preset(args.preset, **overrides)
    ws = Workspace(str(ws_dir), default_model=args.model)
    try:
        assert not ws.splits(corpus), "the corpus must have no judged queries while training"
        base_run = ws.runs(corpus, kind="baseline")[-1].run_id
        estimate = ws.estimate(corpus, cfg).total_seconds  # what the app and `hce train` announce
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        t0 = time.time()
        run_id = ws.train(corpus, cfg, progress=Ticker(f"{arm} seed {seed}"))
        train_s = time.time() - t0
        ended = time.strftime("%Y-%m-%d %H:%M:%S")
        run = ws.run(run_id)
        summary = run.summary or {}
        outcome = summary.get("outcome", {})
        for split, (queries, qrels) in splits.items():
            ws.import_queries(corpus, queries, qrels, split=split)
        metrics = {split: {"start": measure(ws, corpus, base_run, split), "trained": measure(ws, corpus, run_id, split)}
                   for split in splits}
    except BaseException:
        ws.close()
        print(f"row failed; its workspace is kept in {ws_dir}", file=sys.stderr)
        raise
    ws.close()
    if not args.keep:
        shutil.rmtree(ws_dir, ignore_errors=True)
    return {"arm": arm, "seed": seed, "config": cfg.to_dict(), "started": started, "ended": ended,
            "train_seconds": train_s, "estimated_seconds": estimate, "verdict": outcome.get("verdict"), "checks": outcome.get("checks", []),
            "steps": summary.get("steps"), "n_train_pairs": summary.get("n_train_pairs"),
            "n_val_pairs": summary.get("n_val_pairs"), "precision": summary.get("precision"), "metrics": metrics}


# ------------------------------------------------------------------------------------------ table
def print_table(result: dict) -> None:
    print(f"\n{result['collection']}: preset {result['preset']}, baseline encode "
          f"{result['baseline_encode_seconds'] / 60:.1f} min ({result['hardware'].get('cpu_model')})")
    head = (f"{'arm':18s} {'seed':>4s} {'min':>5s} {'verdict':>9s} {'checks (label-free)':>26s} "
            f"{'dev dense':>20s} {'dev hybrid':>20s} {'test dense':>20s} {'test hybrid':>20s}")
    print(head)
    for r in result["rows"]:
        checks = " ".join(f"{c['delta']:+.3f}" for c in r["checks"])
        cells = []
        for split in ("dev", "test"):
            for system in ("dense", "hybrid"):
                m = r["metrics"].get(split)
                if m is None:
                    cells.append(f"{'-':>20s}")
                    continue
                a, b = m["start"][system]["ndcg_at_10"], m["trained"][system]["ndcg_at_10"]
                cells.append(f"{a:.4f}>{b:.4f} {b - a:+.3f}".rjust(20))
        print(f"{r['arm']:18s} {r['seed']:>4d} {r['train_seconds'] / 60:5.1f} {str(r['verdict']):>9s} "
              f"{checks:>26s} " + " ".join(cells))


def markdown(result: dict) -> str:
    """The rows as a markdown table (what benchmarks/README.md shows), from a result file."""
    out = ["| arm | seed | verdict (label-free checks: known item, teacher agreement) | dev dense | test dense "
           "| test hybrid | train min | estimated min | commit |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        checks = ", ".join(f"{c['delta']:+.3f}" for c in r["checks"])
        cells = []
        for split, system in (("dev", "dense"), ("test", "dense"), ("test", "hybrid")):
            m = r["metrics"][split]
            a, b = m["start"][system]["ndcg_at_10"], m["trained"][system]["ndcg_at_10"]
            cells.append(f"{a:.4f} → {b:.4f} ({b - a:+.4f})")
        est = r.get("estimated_seconds")
        out.append(f"| {r['arm']} | {r['seed']} | {r['verdict']} ({checks}) | " + " | ".join(cells) +
                   f" | {r['train_seconds'] / 60:.1f} | {'—' if est is None else f'{est / 60:.1f}'} | "
                   f"{r['commit']}{'' if r.get('clean_tree') else ' (dirty)'} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", default="scifact", choices=["scifact", "scifact-titles", "jargon"])
    ap.add_argument("--arms", default="self", help=f"comma-separated, from: {', '.join(ARMS)}")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--preset", default="unsupervised")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default=None, help="starting encoder folder (default: the bundled MiniLM)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--work", default=None, help="folder for the workspaces (default: a temporary one)")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --out, run the rest")
    ap.add_argument("--keep", action="store_true", help="keep each row's workspace")
    ap.add_argument("--smoke", action="store_true", help="toy corpus, fake encoder, tiny runs (seconds)")
    ap.add_argument("--markdown", nargs="+", metavar="RESULT", help="print result files as markdown tables, run nothing")
    a = ap.parse_args()
    if a.markdown:
        for path in a.markdown:
            result = json.loads(Path(path).read_text())
            print(f"\n{result['collection']} (baseline encode {result['baseline_encode_seconds'] / 60:.1f} min, "
                  f"{result['hardware'].get('cpu_model')}, {result['hardware'].get('usable_cpus')} cores)\n")
            print(markdown(result))
        return
    arms = [x for x in a.arms.split(",") if x]
    unknown = [x for x in arms if x not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {', '.join(unknown)}; known: {', '.join(ARMS)}")
    out_path = Path(a.out or RESULTS / f"unsupervised_{a.collection}{'_smoke' if a.smoke else ''}.json")
    tmp = tempfile.TemporaryDirectory(prefix="hce-unsup-")
    work = Path(a.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)

    from hce_engine import Workspace
    if a.smoke:
        from hce_engine.encoder.fake import FakeEncoder
        a.model = str(work / "fake")
        FakeEncoder(dim=32, seed=0).save(a.model)
        corpus_file, splits = smoke_collection(work / "smoke")
    else:
        corpus_file, splits = collection(a.collection, work)
    missing = [p for p in [corpus_file, *(f for pair in splits.values() for f in pair)] if not os.path.isfile(p)]
    if missing:  # before hours of training, not after
        raise SystemExit(f"missing collection files: {', '.join(missing)} (set HCE_SCIFACT?)")
    base_ws = work / f"base-{a.collection}"
    stamp = base_ws / "encode_seconds.txt"  # a finished base workspace in --work is reused
    if not stamp.exists():
        shutil.rmtree(base_ws, ignore_errors=True)
        ws = Workspace(str(base_ws), default_model=a.model)
        ws.import_corpus(corpus_file, name=a.collection)
        t0 = time.time()
        ws.encode(a.collection)
        ws.close()
        stamp.write_text(f"{time.time() - t0}\n")
    encode_s = float(stamp.read_text())
    corpus = a.collection

    result = {"collection": a.collection, "preset": a.preset, "arms": {k: ARMS[k] for k in arms},
              "hybrid_weight": HYBRID_WEIGHT, "baseline_encode_seconds": encode_s, "hardware": machine(),
              "commit": machine()["commit"], "clean_tree": clean_tree(), "started": time.strftime("%F %T"),
              "splits": {s: [os.path.relpath(p, ROOT.parent) for p in paths] for s, paths in splits.items()},
              "rows": []}
    done: set[tuple[str, int]] = set()
    if a.resume and out_path.exists():
        result["rows"] = json.loads(out_path.read_text())["rows"]
        done = {(r["arm"], r["seed"]) for r in result["rows"]}
    for arm in arms:
        for seed in a.seeds:
            if (arm, seed) in done:
                continue
            row = run_row(base_ws, work, corpus, splits, arm, seed, a)
            row["commit"], row["clean_tree"], row["machine"] = result["commit"], clean_tree(), machine()
            result["rows"].append(row)
            result["ended"] = time.strftime("%F %T")
            write_result(out_path, result)
            m = row["metrics"]
            print(f"{arm} seed {seed}: {row['train_seconds'] / 60:.1f} min, verdict {row['verdict']}, "
                  f"dev dense {m['dev']['start']['dense']['ndcg_at_10']:.4f} -> "
                  f"{m['dev']['trained']['dense']['ndcg_at_10']:.4f}", flush=True)
    print_table(result)
    print(f"wrote {out_path}")


def smoke_collection(dest: Path) -> tuple[str, dict[str, tuple[str, str]]]:
    """A toy collection with two splits, for ``--smoke``."""
    folder = Path(smoke_beir(dest))
    q = str(folder / "queries.jsonl")
    return str(folder / "corpus.jsonl"), {"dev": (q, str(folder / "qrels" / "train.tsv")),
                                          "test": (q, str(folder / "qrels" / "test.tsv"))}


if __name__ == "__main__":
    sys.exit(main())
