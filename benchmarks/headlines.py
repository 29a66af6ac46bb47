"""The project's headline figures, read from the result files that other benchmarks wrote.

The top-level README quotes a few numbers (what each preset hands back on SciFact, hybrid search, encoder speed).
This script prints them as one markdown table, each figure beside the result file and the commit that made it,
so the README's block is generated (``benchmarks/readme_tables.py``) and never typed in. It runs nothing.

Usage:
    python benchmarks/headlines.py --markdown benchmarks/results
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

#: The ``unsupervised`` preset's arm in unsupervised.py's lever table (rows named ``self`` ran an older preset).
UNSUPERVISED_ARM = "self-tree-batch"


def _load(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


def _commits(rows: list[dict], fallback: dict) -> str:
    """The distinct commits of ``rows`` (a row without one, or no rows: the file's)."""
    prov = fallback.get("provenance") or {}
    made = [r.get("commit") or prov.get("commit") or fallback.get("commit") for r in rows or [{}]]
    return " / ".join(dict.fromkeys(str(c) for c in made))


def _per_seed(rows: list[dict]) -> str:
    """'seeds 0, 1: 0.7325 / 0.7367' (nDCG@10 per seed)."""
    return (f"seeds {', '.join(str(r['seed']) for r in rows)}: "
            + " / ".join(f"{r['ndcg_at_10']:.4f}" for r in rows))


def rows(folder: Path) -> list[tuple[str, str, str, str]]:
    """(what, figure, source, commit) per headline."""
    out = []
    q = _load(folder, "quality_scifact_standard_replay.json")
    by: dict[str, list[dict]] = {}
    for r in q["rows"]:
        by.setdefault(r["row"], []).append(r)
    mean = {k: float(np.mean([r["ndcg_at_10"] for r in v])) for k, v in by.items()}
    hce, inb = by["hce"], by["in-batch"]
    out.append(("`standard` preset, supervised on the 809 train claims: test nDCG@10 (300 claims)",
                f"HCE {mean['hce']:.4f} ({_per_seed(hce)}); in-batch fine-tuning {mean['in-batch']:.4f} "
                f"({_per_seed(inb)}); "
                f"zero-shot {mean['zero-shot']:.4f}; HCE − in-batch **{mean['hce'] - mean['in-batch']:+.4f}**",
                "quality_scifact_standard_replay.json", _commits(hce + inb + by["zero-shot"], q)))

    u = _load(folder, "unsupervised_scifact_levers.json")
    pre = [r for r in u["rows"] if r["arm"] == UNSUPERVISED_ARM]

    def ndcg(r: dict, split: str, which: str, mode: str = "dense") -> float:
        return r["metrics"][split][which][mode]["ndcg_at_10"]

    def change(split: str, mode: str = "dense") -> float:
        return float(np.mean([ndcg(r, split, "trained", mode) - ndcg(r, split, "start", mode) for r in pre]))

    minutes = " / ".join(f"{r['train_seconds'] / 60:.1f}" for r in pre)
    out.append(("`unsupervised` preset, the corpus alone (no query, no judgement): dense nDCG@10, start → trained",
                f"test {ndcg(pre[0], 'test', 'start'):.4f} → {np.mean([ndcg(r, 'test', 'trained') for r in pre]):.4f} "
                f"({change('test'):+.4f}; seeds {', '.join(str(r['seed']) for r in pre)}); dev, the 809 train claims, "
                f"{change('dev'):+.4f}; hybrid on test {change('test', 'hybrid'):+.4f}; "
                f"{minutes} min of training per seed",
                "unsupervised_scifact_levers.json", _commits(pre, u)))

    h = _load(folder, "hybrid.json")
    for r in h["rows"]:
        if r["collection"] != "scifact":
            continue
        label = "zero-shot MiniLM" if r["run"] == "zero-shot" else "a `quick` run"
        out.append((f"Hybrid search on SciFact test, {label}: nDCG@10",
                    f"BM25 {r['bm25']['ndcg_at_10']:.4f}, dense {r['dense']['ndcg_at_10']:.4f}, hybrid at the default "
                    f"weight {r['default_weight']} **{r['hybrid_default']['ndcg_at_10']:.4f}**",
                    "hybrid.json", _commits([], h)))

    e = _load(folder, "encode_speed.json")
    out.append((f"Encoder throughput, {e['n_docs']} SciFact abstracts, against sentence-transformers' fp32 encode",
                f"{e['ratio_engine_over_st']:.2f}x ({e['engine_precision']})", "encode_speed.json", _commits([], e)))
    return out


def markdown(folder: Path) -> str:
    lines = ["| what | figure | result file | commit |", "|---|---|---|---|"]
    lines += [f"| {what} | {fig} | `{src}` | {commit} |" for what, fig, src, commit in rows(folder)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", metavar="RESULTS", required=True, help="the folder of result files")
    print(markdown(Path(ap.parse_args().markdown)))


if __name__ == "__main__":
    main()
