"""Training throughput of the CPU levers, as pairs/s ratios against today's main setting, in one run.

Each lever trains a few HCE steps (siblings + level losses, gradient caching as in a real run) from the same
tree and pairs (SciFact train qrels over a corpus subset) and reports the median seconds per step after the
first (warm-up) step, pairs/s, and the ratio to the ``main`` row measured in the same process.

    python benchmarks/train_speed.py [--docs 2000] [--batch-size 16] [--steps 3] [--levers main,bf16,...]
    python benchmarks/train_speed.py --markdown benchmarks/results/train_speed.json   # its table, runs nothing

Levers (``LEVERS``): ``main`` = fp32, negatives at the document length (256), main's setting before the
levers; ``bf16`` = bf16 autocast (CPUs with AVX-512 BF16 / AMX); ``bf16+sib128`` = also negatives at 128
tokens; ``bf16+sib96``; ``bf16+sib128+S10`` = 10 negatives instead of 15. Writes
benchmarks/results/train_speed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

# common first: it puts the repository on sys.path
from common import RESULTS, SCIFACT, load_beir, machine, print_tables, source_line, write_result

from hce_engine.encoder import default_model_path, load_encoder
from hce_engine.training import TrainConfig, supervised_pairs, train

LEVERS = {
    "main": {"precision": "fp32", "sibling_max_length": 0},
    "bf16": {"precision": "bf16", "sibling_max_length": 0},
    "bf16+sib128": {"precision": "bf16", "sibling_max_length": 128},
    "bf16+sib96": {"precision": "bf16", "sibling_max_length": 96},
    "bf16+sib128+S10": {"precision": "bf16", "sibling_max_length": 128, "siblings": 10},
}


#: What each lever is, in a README's words.
LABELS = {"main": "fp32, negatives at 256 tokens (= `full`)", "bf16": "bf16 autocast",
          "bf16+sib128": "bf16 + negatives at 128 tokens", "bf16+sib96": "bf16 + negatives at 96 tokens (= `standard`)",
          "bf16+sib128+S10": "bf16 + negatives at 128 tokens + 10 siblings instead of 15"}


def markdown(result: dict) -> str:
    """A result file as the README shows it: where it comes from, then seconds per step and the ratio to main."""
    out = [f"{source_line(result)} · load before {result['hardware']['load_before']:.2f} · "
           f"{result['docs']:,} SciFact documents, batch {result['batch_size']}, {result['steps']} steps per lever "
           "(median after the first)", "",
           "| lever | s/step | every step (s; the first is warm-up) | pairs/s | vs main |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        ratio = f"{r['ratio_vs_main']:.2f}x" if r["ratio_vs_main"] else "—"
        steps = " / ".join(f"{t:.1f}" for t in r["step_seconds"])
        out.append(f"| {r['lever']}: {LABELS.get(r['lever'], r['lever'])} | {r['seconds_per_step']:.2f} | {steps} | "
                   f"{r['pairs_per_s']:.3f} | {ratio} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", nargs="+", metavar="RESULT", help="print result files' tables, run nothing")
    ap.add_argument("--data", default=str(SCIFACT))
    ap.add_argument("--docs", type=int, default=2000, help="corpus subset (train positives first)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--siblings", type=int, default=15)
    ap.add_argument("--steps", type=int, default=3, help="steps per lever; the first is warm-up")
    ap.add_argument("--levers", default=",".join(LEVERS))
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default=str(RESULTS / "train_speed.json"))
    ap.add_argument("--append", action="store_true", help="keep the rows already in --out (same machine)")
    a = ap.parse_args()
    if a.markdown:
        print_tables(a.markdown, markdown)
        return
    model = a.model or default_model_path()
    data = load_beir(a.data)
    doc_ids, texts, queries, qrels = data.ids, data.texts, data.queries, data.qrels
    positives = list(dict.fromkeys(d for judged in qrels["train"].values() for d in judged))
    keep = list(dict.fromkeys(positives + doc_ids))[:a.docs]
    by_id = dict(zip(doc_ids, texts))
    sub_texts = [by_id[d] for d in keep]
    pairs = supervised_pairs(qrels["train"], queries, {d: i for i, d in enumerate(keep)})
    enc = load_encoder(model, device="cpu", precision="auto")
    vectors = enc.encode(sub_texts, max_length=256)  # the tree every lever starts from
    del enc
    result = {"docs": len(sub_texts), "batch_size": a.batch_size, "steps": a.steps, "rows": [],
              "hardware": {**machine(), "load_before": os.getloadavg()[0]}, "started": time.strftime("%F %T")}
    if a.append and os.path.exists(a.out):
        with open(a.out) as f:
            result["rows"] = json.load(f)["rows"]
    base = next((r["pairs_per_s"] for r in result["rows"] if r["lever"] == "main"), None)
    print(f"{'lever':18s} {'s/step':>8s} {'pairs/s':>8s} {'vs main':>8s}", flush=True)
    for name in a.levers.split(","):
        settings = {"siblings": a.siblings, **LEVERS[name]}
        cfg = TrainConfig(epochs=1, batch_size=a.batch_size, max_pairs=a.batch_size * a.steps, val_fraction=0.0,
                          device="cpu", model=model, seed=0, **settings)
        enc = load_encoder(model, device="cpu", max_length=cfg.max_length, precision=cfg.precision)
        times: list[float] = []
        last = [time.time()]

        def on_step(ev, times=times, last=last) -> None:
            now = time.time()
            times.append(now - last[0])
            last[0] = now

        def on_tree(*_args, last=last) -> None:
            last[0] = time.time()

        res = train(enc, sub_texts, pairs, cfg, val_pairs=[], initial_vectors=vectors, on_step=on_step,
                    on_tree=on_tree)
        per_step = statistics.median(times[1:] or times)
        pps = a.batch_size / per_step
        base = base or (pps if name == "main" else None)
        row = {"lever": name, "settings": settings, "seconds_per_step": per_step, "step_seconds": times,
               "pairs_per_s": pps, "ratio_vs_main": (pps / base) if base else None, "steps": res.steps}
        result["rows"].append(row)
        print(f"{name:18s} {per_step:8.2f} {pps:8.3f} "
              f"{(f'{pps / base:.2f}x' if base else '-'):>8s}", flush=True)
        write_result(a.out, result)
        del enc


if __name__ == "__main__":
    main()
