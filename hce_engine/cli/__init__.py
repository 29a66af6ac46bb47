"""The ``hce`` command: every pipeline step from the shell.

Errors a user can fix go to stderr as one line and exit with status 1; ``--json`` prints one JSON object
on stdout. Each module declares its commands' flags (``<command>_parser``) beside their handlers
(``cmd_<command>``); :mod:`.common` holds what they share and :mod:`.render` the text several of them print.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from . import app, corpus, experiments, explore, export, living, runs, search, train
from .common import run_command

#: Every command, in the order ``hce --help`` lists them.
COMMANDS = (corpus.import_parser, corpus.judge_parser, corpus.corpora_parser, runs.encode_parser,
            search.search_parser, search.eval_parser, corpus.subset_parser, explore.explain_parser,
            living.add_parser, living.remove_parser, living.freshness_parser, living.rebuild_tree_parser,
            train.train_parser, explore.tree_parser, explore.siblings_parser, export.export_parser,
            runs.project_parser, runs.delete_run_parser, app.app_parser, runs.runs_parser,
            experiments.experiment_parser)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hce", description="HCE Explorer: train, explore and search with "
                                "Hierarchical Corpus Encoders.")
    p.add_argument("--workspace", help="workspace folder (default $HCE_WORKSPACE or ./hce-workspace)")
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))
