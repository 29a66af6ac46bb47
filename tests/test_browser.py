"""End to end in headless chromium: `hce app --sample` as the README starts it, every page screenshotted.

Fails on any exception box or st.error on any page. Screenshots go to ``test-artifacts/screenshots/``
(or ``$HCE_SCREENSHOTS``). Needs Debian's /usr/bin/chromium and the playwright Python package.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOTS = os.environ.get("HCE_SCREENSHOTS", os.path.join(ROOT, "test-artifacts", "screenshots"))
PAGES = ["Corpus", "Train", "Tree", "Siblings", "Map", "Search", "Runs", "Learn"]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"hce app exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


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
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        print(f"app log: {tmp_path / 'app.log'}")


def settle(page, timeout: float = 60.0) -> None:
    """Wait until the script run has ended: the 'Running...' status widget absent for 1.5 s in a row."""
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout * 1000)
    end, quiet_since = time.time() + timeout, time.time()
    while time.time() < end:
        if page.locator('[data-testid="stStatusWidget"]').count():
            quiet_since = time.time()
        elif time.time() - quiet_since >= 1.5:
            return
        page.wait_for_timeout(250)
    raise TimeoutError("the page kept running")


def check(page, name: str) -> None:
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, f"{PAGES.index(name) + 1:02d}-{name.lower()}.png"), full_page=True)
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{name}: exception shown: {exceptions.first.inner_text()}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{name}: error shown: {errors.first.inner_text()}"


def open_page(page, name: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=name).first.click()
    page.wait_for_function(f"document.querySelector('[data-testid=\"stMain\"] h1')?.innerText.includes('{name}')",
                           timeout=60_000)
    settle(page)


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
