"""The growth stress test (``hce experiment growth``, ``hce_engine.experiments.growth.run_growth``) on SciFact.

A seeded sample of SciFact (--docs, default 1,500 documents: every document relevant to a test query, up to
--train-docs documents relevant to train queries so the runs have pairs to learn from, the rest drawn at random)
is imported into a fresh workspace; then ``run_growth`` holds out --hold (half) of it, trains on the rest (quick
preset, max_pairs=128), adds the held-out documents back in steps until 10%, 25%, 50% of the live corpus is new
and scores the trained and the zero-shot run after each step on the old test queries (every relevant document
there at training) and on all test queries whose relevant documents are live; it rebuilds the tree at the last
step and retrains on the grown corpus for reference. Everything goes through the engine as the CLI runs it.

Usage:
    python benchmarks/growth_stress.py                  # SciFact sample -> results/growth_stress_scifact.json
    python benchmarks/growth_stress.py --docs 0         # the whole corpus (slow on CPU)
    python benchmarks/growth_stress.py --smoke --out /tmp/g.json   # seconds: toy corpus, fake encoder
    python benchmarks/growth_stress.py --markdown benchmarks/results/growth_stress_scifact.json
Writes the JSON (``common.write_result``: with provenance) and a PNG beside it (same stem).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

# common first: it puts the repository on sys.path
from common import RESULTS, SCIFACT, load_beir, machine, smoke_beir, write_beir, write_result


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sample(folder: str | Path, dest: Path, n_docs: int, train_docs: int, seed: int) -> tuple[str, dict]:
    """A BEIR folder of ``n_docs`` documents of ``folder`` (0: all): every test-relevant document, up to
    ``train_docs`` train-relevant ones, the rest at random (seeded); qrels restricted to them. Returns the folder
    and a description of the sample."""
    data = load_beir(folder)
    ids = data.ids
    rel = {s: {d for j in q.values() for d, v in j.items() if v > 0} for s, q in data.qrels.items()}
    if n_docs and n_docs < len(ids):
        rng = np.random.default_rng(seed)
        test = [d for d in ids if d in rel.get("test", set())]
        train = [d for d in ids if d in rel.get("train", set()) and d not in set(test)]
        train = [train[i] for i in rng.permutation(len(train))[:train_docs]]
        chosen = set(test) | set(train)
        rest = [d for d in ids if d not in chosen]
        chosen |= {rest[i] for i in rng.permutation(len(rest))[:max(0, n_docs - len(chosen))]}
    else:
        chosen = set(ids)
    docs = [{"_id": d.ext_id, "title": d.title, "text": d.text} for d in data.documents if d.ext_id in chosen]
    about = {"source": str(folder), "source_documents": len(ids), "documents": len(docs), "seed": seed,
             "test_relevant": len(rel.get("test", set()) & chosen),
             "train_relevant": len(rel.get("train", set()) & chosen)}
    return write_beir(dest, docs, data.queries, data.qrels), about


def plot(res: dict, path: Path) -> None:
    """Left: nDCG@10 of the trained and the zero-shot run against the share of new documents (old queries solid,
    all live queries dashed), the retrained run as stars. Right: tree-index R@10 of the trained run's stale tree,
    after the rebuild and exact search's, with the added documents' leaf fit against the tree's own."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = res["steps"]
    x = [r["share_new"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label, color in (("trained", "trained before the growth", "#3b5bdb"),
                              ("zero_shot", "zero-shot", "#868e96")):
        ax1.plot(x, [r[key]["old"]["ndcg_at_10"] for r in rows], "o-", color=color, label=f"{label}, old queries")
        ax1.plot(x, [r[key]["all"]["ndcg_at_10"] for r in rows], "s--", color=color, alpha=0.6,
                 label=f"{label}, all live queries")
    full = res["retrained"]["dense"]
    ax1.plot([x[-1]], [full["old"]["ndcg_at_10"]], "*", ms=14, color="#e8590c", label="retrained, old queries")
    ax1.plot([x[-1]], [full["all"]["ndcg_at_10"]], "*", ms=10, color="#e8590c", alpha=0.6,
             label="retrained, all live queries")
    ax1.set_xlabel("share of live documents added after training")
    ax1.set_ylabel("nDCG@10")
    ax1.set_title(f"Search quality as the corpus grows ({res['preset']} preset)")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    ax2.plot(x, [r["tree"]["all"]["recall_at_10"] for r in rows], "o-", color="#3b5bdb", label="tree index, stale tree")
    ax2.plot(x, [r["trained"]["all"]["recall_at_10"] for r in rows], ":", color="#868e96", label="exact search")
    ax2.plot([x[-1]], [res["rebuild"]["after"]["all"]["recall_at_10"]], "*", ms=14, color="#2b8a3e",
             label="tree index, rebuilt tree")
    ax2.set_xlabel("share of live documents added after training")
    ax2.set_ylabel("R@10, all live queries (trained run)")
    ax2.set_title("The stale tree as a search index")
    ax2.grid(alpha=0.3)
    ax3 = ax2.twinx()
    ax3.plot(x, [r["freshness"]["fit_added"] if r["freshness"]["fit_added"] is not None else np.nan for r in rows],
             "s--", color="#e8590c", label="leaf fit, added documents")
    ax3.plot(x, [r["freshness"]["fit_tree"] if r["freshness"]["fit_tree"] is not None else np.nan for r in rows],
             "s:", color="#e8590c", alpha=0.5, label="leaf fit, the tree's own")
    ax3.set_ylabel("mean cosine to leaf centroid")
    lines = ax2.get_lines() + ax3.get_lines()
    ax2.legend(lines, [ln.get_label() for ln in lines], fontsize=7, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(res: dict) -> str:
    """The settings line, the table (a row per step, the rebuilt tree, the retrained run) and the conclusions."""
    from hce_engine.experiments.growth import table_rows
    prov, meta = res.get("provenance", {}), res.get("meta", {})
    rows = table_rows(res)
    cols = list(rows[0])

    def cell(v) -> str:
        return "" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    out = [f"{meta.get('sample', {}).get('documents', res['documents']['total'])} documents "
           f"({res['documents']['held']} held out, seed {res['seed']}), {res['queries']['old']} old / "
           f"{res['queries']['new']} new {res['split']} queries; preset `{res['preset']}` with {res['overrides']}; "
           f"commit {prov.get('commit')} ({'clean' if prov.get('clean_tree') else 'uncommitted changes'}), "
           f"{meta.get('hardware', {}).get('cpu_model')}; {meta.get('elapsed_s')} s.", "",
           "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
    out += [""] + [f"- {c}" for c in res["conclusions"]]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SCIFACT), help="BEIR folder")
    ap.add_argument("--docs", type=int, default=1500, help="documents in the sample (0: the whole corpus)")
    ap.add_argument("--train-docs", type=int, default=500, help="at most this many train-relevant documents in it")
    ap.add_argument("--steps", default="0.1,0.25,0.5")
    ap.add_argument("--hold", type=float, default=0.5)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--set", default="max_pairs=128", help="training settings (key=value,...)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="encoder folder (default: the bundled MiniLM)")
    ap.add_argument("--work", default=None, help="keep the workspace here (default: a temporary folder, removed)")
    ap.add_argument("--out", default=None, help="result JSON (default results/growth_stress_scifact.json)")
    ap.add_argument("--smoke", action="store_true", help="toy corpus, fake encoder, tiny runs (seconds)")
    ap.add_argument("--markdown", metavar="RESULT", help="print a result file as a markdown table and exit")
    a = ap.parse_args()
    if a.markdown:
        print(markdown(json.loads(Path(a.markdown).read_text())))
        return 0
    from hce_engine import Workspace
    from hce_engine.experiments import parse_settings
    from hce_engine.experiments.growth import run_growth

    out = Path(a.out or RESULTS / f"growth_stress_scifact{'_smoke' if a.smoke else ''}.json")
    tmp = Path(tempfile.mkdtemp(prefix="hce-growth-stress-"))
    work = Path(a.work) if a.work else tmp
    settings = parse_settings(a.set, "--set")
    t0 = time.perf_counter()
    try:
        if a.smoke:
            from hce_engine.encoder.fake import FakeEncoder
            a.model = str(tmp / "fake")
            FakeEncoder(dim=32, seed=0).save(a.model)
            data, about = smoke_beir(tmp / "toy", n_docs=48, test_every=3), {"source": "toy (smoke)", "documents": 48, "seed": 0}
            settings = {**settings, "siblings": 2, "batch_size": 4}
        else:
            data, about = sample(a.data, tmp / "sample", a.docs, a.train_docs, a.seed)
        ws = Workspace(str(work / "ws"), default_model=a.model)
        try:
            corpus = "scifact-sample" if not a.smoke else "toy"
            if not any(c["name"] == corpus for c in ws.corpora()):
                ws.import_corpus(data, name=corpus)
            log(f"{corpus}: {about['documents']} documents; growth stress test, preset {a.preset} with {settings}")
            last = {"stage": ""}

            def progress(ev) -> None:
                if ev.stage != last["stage"]:
                    last["stage"] = ev.stage
                    log(ev.stage)

            res = run_growth(ws, corpus, steps=[float(s) for s in a.steps.split(",")], hold=a.hold,
                             preset=a.preset, settings=settings, seed=a.seed, progress=progress)
        finally:
            ws.close()
        res["meta"] = {"sample": about, "smoke": a.smoke, "hardware": machine(),
                       "elapsed_s": round(time.perf_counter() - t0, 1)}
        png = out.with_suffix(".png")
        plot(res, png)
        res["plot"] = png.name
        write_result(out, res)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(markdown(json.loads(out.read_text())))
    print(f"wrote {out} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
