"""The fetchers' address guard: no hop of a fetch reaches a private or loopback address unless allowed.

The servers are real, on two loopback addresses: 127.0.0.1 stands for the public
site (allowed by `fetcher.allow_private_targets` here) and 127.0.0.2 for a host on
the private network that a hostile page tries to make Termshift reach (redirect,
subresource, script). The tests check what the fetcher reports AND that the
private host never received a request.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from termshift.config import DEFAULTS, FetcherSettings, load_settings
from termshift.errors import ErrorKind, FetchError
from termshift.trackers.browser_path import find_chromium
from termshift.trackers.fetch_browser import BrowserFetcher
from termshift.trackers.fetcher import HTML_ONLY, FetchRequest, fetch_all, guard_request
from termshift.trackers.run import FAILED, FINAL_LOCATION_TRAILER, NEW_VERSION, run_tracking
from tests.support.servers import LocalServer, html_page
from tests.test_track import history, outcomes, track_settings

PUBLIC, PRIVATE, OTHER = "127.0.0.1", "127.0.0.2", "127.0.0.3"  # OTHER: another (allowed) site
ONLY_PUBLIC = [PUBLIC, OTHER]
CHROMIUM = find_chromium()


def settings_allowing(allow: list[str]) -> FetcherSettings:
    return load_settings(None, environ={}, overrides={"fetcher": {
        "timeout": 3.0, "host_delay": 0.0, "retries": 0, "allow_private_targets": allow}}).fetcher


@pytest.fixture
def sites() -> Iterator[LocalServer]:
    """127.0.0.1 (allowed) and 127.0.0.2 (private) with pages, redirects and hostile pages."""
    with LocalServer(hosts=[PUBLIC, PRIVATE, OTHER]) as server:
        secret = server.url("/secret", host=PRIVATE)
        server.add_page("/secret", html_page("Secret", "internal data"))
        server.add_page("/page", html_page("Terms", "The public terms."))
        server.route("/to-private", lambda exchange: exchange.redirect(secret))
        server.route("/to-page", lambda exchange: exchange.redirect(server.url("/page")))
        server.add_page("/with-image", html_page("Terms", "With an image.", head="")
                        .replace("</main>", f'<img src="{server.url("/pixel.png", host=PRIVATE)}"></main>'))
        server.add_page("/with-fetch", html_page("Terms", "With a script.").replace(
            "</body>", f'<script>fetch("{server.url("/api", host=PRIVATE)}").catch(() => 0)</script></body>'))
        # A frame from another site runs in its own renderer process (site isolation).
        server.add_page("/with-frame", html_page("Terms", "With a frame.").replace(
            "</main>", f'<iframe src="{server.url("/to-private", host=OTHER)}"></iframe></main>'))
        server.add_page("/js-redirect", html_page("Terms", "Moving.").replace(
            "</body>", f'<script>location.replace("{secret}")</script></body>'))
        yield server


def private_requests(server: LocalServer) -> list[str]:
    return [request.path for request in server.requests if request.host == PRIVATE]


# -- the rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.2:8080/x", "a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
    ("http://169.254.1.1/", "a link-local address"),
    ("https://10.1.2.3/terms", "a private address"),
    ("http://192.168.0.1/", "a private address"),
    ("http://[::1]/", "a loopback address"),
    ("http://[::ffff:127.0.0.2]/", "a loopback address"),
    ("http://0.0.0.0/", "an unspecified address"),
])
def test_private_and_loopback_addresses_are_refused(url: str, reason: str) -> None:
    with pytest.raises(FetchError) as refused:
        guard_request(url, "https://example.org/terms", ONLY_PUBLIC)
    message = str(refused.value)
    assert refused.value.kind is ErrorKind.PERMANENT
    assert "https://example.org/terms" in message and reason in message
    assert "fetcher.allow_private_targets" in message


def test_the_allow_list_admits_addresses_networks_and_other_schemes() -> None:
    guard_request("http://127.0.0.1:9/x", "http://127.0.0.1:9/x", ONLY_PUBLIC)
    guard_request("http://10.9.8.7/x", "http://10.9.8.7/x", ["10.0.0.0/8"])
    guard_request("http://localhost:9/x", "http://localhost:9/x", ["localhost"])
    guard_request("data:text/html,hello", "http://127.0.0.1/x", [])  # no host: nothing to reach


def test_the_setting_exists_with_an_empty_default() -> None:
    assert "allow_private_targets" in DEFAULTS["fetcher"]
    assert "fetcher.allow_private_targets" in (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


# -- HTTP (Scrapy) ---------------------------------------------------------------------------------


def test_http_fetches_refuse_private_hops_and_report_the_final_url(sites: LocalServer) -> None:
    requests = [
        FetchRequest(sites.url("/to-private"), False, key="redirect"),
        FetchRequest(sites.url("/secret", host=PRIVATE), False, key="direct"),
        FetchRequest(sites.url("/to-page"), False, key="allowed"),
    ]
    results = {result.key: result for result in fetch_all(requests, settings_allowing(ONLY_PUBLIC), backoff=0.01)}
    for key in ("redirect", "direct"):
        error = results[key].error
        assert error is not None and results[key].content is None
        assert error.kind is ErrorKind.PERMANENT
        assert "Refused to contact a private network address" in str(error)
        assert f"{PRIVATE} resolves to {PRIVATE}, a loopback address" in str(error)
        assert "fetcher.allow_private_targets" in str(error)
    assert f"when trying to fetch '{sites.url('/to-private')}'" in str(results["redirect"].error)
    assert private_requests(sites) == []  # never contacted
    allowed = results["allowed"]
    assert allowed.ok and allowed.fetcher == HTML_ONLY and "The public terms." in allowed.content
    assert allowed.final_url == sites.url("/page")


def test_http_fetches_reach_an_allowed_private_host(sites: LocalServer) -> None:
    requests = [FetchRequest(sites.url("/to-private"), False, key="redirect")]
    [result] = fetch_all(requests, settings_allowing([PUBLIC, PRIVATE]), backoff=0.01)
    assert result.ok and "internal data" in result.content
    assert private_requests(sites) == ["/secret"]


# -- the browser -------------------------------------------------------------------------------------


@pytest.fixture
def browser_fetch() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no Chromium found")
    loop = asyncio.new_event_loop()
    fetcher = BrowserFetcher(executable=str(CHROMIUM), timeout=5.0, wait_for_selectors=0.5,
                             allow_private_targets=ONLY_PUBLIC)

    def fetch(url: str) -> Any:
        return loop.run_until_complete(fetcher.fetch(url))

    yield fetch
    loop.run_until_complete(fetcher.close())
    loop.close()


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/to-private", "/with-image", "/with-fetch", "/js-redirect", "/with-frame"])
def test_the_browser_refuses_private_navigations_and_subresources(sites: LocalServer, browser_fetch: Any,
                                                                 path: str) -> None:
    with pytest.raises(FetchError) as refused:
        browser_fetch(sites.url(path))
    message = str(refused.value)
    assert refused.value.kind is ErrorKind.PERMANENT
    assert "Refused to contact a private network address" in message and PRIVATE in message
    assert f"when trying to fetch '{sites.url(path)}'" in message
    assert private_requests(sites) == []


@pytest.mark.browser
def test_the_browser_follows_allowed_redirects(sites: LocalServer, browser_fetch: Any) -> None:
    page = browser_fetch(sites.url("/to-page"))
    assert "The public terms." in page.content and page.final_url == sites.url("/page")


# -- a tracking run: nothing recorded for a refused page; the final URL in the metadata ---------------


def test_tracking_records_nothing_for_a_refused_hop_and_keeps_the_final_url(sites: LocalServer,
                                                                           tmp_path: Path) -> None:
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    declarations.mkdir()
    for service, path in (("Hostile", "/to-private"), ("Moved", "/to-page")):
        terms = {"Terms of Service": {"fetch": sites.url(path), "select": "main", "executeClientScripts": False}}
        (declarations / f"{service}.json").write_text(json.dumps({"name": service, "terms": terms}))
    summary = run_tracking(track_settings(declarations, data, allow_private_targets=ONLY_PUBLIC))
    assert outcomes(summary) == {("Hostile", "Terms of Service"): FAILED, ("Moved", "Terms of Service"): NEW_VERSION}
    failure = next(result for result in summary.documents if result.service_id == "Hostile")
    assert "Refused to contact a private network address" in json.dumps(summary.to_json())
    assert failure.outcome == FAILED
    assert history(data, "snapshots", "Hostile", "Terms of Service") == []
    [snapshot] = history(data, "snapshots", "Moved", "Terms of Service")
    assert snapshot.metadata["x-source-document-location"] == sites.url("/to-page")
    assert snapshot.metadata[FINAL_LOCATION_TRAILER] == sites.url("/page")
    assert private_requests(sites) == []


@pytest.mark.parametrize(("location", "final", "expected"), [
    ("https://example.com", "https://example.com/", None),
    ("https://example.com/terms", "https://example.com/terms", None),
    ("https://example.com/terms", "https://www.example.com/terms", "https://www.example.com/terms"),
    ("https://example.com/terms", None, None),
])
def test_redirected_to_names_only_a_real_move(location: str, final: str | None, expected: str | None) -> None:
    from termshift.trackers.fetcher import FetchResult

    assert FetchResult(location=location, final_url=final).redirected_to == expected


RESOLVER_PROBE = """
import sys
from twisted.internet import reactor
from termshift.trackers.fetch_http import GuardedResolver

resolver = GuardedResolver(reactor, 0, 5.0)
resolver.allow = sys.argv[1:]
outcome = []
deferred = resolver.getHostByName("localhost")
deferred.addCallbacks(lambda address: outcome.append("resolved " + address),
                      lambda failure: outcome.append("refused " + str(failure.value)))
deferred.addBoth(lambda _: reactor.stop())
reactor.run()
print(outcome[0])
"""


@pytest.mark.parametrize(("allow", "expected"), [
    ([], "refused connecting to localhost: localhost resolves to 127.0.0.1, a loopback address; "
         "add it to fetcher.allow_private_targets"),
    (["localhost"], "resolved 127.0.0.1"),
])
def test_scrapy_checks_addresses_again_when_it_resolves(allow: list[str], expected: str) -> None:
    """The resolver Scrapy connects through (a DNS answer may change after the request was checked)."""
    root = Path(__file__).resolve().parents[1]
    answer = subprocess.run([sys.executable, "-c", RESOLVER_PROBE, *allow], capture_output=True, text=True,
                            timeout=60, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip().startswith(expected)
