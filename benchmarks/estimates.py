"""Time estimates against measured time: is what the app and `hce train` announce before a run within 25%?

For each collection a fresh workspace imports the corpus; then, preset after preset, the settings the app
offers for it (``Workspace.default_config(corpus, preset)``: on a corpus without judged queries the self
signal), the estimate announced before the run (``Workspace.estimate``, as the Train page and `hce train` call
it) and the run itself (``Workspace.train``, what `hce train` runs), timed whole and by stage (the run's
``stage_seconds``: baseline, prepare, steps, finish; see ``hce_engine.training.run_clock``). The first preset
of a collection also encodes the starting encoder's baseline (a user's first `hce train`), the others reuse it.
Along the way the whole-run ETA the run reported (its progress events' ``eta_s``) is sampled at 10%, 50% and
90% of the run's time, against the time actually left then.

Collections:

* ``sample``    - the bundled Jargon File sample (2,307 entries, no judged queries);
* ``upload300`` - 300 SciFact abstracts as a CSV with no queries (a seeded sample: a user's small upload);
* ``scifact``   - SciFact with its 809 judged train claims (`../shared/data/scifact`, or ``HCE_SCIFACT``).

Usage:
    python benchmarks/estimates.py --collections upload300,sample --presets quick,unsupervised
    python benchmarks/estimates.py --markdown results/estimates.json
    python benchmarks/estimates.py --smoke        # seconds: toy corpus, fake encoder (tests run this)

Writes benchmarks/results/estimates.json after every row (``--resume`` keeps the rows already there).
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from pathlib import Path

# common first: it puts the repository on sys.path
from common import JARGON, RESULTS, SCIFACT, clean_tree, machine, print_tables, read_docs, smoke_beir, write_result

from hce_engine.training.run_clock import STAGES  # after common: it found the repository

PRESETS = ("quick", "unsupervised", "standard", "full")
COLLECTIONS = ("sample", "upload300", "scifact")
TARGET = 0.25  # the estimate is within 25% of the measured time


def write_upload300(dest: Path, n: int = 300, seed: int = 0) -> Path:
    """``n`` SciFact abstracts drawn with ``seed``, as the CSV a user would upload (id, title, text)."""
    docs = read_docs(SCIFACT / "corpus.jsonl")
    picked = sorted(random.Random(seed).sample(range(len(docs)), n))
    path = dest / "upload300.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "text"])
        for i in picked:
            w.writerow([docs[i].ext_id, docs[i].title, docs[i].text])
    return path


def import_collection(ws, name: str, work: Path) -> None:
    """Import ``name`` into ``ws`` as corpus ``name`` (with judged train queries for scifact only)."""
    if name == "sample":
        ws.import_corpus(str(JARGON), name=name)
    elif name == "upload300":
        ws.import_corpus(str(write_upload300(work)), name=name)
    elif name == "scifact":
        ws.import_corpus(str(SCIFACT / "corpus.jsonl"), name=name)
        ws.import_queries(name, str(SCIFACT / "queries.jsonl"), str(SCIFACT / "qrels" / "train.tsv"), split="train")
    elif name == "smoke":
        folder = Path(smoke_beir(work / "smoke"))
        ws.import_corpus(str(folder / "corpus.jsonl"), name=name)
    else:
        raise SystemExit(f"unknown collection {name!r}")


class EtaSampler:
    """Keeps (time since start, reported whole-run eta) of every progress event."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.points: list[tuple[float, float]] = []

    def __call__(self, ev) -> None:
        if ev.eta_s is not None and ev.eta_s == ev.eta_s:
            self.points.append((time.monotonic() - self.t0, float(ev.eta_s)))

    def at(self, total: float, fractions=(0.1, 0.5, 0.9)) -> dict[str, dict]:
        """At each fraction of the run's time: the ETA reported last before it and the time actually left."""
        out = {}
        for f in fractions:
            before = [(t, e) for t, e in self.points if t <= f * total]
            if before:
                t, e = before[-1]
                out[f"{int(f * 100)}%"] = {"eta_s": round(e, 1), "left_s": round(total - t, 1)}
        return out


def run_row(ws, collection: str, preset: str, seed: int, overrides: dict | None = None) -> dict:
    """Estimate, then train, one preset on one collection; the row with estimate against actual."""
    cfg = ws.default_config(collection, preset, seed=seed, **(overrides or {})).to_dict()
    t0 = time.perf_counter()
    est = ws.estimate(collection, cfg)
    est_s = time.perf_counter() - t0
    sampler = EtaSampler()
    started = time.strftime("%F %T")
    t0 = time.perf_counter()
    run = ws.train(collection, cfg, progress=sampler)
    actual = time.perf_counter() - t0
    summary = ws.run(run).summary
    stages_est, stages_real = est.stages, summary["stage_seconds"]
    return {"collection": collection, "preset": preset, "seed": seed, "signal": cfg["signal"], "config": cfg,
            "documents": len(ws.documents(collection)), "pairs": est.pairs,
            "steps": summary.get("steps"), "estimate_s": round(est.total_seconds, 3),
            "actual_s": round(actual, 3), "ratio": round(est.total_seconds / actual, 3),
            "stages_estimate_s": {k: round(v, 4) for k, v in stages_est.items()},
            "stages_actual_s": stages_real, "estimate_took_s": round(est_s, 1), "train_factor":
            round(est.train_factor, 2), "negative_train_factor": round(est.negative_train_factor, 2),
            "eta": sampler.at(actual), "started": started,
            "ended": time.strftime("%F %T"), "run_id": run}


def markdown(result: dict) -> str:
    """The rows as a table: estimate against actual, whole and by stage."""
    hw = result["hardware"]
    out = [f"Machine: {hw.get('cpu_model')}, {hw.get('usable_cpus')} cores; seed {result['seed']}.\n",
           "| collection | preset | signal | docs | estimate | actual | estimate / actual | by stage (estimate / "
           "actual, min) | ETA at 50% (reported / left, min) | commit |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        stages = " · ".join(f"{k} {r['stages_estimate_s'][k] / 60:.1f} / {r['stages_actual_s'][k] / 60:.1f}"
                            for k in STAGES if r["stages_estimate_s"][k] or r["stages_actual_s"][k])
        mid = r["eta"].get("50%")
        eta = f"{mid['eta_s'] / 60:.1f} / {mid['left_s'] / 60:.1f}" if mid else "—"
        ok = "" if abs(r["ratio"] - 1) <= TARGET else " (off)"
        out.append(f"| {r['collection']} | {r['preset']} | {r['signal']} | {r['documents']:,} | "
                   f"{r['estimate_s'] / 60:.1f} min | {r['actual_s'] / 60:.1f} min | {r['ratio']:.2f}{ok} | {stages} | "
                   f"{eta} | {r['commit']}{'' if r.get('clean_tree') else ' (dirty)'} |")
    rows = result["rows"]
    within = sum(abs(r["ratio"] - 1) <= TARGET for r in rows)
    out.append(f"\n{within} of {len(rows)} estimates within {TARGET:.0%} of the measured time.")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collections", default="upload300,sample,scifact")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--work", default=None, help="folder for the workspaces (default: a temporary one)")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --out, run the rest")
    ap.add_argument("--smoke", action="store_true", help="toy corpus, fake encoder, tiny runs (seconds)")
    ap.add_argument("--markdown", nargs="+", metavar="RESULT", help="print result files as tables, run nothing")
    a = ap.parse_args()
    if a.markdown:
        print_tables(a.markdown, markdown)
        return
    collections = ["smoke"] if a.smoke else [c for c in a.collections.split(",") if c]
    presets = [p for p in a.presets.split(",") if p]
    bad = [c for c in collections if c not in COLLECTIONS + ("smoke",)] + [p for p in presets if p not in PRESETS]
    if bad:
        raise SystemExit(f"unknown collection or preset: {', '.join(bad)}")
    out_path = Path(a.out or RESULTS / f"estimates{'_smoke' if a.smoke else ''}.json")
    tmp = tempfile.TemporaryDirectory(prefix="hce-estimates-")
    work = Path(a.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)

    from hce_engine import Workspace
    model = None
    if a.smoke:
        from hce_engine.encoder.fake import FakeEncoder
        model = str(work / "fake")
        FakeEncoder(dim=32, seed=0).save(model)
    result = {"collections": collections, "presets": presets, "seed": a.seed, "target": TARGET,
              "hardware": machine(), "started": time.strftime("%F %T"), "rows": []}
    if a.resume and out_path.exists():
        result["rows"] = json.loads(out_path.read_text())["rows"]
    done = {(r["collection"], r["preset"]) for r in result["rows"]}
    for collection in collections:
        todo = [p for p in presets if (collection, p) not in done]
        if not todo:
            continue
        folder = work / f"ws-{collection}"
        fresh = not folder.exists()
        ws = Workspace(str(folder), default_model=model)
        try:
            if fresh:
                import_collection(ws, collection, work)
            for preset in todo:
                tiny = {"epochs": 1, "max_pairs": 16, "batch_size": 4} if a.smoke else None
                row = run_row(ws, collection, preset, a.seed, tiny)
                row["commit"], row["clean_tree"] = machine()["commit"], clean_tree()
                result["rows"].append(row)
                result["ended"] = time.strftime("%F %T")
                write_result(out_path, result)
                print(f"{collection} {preset}: estimated {row['estimate_s'] / 60:.1f} min, took "
                      f"{row['actual_s'] / 60:.1f} min (x{row['ratio']:.2f})", flush=True)
        finally:
            ws.close()
    print(markdown(result))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    sys.exit(main())
