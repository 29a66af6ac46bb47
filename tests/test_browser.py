"""End to end in headless chromium: `hce app --sample` as the README starts it, every page screenshotted.

Fails on any exception box or st.error on any page. Screenshots go to ``test-artifacts/screenshots/``
(or ``$HCE_SCREENSHOTS``). Needs Debian's /usr/bin/chromium and the playwright Python package.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOTS = os.environ.get("HCE_SCREENSHOTS", os.path.join(ROOT, "test-artifacts", "screenshots"))
PAGES = ["Corpus", "Train", "Tree", "Siblings", "Map", "Search", "Runs", "Learn", "Experiments"]
TIMEOUT = 60.0  # seconds a page may take to settle (the fake encoder)
sys.path.insert(0, ROOT)

from benchmarks import app_browser  # noqa: E402
from benchmarks.app_browser import ARGS, CHROMIUM, free_port  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]


HCE = shutil.which("hce", path=os.path.dirname(sys.executable)) or "hce"
VIEWPORT = {"width": 1400, "height": 1600}


@contextmanager
def chromium_page(tmp_path, viewport: dict | None = VIEWPORT):
    """A page of headless chromium (a fresh profile under ``tmp_path``), closed afterwards."""
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                   headless=True, args=ARGS, viewport=viewport)
        try:
            yield ctx.new_page()
        finally:
            ctx.close()


@pytest.fixture
def server(tmp_path, fake_model):
    """`hce --workspace TMP app --port P --sample` with the fake encoder; yields the base URL."""
    yield from serve(tmp_path, fake_model, ["--sample"])


def serve(tmp_path, fake_model, flags: list[str], env: dict | None = None):
    port = free_port()
    env = dict(os.environ, HCE_DEFAULT_MODEL=fake_model, **(env or {}))
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([HCE, "--workspace", str(tmp_path / "ws"), "app", "--port", str(port), *flags],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    try:
        app_browser.wait_port(port, proc, timeout=90)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        print(f"app log: {tmp_path / 'app.log'}")


def settle(page) -> None:
    app_browser.settle(page, TIMEOUT)


def check(page, name: str, shot: str | None = None) -> None:
    """Screenshot the page (``shot``: the file's name, default NN-page.png) and fail on an exception box or an
    st.error."""
    os.makedirs(SHOTS, exist_ok=True)
    shot = shot or f"{PAGES.index(name) + 1:02d}-{name.lower()}.png"
    page.screenshot(path=os.path.join(SHOTS, shot), full_page=True)
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{name}: exception shown: {exceptions.first.inner_text()}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{name}: error shown: {errors.first.inner_text()}"


def open_page(page, name: str) -> None:
    app_browser.open_page(page, name, TIMEOUT)


def search(page, query: str) -> None:
    """Open the Search page, run ``query`` and wait for its results (the BM25 column included)."""
    open_page(page, "Search")
    box = page.get_by_label("Query")
    box.fill(query)
    box.press("Enter")
    page.get_by_text("lexical reference (word overlap)").wait_for(timeout=60_000)
    settle(page)


def test_sample_app_end_to_end(server, tmp_path):
    print(f"screenshots: {SHOTS}")
    with chromium_page(tmp_path) as page:
        page.goto(server, timeout=60_000)
        settle(page)
        # the toolbar holds the "Running..." status and its Stop button (toolbarMode "minimal" hid both, and
        # with them what settle() waits for)
        assert page.locator('[data-testid="stToolbar"]').count() == 1
        # --sample imported the Jargon File; the app encodes it in the background and reports when done.
        page.get_by_text("Encoded by run #").wait_for(timeout=120_000)
        settle(page)
        check(page, "Corpus")

        search(page, "a program that never ends")
        main = page.locator('[data-testid="stMain"]')
        assert main.get_by_text("score ").count() == 20  # 10 dense + 10 BM25
        # hybrid mode through the tree: fused hits say where they stood; the route lists the visited leaves
        main.get_by_test_id("stButtonGroup").get_by_text("hybrid", exact=True).click()
        main.get_by_text("Starting encoder + BM25").wait_for(timeout=60_000)
        page.get_by_text("Search through the tree").click()
        main.get_by_text("Tree route:").first.wait_for(timeout=60_000)
        settle(page)
        assert main.get_by_text("dense #").count() >= 1 and main.get_by_text("score ").count() == 20
        # why this rank: pick a hit, the explain panel shows its path and its ranks
        main.get_by_test_id("stSelectbox").filter(has_text="A hit to explain").get_by_role("combobox").click()
        page.keyboard.press("ArrowDown")  # a react-aria combobox opens its list from the keyboard
        page.get_by_role("option").first.click()
        main.get_by_text("Its path through the tree").wait_for(timeout=60_000)
        settle(page)
        assert main.get_by_text("Words it shares with the query").count() == 1
        check(page, "Search")

        for name in ("Train", "Tree", "Siblings", "Map", "Runs", "Learn"):
            open_page(page, name)
            check(page, name)


def test_deep_link_as_first_request_runs_the_navigation(server, tmp_path):
    """Reloading a page's URL after restarting `hce app` must show the app's own menu (titles, not file names)."""
    with chromium_page(tmp_path, viewport=None) as page:
        page.goto(server + "/search", timeout=60_000)
        settle(page)
        nav = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
        assert [t.split()[-1] for t in nav] == PAGES, nav  # inner text: "icon_name\n\nTitle"


#: Markdown and HTML that must show as text: an image (the browser would fetch it), a link, raw HTML
HOSTILE_ID = "![id](http://127.0.0.1:9/hostile-id.png)"
HOSTILE_TITLE = '<img src="http://127.0.0.1:9/hostile-title.png"> **bold** [a](javascript:alert(1))'
HOSTILE_FILE = "![f](hostile-file.png).jsonl"


@pytest.fixture
def hostile_server(tmp_path, fake_model):
    """The app on a corpus whose ids, titles and texts are hostile markup (encoded before the app starts)."""
    import json
    words = ["bread oven flour", "river boat sail", "guitar chord song", "planet orbit star"]
    with open(tmp_path / "hostile.jsonl", "w") as f:
        for i in range(40):
            doc = {"_id": f"{HOSTILE_ID}-{i}" if i % 4 == 0 else f"d{i}",
                   "title": HOSTILE_TITLE if i % 3 == 0 else f"doc {i}",
                   "text": f"{words[i % 4]} {i} <script>window.__hce_pwned = 1</script> ![t](http://127.0.0.1:9/t.png)"}
            f.write(json.dumps(doc) + "\n")
    env = dict(os.environ, HCE_DEFAULT_MODEL=fake_model)
    for args in (["import", str(tmp_path / "hostile.jsonl"), "--name", "hostile"], ["encode", "--corpus", "hostile"]):
        r = subprocess.run([HCE, "--workspace", str(tmp_path / "ws"), *args], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    yield from serve(tmp_path, fake_model, [])


def test_hostile_ids_titles_and_error_paths_show_as_text(hostile_server, tmp_path):
    """No page fetches an image or runs a script named by the data; an upload error names the hostile file as
    text; the map's hover labels stay text."""
    requests: list[str] = []
    with chromium_page(tmp_path) as page:
        page.on("request", lambda r: requests.append(r.url))
        page.goto(hostile_server, timeout=60_000)
        settle(page)
        adding = page.locator('[data-testid="stExpander"]', has_text="Add a corpus")
        adding.locator("summary").first.click()
        adding.locator('input[type="file"]').set_input_files(
            files=[{"name": HOSTILE_FILE, "mimeType": "application/json", "buffer": b'{"_id": "a", "text": \n'}])
        settle(page)
        adding.get_by_role("button", name="Import").click()
        page.get_by_text("malformed JSON").wait_for(timeout=30_000)
        settle(page)
        assert page.locator('[data-testid="stAlertContentError"]').get_by_text(HOSTILE_FILE).count() == 1

        search(page, "bread oven flour")
        main = page.locator('[data-testid="stMain"]')
        assert main.get_by_text(HOSTILE_ID, exact=False).count() > 0  # the id, shown literally
        assert main.get_by_text("<img src=", exact=False).count() > 0  # the title, shown literally

        for name in ("Tree", "Siblings", "Map", "Runs", "Learn"):
            open_page(page, name)
            if name == "Map":
                page.wait_for_selector(".js-plotly-plot", timeout=120_000)
                box = page.locator(".js-plotly-plot").first.bounding_box()
                labels = []
                for fx in range(1, 10):
                    for fy in range(1, 10):
                        page.mouse.move(box["x"] + box["width"] * fx / 10, box["y"] + box["height"] * fy / 10)
                        page.wait_for_timeout(30)
                        hover = page.locator(".hoverlayer").first
                        if hover.count() and (hover.text_content() or "").strip():
                            labels.append(hover.text_content())
                assert any("<img" in t or "![id]" in t for t in labels), labels[:5]
                assert page.locator(".hoverlayer img, .hoverlayer a").count() == 0
        assert page.evaluate("window.__hce_pwned === undefined")
    fetched = [u for u in requests if "127.0.0.1:9/" in u or "hostile-" in u or u.endswith("/t.png")]
    assert fetched == [], fetched


def test_exported_map_opens_offline_with_its_labels(tmp_path):
    """`hce export --map-html` / the Map page's download: one file, no network, labels drawn."""
    import numpy as np
    import pandas as pd
    playwright = pytest.importorskip("playwright.sync_api")
    from hce_engine.plotting import export
    from hce_engine.plotting.map import map_figure
    from hce_engine.views import map_labels
    rng = np.random.default_rng(0)
    frame = pd.DataFrame([{"doc_id": i, "ext_id": f"d{i}", "title": f"doc {i}", "x": c * 5 + rng.normal(),
                           "y": rng.normal(), "node_at_level": c, "label": f"cluster {c} words",
                           "path": f"root › cluster {c} words"} for i, c in enumerate(np.repeat([1, 2, 3], 30))])
    path = tmp_path / "map.html"
    path.write_text(export.page_html("A <b>map</b>", [("Map", map_figure(frame, labels=map_labels(frame)))]))
    requests = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            ctx = browser.new_context(offline=True)
            page = ctx.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri(), timeout=60_000)
            for c in (1, 2, 3):
                page.locator("svg text", has_text=f"cluster {c} words").first.wait_for(timeout=30_000)
            assert page.title() == "A <b>map</b>"  # escaped: shown as text, not markup
            assert page.locator(".plot-container").count() == 1
        finally:
            browser.close()
    assert all(u.startswith("file:") or u.startswith("data:") for u in requests), requests


def test_unjudged_sample_trains_with_the_self_signal_and_shows_its_teacher(server, tmp_path):
    """The sample has no judged queries: the Train page offers the self signal, a run starts from its button,
    and the Siblings page and the Learn walkthrough show what the teacher taught it; a query judged on the
    Search page then checks the run on a real query."""
    with chromium_page(tmp_path) as page:
        page.goto(server, timeout=60_000)
        settle(page)
        page.get_by_text("Encoded by run #").wait_for(timeout=120_000)
        open_page(page, "Train")
        main = page.locator('[data-testid="stMain"]')
        assert main.get_by_text("Signal self. No labels needed").count() == 1
        main.get_by_role("button", name="Start training").click()
        main.get_by_text("label-free checks").first.wait_for(timeout=240_000)
        settle(page)
        assert main.get_by_text("teacher agreement (held-out pseudo-queries)").count() >= 1
        page.screenshot(path=os.path.join(SHOTS, "self-train.png"), full_page=True)
        open_page(page, "Siblings")
        main.get_by_text("Pseudo-query").first.wait_for(timeout=60_000)
        settle(page)
        check(page, "Siblings")
        page.screenshot(path=os.path.join(SHOTS, "self-siblings.png"), full_page=True)
        open_page(page, "Learn")
        main.get_by_text("7 · The self signal", exact=True).click()
        main.get_by_text("Learning without labels").wait_for(timeout=60_000)
        settle(page)
        check(page, "Learn")
        page.screenshot(path=os.path.join(SHOTS, "self-learn.png"), full_page=True)
        # judge one query: the run is checked again on it, and its verdict now rests on the judged query
        search(page, "a program that never ends")
        main.get_by_test_id("stMultiSelect").get_by_role("combobox").click()
        page.keyboard.press("ArrowDown")
        page.get_by_role("option").filter(has_text="[jargon-").first.click()  # not "select all"
        page.keyboard.press("Escape")
        main.get_by_role("button", name="Save judged query").click()
        main.get_by_text("Saved judged-1: 1 relevant").wait_for(timeout=60_000)
        settle(page)
        check(page, "Search")
        page.screenshot(path=os.path.join(SHOTS, "self-judged.png"), full_page=True)
        open_page(page, "Train")
        main.get_by_text("judged queries (test)").first.wait_for(timeout=60_000)
        assert main.get_by_text("The judged queries decide").count() >= 1


#: In the page: the Map chart's (the ``i``-th chart's, default the first) node-label boxes (text of the label
#: trace, or annotations on a WebGL map), the order of its traces, the plot area's and its container's widths
#: and the points' horizontal extent.
MAP_LABELS_JS = """(i) => {
  const gd = document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot')[i || 0];
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom]; };
  const groups = [...gd.querySelectorAll('.scatterlayer g.trace')];
  const names = groups.map((g) => g.__data__[0].trace.name);
  const lab = groups[names.indexOf('node labels')];
  const texts = lab ? [...lab.querySelectorAll('.textpoint text')] : [];
  const notes = [...gd.querySelectorAll('.infolayer g.annotation')].map((a) => a.querySelector('.annotation-text-g'));
  const star = groups[names.indexOf('query')];
  const xs = [...gd.querySelectorAll('.scatterlayer .point')].map((p) => p.getBoundingClientRect().left);
  const labels = texts.map((t) => [...box(t), t.textContent]).concat(notes.map((n) => [...box(n), n.textContent]));
  return {names, labels,
          star_after_labels: !!(lab && star && (lab.compareDocumentPosition(star) & Node.DOCUMENT_POSITION_FOLLOWING)),
          plot: box(gd.querySelector('.nsewdrag')), container: gd.closest('[data-testid="stElementContainer"]')
            .getBoundingClientRect().width, points: [Math.min(...xs), Math.max(...xs)]};
}"""


def label_overlaps(labels: list) -> list:
    return [(a[4], b[4]) for i, a in enumerate(labels) for b in labels[i + 1:]
            if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]]


def map_charts(page) -> list[dict]:
    """:data:`MAP_LABELS_JS` of every chart on the Map page (two when a run is shown beside its start)."""
    n = page.locator('[data-testid="stMain"] .js-plotly-plot').count()
    return [page.evaluate(MAP_LABELS_JS, i) for i in range(n)]


def map_at_level(page, level: int, shot: str) -> list[dict]:
    """Colour the open Map page by tree ``level``, screenshot it as ``shot`` and read its charts' label boxes;
    fails when two label boxes of one chart overlap."""
    box = page.locator('[data-testid="stMain"]').get_by_label("Colour by tree level", exact=True)
    box.fill(str(level))
    box.press("Enter")
    settle(page)
    page.wait_for_timeout(500)
    drawn = map_charts(page)
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, shot), full_page=True)
    assert drawn, f"level {level}: no chart drawn"
    for i, chart in enumerate(drawn):
        assert label_overlaps(chart["labels"]) == [], (level, i, label_overlaps(chart["labels"]))
    return drawn


def place_query_on_map(page, query: str, shot: str) -> list[dict]:
    """Place ``query`` on the open Map page; on every chart its hits and its star come after the node labels
    (drawn above them) and no two label boxes overlap."""
    main = page.locator('[data-testid="stMain"]')
    box = main.get_by_label("Place a query on the map", exact=True)
    box.fill(query)
    box.press("Enter")
    main.get_by_text("Query hits", exact=True).wait_for(timeout=60_000)
    settle(page)
    page.wait_for_timeout(500)
    drawn = map_charts(page)
    page.screenshot(path=os.path.join(SHOTS, shot), full_page=True)
    assert drawn, "no chart drawn"
    for i, chart in enumerate(drawn):
        names = chart["names"]
        assert names.index("node labels") < names.index("query hits") < names.index("query"), (i, names)
        assert chart["star_after_labels"], i
        assert label_overlaps(chart["labels"]) == [], (i, label_overlaps(chart["labels"]))
    return drawn


def test_map_labels_never_overlap_and_the_query_is_drawn_above_them(server, tmp_path):
    """The Map page at levels 1-3: the drawn label boxes are disjoint, the map takes its column's width, and a
    placed query's star and hits come after the labels (drawn above them)."""
    with chromium_page(tmp_path) as page:
        page.goto(server, timeout=60_000)
        settle(page)
        page.get_by_text("Encoded by run #").wait_for(timeout=120_000)
        open_page(page, "Map")
        main = page.locator('[data-testid="stMain"]')
        main.locator(".js-plotly-plot .textpoint text").first.wait_for(timeout=240_000)  # UMAP: once per app
        os.makedirs(SHOTS, exist_ok=True)
        for level in (1, 2, 3):
            drawn = map_at_level(page, level, f"map-labels-level{level}.png")[0]
            assert len(drawn["labels"]) >= 3, (level, drawn["labels"])
            left, right = drawn["plot"][:2]
            assert right - left >= 0.95 * drawn["container"], drawn  # the chart takes its column's width
            span = drawn["points"][1] - drawn["points"][0]
            assert span >= 0.85 * (right - left), drawn  # and the points spread over it
            assert all(left - 1 <= a[0] and a[1] <= right + 1 for a in drawn["labels"]), drawn["labels"]
        drawn = place_query_on_map(page, "a program that never ends", "map-labels-query.png")[0]
        # a lasso over the middle of the map lists its documents (each point's doc id is its customdata), and the
        # CSV download, written when clicked, holds those documents with their texts
        left, right, top, bottom = drawn["plot"]
        corners = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75), (0.25, 0.26)]
        page.mouse.move(left + (right - left) * corners[0][0], top + (bottom - top) * corners[0][1])
        page.mouse.down()
        for fx, fy in corners[1:]:
            page.mouse.move(left + (right - left) * fx, top + (bottom - top) * fy, steps=10)
        page.mouse.up()
        main.get_by_text(re.compile(r"^\d+ selected documents")).wait_for(timeout=60_000)
        settle(page)
        selected = int(re.search(r"(\d+) selected documents", main.inner_text()).group(1))
        with page.expect_download(timeout=60_000) as download:
            main.get_by_role("button", name="Selection as CSV").click()
        with open(download.value.path(), encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        assert selected > 0 and len(rows) == selected, (selected, len(rows))
        assert all(r["_id"] and r["text"] for r in rows) and list(rows[0]) == ["_id", "title", "text", "node", "path"]
        check(page, "Map")


#: Imported by the app process (``PYTHONPATH``): while the file ``$HCE_TEST_ENCODE_GATE`` exists, an encode run
#: by a background job holds after its first batch, so a test sees the encoding in progress however fast the fake
#: encoder is (the sample takes it about a second); queries and page scripts are never held.
ENCODE_GATE_HOOK = '''
import os, threading, time
from hce_engine.encoder import fake

_encode = fake.FakeEncoder.encode


def _held_encode(self, texts, batch_size=None, max_length=None, progress=None, cancel=None):
    gate = os.environ.get("HCE_TEST_ENCODE_GATE")
    if progress is None or not gate or not threading.current_thread().name.startswith("hce-"):
        return _encode(self, texts, batch_size, max_length, progress, cancel)

    def held(p):
        progress(p)
        while os.path.exists(gate):
            time.sleep(0.1)
    return _encode(self, texts, batch_size, max_length, held, cancel)


fake.FakeEncoder.encode = _held_encode
'''

#: Words of the uploaded corpus's topics: its "abstracts" are sentences built from one topic's words each.
TOPICS = {
    "astronomy": ["planet", "orbit", "telescope", "galaxy", "star", "comet", "nebula", "gravity"],
    "cooking": ["bread", "oven", "flour", "yeast", "dough", "butter", "recipe", "knead"],
    "sailing": ["boat", "sail", "harbour", "wind", "keel", "anchor", "tide", "mast"],
    "music": ["guitar", "chord", "melody", "rhythm", "song", "drum", "tempo", "scale"],
    "medicine": ["vaccine", "immune", "antibody", "infection", "dose", "trial", "patient", "virus"],
    "gardening": ["soil", "seed", "compost", "tomato", "root", "prune", "bloom", "watering"],
}
SENTENCES = ["We study how {a} relates to {b}.", "Results show the {a} improves {b} and {c}.",
             "A survey of {a}, {b} and {c} in practice.", "The {a} of the {b} changes with the {c}.",
             "We propose a new method for {a} based on {b}.", "Experiments on {c} confirm the role of {a}."]


def abstracts_csv(n: int = 300, seed: int = 0) -> bytes:
    """``n`` short abstracts as CSV (``id,title,text``, no queries): three sentences each about one topic."""
    import csv
    import io
    import random
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "title", "text"])
    topics = list(TOPICS)
    for i in range(n):
        words = TOPICS[topics[i % len(topics)]]

        def fill(template: str, words: list[str] = words) -> str:
            return template.format(**dict(zip("abc", rng.sample(words, 3), strict=True)))
        text = " ".join(fill(rng.choice(SENTENCES)) for _ in range(3))
        writer.writerow([f"abs-{i}", fill("{a} and {b}").capitalize(), text])
    return out.getvalue().encode()


def chosen(selectbox) -> str:
    """What a selectbox shows as chosen (its combobox's value; its placeholder when nothing is)."""
    box = selectbox.get_by_role("combobox")
    return box.input_value() or box.get_attribute("placeholder") or ""


@pytest.fixture
def held_sample_server(tmp_path, fake_model):
    """`hce app --sample` (as :func:`server`) whose first encode holds after its first batch until the test
    removes the gate file; yields (URL, gate)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(ENCODE_GATE_HOOK)
    gate = tmp_path / "encode-gate"
    gate.touch()
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    served = serve(tmp_path, fake_model, ["--sample"], {"PYTHONPATH": path, "HCE_TEST_ENCODE_GATE": str(gate)})
    url = next(served)
    try:
        yield url, gate
    finally:
        gate.unlink(missing_ok=True)
        served.close()


def test_a_newcomers_first_hour(held_sample_server, tmp_path):
    """One user's first hour: the sample encoding (Train and Tree show its progress), an uploaded CSV of 300
    abstracts without queries imported and encoded, trained with the preset the Train page offers (unsupervised,
    the self signal) until its outcome shows, searched (the trained column never defaults to a worse run), and
    mapped at levels 1 to 3 (no two label boxes overlap; a placed query's star is drawn above the labels). No
    page shows an exception or an error."""
    import re
    url, gate = held_sample_server
    shots = iter(range(1, 100))

    def look(name: str, what: str) -> None:
        check(page, name, f"newcomer-{next(shots):02d}-{what}.png")

    with chromium_page(tmp_path) as page:
        main = page.locator('[data-testid="stMain"]')
        page.goto(url, timeout=60_000)
        settle(page)
        main.get_by_text("Encoding jargon").wait_for(timeout=60_000)
        look("Corpus", "corpus-encoding")

        # 1. while the sample is being encoded: Train and Tree show its progress (and no dead end)
        open_page(page, "Train")
        main.get_by_text("training can start when it is done").wait_for(timeout=60_000)
        main.get_by_test_id("stProgress").get_by_text("encoding the documents").wait_for(timeout=60_000)
        assert main.get_by_role("button", name="Start training").is_disabled()
        look("Train", "train-encoding")
        open_page(page, "Tree")
        main.get_by_text("its tree appears here when it is done").wait_for(timeout=60_000)
        main.get_by_test_id("stProgress").get_by_text("encoding the documents").wait_for(timeout=60_000)
        look("Tree", "tree-encoding")
        gate.unlink()
        # the Tree page draws the tree by itself when the encoding ends
        main.get_by_text(re.compile(r"[\d,]+ documents · [\d,]+ leaf clusters")).wait_for(timeout=120_000)
        settle(page)
        look("Tree", "tree-encoded")

        # 2. upload 300 abstracts without queries on the Corpus page and import them (encoded right away)
        open_page(page, "Corpus")
        main.get_by_text("Encoded by run #").wait_for(timeout=120_000)
        adding = main.locator('[data-testid="stExpander"]', has_text="Add a corpus")
        adding.locator("summary").first.click()
        adding.locator('input[type="file"]').set_input_files(
            files=[{"name": "abstracts.csv", "mimeType": "text/csv", "buffer": abstracts_csv()}])
        settle(page)
        adding.get_by_role("button", name="Import").click()
        main.get_by_text("Imported abstracts (csv): the file is valid.").wait_for(timeout=60_000)
        # the imported corpus is the current one (its picker, its statistics), encoded by its own run
        assert chosen(main.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Corpus", exact=True))) \
            == "abstracts"
        main.get_by_text(re.compile(r"Encoded by run #[2-9]: ready")).wait_for(timeout=120_000)
        settle(page)
        assert main.get_by_test_id("stMetric").filter(has_text="Documents").first.inner_text().endswith("300")
        look("Corpus", "corpus-imported")

        # 3. train with the preset the page offers a corpus without judged queries, until its outcome shows
        open_page(page, "Train")
        assert chosen(main.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Corpus", exact=True))) \
            == "abstracts"
        preset = main.get_by_test_id("stRadio").filter(has_text="Preset")
        assert preset.get_by_role("radio", name=re.compile("^unsupervised")).is_checked()
        assert main.get_by_text("Signal self. No labels needed").count() == 1
        look("Train", "train-offered")
        main.get_by_role("button", name="Start training").click()
        main.get_by_text("label-free checks").first.wait_for(timeout=300_000)
        settle(page)
        outcome = main.get_by_text("label-free checks").first.inner_text()
        verdict = ("worse" if "Worse than the starting encoder" in outcome else
                   "no better" if "No better than the starting encoder" in outcome else "better")
        finished = main.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Run", exact=True))
        run_label = chosen(finished)
        assert re.fullmatch(r"#\d+ self .*\)", run_label), run_label
        run_id = int(run_label[1:].split()[0])
        assert ("worse than its start" in run_label) == (verdict == "worse"), (run_label, verdict)
        look("Train", "train-outcome")

        # 4. search the corpus: the trained column shows the run unless it came out worse
        search(page, "telescope and galaxy")
        picker = main.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Trained encoder", exact=True))
        if verdict == "worse":
            assert chosen(picker) != run_label
            assert main.get_by_text(f"run #{run_id} · ▲/▼").count() == 0
            picker.get_by_role("combobox").click()
            page.keyboard.press("ArrowDown")
            assert "worse than its start" in page.get_by_role("option").filter(has_text=f"#{run_id} ").inner_text()
            page.keyboard.press("Escape")
        else:
            assert chosen(picker) == run_label
            assert main.get_by_text(f"run #{run_id} · ▲/▼").count() == 1
        assert main.get_by_text("score ").count() >= 20  # the starting encoder's column and BM25's at least
        look("Search", "search")

        # 5. the map at levels 1-3 (as deep as the corpus's tree goes): no two label boxes overlap; a query
        open_page(page, "Map")
        main.locator(".js-plotly-plot .textpoint text").first.wait_for(timeout=240_000)  # UMAP: once per app
        settle(page)
        depth = int(main.get_by_label("Colour by tree level", exact=True).get_attribute("max") or 3)
        print(f"run #{run_id}: {verdict} ({run_label}); map depth {depth}")
        for level in range(1, min(3, depth) + 1):  # 300 abstracts: a tree of depth 2 (b = 10)
            shot = f"newcomer-{next(shots):02d}-map-level{level}.png"
            drawn = map_at_level(page, level, shot)
            assert all(len(chart["labels"]) >= 2 for chart in drawn), (level, [c["labels"] for c in drawn])
            check(page, "Map", shot)
        shot = f"newcomer-{next(shots):02d}-map-query.png"
        place_query_on_map(page, "telescope and galaxy", shot)
        check(page, "Map", shot)


def test_experiments_page_shows_a_finished_experiment(tmp_path, fake_model):
    """A tiny experiment (negatives recipe, two seeds) finished in the workspace before the app starts: the
    Experiments page shows its queue, its results table with every arm, the verdicts and its plots."""
    from conftest import write_toy_beir

    from hce_engine import Workspace
    from hce_engine.experiments import recipe_spec
    from hce_engine.threads import one_thread_if
    ws = Workspace(str(tmp_path / "ws"), default_model=fake_model)
    try:
        ws.import_corpus(write_toy_beir(tmp_path / "toy"), name="toy")
        eid = ws.create_experiment(recipe_spec("negatives", "toy", [0, 1], "quick", {"siblings": 2, "batch_size": 4}))
        with one_thread_if(True):
            assert ws.run_experiment(eid).done == 6
    finally:
        ws.close()
    served = serve(tmp_path, fake_model, [])
    url = next(served)
    try:
        with chromium_page(tmp_path, {"width": 1400, "height": 3000}) as page:  # tall: the plots in the shot
            page.goto(url, timeout=60_000)
            settle(page)
            open_page(page, "Experiments")
            main = page.locator('[data-testid="stMain"]')
            main.get_by_text("Results", exact=True).wait_for(timeout=60_000)
            main.locator(".js-plotly-plot").nth(2).wait_for(timeout=60_000)  # metric, recall@k, per-query scatter
            settle(page)
            assert main.get_by_text("6 of 6 runs finished").count() == 1
            assert main.get_by_text("siblings against random:").count() == 1
            assert main.get_by_text("in-batch against random:").count() == 1
            grids = main.get_by_test_id("stDataFrame")
            assert grids.count() == 3  # the experiments, the queue, the results
            assert page.locator(".js-plotly-plot .xtick text", has_text="random (control)").count() >= 1
            assert page.locator(".js-plotly-plot .legendtext", has_text="siblings").count() >= 1
            table = grids.nth(2)
            table.scroll_into_view_if_needed()
            # the grid draws on a canvas; its cells are also in the canvas's accessible table
            cells = table.locator('table[role="grid"] td').evaluate_all("els => els.map((e) => e.textContent)")
            for arm in ("random (control)", "siblings", "in-batch"):
                assert cells.count(arm) == 1, (arm, cells[:40])
            for label in ("Table (CSV)", "Full results (JSON)", "Report (HTML)"):
                assert main.get_by_role("button", name=label).count() == 1, label
            check(page, "Experiments", "experiments.png")
    finally:
        served.close()
