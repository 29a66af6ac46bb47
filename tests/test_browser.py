"""End to end in headless chromium: `hce app --sample` as the README starts it, every page screenshotted.

Fails on any exception box or st.error on any page. Screenshots go to ``test-artifacts/screenshots/``
(or ``$HCE_SCREENSHOTS``). Needs Debian's /usr/bin/chromium and the playwright Python package.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOTS = os.environ.get("HCE_SCREENSHOTS", os.path.join(ROOT, "test-artifacts", "screenshots"))
PAGES = ["Corpus", "Train", "Tree", "Siblings", "Map", "Search", "Runs", "Learn"]
TIMEOUT = 60.0  # seconds a page may take to settle (the fake encoder)
sys.path.insert(0, ROOT)

from benchmarks import app_browser  # noqa: E402
from benchmarks.app_browser import ARGS, CHROMIUM, free_port  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]


@pytest.fixture
def server(tmp_path, fake_model):
    """`hce --workspace TMP app --port P --sample` with the fake encoder; yields the base URL."""
    port = free_port()
    hce = shutil.which("hce", path=os.path.dirname(sys.executable)) or "hce"
    env = dict(os.environ, HCE_DEFAULT_MODEL=fake_model)
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([hce, "--workspace", str(tmp_path / "ws"), "app", "--port", str(port), "--sample"],
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


def check(page, name: str) -> None:
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, f"{PAGES.index(name) + 1:02d}-{name.lower()}.png"), full_page=True)
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{name}: exception shown: {exceptions.first.inner_text()}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{name}: error shown: {errors.first.inner_text()}"


def open_page(page, name: str) -> None:
    app_browser.open_page(page, name, TIMEOUT)


def test_sample_app_end_to_end(server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    print(f"screenshots: {SHOTS}")
    with playwright.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                   headless=True, args=ARGS, viewport={"width": 1400, "height": 1600})
        try:
            page = ctx.new_page()
            page.goto(server, timeout=60_000)
            settle(page)
            # --sample imported the Jargon File; the app encodes it in the background and reports when done.
            page.get_by_text("Encoded by run #").wait_for(timeout=120_000)
            settle(page)
            check(page, "Corpus")

            open_page(page, "Search")
            box = page.get_by_label("Query")
            box.fill("a program that never ends")
            box.press("Enter")
            page.get_by_text("lexical reference (word overlap)").wait_for(timeout=60_000)
            settle(page)
            assert page.locator('[data-testid="stMain"]').get_by_text("score ").count() == 20  # 10 dense + 10 BM25
            check(page, "Search")

            for name in ("Train", "Tree", "Siblings", "Map", "Runs", "Learn"):
                open_page(page, name)
                check(page, name)
        finally:
            ctx.close()


def test_deep_link_as_first_request_runs_the_navigation(server, tmp_path):
    """Reloading a page's URL after restarting `hce app` must show the app's own menu (titles, not file names)."""
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                   headless=True, args=ARGS)
        try:
            page = ctx.new_page()
            page.goto(server + "/search", timeout=60_000)
            settle(page)
            nav = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
            assert [t.split()[-1] for t in nav] == PAGES, nav  # inner text: "icon_name\n\nTitle"
        finally:
            ctx.close()
