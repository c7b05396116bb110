"""The viewer in a real Chromium, served by the real `termshift serve` on 127.0.0.1.

Skipped cleanly when Playwright or /usr/bin/chromium is missing.
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.archive_factory import build_sample_archive

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-gpu"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Beacon:
    """A local HTTP server that records every request: the hostile page's only way out."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self):
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            do_GET = do_POST = _record

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/beacon"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def beacon():
    server = Beacon()
    yield server
    server.close()


@pytest.fixture(scope="module")
def viewer(tmp_path_factory, beacon):
    """`termshift serve` in a subprocess, on a free port; yields (base URL, sample archive)."""
    root = tmp_path_factory.mktemp("browser")
    sample = build_sample_archive(root, beacon=beacon.url)
    port = free_port()
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(root / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-m", "termshift.cli", "serve", "--versions", str(sample.data / "versions"),
         "--snapshots", str(sample.data / "snapshots"), "--declarations", str(sample.declarations),
         "--index", str(root / "index.sqlite"), "--host", "127.0.0.1", "--port", str(port)],
        cwd=root, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/index.json", timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("termshift serve did not start:\n" + process.stdout.read().decode()) from None
            time.sleep(0.1)
    yield base, sample
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    args = CHROMIUM_ARGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_reader_goes_from_home_to_a_side_by_side_diff(viewer, page):
    base, _sample = viewer
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto(base + "/")
    assert page.title().startswith("Services")
    page.locator(".service-item", has_text="Acme Corp").get_by_role("link", name="Privacy Policy").click()
    page.wait_for_url("**/Acme/Privacy%20Policy")
    assert page.locator("h1").inner_text().startswith("Privacy Policy")
    rows = page.locator("table.timeline tbody tr")
    assert rows.count() == 3  # the technical upgrade is hidden
    rows.first.get_by_role("link", name="See the changes").click()
    page.wait_for_url("**/diff")
    assert page.locator("del", has_text="one").count() >= 1
    assert page.locator("ins", has_text="five").count() >= 1

    page.get_by_role("link", name="Side by side").click()
    page.wait_for_url("**view=split")
    deleted = page.locator("table.diff-split td.old del").filter(has_text="one")
    inserted = page.locator("table.diff-split td.new ins").filter(has_text="five")
    assert deleted.count() == 1 and inserted.count() == 1
    # Highlighted: coloured backgrounds that differ, plus strike-through and underline.
    deleted_style = deleted.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).textDecorationLine]")
    inserted_style = inserted.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).textDecorationLine]")
    assert deleted_style[0] != inserted_style[0] and "rgba(0, 0, 0, 0)" not in (deleted_style[0], inserted_style[0])
    assert "line-through" in deleted_style[1] and "underline" in inserted_style[1]
    assert page.locator("td.new .marker").first.inner_text() == "+"
    # The cookie section was added: a whole inserted line in the right column.
    assert page.locator("table.diff-split td.new ins", has_text="Cookies").count() >= 1

    # Progressive enhancement: the static script runs under the CSP ("j" = next change).
    page.keyboard.press("j")
    page.wait_for_function("location.hash === '#change-1'")
    page.keyboard.press("j")
    page.wait_for_function("location.hash === '#change-2'")
    assert problems == []


def test_keyboard_users_reach_the_content_first(viewer, page):
    base, _sample = viewer
    page.goto(base + "/Acme")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.className")
    assert focused == "skip-link"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"


def test_hostile_snapshot_runs_nothing_on_the_viewers_origin(viewer, beacon, page):
    from playwright.sync_api import Error as PlaywrightError

    base, sample = viewer
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(base + "/")
    page.evaluate("localStorage.setItem('reader', 'kept')")
    snapshot = sample.ids["hostile_snapshot"]

    page.goto(f"{base}/-/snapshot/{snapshot}")
    page.wait_for_timeout(1500)  # let any script, timer, refresh or beacon fire
    assert page.title().startswith("Snapshot")
    assert beacon.hits == []
    frame = page.frame_locator("iframe.snapshot-frame")
    assert frame.locator("h1").inner_text(timeout=5000) == "Conditions"  # the page is displayed…
    frame.locator("#js-link").click()  # …and its javascript: link does nothing
    page.wait_for_timeout(500)
    assert page.title().startswith("Snapshot")
    assert page.url == f"{base}/-/snapshot/{snapshot}"
    assert page.evaluate("localStorage.getItem('pwned')") is None
    assert page.evaluate("localStorage.getItem('reader')") == "kept"

    # Opened directly, outside the viewer's iframe, the raw page is downloaded, never shown:
    # its meta refresh cannot navigate from the viewer's origin.
    with page.expect_download() as download:
        try:
            page.goto(f"{base}/-/snapshot/{snapshot}/raw")
        except PlaywrightError as error:  # "Download is starting": no page was loaded
            assert "download" in str(error).lower()
    assert download.value.suggested_filename.startswith("snapshot-")
    page.wait_for_timeout(1500)
    assert page.url == f"{base}/-/snapshot/{snapshot}"

    # The version extracted from a hostile text is sanitised too.
    page.goto(f"{base}/Caf%C3%A9%20%26%20Co/Terms%20of%20Service/{sample.ids['hostile_version']}")
    page.wait_for_timeout(300)
    assert page.evaluate("typeof window.pwned") == "undefined"

    page.goto(base + "/")
    assert page.evaluate("localStorage.getItem('pwned')") is None
    assert dialogs == []
    assert beacon.hits == []
