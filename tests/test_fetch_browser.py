"""The browser fetcher: Playwright driving the system's Chromium, alone and inside fetch_all.

Browser tests are marked `browser` and skipped when no Chromium is found. One
browser is shared by the module (launching one takes seconds): `BrowserHarness`
runs it on an event loop in a background thread.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from termshift.config import FetcherSettings, load_settings
from termshift.errors import BlockedPageError, ErrorKind, FetchError
from termshift.trackers.browser_path import find_chromium, resolve_browser_path
from termshift.trackers.fetch_browser import (
    CHROMIUM_ARGS,
    BrowserFetcher,
    BrowserPage,
    accept_language,
    parse_language,
)
from termshift.trackers.fetcher import FULL_DOM, HTML_ONLY, FetchRequest, fetch_all
from tests.support.servers import FaultServer, JsPageServer

CHROMIUM = find_chromium()
TIMEOUT = 3.0
WAIT = 1.5


def browser_test(function: Any) -> Any:
    """Mark a test as needing Chromium: selected by `-m browser`, skipped when there is none."""
    skip = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (install chromium or set a browser path)")
    return pytest.mark.browser(skip(function))


class BrowserHarness:
    """A started BrowserFetcher on its own event loop, callable from synchronous tests."""

    def __init__(self, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="browser harness", daemon=True)
        self.thread.start()
        self.fetcher = BrowserFetcher(**options)
        self.run(self.fetcher.start())

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def fetch(self, url: str, selectors: list[str] | tuple[str, ...] = ()) -> BrowserPage:
        return self.run(self.fetcher.fetch(url, selectors))

    def close(self) -> None:
        self.run(self.fetcher.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def fetcher_settings(**overrides: Any) -> FetcherSettings:
    return load_settings(None, environ={}, overrides={"fetcher": overrides}).fetcher


@pytest.fixture(scope="module")
def js_server() -> Iterator[JsPageServer]:
    with JsPageServer() as server:
        yield server


@pytest.fixture(scope="module")
def fault_server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserHarness]:
    if CHROMIUM is None:
        pytest.skip("no Chromium found")
    harness = BrowserHarness(executable=str(CHROMIUM), language="en-IE,en-GB,en", timeout=TIMEOUT,
                             wait_for_selectors=WAIT, pages=2)
    yield harness
    harness.close()


def read_json_pre(content: str) -> dict[str, Any]:
    return json.loads(re.search(r'<pre id="language">(.*?)</pre>', content, re.DOTALL).group(1))


# -- settings helpers (no browser needed) ---------------------------------------------------------


@pytest.mark.parametrize(("value", "tags", "header"), [
    ("en", ["en"], "en"),
    ("fr-FR,fr", ["fr-FR", "fr"], "fr-FR,fr;q=0.9"),
    (" en-IE , en-GB,en ,", ["en-IE", "en-GB", "en"], "en-IE,en-GB;q=0.9,en;q=0.8"),
])
def test_languages_as_ota_parses_them(value: str, tags: list[str], header: str) -> None:
    assert parse_language(value) == tags
    assert accept_language(tags) == header


@pytest.mark.parametrize("value", ["en;q=0.8", "", " , ", "fr-FR,fr;Q=0.5"])
def test_bad_languages_are_configuration_errors(value: str) -> None:
    with pytest.raises(FetchError) as caught:
        parse_language(value)
    assert caught.value.kind is ErrorKind.CONFIGURATION and "fetcher.language" in str(caught.value)


def test_browser_path_setting(tmp_path: Path) -> None:
    assert resolve_browser_path("") == find_chromium()
    for bad in (tmp_path / "missing", tmp_path):  # absent, and a folder
        with pytest.raises(FetchError) as caught:
            resolve_browser_path(str(bad))
        assert caught.value.kind is ErrorKind.CONFIGURATION and repr(str(bad)) in str(caught.value)
    script = tmp_path / "chrome"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert resolve_browser_path(str(script)) == script


def test_chromium_is_kept_away_from_google_services() -> None:
    for flag in ("--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--no-first-run", "--headless", "--disable-gpu"):
        assert flag in CHROMIUM_ARGS


# -- BrowserFetcher on its own ---------------------------------------------------------------------


@browser_test
@pytest.mark.parametrize("path", ["/js/delayed?ms=300", "/js/filled?ms=300"])
def test_waits_for_content_written_by_javascript(browser: BrowserHarness, js_server: JsPageServer,
                                                 path: str) -> None:
    page = browser.fetch(js_server.url(path), ["#terms"])
    assert page.status == 200 and page.mime_type == "text/html"
    assert JsPageServer.TERMS_TEXT in page.content  # the live DOM, after scripts ran
    assert page.final_url == js_server.url(path)


@browser_test
def test_a_selector_that_never_fills_is_waited_for_then_tolerated(browser: BrowserHarness,
                                                                  js_server: JsPageServer) -> None:
    start = time.monotonic()
    page = browser.fetch(js_server.url("/js/never"), ["#terms", "#absent"])
    elapsed = time.monotonic() - start
    assert page.status == 200 and "Shell text only." in page.content
    assert WAIT <= elapsed < WAIT + TIMEOUT + 3  # both selectors waited for in parallel, not one after another


@browser_test
def test_languages_identity_and_viewport(browser: BrowserHarness, js_server: JsPageServer) -> None:
    seen = read_json_pre(browser.fetch(js_server.url("/js/language"), ["#language"]).content)
    assert seen["header"] == "en-IE,en-GB;q=0.9,en;q=0.8"
    assert seen["language"] == "en-IE" and seen["languages"] == ["en-IE", "en-GB", "en"]
    assert seen["webdriver"] is False and "HeadlessChrome" not in seen["userAgent"]
    assert (seen["width"], seen["height"]) == (1920, 1080)


@browser_test
def test_pdf_bytes_are_captured(browser: BrowserHarness, js_server: JsPageServer) -> None:
    page = browser.fetch(js_server.url("/js/pdf"))
    assert page.mime_type == "application/pdf" and page.content == js_server.pdf and page.status == 200


@browser_test
def test_an_error_status_comes_back_with_its_page(browser: BrowserHarness, fault_server: FaultServer) -> None:
    page = browser.fetch(fault_server.url("/status/404"))
    assert page.status == 404 and "This answer has the status 404." in page.content


@browser_test
def test_navigation_failures_use_otas_wording(browser: BrowserHarness, fault_server: FaultServer) -> None:
    slow, reset = fault_server.url("/sleep/10"), fault_server.url("/reset")
    with pytest.raises(FetchError) as caught:
        browser.fetch(slow)
    assert str(caught.value) == f"Fetch failed: Timed out after {TIMEOUT:g} seconds when trying to fetch '{slow}'"
    assert caught.value.kind is ErrorKind.TRANSIENT
    with pytest.raises(FetchError) as caught:
        browser.fetch(reset)
    assert str(caught.value) == f"Fetch failed: Network system error ECONNRESET occurred when trying to fetch '{reset}'"
    assert caught.value.may_be_bot_blocking


@browser_test
def test_a_javascript_challenge_is_given_time_to_pass(browser: BrowserHarness, js_server: JsPageServer) -> None:
    before = js_server.hits("/js/challenge")
    page = browser.fetch(js_server.url("/js/challenge"))
    assert page.status == 200 and JsPageServer.TERMS_TEXT in page.content
    assert js_server.hits("/js/challenge") - before == 2  # the challenge, then the reload with its cookie


@browser_test
def test_contexts_are_fresh_for_each_fetch(browser: BrowserHarness, js_server: JsPageServer) -> None:
    """The challenge cookie of one fetch does not leak into the next."""
    browser.fetch(js_server.url("/js/challenge"))
    before = js_server.hits("/js/challenge")
    browser.fetch(js_server.url("/js/challenge"))
    cookies = [request.headers.get("cookie") for request in js_server.requests_to("/js/challenge")[before:]]
    assert cookies[0] is None


@browser_test
def test_pages_render_at_most_browser_pages_at_once(browser: BrowserHarness) -> None:
    with FaultServer() as server:
        # Each answer takes 1.2 s (0.5 s was too short on a loaded machine for two renders started
        # together to overlap on the server: every request now passes the address guard first),
        # well within the 3 s navigation time-out.
        urls = [server.url(f"/page/p{n}?delay=1.2") for n in range(4)]

        async def all_at_once() -> list[BrowserPage]:
            return await asyncio.gather(*(browser.fetcher.fetch(url) for url in urls))

        pages = browser.run(all_at_once())
        assert [page.status for page in pages] == [200] * 4
        assert server.max_in_flight() == 2


# -- a remote browser over the DevTools protocol ---------------------------------------------------


@browser_test
def test_rendering_on_a_remote_browser_over_cdp(tmp_path: Path, js_server: JsPageServer) -> None:
    profile = tmp_path / "profile"
    remote = subprocess.Popen(
        [str(CHROMIUM), *CHROMIUM_ARGS, "--no-sandbox", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        active_port = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not (active_port.exists() and len(active_port.read_text().split()) == 2):
            assert time.monotonic() < deadline, "the remote Chromium did not open its DevTools port"
            time.sleep(0.1)
        port, path = active_port.read_text().split()
        for endpoint in (f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}{path}"):
            harness = BrowserHarness(endpoint=endpoint, timeout=TIMEOUT, wait_for_selectors=WAIT)
            try:
                page = harness.fetch(js_server.url("/js/delayed?ms=300"), ["#terms"])
            finally:
                harness.close()
            assert page.status == 200 and JsPageServer.TERMS_TEXT in page.content
        assert remote.poll() is None  # disconnecting left the remote browser running
    finally:
        remote.terminate()
        remote.wait(timeout=10)


# -- the browser inside fetch_all: choice, fallback, limits ----------------------------------------


@browser_test
def test_fetch_all_chooses_and_falls_back_like_ota() -> None:
    with FaultServer(hosts=["127.0.0.31"]) as faults, JsPageServer(hosts=["127.0.0.32"]) as pages:
        requests = {
            "403-then-ok": FetchRequest(faults.url("/flaky/1/403/fallback")),
            "403-always": FetchRequest(faults.url("/status/403")),
            "403-no-browser": FetchRequest(faults.url("/flaky/1/403/nobrowser"), execute_client_scripts=False),
            "static-challenge": FetchRequest(faults.url("/challenge")),
            "js-challenge": FetchRequest(pages.url("/js/challenge")),
            "scripts": FetchRequest(pages.url("/js/delayed?ms=300"), True, ["#terms"]),
            "scripts-pdf": FetchRequest(pages.url("/js/pdf"), True),
            "plain": FetchRequest(faults.url("/page/plain")),
        }
        for key, request in requests.items():
            request.key = key
        settings = fetcher_settings(timeout=5, wait_for_selectors=2, host_delay=0.0, per_host=1, retries=0,
                                    browser_path=str(CHROMIUM))
        results = {result.key: result for result in fetch_all(list(requests.values()), settings)}
        peaks = (faults.max_in_flight(), pages.max_in_flight())

    recovered = results["403-then-ok"]
    assert recovered.ok and recovered.fetcher == FULL_DOM and recovered.attempts == 2
    assert recovered.mime_type == "text/html" and "Recovered" in recovered.content

    forbidden = results["403-always"]
    assert forbidden.fetcher == FULL_DOM and forbidden.attempts == 2
    assert str(forbidden.error) == f"Fetch failed: Received HTTP code 403 when trying to fetch '{requests['403-always'].location}'"

    no_browser = results["403-no-browser"]
    assert no_browser.fetcher == HTML_ONLY and no_browser.error.status == 403 and no_browser.attempts == 1

    static = results["static-challenge"]  # blocked over HTTP, and still blocked in the browser
    assert isinstance(static.error, BlockedPageError) and static.fetcher == FULL_DOM
    assert static.error.signature == "cloudflare-challenge" and "Just a moment..." in static.content

    passed = results["js-challenge"]  # blocked over HTTP, passed by the browser
    assert passed.ok and passed.fetcher == FULL_DOM and JsPageServer.TERMS_TEXT in passed.content

    rendered = results["scripts"]
    assert rendered.ok and rendered.fetcher == FULL_DOM and rendered.attempts == 1
    assert JsPageServer.TERMS_TEXT in rendered.content and rendered.mime_type == "text/html"

    pdf = results["scripts-pdf"]
    assert pdf.ok and pdf.fetcher == FULL_DOM and pdf.mime_type == "application/pdf" and pdf.content == pages.pdf

    assert results["plain"].ok and results["plain"].fetcher == HTML_ONLY
    assert peaks == (1, 1)  # per_host holds for the browser's fetches too
