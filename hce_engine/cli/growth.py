"""``hce experiment growth``: the growth stress test, documents added in steps without retraining.

Example::

    hce experiment growth --corpus scifact --steps 0.1,0.25,0.5 --set max_pairs=128
"""
from __future__ import annotations

from ..training.config import PRESETS
from . import render
from .common import AS_JSON, Commands, comma_list, print_json, progress_bar


def _shares(text: str) -> list[float]:
    return comma_list(text, float, "--steps", "shares (e.g. 0.1,0.25,0.5)")


def cmd_growth(ws, a) -> int:
    """The growth stress test (:func:`~hce_engine.experiments.growth.run_growth`): a table and its conclusions
    (the whole result as JSON with --json)."""
    from ..experiments import parse_settings
    from ..experiments.growth import run_growth, table_rows
    settings: dict = {}
    for text in a.set or []:
        settings.update(parse_settings(text, "--set"))
    res = run_growth(ws, a.corpus, steps=_shares(a.steps), hold=a.hold, preset=a.preset, settings=settings,
                     seed=a.seed, split=a.split, progress=progress_bar(a.json))
    if a.json:
        print_json(res)
        return 0
    print(f"growth stress test on {res['corpus']!r} (copy: {res['growth_corpus']!r}): {res['documents']['held']} of "
          f"{res['documents']['total']} documents held out (seed {res['seed']}), {res['queries']['old']} old and "
          f"{res['queries']['new']} new judged {res['split']} queries; preset {res['preset']}"
          + (f" with {res['overrides']}" if res["overrides"] else "")
          + f"; runs: zero-shot {res['runs']['zero_shot']}, trained {res['runs']['trained']}, retrained "
          f"{res['runs']['retrained']}")
    rows = [{k: render.cell(v) for k, v in r.items()} for r in table_rows(res)]
    print(render.table(rows, list(rows[0])))
    for line in res["conclusions"]:
        print(line)
    return 0


def growth_parser(verbs: Commands) -> None:
    s = verbs.add_parser("growth", parents=[AS_JSON], help="growth stress test: documents added in steps without "
                         "retraining; the old queries' quality after each step, and whether rebuilding the tree or "
                         "retraining pays",
                         description="Holds out a share of the corpus's documents, trains on a copy of the rest "
                         "(<corpus>-growth-<seed>; the corpus itself is not changed), adds the held-out documents "
                         "back in steps and scores the trained and the zero-shot run after each; rebuilds the "
                         "tree at the last step and retrains on the grown corpus for reference.")
    s.add_argument("--corpus", required=True)
    s.add_argument("--steps", default="0.1,0.25,0.5", help="shares of new documents in the live corpus after each "
                   "step (default 0.1,0.25,0.5)")
    s.add_argument("--hold", type=float, default=0.5, help="share of the documents held out before training "
                   "(default 0.5)")
    s.add_argument("--preset", choices=list(PRESETS), default="quick")
    s.add_argument("--set", action="append", metavar="key=value,...", help="training settings on top of the preset")
    s.add_argument("--seed", type=int, default=0, help="training seed and seed of the hold-out draw")
    s.add_argument("--split", default="test", help="the judged queries scored (default test)")
    s.set_defaults(func=cmd_growth)
