"""The ``hce`` command: every pipeline step from the shell.

Errors a user can fix go to stderr as one line and exit with status 1; ``--json`` prints one JSON object
on stdout.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from ..errors import HCEError, InputError, NotFoundError
from ..evaluation import METRIC_LABELS, METRICS
from ..evaluation.outcome import label_free
from ..index.fusion import FUSIONS, INDEX_KINDS, MODES
from ..progress import Progress, fmt_duration
from ..runs import EncodeConfig
from ..training.config import DEFAULT_PRESET, LABEL_SOURCE, PRESET_HELP, PRESETS, UNLABELLED_PRESET, TrainConfig
from ..training.run_clock import STAGES


def _table(rows: list[dict], cols: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]

    def line(vals: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True)).rstrip()

    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _progress(quiet: bool):
    """A progress bar on stderr when it is a terminal (None with ``--json`` or when piped).

    Every engine stage reports :class:`~hce_engine.progress.Progress` events through it."""
    if quiet or not sys.stderr.isatty():
        return None
    state: dict[str, str | None] = {"stage": None}

    def report(ev: Progress) -> None:
        stage, done, total, eta_s = ev.stage, ev.done, ev.total, ev.eta_s
        if state["stage"] not in (None, stage):
            print(file=sys.stderr)  # keep the finished stage's line
        state["stage"] = stage
        bar = "#" * int(24 * ev.fraction)
        eta = f"  ETA {fmt_duration(eta_s)}" if eta_s is not None and eta_s == eta_s and done < total else ""
        print(f"\r{stage:>16s} [{bar:<24s}] {done}/{total}{eta}\x1b[K", end="", file=sys.stderr, flush=True)
        if total and done >= total:
            print(file=sys.stderr)
            state["stage"] = None
    return report


def _fmt_metrics(m: dict) -> str:
    return "  ".join(f"{METRIC_LABELS[k]} {m[k]:.4f}" for k in METRICS) + f"  ({m['queries']} queries)"


def cmd_import(ws, a) -> int:
    rejudged: list[dict] = []
    if a.queries:
        report = ws.import_queries(a.name, a.queries, a.qrels, a.split)
        if report.qrels:  # new judgements: every finished run is checked on them
            rejudged = ws.rejudge(a.name, a.split)
    else:
        report = ws.import_corpus(a.path, name=a.name, id_col=a.id_col, title_col=a.title_col, text_col=a.text_col)
    if a.json:
        print(json.dumps({**report.to_dict(), **({"runs": rejudged} if a.queries else {})}))
    else:
        qrels = ", ".join(f"{s}: {n}" for s, n in report.qrels.items()) or "none"
        print(f"imported corpus {report.corpus!r} ({report.format}): {report.documents} documents, "
              f"{report.skipped_empty} empty skipped, {report.queries} queries, qrels {qrels}")
        if report.empty_judged:
            print(f"  {report.empty_judged} judgements name an empty document: kept (they count in nDCG and "
                  "recall), though it cannot be retrieved")
        _print_rejudged(rejudged)
    return 0


def cmd_judge(ws, a) -> int:
    saved = ws.judge(a.corpus, a.query, a.relevant, a.seen or (), a.split)
    rejudged = ws.rejudge(a.corpus, saved["split"])
    if a.json:
        print(json.dumps({**saved, "runs": rejudged}))
        return 0
    print(f"judged query {saved['query_id']} ({saved['split']}): {len(saved['relevant'])} relevant, "
          f"{len(saved['not_relevant'])} not; {saved['judged_queries']} judged {saved['split']} queries in "
          f"{a.corpus!r}")
    _print_rejudged(rejudged)
    return 0


def _print_rejudged(rejudged: list[dict]) -> None:
    """Each run checked again on judged queries, with its verdict (and what it was, when it changed)."""
    for r in rejudged:
        change = r["after"] if r["after"] == r["before"] else f"{r['before']} -> {r['after']}"
        print(f"  run #{r['run_id']} checked on the judged queries: {change}")


def cmd_corpora(ws, a) -> int:
    rows = ws.corpora()
    if a.json:
        print(json.dumps(rows, default=str))
    else:
        print(_table(rows, ["name", "documents", "removed", "queries", "qrels", "runs", "source"]))
    return 0


def cmd_encode(ws, a) -> int:
    run = ws.encode(a.corpus, progress=_progress(a.json), **_config_settings(a, EncodeConfig))
    print(json.dumps({"run_id": run}) if a.json else run)
    return 0


def _mode(a) -> str:
    """--mode, with --bm25 meaning --mode bm25 (search and eval alike)."""
    return "bm25" if a.bm25 and a.mode == "dense" else a.mode


def cmd_search(ws, a) -> int:
    query = " ".join(a.query)
    mode = _mode(a)
    if mode == "bm25" and a.run is None:  # BM25 needs no run (nor an encoded corpus)
        hits = ws.bm25_search(a.corpus, query, a.k)
    else:
        hits = ws.search(a.corpus, query, run=a.run, k=a.k, mode=mode, fusion=a.fusion, weight=a.weight,
                         index_kind=a.index_kind)
    route = ws.tree_route(a.corpus, query, run=a.run) if a.index_kind == "tree" and mode != "bm25" else None
    if a.json:
        print(json.dumps({"query": query, "mode": mode, "hits": [h.to_dict() for h in hits],
                          **({"route": route} if route else {})}))
    else:
        if route:
            share = route["distance_computations"] / max(route["documents"], 1)
            print(f"tree index: {len(route['leaves'])} leaf clusters visited, {route['distance_computations']} "
                  f"distance computations ({share:.1%} of exact search); nearest: "
                  + "; ".join(leaf["label"] for leaf in route["leaves"][:3]))
        for h in hits:
            came = ""
            if h.ranks:
                came = "  (" + ", ".join(f"{k} {'#' + str(r) if r else '-'}" for k, r in h.ranks.items()) + ")"
            print(f"{h.rank:>3}. {h.score:7.4f}  [{h.ext_id}] {h.title}{came}\n     {h.snippet}")
        if not hits:
            print("(no hits)")
    return 0


def cmd_eval(ws, a) -> int:
    mode = _mode(a)
    out = ws.evaluate(a.corpus, run=a.run, split=a.split, bm25=a.with_bm25, mode=mode, fusion=a.fusion,
                      weight=a.weight, index_kind=a.index_kind, progress=_progress(a.json))
    systems = [s for s in ("dense", "bm25", "hybrid") if s in out]
    if a.json:
        # the top level is the row of the mode asked for; the other systems' rows beside it
        top = mode if mode in out else systems[0]
        flat = dict(out[top], run_id=out["run"], split=out["split"], mode=mode)
        flat.update({s: out[s] for s in systems if s != top})
        if "fusion" in out:
            flat["fusion"] = out["fusion"]
        print(json.dumps(flat))
    else:
        print(f"run {out['run']} on {a.corpus}/{out['split']}")
        for s in systems:
            print(f"  {s + ':':7s} {_fmt_metrics(out[s])}")
        fit = out.get("fusion")
        if fit:
            how = ("reciprocal rank fusion" if fit["fusion"] == "rrf" else
                   f"dense weight {fit['weight']:.2f}, fitted on {fit['queries']} {fit['split']} queries "
                   f"({METRIC_LABELS['ndcg_at_10']} {fit['ndcg_at_10']:.4f} there)" if fit["split"] else
                   f"dense weight {fit['weight']:.2f} "
                   f"({'given' if a.weight is not None else 'default: no other split has qrels'})")
            print(f"  hybrid: {how}")
    return 0


def cmd_subset(ws, a) -> int:
    ids = list(a.ids)
    if a.ids_file:
        with open(a.ids_file, encoding="utf-8") as f:
            ids += [line.strip() for line in f if line.strip()]
    report = ws.subset_corpus(a.corpus, ids, a.name)
    print(json.dumps(report.to_dict()) if a.json else
          f"created corpus {report.corpus!r}: {report.documents} documents of {a.corpus!r}, {report.queries} "
          f"queries judging them")
    return 0


def cmd_explain(ws, a) -> int:
    from ..views import explain
    doc = ws.documents(a.corpus)
    doc = doc[doc["ext_id"] == a.doc]
    if doc.empty:
        raise NotFoundError(f"no document {a.doc!r} in corpus {a.corpus!r}")
    run = a.run if a.run is not None else ws.ensure_run(a.corpus)
    out = explain(ws, run, a.query, int(doc.iloc[0]["doc_id"]), compare_run=a.compare)
    if a.json:
        print(json.dumps(out))
        return 0
    r = out["retrievers"]

    def place(x: dict | None) -> str:
        return "-" if x is None else f"rank {x['rank'] or '-'} (score {x['score']:.3f})"
    print(f"[{out['doc']['ext_id']}] {out['doc']['title']} for {out['query']!r}")
    print(f"  run {out['run_id']}: {place(r['run'])}" + (f"   starting encoder (run {out['compare_run']}): "
                                                         f"{place(r.get('start'))}" if "start" in r else ""))
    print(f"  BM25: {place(r['bm25']) if r['bm25']['rank'] else 'no word in common'}"
          + (f"; shared words: {', '.join(out['shared_words'])}" if out["shared_words"] else ""))
    print("  path through the tree (the query's similarity; * where the query would have taken another branch):")
    for p in out["path"]:
        other = ("" if p["took_branch"] else
                 f"   * query's branch: {p['query_branch_label']} ({p['query_branch_score']:.3f})")
        print(f"    {p['level']}. {p['label']:<40s} {p['score']:.3f}  rank {p['rank']}/{p['n_candidates']}{other}")
    print(f"    leaf: rank {out['leaf']['rank']} of {out['leaf']['n_candidates']} documents in its cluster")
    for key, word in (("moved_up", "up"), ("moved_down", "down")):
        if out[key]:
            print(f"  moved {word} most with training: " + "; ".join(
                f"{m['title'][:40]} {m['rank_compare']}->{m['rank']}" for m in out[key]))
    return 0


def cmd_runs(ws, a) -> int:
    runs = ws.runs(a.corpus)
    if a.json:
        print(json.dumps([r.to_dict() for r in runs], default=str))
        return 0
    ndcg = METRIC_LABELS["ndcg_at_10"]
    rows = []
    for r in runs:
        head = r.headline()
        rows.append({**r.to_dict(), ndcg: f"{head['ndcg_at_10']:.4f} ({head['split']})" if head else "",
                     "signal": r.config_dict.get("signal", ""), "negatives": r.config_dict.get("negatives", "")})
    print(_table(rows, ["run_id", "corpus", "kind", "status", "signal", "negatives", "seed", ndcg,
                        "created_at", "error"]))
    return 0


def _suggestions(f: dict) -> str:
    todo = [w for w, on in (("rebuild the tree", f["rebuild_suggested"]), ("retrain", f["retrain_suggested"])) if on]
    return f"run {f['run']}: {' and '.join(todo)} suggested: {'; '.join(f['reasons'])}" if todo else ""


def cmd_add(ws, a) -> int:
    out = ws.add_documents(a.corpus, a.path, progress=_progress(a.json))
    out.pop("doc_ids")
    out["freshness"] = [ws.freshness(r) for r in out["runs_updated"]]
    if a.json:
        print(json.dumps(out, default=str))
        return 0
    print(f"added {out['added']} documents to {a.corpus!r} ({out['skipped_empty']} empty skipped); "
          f"runs updated: {out['runs_updated'] or 'none'}")
    for f in out["freshness"]:
        if _suggestions(f):
            print(_suggestions(f))
    return 0


def cmd_freshness(ws, a) -> int:
    """Per finished run: documents added since training and since its tree, leaf fit, suggestions."""
    runs = [a.run] if a.run else [r.run_id for r in ws.runs(a.corpus, status="done")]
    rows = [ws.freshness(r) for r in runs]
    if a.json:
        print(json.dumps([{"run_id": r["run"], **{k: v for k, v in r.items() if k != "run"}} for r in rows],
                         default=str))
        return 0
    for r in rows:
        r["share_new"] = f"{r['share_new']:.1%}"
        r["share_new_tree"] = f"{r['share_new_tree']:.1%}"
        for k in ("fit_tree", "fit_added"):
            r[k] = "" if r[k] is None else f"{r[k]:.3f}"
    print(_table(rows, ["run", "live_documents", "added_since", "share_new", "tree_rebuild", "added_since_tree",
                        "share_new_tree", "fit_tree", "fit_added", "rebuild_suggested", "retrain_suggested"]))
    for r in rows:
        if _suggestions(r):
            print(_suggestions(r))
    return 0


def cmd_rebuild_tree(ws, a) -> int:
    run = a.run or ws.latest_run(a.corpus)
    if run is None:
        raise NotFoundError(f"corpus {a.corpus!r} has no finished run")
    rebuild = ws.rebuild_tree(run)
    tree, _, _ = ws.tree(run)
    out = {"run_id": run, "rebuild": rebuild, "documents": tree.n_docs, "depth": tree.depth, "nodes": tree.n_nodes}
    print(json.dumps(out) if a.json else f"run {run}: tree rebuilt as rebuild {rebuild} ({tree.n_docs} documents, "
                                         f"depth {tree.depth}, {tree.n_nodes} nodes)")
    return 0


def cmd_remove(ws, a) -> int:
    out = ws.remove_documents(a.corpus, a.ids)
    print(json.dumps(out) if a.json else f"removed {out['removed']} documents from {a.corpus!r}; "
          f"runs updated: {out['runs_updated'] or 'none'}")
    return 0


def cmd_tree(ws, a) -> int:
    """The run's tree, level by level: node id, size and label (top terms)."""
    from ..views import tree_overview
    run = a.run or ws.ensure_run(a.corpus)
    tree, terms, _ = ws.tree(run, a.rebuild)
    if a.json:
        print(json.dumps(tree_overview(ws, run, a.rebuild, a.max_level), default=str))
        return 0
    print(f"run {run}: {tree.n_docs} documents, depth {tree.depth}, {tree.n_nodes} nodes ({tree.builder}, "
          f"b = {tree.branching})")

    def show(node: int, indent: int) -> None:
        label = " · ".join(terms[node][:4]) or "(no terms)"
        print(f"{'  ' * indent}[{node}] {label} ({tree.size[node]})")
        if tree.level[node] < a.max_level:
            for child in tree.children(node):
                show(int(child), indent + 1)
    show(0, 0)
    return 0


def cmd_siblings(ws, a) -> int:
    """A document's or query's path and, per level, the positive against its siblings."""
    from ..views import siblings_view
    run = a.run or ws.ensure_run(a.corpus)
    doc_id = None
    if a.doc:
        docs = ws.documents(a.corpus)
        match = docs.loc[docs["ext_id"] == a.doc, "doc_id"]
        if match.empty:
            raise NotFoundError(f"no document {a.doc!r} in corpus {a.corpus!r}")
        doc_id = int(match.iloc[0])
    view = siblings_view(ws, run, doc_id=doc_id, query=a.query, compare_run=a.compare, max_siblings=a.max)
    if a.json:
        print(json.dumps(view, default=str))
        return 0
    cmp = a.compare is not None
    print(f"run {run}{f' (before: run {a.compare})' if cmp else ''}: {view['positive_source']} "
          f"[{view['doc']['ext_id']}] {view['doc']['title']}")
    for lv in view["levels"] + [dict(view["leaf"], level="leaf", positive_label=view["leaf"]["leaf_label"])]:
        before = f", before: rank {lv['rank_compare']}" if cmp and "rank_compare" in lv else ""
        print(f"level {lv['level']}: positive ranked {lv['rank']} of {lv['n_candidates']} "
              f"(loss {lv['loss']:.3f}{before})")
        for c in lv["candidates"]:
            name = c.get("label") or c.get("title", "")
            print(f"   {'*' if c['is_positive'] else ' '} {c['score']:6.3f}  {name}")
    return 0


def cmd_export(ws, a) -> int:
    done = []
    if a.learn_html:
        if not a.corpus:
            raise InputError("--learn-html needs --corpus")
        from ..plotting import export
        with open(a.learn_html, "w", encoding="utf-8") as f:
            f.write(export.learn_html(ws, a.corpus))
        done.append(a.learn_html)
    wants_run = a.model or a.vectors or a.trec or a.map_html or a.tree_html
    if wants_run and a.run is None:
        raise InputError("say which run to export: --run N")
    if a.model:
        done.append(ws.export_model(a.run, a.model))
    if a.vectors:
        done.append(ws.export_vectors(a.run, a.vectors))
    if a.trec:
        done.append(ws.export_trec(a.run, a.split, a.trec))
    for path, make in ((a.map_html, "map"), (a.tree_html, "tree")):
        if path:
            from ..plotting import export
            page = (export.map_html(ws, a.run, a.level, a.query) if make == "map" else
                    export.tree_html(ws, a.run, a.tree_kind))
            with open(path, "w", encoding="utf-8") as f:
                f.write(page)
            done.append(path)
    if not done:
        raise InputError("say what to export: --model DIR, --vectors FILE.parquet, --trec FILE, --map-html FILE, "
                         "--tree-html FILE and/or --learn-html FILE (with --corpus)")
    print("\n".join(done))
    return 0


def cmd_project(ws, a) -> int:
    """Compute (or read) the run's 2-D UMAP map, stored with the run; optionally aligned to another run."""
    ids, _ = ws.projection(a.run, align_to=a.align_to)
    print(json.dumps({"run_id": a.run, "points": int(len(ids))}) if a.json else
          f"run {a.run}: map of {len(ids)} documents stored")
    return 0


def cmd_delete_run(ws, a) -> int:
    ws.delete_run(a.run)
    print(f"deleted run {a.run}")
    return 0


def _config_flags(s: argparse.ArgumentParser, config_cls, show_defaults: bool = True) -> None:
    """One flag per field of a settings dataclass (TrainConfig, EncodeConfig), with its help and choices.
    Unset flags are None: the engine's defaults (or the preset's) apply."""
    import dataclasses
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "").replace("%", "%%")
        if show_defaults and f.default not in (None, ""):
            help_ += f" (default {f.default})"
        if isinstance(f.default, bool):
            s.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
            continue
        kind = str(f.type).split("|")[0].strip()
        typ = {"int": int, "float": float}.get(kind, str)
        s.add_argument(flag, dest=f.name, type=typ, choices=f.metadata.get("choices"), default=None, help=help_)


def _config_settings(a, config_cls) -> dict:
    """The flags of :func:`_config_flags` the user set."""
    import dataclasses
    return {f.name: getattr(a, f.name) for f in dataclasses.fields(config_cls) if getattr(a, f.name) is not None}


#: The training summary's fields ``hce train --json`` prints beside run_id, status, outcome and checks.
TRAIN_JSON = ("improved", "start_val", "best_val", "test", "judged", "n_train_pairs", "seconds", "examples_per_s",
              "stage_seconds", "estimate_stages")


def cmd_train(ws, a) -> int:
    settings = _config_settings(a, TrainConfig)
    if a.resume:
        run = ws.resume(a.resume, progress=_progress(a.json))
    else:
        if a.pairs:
            ws.import_pairs(a.corpus, a.pairs, split=settings.setdefault("split", "pairs"))
        config = ws.default_config(a.corpus, a.preset, **settings)
        if not a.json:
            est = ws.estimate(a.corpus, config)
            print(f"signal {config.signal}. {LABEL_SOURCE[config.signal]}", file=sys.stderr)
            print(f"estimated time on {est['device']}: about {fmt_duration(est['total_seconds'])} "
                  f"({est['steps']} steps, {est['pairs']} pairs)", file=sys.stderr)
        run = ws.train(a.corpus, config, progress=_progress(a.json))
    info = ws.run(run)
    summary, outcome = info.training, info.outcome
    if a.json:
        print(json.dumps({"run_id": run, "status": str(info.status), "outcome": outcome.get("verdict"),
                          "checks": outcome.get("checks"), **{k: getattr(summary, k) for k in TRAIN_JSON}}))
        return 0
    print(run)
    if summary.stage_seconds:
        print(_fmt_stages(summary.stage_seconds, summary.estimate_stages), file=sys.stderr)
    if outcome:
        print(f"outcome: {outcome['verdict']}", file=sys.stderr)
        for c in outcome.get("checks", []):
            print(f"  {c['name']}: {c['metric']} {c['start']:.4f} -> {c['end']:.4f} ({c['delta']:+.4f}, "
                  f"{c['n_queries']} queries): {c['verdict']}", file=sys.stderr)
        if outcome["verdict"] == "better" and label_free(outcome.get("checks", [])):
            print("  label-free checks only: no judged query confirms it, and such gains do not always carry over "
                  "to real queries; judge a few (`hce judge`, or the Search page) to check it on real ones",
                  file=sys.stderr)
        if outcome["verdict"] == "worse":
            print(f"WARNING: run {run}'s encoder is worse than the one it started from; searches without --run "
                  "keep using the latest run that is not worse (name it with --run to use it anyway)",
                  file=sys.stderr)
    if summary.test:
        print(f"test start:   {_fmt_metrics(summary.test['start'])}", file=sys.stderr)
        print(f"test trained: {_fmt_metrics(summary.test['trained'])}", file=sys.stderr)
    return 0


def _fmt_stages(took: dict[str, float], est: dict[str, float] | None) -> str:
    """'took 12 min (estimated 14 min): baseline 2 min / 2 min, ...' from a run's stage times and its estimate."""
    est = est or {}
    head = f"took {fmt_duration(sum(took.values()))}"
    if est:
        head += f" (estimated {fmt_duration(sum(est.values()))})"
    parts = [f"{k} {fmt_duration(took[k])}" + (f" / {fmt_duration(est[k])}" if k in est else "")
             for k in STAGES if took.get(k) or est.get(k)]
    return f"{head}: " + ", ".join(parts) + (" (took / estimated)" if est else "")


def _streamlit_flags(config_path: str) -> list[str]:
    """``[section] key = value`` of streamlit_config.toml -> ``--section.key=value`` flags."""
    import tomllib
    with open(config_path, "rb") as f:
        cfg = tomllib.load(f)
    flags = []
    for section, values in cfg.items():
        for key, value in values.items():
            value = str(value).lower() if isinstance(value, bool) else value
            flags.append(f"--{section}.{key}={value}")
    return flags


def cmd_app(a) -> int:
    """Start the Streamlit app on the workspace (this process must not hold the database)."""
    import os

    from ..workspace import Workspace, default_workspace
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    workspace = os.path.abspath(a.workspace or default_workspace())
    env = dict(os.environ, HCE_WORKSPACE=workspace)
    if a.sample:
        ws = Workspace(workspace)
        try:
            if "jargon" not in {c["name"] for c in ws.corpora()}:
                report = ws.add_sample("jargon")
                print(f"imported the sample corpus 'jargon' ({report.documents} documents)", file=sys.stderr)
        finally:
            ws.close()
        env["HCE_AUTO_ENCODE"] = "1"  # the app encodes corpora that have no run yet, in the background
    # ui/server.py opens the workspace (and starts encoding the sample) before serving ui/app.py
    cmd = [sys.executable, os.path.join(root, "ui", "server.py"),
           *_streamlit_flags(os.path.join(root, "streamlit_config.toml"))]
    if a.port:
        cmd.append(f"--server.port={a.port}")
    port = a.port or 8501
    print(f"HCE Explorer on http://127.0.0.1:{port} (workspace {workspace})", file=sys.stderr, flush=True)
    # Become the Streamlit server (no child left behind when this process is stopped).
    os.execve(sys.executable, cmd, env)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hce", description="HCE Explorer: train, explore and search with "
                                "Hierarchical Corpus Encoders.")
    p.add_argument("--workspace", help="workspace folder (default $HCE_WORKSPACE or ./hce-workspace)")
    sub = p.add_subparsers(dest="command", required=True)
    # shared flags, declared once
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON on stdout, no progress bar")
    corpus = argparse.ArgumentParser(add_help=False)
    corpus.add_argument("--corpus", required=True, help="the corpus's name (hce corpora lists them)")
    run = argparse.ArgumentParser(add_help=False)
    run.add_argument("--run", type=int, help="a run id (hce runs lists them; default: the latest finished run)")

    s = sub.add_parser("import", parents=[as_json],
                       help="import a corpus file, folder or ZIP (or queries/qrels with --queries)")
    s.add_argument("path", nargs="?", help="corpus file, folder or .zip")
    s.add_argument("--name", help="corpus name (default: the file or folder name); with --queries, the corpus")
    s.add_argument("--id-col"), s.add_argument("--title-col"), s.add_argument("--text-col")
    s.add_argument("--queries", help="add a queries file (JSONL or TSV) to corpus --name instead")
    s.add_argument("--qrels", help="with --queries: a qrels TSV for --split")
    s.add_argument("--split", default="test")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("judge", parents=[corpus, as_json],
                       help="judge a query yourself: the documents that answer it (then every trained run is "
                            "checked again on the judged queries)")
    s.add_argument("--query", required=True)
    s.add_argument("--relevant", nargs="+", required=True, metavar="ID", help="ids of documents that answer it")
    s.add_argument("--seen", nargs="*", metavar="ID", help="ids of documents you looked at that do not")
    s.add_argument("--split", default="test", help="test (check runs on them, the default) or train (also train "
                                                     "supervised runs on them)")
    s.set_defaults(func=cmd_judge)

    s = sub.add_parser("corpora", parents=[as_json], help="list corpora with counts")
    s.set_defaults(func=cmd_corpora)

    s = sub.add_parser("encode", parents=[corpus, as_json],
                       help="zero-shot baseline run: encode, index and build the tree; prints the run id")
    _config_flags(s, EncodeConfig)
    s.set_defaults(func=cmd_encode)

    hybrid = argparse.ArgumentParser(add_help=False)
    hybrid.add_argument("--mode", choices=MODES, default="dense",
                        help="dense (the run's encoder), bm25 (lexical) or hybrid (both fused; see --fusion)")
    hybrid.add_argument("--fusion", choices=FUSIONS, default="weighted",
                        help="hybrid: weighted (normalised scores, dense weight fitted on the corpus's train "
                             "qrels, else the default) or rrf (reciprocal rank fusion)")
    hybrid.add_argument("--weight", type=float, help="hybrid, weighted: the dense weight in [0, 1] (default: fitted)")
    hybrid.add_argument("--index", choices=INDEX_KINDS, default="auto", dest="index_kind",
                        help="the dense index: auto (exact below 100k documents, else HNSW) or tree (the run's "
                             "tree: its leaf clusters as inverted lists, routed by beam search)")

    s = sub.add_parser("search", parents=[hybrid, corpus, run, as_json],
                       help="search a corpus with a run's encoder (default: latest finished run), BM25 or both")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--bm25", action="store_true", help="the same as --mode bm25")
    s.add_argument("query", nargs="+")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("eval", parents=[hybrid, corpus, run, as_json],
                       help="nDCG@10, R@10, R@100, MRR@10 against stored qrels (--mode hybrid also scores dense and "
                            "BM25)")
    s.add_argument("--split", default="test")
    s.add_argument("--bm25", action="store_true", help="the same as --mode bm25 (as for search)")
    s.add_argument("--with-bm25", action="store_true", help="also score BM25, beside the run, as the lexical "
                                                              "reference")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("subset", parents=[corpus, as_json],
                       help="a new corpus from some documents of another (and their judgements)")
    s.add_argument("--name", required=True, help="the new corpus's name")
    s.add_argument("--ids-file", help="a file with one document id per line")
    s.add_argument("ids", nargs="*", help="document ids")
    s.set_defaults(func=cmd_subset)

    s = sub.add_parser("explain", parents=[corpus, run, as_json],
                       help="why a document ranks where it does for a query: tree path, the starting and trained "
                            "encoders, BM25, shared words, what training moved")
    s.add_argument("--compare", type=int, help="the 'before' run (default: the run's starting encoder)")
    s.add_argument("--query", required=True)
    s.add_argument("--doc", required=True, help="the document's id in the corpus")
    s.set_defaults(func=cmd_explain)

    s = sub.add_parser("add", parents=[corpus, as_json],
                       help="add documents to a corpus and every finished run, without retraining")
    s.add_argument("path", help="file, folder or ZIP in any import format")
    s.set_defaults(func=cmd_add)

    s = sub.add_parser("remove", parents=[corpus, as_json],
                       help="remove documents (by id) from a corpus, its indexes and trees")
    s.add_argument("ids", nargs="+")
    s.set_defaults(func=cmd_remove)

    s = sub.add_parser("freshness", parents=[corpus, as_json],
                       help="documents added since each run was trained and its tree built; whether to rebuild the "
                            "tree or retrain")
    s.add_argument("--run", type=int, help="one run (default: every finished run of the corpus)")
    s.set_defaults(func=cmd_freshness)

    s = sub.add_parser("rebuild-tree", parents=[corpus, run, as_json],
                       help="cluster a run's current documents again (no retraining)")
    s.set_defaults(func=cmd_rebuild_tree)

    s = sub.add_parser("train", parents=[corpus, as_json],
                       help="train an HCE encoder on a corpus; prints the run id and its outcome")
    s.add_argument("--preset", choices=list(PRESETS),
                   help=f"start from a preset (default {DEFAULT_PRESET}, or {UNLABELLED_PRESET} on a "
                   "corpus without judged training queries; flags "
                   "override it): " + "; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()).replace("%", "%%"))
    s.add_argument("--pairs", help="a two-column (query, document id) file to train on (stored as split 'pairs')")
    s.add_argument("--resume", type=int, metavar="RUN", help="continue a cancelled/interrupted run")
    _config_flags(s, TrainConfig, show_defaults=False)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("tree", parents=[corpus, run, as_json],
                       help="print a run's tree (labels and sizes) down to --max-level")
    s.add_argument("--rebuild", type=int, help="a co-training rebuild (default: the latest)")
    s.add_argument("--max-level", type=int, default=2)
    s.set_defaults(func=cmd_tree)

    s = sub.add_parser("siblings", parents=[corpus, run, as_json],
                       help="a document's or query's path and the siblings it is contrasted with")
    s.add_argument("--doc", help="document id (its own vector is the anchor, or the query's positive)")
    s.add_argument("--query", help="query text (positive: --doc, else its top hit)")
    s.add_argument("--compare", type=int, help="another run scored on the same tree (e.g. the baseline)")
    s.add_argument("--max", type=int, default=5, help="candidates shown per level")
    s.set_defaults(func=cmd_siblings)

    s = sub.add_parser("export", help="export a run: encoder folder, vectors (Parquet), TREC run file, map and tree "
                                      "as offline HTML")
    s.add_argument("--run", type=int, help="the run to export (all but --learn-html)")
    s.add_argument("--model", help="destination folder for the sentence-transformers encoder")
    s.add_argument("--vectors", help="destination .parquet (ids, titles, vectors, tree paths, map x/y)")
    s.add_argument("--trec", help="destination TREC run file for --split's queries")
    s.add_argument("--split", default="test")
    s.add_argument("--map-html", help="destination .html: the map with node labels, self-contained (opens offline)")
    s.add_argument("--level", type=int, default=1, help="--map-html: the tree level that colours and labels the map")
    s.add_argument("--query", help="--map-html: a query placed on the map, its hits ringed")
    s.add_argument("--tree-html", help="destination .html: the tree as a labelled sunburst, self-contained")
    s.add_argument("--tree-kind", choices=("sunburst", "icicle"), default="sunburst")
    s.add_argument("--learn-html", help="destination .html: the Learn walkthrough on --corpus, self-contained")
    s.add_argument("--corpus", help="--learn-html: the corpus the walkthrough uses")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("project", parents=[as_json],
                       help="compute and store a run's UMAP map (the app's Map page)")
    s.add_argument("--run", type=int, required=True)
    s.add_argument("--align-to", type=int, help="start from and align to this run's map")
    s.set_defaults(func=cmd_project)

    s = sub.add_parser("delete-run", help="delete a finished run with its vectors, trees and model")
    s.add_argument("run", type=int)
    s.set_defaults(func=cmd_delete_run)

    s = sub.add_parser("app", help="start the app (Streamlit) on this workspace")
    s.add_argument("--port", type=int)
    s.add_argument("--sample", action="store_true", help="import the bundled Jargon File sample if missing, "
                   "and encode corpora that have no run yet")
    s.set_defaults(func=cmd_app)

    s = sub.add_parser("runs", parents=[as_json], help="list runs with status and metrics")
    s.add_argument("--corpus")
    s.set_defaults(func=cmd_runs)

    from .experiments import add_parser as add_experiment_parser
    add_experiment_parser(sub, as_json)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "import" and not args.path and not args.queries:
        print("hce import: give a corpus PATH (or --queries FILE --name CORPUS)", file=sys.stderr)
        return 1
    if args.command == "import" and args.queries and not args.name:
        print("hce import --queries: name the corpus with --name", file=sys.stderr)
        return 1
    if args.command == "app":
        try:
            return cmd_app(args)
        except HCEError as exc:
            print(f"hce app: error: {exc}", file=sys.stderr)
            return 1
    from ..workspace import Workspace
    try:
        ws = Workspace(args.workspace)
        try:
            return args.func(ws, args)
        finally:
            ws.close()
    except HCEError as exc:
        print(f"hce {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hce {args.command}: interrupted", file=sys.stderr)
        return 130

