"""The browser farm: several remote browsers in `fetcher.browser_endpoint`, against REAL
Playwright browser servers (`launchServer`, the `ws://` path) started here, one killed mid-test.

Pages are rendered round-robin over the endpoints; a killed endpoint is left out and the
pages go to the other; with every endpoint gone each document fails with a clear,
transient error. Both through `BrowserFetcher` and through the whole fetcher
(`iter_fetch`: the Scrapy crawl's process connecting to the farm).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from termshift.config import load_settings
from termshift.errors import ErrorKind, FetchError
from termshift.trackers.browser_farm import parse_endpoints
from termshift.trackers.browser_path import find_chromium
from termshift.trackers.fetch_browser import CHROMIUM_ARGS, BrowserFetcher
from termshift.trackers.fetcher import FULL_DOM, FetchRequest, iter_fetch
from tests.support.browser_server import PlaywrightBrowserServer, playwright_driver
from tests.support.servers import JsPageServer

CHROMIUM = find_chromium()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (install chromium or set a browser path)"),
    pytest.mark.skipif(playwright_driver() is None, reason="Playwright's bundled driver (node) is missing"),
]

BROWSER_ARGS = [*CHROMIUM_ARGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]


def test_endpoints_as_a_comma_separated_string_or_a_list():
    assert parse_endpoints("") == [] and parse_endpoints(None) == []
    assert parse_endpoints("ws://a:1/x, http://b:2 ,ws://a:1/x") == ["ws://a:1/x", "http://b:2"]
    assert parse_endpoints(["ws://a:1/x", "ws://c:3/y,ws://d:4/z"]) == ["ws://a:1/x", "ws://c:3/y", "ws://d:4/z"]
    with pytest.raises(FetchError) as caught:
        parse_endpoints("ws://a:1/x, a:2")
    assert caught.value.kind is ErrorKind.CONFIGURATION and "'a:2'" in str(caught.value)
    # One endpoint is what it always was; several make a farm.
    assert BrowserFetcher(endpoint="ws://a:1/x").endpoint == "ws://a:1/x"
    farm = BrowserFetcher(endpoint=["ws://a:1/x", "ws://b:2/y"])
    assert farm.endpoint == "" and farm.endpoints == ["ws://a:1/x", "ws://b:2/y"]


@pytest.fixture
def js_server():
    with JsPageServer() as server:
        yield server


def start_servers(count: int) -> list[PlaywrightBrowserServer]:
    """`count` browser servers, started side by side (each launches a Chromium)."""
    servers = [PlaywrightBrowserServer(str(CHROMIUM), BROWSER_ARGS) for _ in range(count)]
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(PlaywrightBrowserServer.start, servers))
    return servers


def test_a_farm_of_two_browser_servers_one_killed_then_the_other(js_server):
    """Round-robin over two real servers; one dies mid-test: its pages go to the other (in
    BrowserFetcher, then through the whole fetcher); the other dies: each document fails clearly."""
    first, second = start_servers(2)
    url = js_server.url("/js/delayed?ms=100")
    endpoints = f"{first.ws_endpoint}, {second.ws_endpoint}"
    try:
        fetcher = BrowserFetcher(endpoint=endpoints, timeout=10.0, wait_for_selectors=3.0, pages=2)

        async def in_one_fetcher() -> dict[str, Any]:
            seen: dict[str, Any] = {}
            try:
                pages = await asyncio.gather(*(fetcher.fetch(url, ["#terms"]) for _ in range(2)))
                seen["rendered"] = [JsPageServer.TERMS_TEXT in page.content for page in pages]
                seen["spread"] = dict(fetcher._farm.pages)
                first.kill()  # connected, between two pages
                pages = await asyncio.gather(*(fetcher.fetch(url, ["#terms"]) for _ in range(2)))
                seen["after_kill"] = [JsPageServer.TERMS_TEXT in page.content for page in pages]
                seen["left_out"] = fetcher._farm.left_out()
            finally:
                await fetcher.close()
            return seen

        seen = asyncio.run(in_one_fetcher())
        assert seen["rendered"] == [True, True]
        assert seen["spread"] == {first.ws_endpoint: 1, second.ws_endpoint: 1}  # round-robin
        assert seen["after_kill"] == [True, True]
        assert seen["left_out"] == [first.ws_endpoint]

        # The whole fetcher (its Scrapy process), configured with both: the dead one is left out.
        settings = load_settings(environ={}, overrides={"fetcher": {
            "browser_endpoint": endpoints.replace(" ", ""), "timeout": 10.0, "wait_for_selectors": 3.0,
            "retries": 0, "host_delay": 0.0, "per_host": 2}})
        requests = [FetchRequest(js_server.url(f"/js/delayed?ms=100&n={n}"), execute_client_scripts=True,
                                 css_selectors=["#terms"], key=n) for n in range(2)]
        results = list(iter_fetch(requests, settings.fetcher))
        assert [result.error for result in results] == [None, None]
        assert all(result.fetcher == FULL_DOM and JsPageServer.TERMS_TEXT in result.content for result in results)

        second.kill()
        results = list(iter_fetch(requests, settings.fetcher))
        assert len(results) == 2
        for result in results:
            assert result.content is None and result.error is not None and result.error.kind is ErrorKind.TRANSIENT
            message = str(result.error)
            assert message.startswith("Fetch failed: No browser endpoint could render the page (")
            assert first.ws_endpoint in message and second.ws_endpoint in message
    finally:
        first.kill()
        second.kill()
