"""``hce experiment new | run | status | show | export``: arms x seeds of training runs, compared on judged queries.

Example::

    hce experiment new --corpus scifact --recipe negatives --seeds 0,1 --set max_pairs=64
    hce experiment new --corpus scifact --preset quick --arm siblings:negatives=siblings \\
        --arm random:negatives=random --seeds 0,1,2
    hce experiment run 1          # trains the missing runs one at a time; again after a crash: resumes
    hce experiment show 1         # per-arm means, paired tests against the control, verdicts
    hce experiment export 1 --json results.json --csv table.csv --html report.html
"""
from __future__ import annotations

import csv
import json
import sys
from typing import TYPE_CHECKING

from ..errors import InputError
from ..evaluation import METRIC_LABELS
from ..progress import fmt_duration
from ..training.config import PRESETS
from . import growth, render
from .common import AS_JSON, Commands, comma_list, print_json, progress_bar

if TYPE_CHECKING:
    from ..workspace import ExperimentStatus


def _seeds(text: str) -> list[int]:
    return comma_list(text, int, "--seeds", "integers")


def cmd_new(ws, a) -> int:
    from ..experiments import RECIPES, load_spec, parse_arm, parse_settings, recipe_spec
    shared: dict = {}
    for text in a.set or []:
        shared.update(parse_settings(text, "--set"))
    seeds = _seeds(a.seeds) if a.seeds else None
    if a.file:
        spec = load_spec(a.file, corpus=a.corpus, preset=a.preset, seeds=seeds, split=a.split, name=a.name)
        spec.settings = {**spec.settings, **shared}
    elif a.recipe:
        if not a.corpus:
            raise InputError("--recipe needs --corpus")
        spec = recipe_spec(a.recipe, a.corpus, seeds, a.preset or "", shared, a.split or "test")
        if a.name:
            spec.name = a.name
    else:
        if not a.corpus or not a.arm:
            raise InputError("give --corpus and at least one --arm NAME:key=value,... (or --recipe, or a TOML "
                             f"FILE); recipes: {', '.join(RECIPES)}")
        arms = dict(parse_arm(t) for t in a.arm)
        if len(arms) != len(a.arm):
            raise InputError("two --arm flags have the same name")
        from ..experiments import ExperimentSpec
        spec = ExperimentSpec(corpus=a.corpus, arms=arms, seeds=seeds or [0], preset=a.preset or "",
                              settings=shared, control=a.control or "", split=a.split or "test", name=a.name or "")
    if a.control:
        spec.control = a.control
    exp_id = ws.create_experiment(spec)
    exp = ws.experiment(exp_id)
    if a.json:
        print_json({"experiment_id": exp_id, "spec": exp.spec.to_dict(), "runs": len(exp.cells)})
        return 0
    print(exp_id)
    print(f"experiment {exp_id}: {exp.name}: {len(exp.spec.arms)} arms x {len(exp.spec.seeds)} seeds = "
          f"{len(exp.cells)} training runs on {exp.spec.corpus!r}, compared on its {exp.spec.split!r} queries "
          f"(control: {exp.spec.control}). Start it with: hce experiment run {exp_id}", file=sys.stderr)
    if exp.spec.recipe:
        print(RECIPES[exp.spec.recipe].shows, file=sys.stderr)
    return 0


def new_parser(verbs: Commands) -> None:
    from ..experiments import RECIPES
    s = verbs.add_parser("new", parents=[AS_JSON], help="declare an experiment (prints its id; nothing runs yet)",
                         description="From a TOML FILE, a --recipe, or --arm flags. Every arm x seed becomes one "
                         "training run: the preset, then --set, then the arm's settings, then the seed.")
    s.add_argument("file", nargs="?", help="a TOML file (corpus, preset, seeds, control, split, [settings], "
                   "[arms.NAME])")
    s.add_argument("--corpus")
    s.add_argument("--recipe", choices=list(RECIPES), help="; ".join(f"{k}: {r.question}" for k, r in RECIPES.items()))
    s.add_argument("--arm", action="append", metavar="NAME:key=value,...", help="an arm (repeat; the first is the "
                   "control unless --control names another)")
    s.add_argument("--preset", choices=list(PRESETS), help="the base preset (default: the corpus's default)")
    s.add_argument("--set", action="append", metavar="key=value,...", help="settings shared by every arm")
    s.add_argument("--seeds", help="comma-separated seeds (default 0)")
    s.add_argument("--control", help="the arm the others are compared against")
    s.add_argument("--split", help="the judged split to compare on (default test)")
    s.add_argument("--name")
    s.set_defaults(func=cmd_new)


def cmd_run(ws, a) -> int:
    if a.add_seeds:
        ws.add_seeds(a.experiment, _seeds(a.add_seeds))
    bar = progress_bar(a.json)
    status = ws.run_experiment(a.experiment, progress=bar)
    if bar is not None:
        print(file=sys.stderr)  # end the last stage's bar line
    if a.json:
        print_json(status.to_dict())
    else:
        _print_status(status)
        for e in status.errors or ():
            print(f"  {e.arm} seed {e.seed} failed: {e.error}", file=sys.stderr)
        if status.done == status.total:
            print(f"done: see the results with `hce experiment show {a.experiment}`", file=sys.stderr)
    return 0 if not status.errors and status.done == status.total else 1


def run_parser(verbs: Commands) -> None:
    s = verbs.add_parser("run", parents=[AS_JSON], help="train the experiment's missing runs, one at a time "
                         "(resumes after a crash or a cancel; exit status 1 while runs are missing or failed)")
    s.add_argument("experiment", type=int)
    s.add_argument("--add-seeds", metavar="S,S", help="add these seeds first")
    s.set_defaults(func=cmd_run)


def _print_status(status: ExperimentStatus) -> None:
    print(f"experiment {status.experiment_id}: {status.name} ({status.corpus}): {status.done}/"
          f"{status.total} runs done" + (", running" if status.running else "")
          + (f", about {fmt_duration(status.eta_s)} left" if status.eta_s else ""))
    rows = [{"arm": c.arm, "seed": c.seed, "run_id": c.run_id or "", "status": c.status,
             "minutes": f"{c.seconds / 60:.1f}" if c.seconds else ""} for c in status.cells]
    print(render.table(rows, ["arm", "seed", "run_id", "status", "minutes"]))


def cmd_status(ws, a) -> int:
    if a.experiment is None:
        rows = ws.experiments()
        if a.json:
            print_json(rows)
            return 0
        for r in rows:
            st = ws.experiment_status(r["experiment_id"])
            r["runs"] = f"{st.done}/{st.total}" + (" running" if st.running else "")
        print(render.table(rows, ["experiment_id", "name", "corpus", "runs", "created_at"]))
        return 0
    status = ws.experiment_status(a.experiment)
    if a.json:
        print_json(status.to_dict())
    else:
        _print_status(status)
    return 0


def status_parser(verbs: Commands) -> None:
    s = verbs.add_parser("status", parents=[AS_JSON], help="the runs of an experiment (or list experiments)")
    s.add_argument("experiment", type=int, nargs="?")
    s.set_defaults(func=cmd_status)


def cmd_show(ws, a) -> int:
    from ..experiments import table_rows
    res = ws.experiment_results(a.experiment, n_boot=a.boot)
    if a.json:
        print_json(res)
        return 0
    spec = res["spec"]
    print(f"experiment {res['experiment_id']}: {res['name']}")
    print(f"corpus {spec['corpus']}, preset {spec['preset'] or 'default'}, settings {spec['settings'] or '{}'}, "
          f"compared on {res['queries']} judged {spec['split']} queries; {res['status']['done']}/"
          f"{res['status']['total']} runs done")
    rows = [{k: render.cell(v) for k, v in r.items()} for r in table_rows(res)]
    head, *rest = METRIC_LABELS.values()  # the headline metric (nDCG@10) first, then its sd over seeds
    cols = ["arm", "seeds", head, f"{head} sd", *rest, "train min", "diff", "95% CI", "p (t, Holm)",
            "p (randomization, Holm)", "win/tie/loss"]
    print(render.table(rows, cols))
    for c in res["comparisons"]:
        print(c["verdict"])
    prov = res["provenance"].get("created", {})
    print(f"code: commit {prov.get('commit')}{'' if prov.get('clean_tree') else ' (uncommitted changes)'}; "
          f"machine: {prov.get('machine', {}).get('cpu_model')}")
    return 0


def show_parser(verbs: Commands) -> None:
    s = verbs.add_parser("show", parents=[AS_JSON], help="per-arm means and sds over seeds, paired tests against "
                         "the control (bootstrap CI, t and randomization tests with Holm), verdicts")
    s.add_argument("experiment", type=int)
    s.add_argument("--boot", type=int, default=10000, help="bootstrap and randomization draws")
    s.set_defaults(func=cmd_show)


def cmd_export(ws, a) -> int:
    from ..experiments import table_rows
    if not (a.json_out or a.csv or a.html):
        raise InputError("name at least one of --json FILE, --csv FILE, --html FILE")
    res = ws.experiment_results(a.experiment, n_boot=a.boot)
    written = []
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(res, f, indent=1, default=str)
        written.append(a.json_out)
    if a.csv:
        rows = table_rows(res)
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["arm"])
            w.writeheader()
            w.writerows(rows)
        written.append(a.csv)
    if a.html:
        from ..plotting.export import experiment_html
        with open(a.html, "w") as f:
            f.write(experiment_html(ws, a.experiment))
        written.append(a.html)
    print("\n".join(written))
    return 0


def export_parser(verbs: Commands) -> None:
    s = verbs.add_parser("export", help="write the results as JSON, the table as CSV, an offline HTML report")
    s.add_argument("experiment", type=int)
    s.add_argument("--json", dest="json_out", metavar="FILE")
    s.add_argument("--csv", metavar="FILE")
    s.add_argument("--html", metavar="FILE")
    s.add_argument("--boot", type=int, default=10000)
    s.set_defaults(func=cmd_export)


def experiment_parser(sub: Commands) -> None:
    """``hce experiment`` and its verbs (``growth`` is in :mod:`.growth`)."""
    p = sub.add_parser("experiment", help="arms of training settings x seeds on one corpus, compared query by query "
                       "against a control (new, run, status, show, export)")
    verbs = p.add_subparsers(dest="verb", required=True)
    for add in (new_parser, run_parser, status_parser, show_parser, export_parser, growth.growth_parser):
        add(verbs)
