"""Tracking JavaScript-rendered pages through Playwright and the system's Chromium.

The pages are served locally (tests/support/servers.JsPageServer); their terms
exist only once scripts ran, so a version holding them proves the browser did
the fetching. Skipped where no Chromium is installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from termshift.trackers.browser_path import find_chromium
from termshift.trackers.run import FAILED, NEW_VERSION, run_tracking
from tests.support.servers import JsPageServer
from tests.test_track import declare, document_status, history, outcomes, track_settings

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed"),
]

TERMS = "Terms of Service"


def test_javascript_pages_are_rendered_and_recorded(tmp_path: Path) -> None:
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    with JsPageServer(hosts=2) as server:
        # Content added by a script after load: only a browser sees it.
        declare(declarations, "Rendered", {TERMS: {"fetch": server.url("/js/delayed?ms=300", 0), "select": "#terms",
                                                   "executeClientScripts": True}})
        # A challenge the plain HTTP fetcher gets (403 + block page); the browser passes it.
        declare(declarations, "Challenged", {TERMS: {"fetch": server.url("/js/challenge", 1), "select": "main"}})
        # The element never gets text: the browser's wait gives up and extraction reports it.
        declare(declarations, "Never filled", {TERMS: {"fetch": server.url("/js/never", 0), "select": "#terms",
                                                       "executeClientScripts": True}})
        summary = run_tracking(track_settings(declarations, data, timeout=10.0, wait_for_selectors=2.0))

    assert outcomes(summary) == {("Rendered", TERMS): NEW_VERSION, ("Challenged", TERMS): NEW_VERSION,
                                 ("Never filled", TERMS): FAILED}
    [version] = history(data, "versions", "Rendered", TERMS)
    assert version.content == JsPageServer.TERMS_TEXT.strip()
    [snapshot] = history(data, "snapshots", "Rendered", TERMS)
    assert snapshot.metadata["x-fetcher"] == "fullDom"
    assert 'id="terms"' in snapshot.content  # the rendered DOM, not the page as served

    [passed] = history(data, "snapshots", "Challenged", TERMS)
    assert passed.metadata["x-fetcher"] == "fullDom" and "blocked" not in passed.metadata
    assert JsPageServer.TERMS_TEXT.split(".")[0] in history(data, "versions", "Challenged", TERMS)[0].content

    never = next(result for result in summary.documents if result.service_id == "Never filled")
    assert never.error_kind == "extraction"
    assert len(history(data, "snapshots", "Never filled", TERMS)) == 1  # the page is kept, as OTA
    assert document_status(data)[("Never filled", TERMS)]["consecutive_failures"] == 1
