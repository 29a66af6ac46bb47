"""``hce train``: train an HCE encoder on a corpus (or resume a run); its time by stage and its outcome."""
from __future__ import annotations

import sys

from ..evaluation.outcome import label_free
from ..progress import fmt_duration
from ..training import torchrun
from ..training.config import DEFAULT_PRESET, LABEL_SOURCE, PRESET_HELP, PRESETS, UNLABELLED_PRESET, TrainConfig
from . import render
from .common import AS_JSON, Commands, config_flags, config_settings, in_workspace, print_json, progress_bar

#: The training summary's fields ``hce train --json`` prints beside run_id, status, outcome and checks.
TRAIN_JSON = ("improved", "start_val", "best_val", "test", "judged", "n_train_pairs", "seconds", "examples_per_s",
              "stage_seconds", "estimate_stages")


def cmd_train_ranks(a) -> int:
    """``hce train``; under torchrun, rank 0 runs it on its workspace and the other ranks follow its run without
    one (:mod:`hce_engine.training.torchrun`)."""
    if not torchrun.under_torchrun():
        return in_workspace(a, cmd_train)
    if torchrun.rank() != 0:
        if torchrun.follow():
            return 0
        print(f"hce train (rank {torchrun.rank()}): rank 0 stopped before training; its output says why",
              file=sys.stderr)
        return 1
    try:
        return in_workspace(a, cmd_train)
    finally:
        torchrun.release()


def cmd_train(ws, a) -> int:
    settings = config_settings(a, TrainConfig)
    if torchrun.under_torchrun():  # one run over the processes torchrun started
        settings.setdefault("nproc", torchrun.world())
    if a.resume:
        run = ws.resume(a.resume, progress=progress_bar(a.json))
    else:
        if a.pairs:
            ws.import_pairs(a.corpus, a.pairs, split=settings.setdefault("split", "pairs"))
        config = ws.default_config(a.corpus, a.preset, **settings)
        if not a.json:
            est = ws.estimate(a.corpus, config)
            print(f"signal {config.signal}. {LABEL_SOURCE[config.signal]}", file=sys.stderr)
            print(f"estimated time on {est.device}: about {fmt_duration(est.total_seconds)} "
                  f"({est.loop.steps} steps, {est.pairs} pairs)", file=sys.stderr)
        run = ws.train(a.corpus, config, progress=progress_bar(a.json))
    info = ws.run(run)
    summary, outcome = info.training, info.outcome
    if a.json:
        print_json({"run_id": run, "status": str(info.status), "outcome": outcome.get("verdict"),
                    "checks": outcome.get("checks"), **{k: getattr(summary, k) for k in TRAIN_JSON}})
        return 0
    print(run)
    if summary.stage_seconds:
        print(render.stages(summary.stage_seconds, summary.estimate_stages), file=sys.stderr)
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
        print(f"test start:   {render.metrics(summary.test['start'])}", file=sys.stderr)
        print(f"test trained: {render.metrics(summary.test['trained'])}", file=sys.stderr)
    return 0


def train_parser(sub: Commands) -> None:
    s = sub.add_parser("train", parents=[AS_JSON],
                       help="train an HCE encoder on a corpus; prints the run id and its outcome")
    s.add_argument("--corpus", help="the corpus's name (hce corpora lists them); not needed with --resume")
    s.add_argument("--preset", choices=list(PRESETS),
                   help=f"start from a preset (default {DEFAULT_PRESET}, or {UNLABELLED_PRESET} on a "
                   "corpus without judged training queries; flags "
                   "override it): " + "; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()).replace("%", "%%"))
    s.add_argument("--pairs", help="a two-column (query, document id) file to train on (stored as split 'pairs')")
    s.add_argument("--resume", type=int, metavar="RUN", help="continue a cancelled/interrupted run")
    config_flags(s, TrainConfig, show_defaults=False)
    s.set_defaults(func=cmd_train_ranks, opens_workspace=False,
                   check=lambda a: None if a.corpus or a.resume else "hce train: error: --corpus is required "
                   "(or --resume RUN to continue a run)")
