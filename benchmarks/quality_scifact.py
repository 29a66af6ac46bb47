"""The SciFact quality bar (issue: HCE training): zero-shot vs in-batch vs random vs sibling negatives vs HCE.

Uses only the compute core (corpus readers, encoder, tree, training, evaluation: torch + transformers + numpy),
so it runs unchanged on a GPU machine without the app's storage and index dependencies. Documents are read and
joined (title + " " + text) as the engine does (``common.load_beir``). Exact search is a matrix product. Every
row trains on the train qrels as the preset says (standard/full: every pair, the last epoch kept), dropout on in
every row, and is scored on the test qrels with documents at 256 tokens and queries at 64, as in docs/method.md.

Rows: zero-shot, in-batch (no extra negatives), random (S uniformly drawn negatives), siblings (S leaf
siblings, no level losses), hce (siblings + level losses with learned centroids), hce-cotrain (hce with the
tree rebuilt every epoch), hce-sib96 / hce-sib128 (hce with the negatives at 96 / 128 tokens: a speed lever),
hce-u (ICT pairs, siblings + level losses), ict-in-batch (ICT pairs, in-batch), and the choices the reference
run does not make, each alone: hce-linear (linear decay to 0), hce-holdout (10% of the train queries held out),
hce-best (held out, and the best-validated epoch kept), hce-clip (gradients clipped at 1.0).

Usage:
    python benchmarks/quality_scifact.py --preset quick --seeds 0 1
    python benchmarks/quality_scifact.py --preset full --seeds 0 1 2 --device cuda --model .model-fp16
Writes benchmarks/results/quality_scifact_<preset>.json after every row (partial results survive).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

# common first: it puts the repository on sys.path
from common import RESULTS, SCIFACT, clean_tree, exact_ranking, git_commit, load_beir, machine, write_result

from hce_engine.encoder import default_model_path, load_encoder
from hce_engine.evaluation import evaluate
from hce_engine.training import PRESETS, TrainConfig, ict_pairs, supervised_pairs, train

ROWS = {
    "zero-shot": None,
    "in-batch": {"negatives": "in-batch", "level_loss": False},
    "random": {"negatives": "random", "level_loss": False},
    "siblings": {"negatives": "siblings", "level_loss": False},
    "hce": {"negatives": "siblings", "level_loss": True},
    "hce-cotrain": {"negatives": "siblings", "level_loss": True, "recluster_every": 1},
    "hce-sib96": {"negatives": "siblings", "level_loss": True, "sibling_max_length": 96},
    "hce-sib128": {"negatives": "siblings", "level_loss": True, "sibling_max_length": 128},
    # the four choices the reference run does not make: each alone, on top of the preset
    "hce-linear": {"negatives": "siblings", "level_loss": True, "lr_schedule": "linear"},
    "hce-holdout": {"negatives": "siblings", "level_loss": True, "val_fraction": 0.1},
    "hce-best": {"negatives": "siblings", "level_loss": True, "val_fraction": 0.1, "select": "best"},
    "hce-clip": {"negatives": "siblings", "level_loss": True, "grad_clip": 1.0},
    "hce-u": {"signal": "ict", "negatives": "siblings", "level_loss": True},
    "ict-in-batch": {"signal": "ict", "negatives": "in-batch", "level_loss": False},
}
DOC_LEN, QUERY_LEN = 256, 64


def score(encoder, doc_ids, doc_vecs, queries, qrels) -> dict:
    qids = [q for q in qrels if q in queries]
    qv = encoder.encode([queries[q] for q in qids], max_length=QUERY_LEN)
    return evaluate(exact_ranking(qids, qv, doc_vecs, doc_ids, k=100), qrels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SCIFACT))
    ap.add_argument("--preset", default="quick", choices=list(PRESETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--single-seed-rows", default="hce-cotrain,hce-u,ict-in-batch",
                    help="rows run with the first seed only (to bound CPU time); empty = all seeds")
    ap.add_argument("--ict-pairs", type=int, default=0, help="cap ICT pairs (0 = all; CPU runs use ~919)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default=None, help="encoder folder (default: the bundled MiniLM)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --out and run the rest")
    ap.add_argument("--markdown", metavar="RESULT", help="print a result file's rows as a markdown table and exit")
    a = ap.parse_args()
    if a.markdown:
        with open(a.markdown) as f:
            print(markdown_table(json.load(f)))
        return
    out_path = a.out or str(RESULTS / f"quality_scifact_{a.preset}.json")
    model = a.model or default_model_path()
    data = load_beir(a.data)
    doc_ids, texts, queries, qrels = data.ids, data.texts, data.queries, data.qrels
    pos = {d: i for i, d in enumerate(doc_ids)}
    sup = supervised_pairs(qrels["train"], queries, pos)
    result = {"preset": a.preset, "config": TrainConfig.preset(a.preset).to_dict(), "rows": [],
              "hardware": machine(), "doc_max_length": DOC_LEN, "query_max_length": QUERY_LEN,
              "started": time.strftime("%F %T"), "commit": git_commit()}
    single = set(filter(None, a.single_seed_rows.split(",")))
    zero_vecs = None  # the zero-shot corpus vectors: the first tree of every trained row (when computed here)
    done: set[tuple[str, int]] = set()
    if a.resume and os.path.exists(out_path):
        with open(out_path) as f:
            earlier = json.load(f)
        prov = earlier.get("provenance") or {}
        result["rows"] = [{"commit": prov.get("commit") or earlier.get("commit"), "clean_tree": prov.get("clean_tree"),
                           **r} for r in earlier["rows"]]  # each row keeps the commit that made it
        done = {(r["row"], r["seed"]) for r in result["rows"]}
    for row in a.rows.split(","):
        for seed in (a.seeds[:1] if row in single or row == "zero-shot" else a.seeds):
            if (row, seed) in done:
                continue
            t0 = time.time()
            encoder = load_encoder(model, device=a.device, max_length=DOC_LEN)
            stats: dict = {}
            if ROWS[row] is None:
                zero_vecs = encoder.encode(texts, max_length=DOC_LEN)
                vecs = zero_vecs
            else:
                if zero_vecs is None and "zero-shot" in a.rows.split(","):  # resumed after the zero-shot row:
                    zero_vecs = encoder.encode(texts, max_length=DOC_LEN)   # the same first tree as a full run
                cfg = TrainConfig.preset(a.preset, seed=seed, device=a.device, model=model, **ROWS[row])
                pairs = sup
                if cfg.signal == "ict":
                    pairs = ict_pairs(texts, seed=seed, remove_prob=cfg.ict_remove_prob, min_words=cfg.ict_min_words)
                    if a.ict_pairs:
                        keep = np.random.default_rng(seed).choice(len(pairs), min(a.ict_pairs, len(pairs)), False)
                        pairs = [pairs[i] for i in sorted(keep)]
                res = train(encoder, texts, pairs, cfg, initial_vectors=zero_vecs, initial_max_length=DOC_LEN)
                stats = {"first_tree_from": "zero-shot vectors (256 tokens)" if zero_vecs is not None else
                         f"the starting encoder at {cfg.max_length} tokens", "examples_per_s": res.examples_per_s, "train_seconds": res.seconds, "steps": res.steps,
                         "best_epoch": res.best_epoch, "start_val": res.start_val, "best_val": res.best_val,
                         "n_pairs": len(pairs), "n_train_pairs": res.n_train_pairs, "n_val_pairs": res.n_val_pairs,
                         "precision": getattr(encoder, "precision", None), "outcome": res.outcome["verdict"]}
                vecs = res.corpus_vectors if res.corpus_vectors is not None and cfg.max_length == DOC_LEN \
                    else encoder.encode(texts, max_length=DOC_LEN)
            m = score(encoder, doc_ids, vecs, queries, qrels["test"])
            entry = {"row": row, "seed": seed, **m, **stats, "seconds": time.time() - t0, "commit": git_commit(),
                     "clean_tree": clean_tree()}
            result["rows"].append(entry)
            print(f"{row:13s} seed {seed}: nDCG@10 {m['ndcg_at_10']:.4f}  R@10 {m['recall_at_10']:.4f}  "
                  f"R@100 {m['recall_at_100']:.4f}  ({entry['seconds']:.0f} s)", flush=True)
            write_result(out_path, result)
            del encoder
    print_table(result)


def markdown_table(result: dict) -> str:
    """A result file's rows as markdown: per row its seeds, nDCG@10 per seed and mean, R@10 and R@100 (means), the
    difference of the mean to zero-shot and to in-batch, minutes per seed, and the commits that made its rows
    (a row without its own commit is the file's)."""
    rows: dict[str, list[dict]] = {}
    for r in result["rows"]:
        rows.setdefault(r["row"], []).append(r)
    mean = {name: float(np.mean([r["ndcg_at_10"] for r in rs])) for name, rs in rows.items()}
    zero, inb = mean.get("zero-shot", float("nan")), mean.get("in-batch", float("nan"))
    prov = result.get("provenance") or {}
    clean = {True: "", False: " (tree not clean)", None: " (clean tree not recorded)"}

    def commits(rs: list[dict]) -> str:
        made = [(r.get("commit") or prov.get("commit") or result.get("commit"),
                 r["clean_tree"] if "commit" in r else prov.get("clean_tree")) for r in rs]
        return " / ".join(f"{c}{clean[t]}" for c, t in dict.fromkeys(made))
    out = ["| row | seeds | nDCG@10 per seed | mean | R@10 | R@100 | − zero-shot | − in-batch | min per seed "
           "| commit |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for name, rs in rows.items():
        per_seed = " / ".join(f"{r['ndcg_at_10']:.4f}" for r in rs)
        minutes = " / ".join(f"{r['seconds'] / 60:.1f}" for r in rs)
        seeds = ", ".join(str(r["seed"]) for r in rs)
        r10 = np.mean([r["recall_at_10"] for r in rs])
        r100 = np.mean([r["recall_at_100"] for r in rs])
        out.append(f"| {name} | {seeds} | {per_seed} | {mean[name]:.4f} | {r10:.4f} | {r100:.4f} | "
                   f"{mean[name] - zero:+.4f} | {mean[name] - inb:+.4f} | {minutes} | {commits(rs)} |")
    return "\n".join(out)


def print_table(result: dict) -> None:
    rows: dict[str, list[dict]] = {}
    for r in result["rows"]:
        rows.setdefault(r["row"], []).append(r)
    mean = {name: float(np.mean([r["ndcg_at_10"] for r in rs])) for name, rs in rows.items()}
    zero, inb = mean.get("zero-shot", float("nan")), mean.get("in-batch", float("nan"))
    print(f"\nSciFact test, preset {result['preset']} ({result['hardware']['cuda'] or 'CPU'})")
    print(f"{'row':14s} {'seeds':>6s} {'nDCG@10 per seed':>24s} {'mean':>7s} {'R@10':>7s} {'R@100':>7s} "
          f"{'-zero-shot':>10s} {'-in-batch':>10s} {'pairs':>6s} {'min':>6s}")
    for name, rs in rows.items():
        nd = [r["ndcg_at_10"] for r in rs]
        print(f"{name:14s} {len(rs):>6d} {' / '.join(f'{x:.4f}' for x in nd):>24s} {mean[name]:7.4f} "
              f"{np.mean([r['recall_at_10'] for r in rs]):7.4f} {np.mean([r['recall_at_100'] for r in rs]):7.4f} "
              f"{mean[name] - zero:+10.4f} {mean[name] - inb:+10.4f} "
              f"{rs[0].get('n_train_pairs', rs[0].get('n_pairs', 0)):>6} "
              f"{np.mean([r['seconds'] for r in rs]) / 60:6.1f}")


if __name__ == "__main__":
    main()
