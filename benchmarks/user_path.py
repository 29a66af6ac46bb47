"""A new user's first session, timed: the README's app command, the real bundled model, headless Chromium.

    python benchmarks/user_path.py [--out benchmarks/results/user_path.json] [--shots docs/screenshots]
                                   [--keep DIR] [--no-shots] [--model DIR]
    python benchmarks/user_path.py --markdown benchmarks/results/user_path.json   # its table, runs nothing

Starts ``hce --workspace TMP app --port P --sample`` (the bundled all-MiniLM-L6-v2: ``$HCE_DEFAULT_MODEL`` is
unset), then does what a new user does and times each step from the moment the command was launched:

  a. the app page served (first page drawn in the browser);
  b. the sample encoded (Corpus page says so) and the Tree page showing its chart: first tree;
  c. first search results (Search page, "a program that never ends"; starting encoder and BM25);
  d. a quick training run: Train page, preset "quick" (signal self: the Jargon File has no qrels), the page's
     time estimate noted, Start, wait for the run's outcome; timed from the click to the outcome;
  e. its effect: Siblings (before/after), Map (two runs side by side, aligned; UMAP runs in the background),
     Search (starting vs trained vs BM25).

Saves screenshots of the main pages (1400 px wide, PNG, palette-reduced to stay small) and writes the timings
as JSON. Exits nonzero if any page shows an exception box or an error alert, or a step times out.
Needs Debian's /usr/bin/chromium and the playwright Python package (dev extra).
"""
from __future__ import annotations

import argparse
import datetime
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# common first: it puts the repository on sys.path
from common import RESULTS, ROOT, machine, print_tables, source_line, write_result

from benchmarks import app_browser
from benchmarks.app_browser import ARGS, CHROMIUM, free_port

QUERY = "a program that never ends"
WIDTH, VIEW_HEIGHT, MAX_HEIGHT = 1400, 1000, 2400  # screenshots: the whole page, cut at MAX_HEIGHT
TIMEOUT = 120.0  # seconds a page may take to settle (the real model on 2 busy cores)


def settle(page, timeout: float = TIMEOUT) -> None:
    app_browser.settle(page, timeout)


def open_page(page, name: str, timeout: float = TIMEOUT) -> None:
    app_browser.open_page(page, name, timeout)


class PageError(AssertionError):
    pass


def check(page, name: str) -> None:
    """Fail on an exception box or an error alert."""
    for testid, what in (("stException", "exception"), ("stAlertContentError", "error")):
        found = page.locator(f'[data-testid="{testid}"]')
        if found.count():
            raise PageError(f"{name}: {what} shown: {found.first.inner_text()}")


def wait_until(page, predicate, timeout: float, what: str, poll_ms: int = 1000, name: str = "") -> None:
    """Poll ``predicate()`` until true; check the page for errors on every poll."""
    end = time.time() + timeout
    while time.time() < end:
        check(page, name or what)
        if predicate():
            return
        page.wait_for_timeout(poll_ms)
    raise TimeoutError(f"{what}: not done after {timeout:.0f} s")


def screenshot(page, folder: str | None, name: str, shots: dict) -> None:
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    # Streamlit scrolls inside its main section, not the document: grow the viewport to the content instead.
    height = page.evaluate("""Math.max(...['[data-testid="stMain"]', '[data-testid="stAppViewContainer"]',
        '[data-testid="stMainBlockContainer"]'].map(s => document.querySelector(s)?.scrollHeight || 0),
        document.documentElement.scrollHeight)""")
    height = max(800, min(int(height) + 40, MAX_HEIGHT))
    page.set_viewport_size({"width": WIDTH, "height": height})
    page.wait_for_timeout(2000)  # plotly charts re-layout on resize
    png = page.screenshot(type="png")
    page.set_viewport_size({"width": WIDTH, "height": VIEW_HEIGHT})
    try:  # UI screenshots keep their look with 256 colours and shrink 3-5x
        from PIL import Image
        img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        png = buf.getvalue()
    except ImportError:
        pass
    path = os.path.join(folder, f"{name}.png")
    with open(path, "wb") as f:
        f.write(png)
    shots[name] = {"path": os.path.relpath(path, ROOT), "bytes": len(png), "height": height}


def metric_value(page, label: str) -> str | None:
    m = page.locator('[data-testid="stMetric"]', has_text=label)
    if not m.count():
        return None
    return m.first.locator('[data-testid="stMetricValue"]').inner_text().strip()


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


# -- the path ---------------------------------------------------------------------------------------------
def user_path(url: str, t0: float, profile: str, shots_dir: str | None, marks: dict, notes: dict,
              shots: dict) -> None:
    from playwright.sync_api import sync_playwright

    def mark(name: str) -> float:
        marks[name] = round(time.time() - t0, 1)
        print(f"  {marks[name]:8.1f} s  {name}", flush=True)
        return marks[name]

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                                                   viewport={"width": WIDTH, "height": VIEW_HEIGHT})
        ctx.set_default_timeout(120_000)
        try:
            page = ctx.new_page()
            page.goto(url, timeout=180_000)
            page.wait_for_selector('[data-testid="stMain"] h1', timeout=180_000)
            mark("app_page_served")

            # (b) the app encodes the sample in the background (started by the first page view).
            wait_until(page, lambda: page.get_by_text("Encoded by run #").count() > 0, 1800,
                       "encoding the sample", name="Corpus", poll_ms=2000)
            mark("sample_encoded")
            settle(page)
            check(page, "Corpus")
            screenshot(page, shots_dir, "corpus", shots)

            open_page(page, "Tree")
            page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=300_000)
            page.locator('[data-testid="stMain"] .js-plotly-plot').first.wait_for(timeout=120_000)
            mark("first_tree")
            settle(page)
            check(page, "Tree")
            screenshot(page, shots_dir, "tree", shots)

            # (c) first search
            open_page(page, "Search")
            t_search = time.time()
            box = page.get_by_label("Query")
            box.fill(QUERY)
            box.press("Enter")
            page.get_by_text("lexical reference (word overlap)").wait_for(timeout=300_000)
            wait_until(page, lambda: main_text(page).count("score ") >= 20, 300, "first search results", 250,
                       name="Search")
            mark("first_search")
            notes["first_search_query_s"] = round(time.time() - t_search, 1)
            settle(page)
            check(page, "Search")

            # (d) a quick training run
            open_page(page, "Train")
            page.get_by_text("quick:", exact=False).first.click()  # the preset radio (default, clicked anyway)
            settle(page)
            wait_until(page, lambda: metric_value(page, "Estimated time") not in (None, "", "—"), 600,
                       "the time estimate", name="Train")
            settle(page)
            notes["train_estimate"] = metric_value(page, "Estimated time")
            caption = page.locator('[data-testid="stCaptionContainer"]', has_text="steps over")
            notes["train_estimate_detail"] = caption.first.inner_text() if caption.count() else None
            mark("train_estimate_shown")
            print(f"           estimate shown: {notes['train_estimate']} ({notes['train_estimate_detail']})")
            check(page, "Train")
            start = page.get_by_role("button", name="Start training")
            t_start = time.time()
            start.click()
            mark("train_started")

            def finished() -> bool:
                text = main_text(page)
                if "Finished runs" not in text or "(running)" in text or "(queued)" in text:
                    return False
                return page.get_by_role("button", name="Start training").count() > 0

            wait_until(page, finished, 3600, "the quick training run", poll_ms=2000, name="Train")
            notes["train_click_to_outcome_s"] = round(time.time() - t_start, 1)
            mark("train_outcome_shown")
            settle(page)
            check(page, "Train")
            text = main_text(page)
            notes["train_outcome"] = [ln for ln in text.splitlines()
                                      if ln.startswith(("Trained at", "Nothing to measure", "Better", "No better",
                                                        "Worse", "The run", "On the test"))]
            if not any(ln.startswith("Trained at") for ln in notes["train_outcome"]) or \
                    any(w in " ".join(notes["train_outcome"]) for w in ("failed", "cancelled", "interrupted")):
                raise PageError(f"Train: the run did not finish: {notes['train_outcome']}")
            screenshot(page, shots_dir, "train", shots)

            # (e) its effect: Siblings, Map, Search
            open_page(page, "Siblings")
            page.get_by_text("a query", exact=True).click()
            settle(page)
            page.get_by_label("Your query").fill(QUERY)
            page.get_by_label("Your query").press("Enter")
            wait_until(page, lambda: page.locator('[data-testid="stMetric"]', has_text="Loss (before").count() > 0,
                       600, "the Siblings before/after view", name="Siblings")
            settle(page)
            mark("siblings_shown")
            check(page, "Siblings")
            screenshot(page, shots_dir, "siblings", shots)

            open_page(page, "Map")
            t_map = time.time()
            wait_until(page, lambda: page.locator('[data-testid="stMain"] .js-plotly-plot').count() >= 2, 1800,
                       "the two aligned maps", poll_ms=2000, name="Map")
            mark("map_shown")
            notes["map_wait_s"] = round(time.time() - t_map, 1)
            settle(page)
            box = page.get_by_label("Place a query on the map")
            box.fill(QUERY)
            box.press("Enter")
            wait_until(page, lambda: "Query hits" in main_text(page), 300, "the query on the map", name="Map")
            settle(page)
            check(page, "Map")
            screenshot(page, shots_dir, "map", shots)

            open_page(page, "Search")
            box = page.get_by_label("Query")
            if box.input_value() != QUERY:
                box.fill(QUERY)
                box.press("Enter")
            wait_until(page, lambda: main_text(page).count("score ") >= 30, 300,
                       "search with the trained run", 250, name="Search")
            settle(page)
            mark("search_trained_shown")
            check(page, "Search")
            screenshot(page, shots_dir, "search", shots)

            open_page(page, "Runs")
            check(page, "Runs")
            open_page(page, "Learn")
            check(page, "Learn")
            screenshot(page, shots_dir, "learn", shots)
            mark("done")
        except Exception:
            try:
                os.makedirs(shots_dir or tempfile.gettempdir(), exist_ok=True)
                where = os.path.join(shots_dir or tempfile.gettempdir(), "user_path_failure.png")
                page.screenshot(path=where, full_page=True)
                print(f"failure screenshot: {where}", file=sys.stderr)
            except Exception:  # noqa: BLE001
                pass
            raise
        finally:
            ctx.close()


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """End the app: `hce app` and the Streamlit server it started (its own process group)."""
    def signal_group(sig) -> bool:
        try:
            os.killpg(proc.pid, sig)
            return True
        except ProcessLookupError:
            return False

    signal_group(signal.SIGTERM)
    end = time.time() + timeout
    while time.time() < end:
        proc.poll()
        if not signal_group(0):  # no process of the group is left
            return
        time.sleep(0.5)
    signal_group(signal.SIGKILL)
    proc.wait()


def read_runs(workspace: str) -> list[dict]:
    """What the workspace recorded about its runs (after the app is gone)."""
    try:
        from hce_engine import Workspace
        ws = Workspace(workspace)
        try:
            out = []
            for r in ws.runs("jargon"):
                s = r.summary or {}
                keep = {k: s[k] for k in ("seconds", "examples_per_s", "steps", "n_train_pairs", "pairs", "rebuilds")
                        if k in s}
                dur = None
                if r.created_at and r.finished_at:
                    dur = round((r.finished_at - r.created_at).total_seconds(), 1)
                out.append({"run_id": r.run_id, "kind": r.kind, "status": str(r.status),
                            "created_to_finished_s": dur, "summary": keep,
                            "config": {k: r.config_dict[k] for k in ("signal", "negatives", "epochs", "max_pairs",
                                                                      "siblings", "max_length", "model")
                                       if k in r.config_dict}})
            return out
        finally:
            ws.close()
    except Exception as exc:  # noqa: BLE001 - the timings matter more than this
        return [{"error": f"{type(exc).__name__}: {exc}"}]


ROWS = [
    ("app_page_served", "app command → first page drawn", None),
    ("sample_encoded", "→ sample encoded (2,307 docs, vectors + tree)", None),
    ("first_tree", "→ first tree (Tree page chart)", None),
    ("first_search", "→ first search results (3 lists)", "first_search_query_s"),
    ("train_outcome_shown", "quick training run: Start → outcome shown", "train_click_to_outcome_s"),
    ("siblings_shown", "→ Siblings before/after", None),
    ("map_shown", "→ Map, two runs aligned (UMAP)", "map_wait_s"),
    ("search_trained_shown", "→ Search: starting vs trained vs BM25", None),
    ("done", "whole path (incl. screenshots)", None),
]


def table(marks: dict, notes: dict) -> str:
    lines = ["| step | since app command | step alone |", "|---|---:|---:|"]
    for key, label, alone in ROWS:
        if key in marks:
            a = f"{notes[alone]:.0f} s" if alone and alone in notes else ""
            lines.append(f"| {label} | {marks[key]:.0f} s | {a} |")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    """A result file as the README shows it: where it comes from, the step table, the estimate and outcome."""
    marks, notes = result["seconds_since_app_command"], result["notes"]
    estimate, taken = notes.get("train_estimate"), notes.get("train_click_to_outcome_s")
    minutes = re.fullmatch(r"(\d+(?:\.\d+)?) min", estimate or "")
    ratio = (f" against {taken / 60:.1f} min from Start to the outcome: estimate / actual "
             f"{float(minutes.group(1)) * 60 / taken:.2f}") if minutes and taken else ""
    out = [f"{source_line(result)} · load average at the start "
           f"{', '.join(f'{v:.2f}' for v in result['machine']['load_avg_at_start'])} · query \"{result['query']}\"",
           "", table(marks, notes), "",
           f"Training estimate shown before Start: {estimate}{ratio}. "
           f"Outcome shown: {' '.join(notes.get('train_outcome') or ['none'])}"]
    if result.get("error"):
        out.append(f"FAILED: {result['error']}")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--markdown", nargs="+", metavar="RESULT", help="print result files' tables, run nothing")
    ap.add_argument("--out", default=str(RESULTS / "user_path.json"))
    ap.add_argument("--shots", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--no-shots", action="store_true")
    ap.add_argument("--keep", help="workspace folder to use and keep (default: a temporary one, removed)")
    ap.add_argument("--model", help="encoder folder instead of the bundled model (only to debug this script "
                                    "quickly, e.g. with a fake encoder; the timings then mean nothing)")
    a = ap.parse_args()
    if a.markdown:
        print_tables(a.markdown, markdown)
        return 0
    if not os.path.exists(CHROMIUM):
        print(f"{CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2

    tmp = tempfile.mkdtemp(prefix="hce-user-path-")
    workspace = os.path.abspath(a.keep) if a.keep else os.path.join(tmp, "ws")
    port = free_port()
    hce = shutil.which("hce", path=os.path.dirname(sys.executable)) or "hce"
    env = {k: v for k, v in os.environ.items() if k not in ("HCE_DEFAULT_MODEL", "HCE_WORKSPACE",
                                                             "HCE_AUTO_ENCODE", "HCE_WARM_UMAP")}
    if a.model:
        env["HCE_DEFAULT_MODEL"] = os.path.abspath(a.model)
    log_path = os.path.join(tmp, "app.log")
    marks: dict = {}
    notes: dict = {}
    shots: dict = {}
    info = {**machine(), "load_avg_at_start": os.getloadavg()}
    error = None
    print(f"hce --workspace {workspace} app --port {port} --sample   (log: {log_path})", flush=True)
    t0 = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([hce, "--workspace", workspace, "app", "--port", str(port), "--sample"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp, start_new_session=True)
        try:
            app_browser.wait_port(port, proc, timeout=180)
            marks["port_open"] = round(time.time() - t0, 1)
            print(f"  {marks['port_open']:8.1f} s  port_open", flush=True)
            user_path(f"http://127.0.0.1:{port}", t0, os.path.join(tmp, "profile"),
                      None if a.no_shots else a.shots, marks, notes, shots)
        except Exception as exc:  # noqa: BLE001 - reported below, exit code 1
            error = f"{type(exc).__name__}: {exc}"
        finally:
            stop(proc)
    runs = read_runs(workspace)
    with open(log_path) as f:
        log_tail = f.read()[-4000:]
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)

    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": info,
              "command": "hce --workspace TMP app --port P --sample",
              "model": a.model or "bundled all-MiniLM-L6-v2",
              "query": QUERY, "seconds_since_app_command": marks, "notes": notes, "runs": runs,
              "screenshots": shots, "error": error}
    if error:
        result["app_log_tail"] = log_tail
    write_result(a.out, result)
    print()
    print(table(marks, notes))
    print(f"\ntraining estimate shown: {notes.get('train_estimate')} · {notes.get('train_estimate_detail')}")
    for name, s in shots.items():
        print(f"  {s['path']}  {s['bytes'] / 1024:.0f} KB")
    print(f"written: {a.out}")
    if error:
        print(f"\nFAILED: {error}\n--- app log tail ---\n{log_tail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
