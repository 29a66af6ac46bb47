"""How long the Map page takes to draw in a real browser at 10k, 50k and 200k documents.

For each N: a workspace with N synthetic documents (growth.py's topic mixture and pseudo-word texts), a
finished baseline run with their vectors and a divisive tree, and a stored 2-D map (the vectors' first two
principal components, spread by topic: what is measured is drawing, not UMAP). Then `hce app` serves it and
headless Chromium opens the app; once its first page (Corpus) has ended its script run, the time is from the
click on "Map" to the chart's WebGL canvas being drawn and the script run ended (``settle``), best of
``--repeats`` page loads. Also recorded: how long the first page took (``home_s_all``; its corpus statistics are
computed on an app's first visit, then read back), the node labels written on the map, the points drawn (the
page thins maps above ``views.MAX_DRAWN``), the size of the figure Streamlit sent, and whether the page showed an
error (a message over Streamlit's websocket limit would).

``--viewer atlas`` draws the same stored map with the ``embedding-atlas`` Streamlit component instead
(``benchmarks/atlas_page.py``: every point and its text sent, WebGL, its own labels; ``pip install --no-deps
embedding-atlas``). Its time runs from opening the page to the component's picture being drawn and unchanged for
two screenshots a second apart (it loads the points into DuckDB-WASM in the browser before drawing them), best of
``--repeats`` loads of a warm server (the first load also reads the map: ``first load``).

Usage:
    python benchmarks/map_draw.py                      # N = 10k, 50k, 200k (about 5 minutes)
    python benchmarks/map_draw.py --sizes 2000 --repeats 1
    python benchmarks/map_draw.py --viewer atlas --sizes 200000 1000000 --out benchmarks/results/map_draw_atlas.json
    python benchmarks/map_draw.py --markdown benchmarks/results/map_draw.json   # the README's table, runs nothing
Prints one table and writes benchmarks/results/map_draw.json.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# common first: it puts the repository on sys.path
from common import (RESULTS, machine, print_tables, seed_corpus, seed_run, source_line, synthetic, synthetic_texts,
                    write_result)
from app_browser import ARGS, CHROMIUM, free_port, settle, wait_port


def make_workspace(path: str, n: int, seed: int = 0) -> None:
    from hce_engine import Workspace
    from hce_engine.tree import build_divisive
    x, _, lab, sub_top = synthetic(n, seed=seed)
    texts = synthetic_texts(lab, sub_top, seed=seed)
    ws = Workspace(path)
    try:
        ids = seed_corpus(ws, "synthetic", [f"s{i}" for i in range(n)], [f"doc {i}" for i in range(n)], texts,
                          "benchmarks/map_draw.py")
        centred = x - x.mean(0)
        _, _, vt = np.linalg.svd(centred[:5000], full_matrices=False)
        seed_run(ws, "synthetic", ids, x, texts, model="synthetic", seed=seed,
                 tree=build_divisive(x, branching=10, seed=seed), projection=(centred @ vt[:2].T).astype(np.float32))
    finally:
        ws.close()


def page_loads(repeats: int, load) -> dict:
    """``repeats`` fresh pages in headless Chromium, each handed to ``load(page) -> (seconds, extras)``, which opens
    the page and waits for what it times. Returns the best and every time, the largest websocket message
    Streamlit sent, the error boxes shown over all loads and the last load's ``extras``."""
    from playwright.sync_api import sync_playwright
    times, sent, errors, extras = [], [], 0, {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            for _ in range(repeats):
                page = browser.new_page(viewport={"width": 1400, "height": 1200})
                frames: list[int] = []
                page.on("websocket", lambda ws, frames=frames: ws.on("framereceived", lambda b: frames.append(len(b))))
                seconds, extras = load(page)
                times.append(seconds)
                sent.append(max(frames) if frames else 0)
                errors += page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count()
                page.close()
        finally:
            browser.close()
    return {"draw_s": round(min(times), 2), "draw_s_all": [round(t, 2) for t in times],
            "largest_message_mib": round(max(sent) / 2**20, 2), "errors_shown": errors, **extras}


def draw_time(url: str, repeats: int, timeout: float) -> dict:
    """The app's Map page: from the click on "Map" to its chart drawn and the script run ended. Also the app's
    first page (Corpus) before it, from opening it to its script run ended, each load (``home_s_all``)."""
    home: list[float] = []

    def load(page):
        t0 = time.perf_counter()
        page.goto(url, timeout=120_000)
        settle(page, timeout)
        home.append(round(time.perf_counter() - t0, 2))
        t0 = time.perf_counter()
        page.locator('[data-testid="stSidebarNav"] a', has_text="Map").first.click()
        # points drawn: SVG markers (up to 6,000 points) or the WebGL canvas (above)
        page.locator('[data-testid="stMain"] .js-plotly-plot .scatterlayer .point, '
                     '[data-testid="stMain"] .js-plotly-plot canvas').first.wait_for(timeout=timeout * 1000)
        settle(page, timeout)
        seconds = time.perf_counter() - t0
        points = page.evaluate("""() => {const g = document.querySelector('[data-testid="stMain"] .js-plotly-plot');
            return g ? g._fullData.filter(t => t.mode !== 'text').reduce((s, t) => s + (t._length || 0), 0)
                     : null}""")
        labels = page.locator('[data-testid="stMain"] .js-plotly-plot .annotation-text, '
                              '[data-testid="stMain"] .js-plotly-plot .textpoint').count()
        return seconds, {"points_drawn": points, "labels_drawn": labels, "home_s_all": home}
    return page_loads(repeats, load)


def atlas_draw_time(url: str, repeats: int, timeout: float) -> dict:
    """Page loads of ``atlas_page.py`` until the component's picture is drawn and stable (see the docstring)."""
    def load(page):
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        t0 = time.perf_counter()
        page.goto(url, timeout=int(timeout * 1000))
        box = page.locator('iframe[title*="embedding_atlas"]').first
        box.wait_for(timeout=timeout * 1000)
        try:
            page.frame_locator('iframe[title*="embedding_atlas"]').locator("canvas").first.wait_for(
                timeout=timeout * 1000)
        except Exception as e:  # noqa: BLE001 - say why the component drew nothing
            fetch = [c for c in console if "http" in c and "metrics" not in c]
            raise RuntimeError(f"no canvas in {timeout:.0f} s; the page's console: "
                               f"{fetch[0][:400] if fetch else console[:3]}") from e
        last, drawn, end = None, t0, t0 + timeout
        while time.perf_counter() < end:
            shot = box.screenshot()
            now = time.perf_counter()
            if shot == last:
                return drawn - t0, {"points_drawn": None, "labels_drawn": None}
            last, drawn = shot, now
            page.wait_for_timeout(1000)
        raise TimeoutError("the embedding-atlas picture kept changing")
    return page_loads(repeats, load)


def markdown(result: dict) -> str:
    """A result file as the README's table, with where it comes from."""
    viewer = result.get("viewer", "plotly")
    out = [f"{source_line(result)} · viewer {viewer} · best of {result.get('repeats')} page loads", "",
           f"| N | draw (s), best of {result.get('repeats')} | first load (s) | app's first page, first load (s) | "
           "points drawn | labels drawn | largest message (MiB) | errors shown |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if r.get("failed"):
            out.append(f"| {r['n_docs']:,} | failed: {r['failed']} | | | | | | |")
            continue
        drawn = r["points_drawn"]
        drawn = "all" if drawn is None else f"{drawn:,}" + (" (thinned)" if drawn < r["n_docs"] else "")
        home = f"{r['home_s_all'][0]:.1f}" if r.get("home_s_all") else "-"
        out.append(f"| {r['n_docs']:,} | {r['draw_s']:.1f} | {r['draw_s_all'][0]:.1f} | {home} | {drawn} | "
                   f"{r.get('labels_drawn', '-')} | {r['largest_message_mib']:.1f} | {r['errors_shown']} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> list[dict] | None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", nargs="+", metavar="RESULT", help="print result files as tables, run nothing")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    ap.add_argument("--viewer", choices=("plotly", "atlas"), default="plotly",
                    help="the app's Map page (plotly), or the embedding-atlas component on the same map")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--out", default=str(RESULTS / "map_draw.json"))
    args = ap.parse_args(argv)
    if args.markdown:
        print_tables(args.markdown, markdown)
        return None
    hce = shutil.which("hce", path=os.path.dirname(sys.executable)) or "hce"
    rows = []
    for n in args.sizes:
        tmp = tempfile.mkdtemp(prefix="hce-map-draw-")
        try:
            t0 = time.perf_counter()
            make_workspace(os.path.join(tmp, "ws"), n)
            setup = time.perf_counter() - t0
            port = free_port()
            log = open(os.path.join(tmp, "app.log"), "w")
            if args.viewer == "atlas":
                cmd = [sys.executable, "-m", "streamlit", "run", str(Path(__file__).with_name("atlas_page.py")),
                       "--server.port", str(port), "--server.headless", "true", "--", os.path.join(tmp, "ws")]
            else:
                cmd = [hce, "--workspace", os.path.join(tmp, "ws"), "app", "--port", str(port)]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
            try:
                wait_port(port, proc, 120)
                measure = atlas_draw_time if args.viewer == "atlas" else draw_time
                row = {"n_docs": n, "viewer": args.viewer, "setup_s": round(setup, 1)}
                try:
                    row.update(measure(f"http://127.0.0.1:{port}", args.repeats, args.timeout))
                except Exception as e:  # noqa: BLE001 - a viewer that cannot draw N points is a result, not a crash
                    row["failed"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
            finally:
                proc.terminate()
                proc.wait(30)
                log.close()
            rows.append(row)
            print(f"[{n}] {row}", file=sys.stderr, flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        write_result(args.out, {"hardware": {**machine(), "load_avg_at_end": list(os.getloadavg())},
                                "viewer": args.viewer, "repeats": args.repeats, "rows": rows})  # after every size
    print(f"{'N':>8}{'draw s':>9}{'points drawn':>14}{'largest msg MiB':>17}{'errors':>8}")
    for r in rows:
        if r.get("failed"):
            print(f"{r['n_docs']:>8}  failed: {r['failed']}")
            continue
        print(f"{r['n_docs']:>8}{r['draw_s']:>9.2f}{str(r['points_drawn']):>14}{r['largest_message_mib']:>17.2f}"
              f"{r['errors_shown']:>8}")
    return rows


if __name__ == "__main__":
    main()
