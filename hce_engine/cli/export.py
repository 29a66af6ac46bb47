"""``hce export``: a run's encoder, vectors, TREC run file, map and tree, and the Learn walkthrough, as files."""
from __future__ import annotations

from ..errors import InputError
from .common import Commands


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


def export_parser(sub: Commands) -> None:
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
