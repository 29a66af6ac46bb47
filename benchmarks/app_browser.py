"""Driving the running app in Debian's headless chromium: shared by benchmarks/user_path.py and
tests/test_browser.py (both need the playwright Python package and /usr/bin/chromium)."""
from __future__ import annotations

import socket
import subprocess
import time

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    """Until something listens on ``port``; fails early if ``proc`` (the app) exits."""
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"hce app exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def settle(page, timeout: float) -> None:
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


def open_page(page, name: str, timeout: float) -> None:
    """Click ``name`` in the sidebar and wait for its title and the end of its script run."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=name).first.click()
    page.wait_for_function(f"document.querySelector('[data-testid=\"stMain\"] h1')?.innerText.includes('{name}')",
                           timeout=timeout * 1000)
    settle(page, timeout)
