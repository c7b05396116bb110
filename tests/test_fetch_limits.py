"""The browser path's limits: `fetcher.max_body_bytes` caps the rendered DOM and a captured PDF,
and a Chromium started without its sandbox (as root) says so loudly.

Real Chromium (skipped without one) against a real local server.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from termshift.errors import ErrorKind, FetchError
from termshift.trackers.browser_path import find_chromium
from termshift.trackers.fetch_browser import BrowserFetcher
from tests.support.servers import LocalServer, html_page, minimal_pdf

CHROMIUM = find_chromium()
LIMIT = 4000

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found")]


@pytest.fixture
def site() -> Iterator[LocalServer]:
    with LocalServer() as server:
        server.add_page("/small", html_page("Terms", "Short terms."))
        server.add_page("/big", html_page("Terms", "Long terms. " * 1000))
        # The DOM grows after load, beyond what the server sent.
        server.add_page("/grows", html_page("Terms", "Short.").replace(
            "</body>", "<script>document.body.append('x'.repeat(20000))</script></body>"))
        small_pdf = minimal_pdf("Small PDF")
        server.add_page("/small.pdf", small_pdf, content_type="application/pdf")
        big_pdf = minimal_pdf("Big PDF").replace(b"%PDF-1.4\n", b"%PDF-1.4\n%" + b"x" * 10_000 + b"\n", 1)
        server.add_page("/big.pdf", big_pdf, content_type="application/pdf")
        yield server


@pytest.fixture
def render() -> Iterator[Any]:
    loop = asyncio.new_event_loop()
    fetcher = BrowserFetcher(executable=str(CHROMIUM), timeout=5.0, wait_for_selectors=0.5, max_body_bytes=LIMIT)

    def fetch(url: str) -> Any:
        return loop.run_until_complete(fetcher.fetch(url))

    yield fetch
    loop.run_until_complete(fetcher.close())
    loop.close()


def test_pages_and_pdfs_under_the_limit_are_kept(site: LocalServer, render: Any) -> None:
    assert "Short terms." in render(site.url("/small")).content
    page = render(site.url("/small.pdf"))
    assert page.mime_type == "application/pdf" and page.content.startswith(b"%PDF-")


@pytest.mark.parametrize(("path", "what"), [("/big", "rendered page"), ("/grows", "rendered page"),
                                            ("/big.pdf", "PDF")])
def test_a_rendered_page_or_pdf_over_the_limit_fails_its_document(site: LocalServer, render: Any,
                                                                  path: str, what: str) -> None:
    with pytest.raises(FetchError) as refused:
        render(site.url(path))
    assert refused.value.kind is ErrorKind.PERMANENT
    assert f"The {what} is larger than the limit of {LIMIT} bytes" in str(refused.value)
    assert f"when trying to fetch '{site.url(path)}'" in str(refused.value)


def test_running_without_the_sandbox_is_logged_loudly(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    fetcher = BrowserFetcher(executable=str(CHROMIUM), timeout=5.0)
    with caplog.at_level(logging.WARNING, logger="termshift.trackers.fetch_browser"):
        loop.run_until_complete(fetcher.start())
    loop.run_until_complete(fetcher.close())
    loop.close()
    warnings = [record for record in caplog.records if "--no-sandbox" in record.getMessage()]
    if os.geteuid() == 0:
        assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
        assert "non-root" in warnings[0].getMessage() or "unprivileged user" in warnings[0].getMessage()
    else:
        assert warnings == []
