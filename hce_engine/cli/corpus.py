"""``hce import | judge | corpora | subset``: corpora, their queries and judgements."""
from __future__ import annotations

from . import render
from .common import AS_JSON, CORPUS, Commands, print_json


def _import_problem(a) -> str | None:
    """What ``hce import`` lacks (said before the workspace opens), or None."""
    if not a.path and not a.queries:
        return "hce import: give a corpus PATH (or --queries FILE --name CORPUS)"
    if a.queries and not a.name:
        return "hce import --queries: name the corpus with --name"
    return None


def cmd_import(ws, a) -> int:
    rejudged: list[dict] = []
    if a.queries:
        report = ws.import_queries(a.name, a.queries, a.qrels, a.split)
        if report.qrels:  # new judgements: every finished run is checked on them
            rejudged = ws.rejudge(a.name, a.split)
    else:
        report = ws.import_corpus(a.path, name=a.name, id_col=a.id_col, title_col=a.title_col, text_col=a.text_col)
    if a.json:
        print_json({**report.to_dict(), **({"runs": rejudged} if a.queries else {})})
    else:
        qrels = ", ".join(f"{s}: {n}" for s, n in report.qrels.items()) or "none"
        print(f"imported corpus {report.corpus!r} ({report.format}): {report.documents} documents, "
              f"{report.skipped_empty} empty skipped, {report.queries} queries, qrels {qrels}")
        if report.empty_judged:
            print(f"  {report.empty_judged} judgements name an empty document: kept (they count in nDCG and "
                  "recall), though it cannot be retrieved")
        for line in render.rejudged(rejudged):
            print(line)
    return 0


def import_parser(sub: Commands) -> None:
    s = sub.add_parser("import", parents=[AS_JSON],
                       help="import a corpus file, folder or ZIP (or queries/qrels with --queries)")
    s.add_argument("path", nargs="?", help="corpus file, folder or .zip")
    s.add_argument("--name", help="corpus name (default: the file or folder name); with --queries, the corpus")
    s.add_argument("--id-col"), s.add_argument("--title-col"), s.add_argument("--text-col")
    s.add_argument("--queries", help="add a queries file (JSONL or TSV) to corpus --name instead")
    s.add_argument("--qrels", help="with --queries: a qrels TSV for --split")
    s.add_argument("--split", default="test")
    s.set_defaults(func=cmd_import, check=_import_problem)


def cmd_judge(ws, a) -> int:
    saved = ws.judge(a.corpus, a.query, a.relevant, a.seen or (), a.split)
    rejudged = ws.rejudge(a.corpus, saved["split"])
    if a.json:
        print_json({**saved, "runs": rejudged})
        return 0
    print(f"judged query {saved['query_id']} ({saved['split']}): {len(saved['relevant'])} relevant, "
          f"{len(saved['not_relevant'])} not; {saved['judged_queries']} judged {saved['split']} queries in "
          f"{a.corpus!r}")
    for line in render.rejudged(rejudged):
        print(line)
    return 0


def judge_parser(sub: Commands) -> None:
    s = sub.add_parser("judge", parents=[CORPUS, AS_JSON],
                       help="judge a query yourself: the documents that answer it (then every trained run is "
                            "checked again on the judged queries)")
    s.add_argument("--query", required=True)
    s.add_argument("--relevant", nargs="+", required=True, metavar="ID", help="ids of documents that answer it")
    s.add_argument("--seen", nargs="*", metavar="ID", help="ids of documents you looked at that do not")
    s.add_argument("--split", default="test", help="test (check runs on them, the default) or train (also train "
                                                     "supervised runs on them)")
    s.set_defaults(func=cmd_judge)


def cmd_corpora(ws, a) -> int:
    rows = ws.corpora()
    if a.json:
        print_json(rows)
    else:
        print(render.table(rows, ["name", "documents", "removed", "queries", "qrels", "runs", "source"]))
    return 0


def corpora_parser(sub: Commands) -> None:
    s = sub.add_parser("corpora", parents=[AS_JSON], help="list corpora with counts")
    s.set_defaults(func=cmd_corpora)


def cmd_subset(ws, a) -> int:
    ids = list(a.ids)
    if a.ids_file:
        with open(a.ids_file, encoding="utf-8") as f:
            ids += [line.strip() for line in f if line.strip()]
    report = ws.subset_corpus(a.corpus, ids, a.name)
    if a.json:
        print_json(report.to_dict())
    else:
        print(f"created corpus {report.corpus!r}: {report.documents} documents of {a.corpus!r}, {report.queries} "
              f"queries judging them")
    return 0


def subset_parser(sub: Commands) -> None:
    s = sub.add_parser("subset", parents=[CORPUS, AS_JSON],
                       help="a new corpus from some documents of another (and their judgements)")
    s.add_argument("--name", required=True, help="the new corpus's name")
    s.add_argument("--ids-file", help="a file with one document id per line")
    s.add_argument("ids", nargs="*", help="document ids")
    s.set_defaults(func=cmd_subset)
