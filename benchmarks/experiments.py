"""The built-in experiment recipes on SciFact, run through the engine exactly as `hce experiment` runs them.

For each recipe (hce_engine.experiments.RECIPES): create the experiment on the SciFact corpus (train qrels to
train on, test qrels to compare on), run every arm x seed, then store the engine's results (per-arm means and
sds over seeds, paired per-query comparisons against the control with bootstrap CIs, t and randomization tests
with Holm correction, verdicts), every run's settings and provenance, and per query the nDCG@10 of every run.
The coherence recipe adds its subtree table and correlation. A PNG per recipe goes beside the JSON.

The workspace folder (--work) is kept: running again with the same settings resumes the experiments where they
stopped (the engine's resume), so a long run can be interrupted.

Usage:
    python benchmarks/experiments.py                                  # all recipes, seeds 0 1, quick, 128 pairs
    python benchmarks/experiments.py --recipes negatives --seeds 0 1 2 --set max_pairs=256
    python benchmarks/experiments.py --markdown benchmarks/results/experiments_scifact.json
    python benchmarks/experiments.py --smoke --out /tmp/e.json       # seconds: toy corpus, fake encoder
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# common first: it puts the repository on sys.path
from common import RESULTS, SCIFACT, load_beir, machine, smoke_beir, write_beir, write_result

RECIPE_NAMES = {"coherence": "Do tight sibling groups help retrieval more?"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def progress_printer():
    last = {"stage": None}

    def report(ev) -> None:
        stage = ev.stage.split(": ")[0] + ": " + ev.stage.split(": ")[-1] if ": " in ev.stage else ev.stage
        if stage != last["stage"]:
            last["stage"] = stage
            log(stage)
    return report


def sample_folder(source: str, dest: Path, n: int, seed: int = 0) -> tuple[str, dict]:
    """A BEIR folder of ``n`` SciFact documents: every document judged relevant for a train or test query, then
    seeded random others; all queries and qrels. Returns (folder, what it holds)."""
    import numpy as np
    data = load_beir(source)
    judged = {d for split in ("train", "test") for rows in data.qrels.get(split, {}).values() for d in rows}
    ids = data.ids
    rest = [i for i, d in enumerate(ids) if d not in judged]
    fill = np.random.default_rng(seed).choice(len(rest), max(0, min(n - len(judged), len(rest))), replace=False)
    keep = sorted([i for i, d in enumerate(ids) if d in judged] + [rest[j] for j in fill])
    docs = [{"_id": ids[i], "title": data.documents[i].title, "text": data.documents[i].text} for i in keep]
    folder = write_beir(dest, docs, data.queries, data.qrels)
    return folder, {"documents": len(docs), "judged_documents": len(judged), "of": len(ids), "sample_seed": seed}


def plot(name: str, entry: dict, path: Path) -> None:
    """The recipe's plot as a PNG: nDCG@10 per arm (mean, sd over seeds, the seeds as dots); R@1 against R@100
    for the branching recipe; gain against coherence per subtree for the coherence recipe."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    arms = entry["arms"]
    panels = 2 if name in ("branching", "coherence") else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.8))
    axes = [axes] if panels == 1 else list(axes)
    ax = axes[0]
    for i, a in enumerate(arms):
        m = a["ndcg_at_10"]
        ax.errorbar([i], [m["mean"]], yerr=[m["sd"] or 0], fmt="o", capsize=6,
                    color="black" if a["control"] else "tab:blue")
        ax.scatter([i] * len(m["per_seed"]), m["per_seed"], s=12, color="grey", zorder=3)
    ax.set_xticks(range(len(arms)), [a["arm"] + (" (control)" if a["control"] else "") for a in arms], fontsize=8)
    ax.set_ylabel("nDCG@10 (test)")
    ax.set_title(entry["spec"]["name"], fontsize=9)
    if name == "branching":
        ax = axes[1]
        for a in arms:
            ax.scatter(a["recall_at_100"]["mean"], a["recall_at_1"]["mean"])
            ax.annotate(a["arm"], (a["recall_at_100"]["mean"], a["recall_at_1"]["mean"]), fontsize=8)
        ax.set_xlabel("R@100")
        ax.set_ylabel("R@1")
        ax.set_title("R@1 against R@100 per branching factor", fontsize=9)
    if name == "coherence":
        ax = axes[1]
        coh = entry["coherence"]
        rows = [r for r in coh["subtrees"] if r["queries"] >= coh["min_queries"]]
        ax.scatter([r["coherence"] for r in rows], [r["gain"] for r in rows], s=[8 + 4 * r["queries"] for r in rows])
        ax.axhline(0, color="grey", lw=0.5)
        rho = coh["spearman"]
        ax.set_title(f"per subtree of level {coh.get('level', 1)} (>= {coh['min_queries']} queries): Spearman "
                     f"{'n/a' if rho is None else f'{rho:+.2f}'}", fontsize=9)
        ax.set_xlabel("leaf tightness (mean cosine to leaf centre)")
        ax.set_ylabel(f"mean nDCG@10 gain, {coh['arm']} - {coh['control']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SCIFACT))
    ap.add_argument("--recipes", default="negatives,coherence,cotraining,branching")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--set", default="max_pairs=128", help="settings shared by every arm (key=value,...)")
    ap.add_argument("--boot", type=int, default=10000, help="bootstrap and randomization draws")
    ap.add_argument("--work", default="/tmp/hce-experiments-bench", help="workspace folder (kept: resumes)")
    ap.add_argument("--sample", type=int, default=0, help="SciFact documents to keep (every judged one, then random "
                    "others); 0 = the whole corpus")
    ap.add_argument("--model", default=None, help="encoder folder (default: the bundled MiniLM)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--smoke", action="store_true", help="toy corpus, fake encoder, tiny runs (seconds)")
    ap.add_argument("--markdown", metavar="RESULT", help="print a result file as markdown tables and exit")
    ap.add_argument("--report-only", action="store_true", help="train nothing: record the finished runs of the "
                    "recipes' experiments in --work (an unfinished one is marked partial)")
    a = ap.parse_args()
    if a.markdown:
        print(markdown(json.loads(Path(a.markdown).read_text()), Path(a.markdown).parent))
        return 0
    from hce_engine import Workspace
    from hce_engine.experiments import parse_settings, recipe_spec

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    out_path = Path(a.out or RESULTS / f"experiments_scifact{'_smoke' if a.smoke else ''}.json")
    data, settings = a.data, parse_settings(a.set, "--set")
    if a.smoke:
        from hce_engine.encoder.fake import FakeEncoder
        a.model = str(work / "fake")
        FakeEncoder(dim=32, seed=0).save(a.model)
        data = smoke_beir(work / "toy")
        settings = {**settings, "siblings": 2, "batch_size": 4}
    corpus_info: dict = {"documents": "all"}
    if a.sample and not a.smoke:
        data, corpus_info = sample_folder(data, work / "sample", a.sample)
    ws = Workspace(str(work / "ws"), default_model=a.model)
    corpus = "scifact"
    try:
        if not any(c["name"] == corpus for c in ws.corpora()):
            log(f"importing {data}")
            ws.import_corpus(data, name=corpus)
        result: dict = {"data": str(data), "corpus": corpus_info, "preset": a.preset, "settings": settings,
                        "seeds": a.seeds,
                        "boot": a.boot, "hardware": machine(), "recipes": {}}
        if out_path.exists():
            old = json.loads(out_path.read_text())
            result["recipes"] = {k: v for k, v in old.get("recipes", {}).items() if k not in a.recipes.split(",")}
        for name in a.recipes.split(","):
            if name == "coherence" and "negatives" in result["recipes"]:
                # the recipe's two arms (in-batch, siblings; same settings and seeds) are arms of the negatives
                # experiment: its runs are read, not trained again
                neg = result["recipes"]["negatives"]
                res = ws.experiment_results(neg["experiment_id"], n_boot=a.boot, control="in-batch")
                entry = {**res, "spec": {**res["spec"], "name": RECIPE_NAMES[name]}, "reads": "negatives",
                         "coherence": ws.experiment_coherence(neg["experiment_id"], "siblings", "in-batch"),
                         "comparisons": [c for c in res["comparisons"] if c["arm"] == "siblings"],
                         "arms": [a for a in res["arms"] if a["arm"] in ("in-batch", "siblings")],
                         "started": time.strftime("%F %T")}
                entry["ended"] = time.strftime("%F %T")
                result["recipes"][name] = entry
                png = out_path.with_name(f"{out_path.stem}_{name}.png")
                plot(name, entry, png)
                entry["plot"] = png.name
                write_result(out_path, result)
                continue
            spec = recipe_spec(name, corpus, a.seeds, a.preset, settings)
            same = [e["experiment_id"] for e in ws.experiments()
                    if ws.experiment(e["experiment_id"]).spec.to_dict() == spec.to_dict()]
            exp = same[-1] if same else ws.create_experiment(spec)
            log(f"recipe {name}: experiment {exp} ({'resumed' if same else 'new'})")
            started = time.strftime("%F %T")
            status = ws.experiment_status(exp) if a.report_only else ws.run_experiment(exp, progress=progress_printer())
            if status.errors or (status.done != status.total and not a.report_only):
                raise SystemExit(f"experiment {exp} did not finish: {status.to_dict().get('errors')}")
            res = ws.experiment_results(exp, n_boot=a.boot)
            entry = {**res, "started": started, "ended": time.strftime("%F %T"),
                     "partial": status.done != status.total}
            if name == "coherence":
                entry["coherence"] = ws.experiment_coherence(exp)
            result["recipes"][name] = entry
            png = out_path.with_name(f"{out_path.stem}_{name}.png")
            plot(name, entry, png)
            entry["plot"] = png.name
            write_result(out_path, result)
            for c in res["comparisons"]:
                log(c["verdict"])
    finally:
        ws.close()
    print(markdown(json.loads(out_path.read_text()), out_path.parent))  # as written, with its provenance
    print(f"wrote {out_path}")
    return 0


def markdown(result: dict, folder: Path) -> str:
    """Per recipe: its question, a table of the arms (nDCG@10 mean and sd over seeds, R@1, R@100, training
    minutes, the paired difference to the control with its 95% CI, Holm-adjusted p of the randomization test,
    wins/ties/losses over queries), the verdicts and the plot; the coherence table's correlation."""
    from hce_engine.experiments import RECIPES
    prov = result.get("provenance", {})
    out = [f"Corpus: SciFact, {result.get('corpus', {}).get('documents', 'all')} documents"
           f"{' (every judged one, then random others)' if result.get('corpus', {}).get('judged_documents') else ''}"
           f"; settings: preset `{result['preset']}` with {result['settings']}; commit "
           f"{prov.get('commit')} ({'clean' if prov.get('clean_tree') else 'uncommitted changes'}), "
           f"{result['hardware'].get('cpu_model')} ({result['hardware'].get('usable_cpus')} cores)."]
    for name, e in result["recipes"].items():
        comps = {c["arm"]: c for c in e["comparisons"]}
        reads = f" Its arms are the `{e['reads']}` experiment's runs (same settings and seeds)." if e.get("reads") \
            else ""
        if e.get("partial"):
            reads += (f" **Partial**: {e['status']['done']} of its {e['status']['total']} runs finished; the rows "
                      "are over the finished ones.")
        out += ["", f"**{name}**: {RECIPES[name].question} {RECIPES[name].shows}{reads} "
                f"(seeds {', '.join(map(str, e['spec']['seeds']))}; {e['queries']} test queries; {e['started']} to "
                f"{e['ended']})", "",
                "| arm | seeds | nDCG@10 (sd) | R@1 | R@100 | train min | diff to control [95% CI] | p (rand., Holm) "
                "| win/tie/loss |", "|---|---|---|---|---|---|---|---|---|"]
        for arm in e["arms"]:
            c = comps.get(arm["arm"])
            sd = arm["ndcg_at_10"]["sd"]
            mins = arm["train_seconds"]["mean"]
            out.append(f"| {arm['arm']}{' (control)' if arm['control'] else ''} | {len(arm['seeds'])} | "
                       f"{arm['ndcg_at_10']['mean']:.4f} ({'-' if sd is None else f'{sd:.4f}'}) | "
                       f"{arm['recall_at_1']['mean']:.4f} | {arm['recall_at_100']['mean']:.4f} | "
                       f"{'-' if mins is None else f'{mins / 60:.1f}'} | " +
                       (f"{c['diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] | {c['p_randomization_holm']:.3f}"
                        f" | {c['wins']}/{c['ties']}/{c['losses']} |" if c else "| | |"))
        out += [""] + [f"- {c['verdict']}" for c in e["comparisons"]]
        if "coherence" in e:
            coh = e["coherence"]
            rho, p = coh["spearman"], coh["spearman_p"]
            out.append(f"- Coherence: over {coh['n_subtrees']} subtrees (tree level {coh.get('level', 1)}) with >= "
                       f"{coh['min_queries']} "
                       f"queries, Spearman rho between leaf tightness and the {coh['arm']} gain = "
                       + ("n/a" if rho is None else f"{rho:+.3f} (p {p:.3f})") + ".")
        if e.get("plot"):
            out += ["", f"![{name}](results/{e['plot']})"]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
