"""Do the Map's node labels overlap? Label boxes per tree level on the Jargon File sample and on SciFact.

For each corpus: a fresh workspace, the corpus imported and encoded (the bundled MiniLM, or ``--fake``: the
test suite's fake encoder, which is quick and gives a map as crowded), its UMAP map, then for levels 1-3 the
figure the Map page draws (``map_figure`` with ``views.map_labels``, and again with a query placed). The label
boxes are computed the way the placement estimates them, in the figure's pixel space, at the width they are
placed for and at 1.5 times it; counted: labels written, pairs of boxes that intersect, labels over the query's
star or its hits. The browser test ``tests/test_browser.py::test_map_labels_never_overlap...`` checks the boxes
the browser actually draws on the sample.

Usage:
    python benchmarks/map_labels.py --fake           # both corpora, the fake encoder (a few minutes)
    python benchmarks/map_labels.py --corpus scifact # the bundled MiniLM (SciFact's encoding takes minutes)
Prints one line per corpus and level and writes benchmarks/results/map_labels[_fake].json.
"""
from __future__ import annotations

import argparse
import tempfile
import time

# common first: it puts the repository on sys.path
from common import JARGON, RESULTS, SCIFACT, machine, write_result


def boxes_of(fig, width: float) -> list[tuple[float, float, float, float]]:
    from hce_engine.plotting.map import LABEL_TRACE
    from hce_engine.views.map import label_size
    x0, x1 = fig.layout.xaxis.range
    y0, y1 = fig.layout.yaxis.range
    plot_h = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    trace = [t for t in fig.data if t.name == LABEL_TRACE]
    if trace:
        t = trace[0]
        rows = list(zip(t.text, t.x, t.y, t.textfont.size, strict=True))
    else:
        rows = [(a.text, a.x, a.y, a.font.size) for a in fig.layout.annotations]
    out = []
    for text, x, y, fs in rows:
        w, h = label_size(text, fs)
        px, py = (x - x0) / (x1 - x0) * width, (y1 - y) / (y1 - y0) * plot_h
        out.append((px - w / 2, px + w / 2, py - h / 2, py + h / 2))
    return out


def point_boxes(fig, width: float, names: tuple[str, ...]) -> list[tuple[float, float, float, float]]:
    x0, x1 = fig.layout.xaxis.range
    y0, y1 = fig.layout.yaxis.range
    plot_h = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    out = []
    for t in fig.data:
        if t.name in names:
            for x, y in zip(t.x, t.y, strict=True):
                px, py = (x - x0) / (x1 - x0) * width, (y1 - y) / (y1 - y0) * plot_h
                out.append((px - 6, px + 6, py - 6, py + 6))
    return out


def intersect(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def measure(name: str, path: str, model: str | None, query: str, levels: list[int]) -> list[dict]:
    from hce_engine import Workspace, views
    from hce_engine.plotting import map as figs
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(tmp)
        try:
            ws.import_corpus(path, name=name)
            t = time.time()
            run = ws.encode(name, **({"model": model} if model else {}))
            encode_s = time.time() - t
            t = time.time()
            ws.projection(run)
            umap_s = time.time() - t
            placed = views.place_query(ws, run, query, k=10)
            for level in levels:
                frame = views.map_frame(ws, run, level)
                for with_query in (False, True):
                    fig = figs.map_figure(views.thin_for_display(frame), labels=views.map_labels(frame),
                                          query=placed if with_query else None)
                    row = {"corpus": name, "documents": len(frame), "level": level,
                           "nodes": int(frame["node_at_level"].nunique()), "query": with_query}
                    for scale in (1.0, 1.5):
                        width = figs.LABEL_WIDTH * scale
                        boxes = boxes_of(fig, width)
                        marks = point_boxes(fig, width, ("query", "query hits"))
                        key = "" if scale == 1.0 else "_at_1.5x_width"
                        row["labels" + key] = len(boxes)
                        row["overlapping_pairs" + key] = sum(intersect(a, b) for i, a in enumerate(boxes)
                                                             for b in boxes[i + 1:])
                        row["labels_over_query_or_hits" + key] = sum(any(intersect(a, m) for m in marks)
                                                                     for a in boxes)
                    rows.append(row)
                    print(f"{name:8s} level {level} {'with query' if with_query else '          '} "
                          f"{row['nodes']:4d} nodes  {row['labels']:3d} labels  "
                          f"{row['overlapping_pairs']} overlapping pairs "
                          f"({row['overlapping_pairs_at_1.5x_width']} at 1.5x width)  "
                          f"{row['labels_over_query_or_hits']} over the query/hits", flush=True)
            rows.append({"corpus": name, "encode_s": round(encode_s, 1), "umap_s": round(umap_s, 1)})
        finally:
            ws.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", choices=["jargon", "scifact", "both"], default="both")
    ap.add_argument("--fake", action="store_true", help="the test suite's fake encoder instead of MiniLM")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    model = None
    tmp = tempfile.mkdtemp()
    if args.fake:
        from hce_engine.encoder.fake import FakeEncoder
        model = f"{tmp}/fake"
        FakeEncoder(dim=32, seed=0).save(model)
    todo = []
    if args.corpus in ("jargon", "both"):
        todo.append(("jargon", str(JARGON), "a program that never ends"))
    if args.corpus in ("scifact", "both"):
        todo.append(("scifact", str(SCIFACT), "vitamin D deficiency and bone density"))
    rows: list[dict] = []
    out = RESULTS / ("map_labels_fake.json" if args.fake else "map_labels.json")
    for name, path, query in todo:
        rows += measure(name, path, model, query, args.levels)
        write_result(out, {"encoder": "fake (tests' FakeEncoder, dim 32)" if args.fake else "bundled MiniLM",
                           "rows": rows, "machine": machine()})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
