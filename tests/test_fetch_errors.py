"""Fetch errors carry their fields (status, network error code, time-out, kind); OTA's message is
produced from them, and failures known only as text are classified once, where they enter."""

from __future__ import annotations

import pytest

from termshift.errors import BlockedPageError, ErrorKind, FetchError, code_named_in, fetch_error_kind
from termshift.trackers.fetch_browser import navigation_error
from termshift.trackers.fetch_http import failure_to_error
from termshift.trackers.fetcher import error_from_wire, error_to_wire, retry_delay

PAGE = "https://example.com/terms"

# -- the fields make the message and the kind ------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), [
    (403, ErrorKind.BOT_BLOCKING), (406, ErrorKind.BOT_BLOCKING), (502, ErrorKind.BOT_BLOCKING),
    (429, ErrorKind.TRANSIENT), (500, ErrorKind.TRANSIENT), (503, ErrorKind.TRANSIENT), (504, ErrorKind.TRANSIENT),
    (404, ErrorKind.PERMANENT), (410, ErrorKind.PERMANENT), (501, ErrorKind.PERMANENT),
])
def test_an_http_status_gives_otas_message_and_kind(status: int, kind: ErrorKind) -> None:
    error = FetchError(location=PAGE, status=status)
    assert str(error) == f"Fetch failed: Received HTTP code {status} when trying to fetch '{PAGE}'"
    assert (error.kind, error.status, error.code, error.location) == (kind, status, None, PAGE)


@pytest.mark.parametrize(("code", "kind"), [
    ("ECONNRESET", ErrorKind.BOT_BLOCKING),
    ("ETIMEDOUT", ErrorKind.TRANSIENT), ("EAI_AGAIN", ErrorKind.TRANSIENT), ("ERR_NAME_NOT_RESOLVED", ErrorKind.TRANSIENT),
    ("ECONNREFUSED", ErrorKind.PERMANENT), ("ENOTFOUND", ErrorKind.PERMANENT), ("EHOSTUNREACH", ErrorKind.PERMANENT),
])
def test_a_network_error_code_gives_otas_message_and_kind(code: str, kind: ErrorKind) -> None:
    error = FetchError(location=PAGE, code=code)
    assert str(error) == f"Fetch failed: Network system error {code} occurred when trying to fetch '{PAGE}'"
    assert (error.kind, error.code, error.status) == (kind, code, None)


def test_a_time_out_gives_otas_message_and_is_transient() -> None:
    error = FetchError(location=PAGE, timeout=2.5)
    assert str(error) == f"Fetch failed: Timed out after 2.5 seconds when trying to fetch '{PAGE}'"
    assert (error.kind, error.timeout) == (ErrorKind.TRANSIENT, 2.5)
    assert str(FetchError(location=PAGE, timeout=30.0)).startswith("Fetch failed: Timed out after 30 seconds")


def test_the_kind_never_comes_from_the_message() -> None:
    # A message that reads like a bot-blocking or transient failure is not one without the fields,
    # and a location that names an error code does not make a 404 bot-blocking.
    assert FetchError(f"Received HTTP code 503 when trying to fetch '{PAGE}'").kind is ErrorKind.PERMANENT
    assert FetchError("read ECONNRESET").kind is ErrorKind.PERMANENT
    assert FetchError(location="https://example.com/ECONNRESET", status=404).kind is ErrorKind.PERMANENT
    # A kind given by the raiser wins over the fields; a block page is blocked whatever its status.
    assert FetchError("x", ErrorKind.PERMANENT, location=PAGE, status=200).kind is ErrorKind.PERMANENT
    blocked = BlockedPageError(PAGE, "datadome", status=403)
    assert (blocked.kind, blocked.status, blocked.location) == (ErrorKind.BLOCKED, 403, PAGE)
    assert str(blocked) == f"Fetch failed: Blocked page (datadome) received when trying to fetch '{PAGE}'"


def test_a_fetch_error_needs_a_message_or_fields() -> None:
    with pytest.raises(TypeError):
        FetchError()
    with pytest.raises(TypeError):
        FetchError(status=503)  # no location to name
    assert fetch_error_kind() is ErrorKind.PERMANENT


def test_retries_follow_the_fields() -> None:
    assert retry_delay(FetchError(location=PAGE, code="ECONNRESET"), 1, retries=1, backoff=1) == 1
    assert retry_delay(FetchError(location=PAGE, status=502), 1, retries=1, backoff=1) == 1
    assert retry_delay(FetchError(location=PAGE, status=403), 1, retries=1) is None
    assert retry_delay(BlockedPageError(PAGE, "cloudflare-challenge", status=502), 1, retries=1) is None


def test_the_fields_survive_the_trip_from_the_worker() -> None:
    for error in (FetchError(location=PAGE, code="ECONNRESET"), FetchError(location=PAGE, timeout=3.0),
                  FetchError(location=PAGE, status=429, retry_after=7.0)):
        back = error_from_wire(error_to_wire(error), PAGE)
        assert back is not None
        assert (str(back), back.kind, back.location, back.status, back.code, back.timeout, back.retry_after) == (
            str(error), error.kind, error.location, error.status, error.code, error.timeout, error.retry_after)


# -- the boundaries: exceptions and texts from outside, classified once ------------------------------


def test_code_named_in_an_outside_text() -> None:
    assert code_named_in("Error: read ECONNRESET") == "ECONNRESET"
    assert code_named_in("getaddrinfo EAI_AGAIN example.com") == "EAI_AGAIN"
    assert code_named_in("net::ERR_NAME_NOT_RESOLVED at https://x") == "ERR_NAME_NOT_RESOLVED"
    assert code_named_in("Target page, context or browser has been closed") is None


def scrapy_failures() -> list[tuple[BaseException, dict]]:
    """(exception as Scrapy or Twisted raise it, the fields and kind it must give)."""
    from scrapy.exceptions import (
        CannotResolveHostError,
        DownloadConnectionRefusedError,
        DownloadFailedError,
        DownloadTimeoutError,
        IgnoreRequest,
        ResponseDataLossError,
    )
    from twisted.internet import error as tx_error
    from twisted.python.failure import Failure
    from twisted.web._newclient import ResponseFailed

    reset = DownloadFailedError("connection lost")
    reset.__cause__ = ResponseFailed([Failure(tx_error.ConnectionLost("Connection to the other side was lost"))])
    odd = DownloadFailedError("odd")
    odd.__cause__ = ResponseFailed([Failure(OSError("read ECONNRESET from a proxy"))])
    return [
        (DownloadTimeoutError("took longer than 3 seconds"), {"timeout": 3.0, "kind": ErrorKind.TRANSIENT}),
        (tx_error.TimeoutError(), {"timeout": 3.0, "kind": ErrorKind.TRANSIENT}),
        (tx_error.TCPTimedOutError(), {"code": "ETIMEDOUT", "kind": ErrorKind.TRANSIENT}),
        (DownloadConnectionRefusedError(), {"code": "ECONNREFUSED", "kind": ErrorKind.PERMANENT}),
        (tx_error.ConnectionRefusedError(), {"code": "ECONNREFUSED", "kind": ErrorKind.PERMANENT}),
        (CannotResolveHostError("nowhere.invalid"), {"code": "ENOTFOUND", "kind": ErrorKind.PERMANENT}),
        (tx_error.DNSLookupError(), {"code": "ENOTFOUND", "kind": ErrorKind.PERMANENT}),
        (reset, {"code": "ECONNRESET", "kind": ErrorKind.BOT_BLOCKING}),
        (tx_error.ConnectionLost(), {"code": "ECONNRESET", "kind": ErrorKind.BOT_BLOCKING}),
        (odd, {"code": "ECONNRESET", "kind": ErrorKind.BOT_BLOCKING}),  # an unknown exception naming a code
        (ResponseDataLossError(), {"code": None, "kind": ErrorKind.TRANSIENT}),
        (IgnoreRequest("max redirections reached"), {"code": None, "kind": ErrorKind.PERMANENT}),
        (ValueError("something else"), {"code": None, "kind": ErrorKind.PERMANENT}),
    ]


def test_scrapy_and_twisted_failures_become_fields() -> None:
    for exception, expected in scrapy_failures():
        error = failure_to_error(exception, PAGE, timeout=3.0)
        fields = {name: getattr(error, name) for name in expected}
        assert fields == expected, repr(exception)
        assert error.location == PAGE and error.status is None
    timed_out = failure_to_error(scrapy_failures()[0][0], PAGE, timeout=3.0)
    assert str(timed_out) == f"Fetch failed: Timed out after 3 seconds when trying to fetch '{PAGE}'"
    reset = failure_to_error(scrapy_failures()[7][0], PAGE, timeout=3.0)
    assert str(reset) == f"Fetch failed: Network system error ECONNRESET occurred when trying to fetch '{PAGE}'"


@pytest.mark.parametrize(("text", "code", "kind", "message"), [
    ("page.goto: net::ERR_CONNECTION_RESET at https://example.com/terms", "ECONNRESET", ErrorKind.BOT_BLOCKING,
     f"Network system error ECONNRESET occurred when trying to fetch '{PAGE}'"),
    ("page.goto: net::ERR_EMPTY_RESPONSE at https://example.com/terms", "ECONNRESET", ErrorKind.BOT_BLOCKING, None),
    ("page.goto: net::ERR_NAME_NOT_RESOLVED at https://example.com/terms", "ERR_NAME_NOT_RESOLVED",
     ErrorKind.TRANSIENT, f"Network system error ERR_NAME_NOT_RESOLVED occurred when trying to fetch '{PAGE}'"),
    ("page.goto: net::ERR_TIMED_OUT at https://example.com/terms", "ETIMEDOUT", ErrorKind.TRANSIENT, None),
    ("page.goto: net::ERR_CONNECTION_REFUSED at https://example.com/terms", "ECONNREFUSED", ErrorKind.PERMANENT, None),
    ("page.goto: net::ERR_TOO_MANY_REDIRECTS at https://example.com/terms", None, ErrorKind.PERMANENT,
     f"maximum redirect reached at: {PAGE}"),
    ("page.goto: net::ERR_ABORTED at https://example.com/terms", None, ErrorKind.PERMANENT,
     f"Navigation aborted when trying to fetch '{PAGE}'"),
    ("net::ERR_CERT_AUTHORITY_INVALID at https://example.com/terms", None, ErrorKind.PERMANENT,
     f"TLS error (net::ERR_CERT_AUTHORITY_INVALID) when trying to fetch '{PAGE}'"),
    ("page.goto: read ECONNRESET\nCall log: …", "ECONNRESET", ErrorKind.BOT_BLOCKING,
     f"page.goto: read ECONNRESET when trying to fetch '{PAGE}'"),
    ("page.goto: net::ERR_HTTP2_PROTOCOL_ERROR at https://example.com/terms", None, ErrorKind.PERMANENT,
     f"page.goto: net::ERR_HTTP2_PROTOCOL_ERROR at https://example.com/terms when trying to fetch '{PAGE}'"),
])
def test_playwright_navigation_errors_become_fields(text: str, code: str | None, kind: ErrorKind,
                                                    message: str | None) -> None:
    error = navigation_error(Exception(text), PAGE)
    assert (error.code, error.kind, error.location, error.status) == (code, kind, PAGE, None)
    if message is not None:
        assert str(error) == f"Fetch failed: {message}"
