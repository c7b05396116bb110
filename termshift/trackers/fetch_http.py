"""The fetch worker: one Scrapy crawl for a whole batch (OTA's "htmlOnly" fetcher, and the browser).

The crawl runs in a child process that `fetcher.fetch_all` starts (see there
why a child): `WorkerProcess` is the parent's side of it, `worker_main()` the
child's, which reads the job, runs the crawl on Twisted's asyncio reactor and
streams every final result back. Scrapy is imported in the child only. Scrapy does what a polite
crawler needs: many hosts at once, at most `per_host` requests in flight on a
host with `host_delay` between them, time-outs, redirects, compression, size
limits and robots.txt. Termshift adds OTA's semantics on top:

- bodies are decoded as OTA's fetch-charset-detection does (`decode_body`);
- failures become FetchErrors whose fields (HTTP status, network error code, time-out) give
  OTA's message and the kind (`failure_to_error` classifies Scrapy's and Twisted's exceptions);
- block and challenge pages are recognised (`blocking.detect_block`);
- the choice of fetcher, the browser fallback and in-run retries follow
  `fetcher.first_fetcher / may_fall_back / retry_delay`.

Browser requests go through the same crawl: `RoutingDownloadHandler` hands them
to a `fetch_browser.BrowserFetcher` instead of Scrapy's HTTP client, so that the
per-host limits cover both.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import email.utils
import logging
import math
import os
import pickle
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from termshift import ssrf
from termshift.config import FetcherSettings
from termshift.errors import (
    BlockedPageError,
    ErrorKind,
    FetchError,
    TermshiftError,
    code_named_in,
    empty_content_message,
    redirect_limit_message,
    refused_target_message,
)
from termshift.trackers.blocking import detect_block
from termshift.trackers.fetcher import (
    FULL_DOM,
    HTML_ONLY,
    FetchRequest,
    FetchResult,
    first_fetcher,
    guard_request,
    may_fall_back,
    result_to_wire,
    retry_delay,
)

__all__ = [
    "HostLimiter",
    "RoutingDownloadHandler",
    "WorkerProcess",
    "decode_body",
    "detect_charset",
    "is_text_type",
    "parse_retry_after",
    "run_batch",
    "scrapy_settings",
    "worker_main",
]

logger = logging.getLogger(__name__)

# -- bodies: text or bytes, and which charset ----------------------------------------------------

_CHARSET_PARAM = re.compile(rb"charset\s*=\s*[\"']?([^\s;\"'>]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]+?charset\s*=\s*[\"']?\s*([^\s;\"'/>]+)", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"<\?xml[^>]+?encoding\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
# Textual types that are not text/*: kept as str like HTML.
_TEXT_LIKE = ("application/xhtml+xml", "application/xml", "application/json", "application/javascript")


def is_text_type(mime_type: str | None) -> bool:
    """Whether a body of this Content-Type is text (decoded to str) rather than binary (kept as bytes)."""
    essence = (mime_type or "").split(";", 1)[0].strip().lower()
    return essence.startswith("text/") or essence in _TEXT_LIKE or essence.endswith(("+xml", "+json"))


def detect_charset(content_type: str | None, body: bytes) -> str:
    """The charset of a text body, as OTA (fetch-charset-detection): the Content-Type's
    `charset`, else a `<meta charset>`, `<meta http-equiv>` or XML `encoding` in the first
    1,024 bytes, else utf-8. gb2312 and gbk become their superset gb18030. An unknown
    label falls back to utf-8."""
    match = _CHARSET_PARAM.search((content_type or "").encode("latin-1", "replace"))
    if match is None:
        head = body[:1024]
        match = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    label = match.group(1).decode("ascii", "replace").strip().lower() if match else "utf-8"
    if label in {"gb2312", "gbk", "x-gbk"}:
        label = "gb18030"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return "utf-8"


def decode_body(body: bytes, content_type: str | None) -> str:
    """Decode a text body with its detected charset (undecodable bytes become U+FFFD)."""
    charset = detect_charset(content_type, body)
    text = body.decode(charset, errors="replace")
    return text.removeprefix("\ufeff") if charset.startswith("utf") else text


def _sniff_type(body: bytes) -> str:
    """A Content-Type for an answer that has none (OTA crashes on these)."""
    start = body[:512].lstrip().lower()
    if start.startswith(b"%pdf-"):
        return "application/pdf"
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in start:
        return "text/html"
    if start.startswith(b"<?xml"):
        return "application/xml"
    return "application/octet-stream"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date (None if unusable)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


# -- failures: Scrapy and Twisted exceptions to fetch errors ------------------------------------


def failure_to_error(exception: BaseException, location: str, timeout: float) -> FetchError:
    """The FetchError for an exception raised while downloading `location`.

    The one place where Scrapy's and Twisted's exceptions become an error's fields (time-out,
    network error code as Node names it) and so its kind; the message is OTA's wording.
    """
    from scrapy.exceptions import (
        CannotResolveHostError,
        DownloadCancelledError,
        DownloadConnectionRefusedError,
        DownloadFailedError,
        DownloadTimeoutError,
        IgnoreRequest,
        ResponseDataLossError,
    )
    from twisted.internet import error as tx_error

    def failed(message: str, kind: ErrorKind) -> FetchError:
        return FetchError(f"{message} when trying to fetch '{location}'", kind, location=location)

    if isinstance(exception, FetchError):
        return exception
    refused = next((reason for reason in [exception, *_root_reasons(exception)]
                    if isinstance(reason, ssrf.UnsafeTargetError)), None)
    if refused is not None:  # refused by GuardedResolver: the name resolved elsewhere when connecting
        return FetchError(refused_target_message(str(refused), location), ErrorKind.PERMANENT, location=location)
    if isinstance(exception, DownloadTimeoutError | tx_error.TimeoutError):
        return FetchError(location=location, timeout=timeout)
    if isinstance(exception, tx_error.TCPTimedOutError):
        return FetchError(location=location, code="ETIMEDOUT")
    if isinstance(exception, DownloadConnectionRefusedError | tx_error.ConnectionRefusedError):
        return FetchError(location=location, code="ECONNREFUSED")
    if isinstance(exception, CannotResolveHostError | tx_error.DNSLookupError):
        return FetchError(location=location, code="ENOTFOUND")
    if isinstance(exception, ResponseDataLossError):
        return failed("Received a truncated body (the connection closed before the announced length)",
                      ErrorKind.TRANSIENT)
    if isinstance(exception, _BodyTooLarge):
        return failed(str(exception), ErrorKind.PERMANENT)
    if isinstance(exception, IgnoreRequest):
        text = str(exception)
        if "max redirections" in text:
            return FetchError(redirect_limit_message(location), ErrorKind.PERMANENT, location=location)
        if "robots.txt" in text:
            return failed("Forbidden by robots.txt", ErrorKind.PERMANENT)
        if "DOWNLOAD_MAXSIZE" in text:
            return failed("The body is too large", ErrorKind.PERMANENT)
        return failed(f"Request ignored ({text})", ErrorKind.PERMANENT)
    if isinstance(exception, DownloadCancelledError):
        return failed("The download was cancelled", ErrorKind.TRANSIENT)
    if isinstance(exception, DownloadFailedError | tx_error.ConnectionLost | tx_error.ConnectionDone):
        return _connection_failure(exception, location)
    return _unexpected(exception, location)


def _connection_failure(exception: BaseException, location: str) -> FetchError:
    """A connection that failed: reset or closed (ECONNRESET, as Node reports it), or TLS."""
    from twisted.internet import error as tx_error

    reasons = _root_reasons(exception)
    if any("SSL" in type(reason).__module__ or "OpenSSL" in type(reason).__module__ for reason in reasons):
        detail = next((str(reason) for reason in reasons), "")
        verify = "certificate verify failed" in detail
        what = "certificate verify failed" if verify else "handshake failed"
        return FetchError(f"TLS error ({what}) when trying to fetch '{location}'", ErrorKind.PERMANENT,
                          location=location)
    if any(isinstance(reason, tx_error.ConnectionLost | tx_error.ConnectionDone) for reason in reasons):
        return FetchError(location=location, code="ECONNRESET")
    return _unexpected(reasons[0], location)


def _unexpected(exception: BaseException, location: str) -> FetchError:
    """An exception no rule knows: its text is the message; a network error code it names classifies it."""
    text = f"{type(exception).__name__}: {exception}"
    return FetchError(f"{text} when trying to fetch '{location}'", location=location, code=code_named_in(text))


def _root_reasons(exception: BaseException) -> list[BaseException]:
    """The exceptions under Twisted's ResponseFailed (which Scrapy wraps), else the deepest cause."""
    seen: list[BaseException] = []
    current: BaseException | None = exception
    while current is not None and current not in seen:
        seen.append(current)
        reasons = getattr(current, "reasons", None)
        if reasons:  # a list of twisted Failures
            return [getattr(reason, "value", reason) for reason in reasons]
        current = current.__cause__
    return [seen[-1]]


class _BodyTooLarge(TermshiftError):
    """Scrapy cancelled a download past DOWNLOAD_MAXSIZE."""


# -- responses to results --------------------------------------------------------------------------


def response_to_result(
    response: Any, work: Mapping[str, Any], fetcher: str, elapsed: float, attempts: int
) -> FetchResult:
    """The result of an HTTP answer (from Scrapy's client or the browser)."""
    location = work["location"]
    headers = {
        name.decode("latin-1").lower(): b", ".join(values).decode("latin-1")
        for name, values in response.headers.items()
    }
    result = FetchResult(
        location=location,
        fetcher=fetcher,  # type: ignore[arg-type]
        status=response.status,
        final_url=response.url,
        headers=headers,
        etag=headers.get("etag"),
        last_modified=headers.get("last-modified"),
        elapsed=elapsed,
        attempts=attempts,
    )
    conditional = bool(work.get("etag") or work.get("last_modified"))
    if response.status == 304 and conditional and fetcher == HTML_ONLY:
        result.not_modified = True
        return result
    body: bytes = response.body
    mime_type = headers.get("content-type") or _sniff_type(body)
    content: str | bytes
    if fetcher == FULL_DOM:
        mime_type = headers.get("content-type", "text/html")
        content = body.decode("utf-8") if mime_type == "text/html" else body
    else:
        content = decode_body(body, mime_type) if is_text_type(mime_type) else body
    # As OTA, the browser also accepts a 304 (it never sends validators itself).
    valid = 200 <= response.status < 300 or (fetcher == FULL_DOM and response.status == 304)
    signature = detect_block(response.status, headers, content)
    if signature is not None:
        result.content, result.mime_type = content, mime_type
        result.error = BlockedPageError(location, signature, status=response.status)
    elif not valid:
        result.error = FetchError(location=location, status=response.status,
                                  retry_after=parse_retry_after(headers.get("retry-after")))
    elif not content or headers.get("content-length") == "0":
        result.error = FetchError(empty_content_message(location), ErrorKind.PERMANENT, location=location,
                                  status=response.status)
    else:
        result.content, result.mime_type = content, mime_type
    return result


# -- Scrapy settings and components -----------------------------------------------------------------


def scrapy_settings(fetcher: FetcherSettings, hosts: int, host_limiter: Mapping[str, Any] | None = None
                    ) -> dict[str, Any]:
    """Scrapy settings from Termshift's "fetcher" section, for a batch over `hosts` hosts.

    `host_limiter`: a limiter shared with other processes (distributed workers), in place of HostLimiter.
    """
    per_host = fetcher.per_host
    return {
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "%(levelname)s %(name)s: %(message)s",
        "LOG_INSTALL_ROOT_HANDLER": True,
        "TELNETCONSOLE_ENABLED": False,
        "USER_AGENT": fetcher.user_agent,
        "DEFAULT_REQUEST_HEADERS": {
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            # Verbatim, as OTA's HTML fetcher sends it.
            "Accept-Language": fetcher.language,
        },
        "ROBOTSTXT_OBEY": fetcher.robots_txt,
        # Enough slots for every host at once; each host gets `per_host` of them.
        "CONCURRENT_REQUESTS": max(16, min(1024, hosts * per_host)),
        "CONCURRENT_REQUESTS_PER_DOMAIN": per_host,
        "DOWNLOAD_DELAY": fetcher.host_delay,
        "DOWNLOAD_DELAY_JITTER": 0,
        # Hand the downloader the request of the least busy host first: without it a
        # host with many documents fills the downloader and starves the others.
        "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.DownloaderAwarePriorityQueue",
        "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
        "DOWNLOAD_TIMEOUT": fetcher.timeout,
        "DOWNLOAD_MAXSIZE": fetcher.max_body_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "DOWNLOAD_VERIFY_CERTIFICATES": True,  # as OTA: a bad certificate is an error
        "REDIRECT_MAX_TIMES": fetcher.max_redirects,
        "METAREFRESH_ENABLED": False,  # OTA records the refresh page itself
        "RETRY_ENABLED": False,  # retries follow fetcher.retry_delay instead
        "HTTPERROR_ALLOW_ALL": True,
        "COOKIES_ENABLED": True,  # one jar per document: redirect chains that set cookies work
        "AUTOTHROTTLE_ENABLED": False,
        "EXTENSIONS": {"scrapy.extensions.logstats.LogStats": None, "scrapy.extensions.memusage.MemoryUsage": None},
        # Checks each address a host name resolves to at connection time as well (the
        # handler checked before sending): a DNS answer that changed in between is refused.
        "DNS_RESOLVER": "termshift.trackers.fetch_http.GuardedResolver",
        "TERMSHIFT_ALLOW_PRIVATE_TARGETS": list(fetcher.allow_private_targets),
        "TERMSHIFT_HOST_LIMITER": dict(host_limiter or {}),
        "DOWNLOAD_HANDLERS": {
            "http": "termshift.trackers.fetch_http.RoutingDownloadHandler",
            "https": "termshift.trackers.fetch_http.RoutingDownloadHandler",
        },
    }


def _guarded_resolver_class() -> type:
    """Scrapy's caching resolver, refusing an address the rules refuse (built on demand: Scrapy is the worker's)."""
    from scrapy.resolver import CachingThreadedResolver

    class GuardedResolver(CachingThreadedResolver):
        allow: list[str] = []

        @classmethod
        def from_crawler(cls, crawler: Any, reactor: Any) -> Any:
            resolver = super().from_crawler(crawler, reactor)
            resolver.allow = crawler.settings.getlist("TERMSHIFT_ALLOW_PRIVATE_TARGETS")
            return resolver

        def getHostByName(self, name: str, timeout: Any = ()) -> Any:  # noqa: N802 - Twisted's name
            def check(address: str) -> str:
                import ipaddress

                url = f"connecting to {name}"
                ssrf.check_address(url, name.lower().rstrip("."), ipaddress.ip_address(address), self.allow,
                                   ssrf.FETCHER_SETTING)
                return address

            return super().getHostByName(name, timeout).addCallback(check)

    return GuardedResolver


def __getattr__(name: str) -> Any:
    # Scrapy loads the resolver by its dotted path; the class needs Scrapy, so it is built on first use.
    if name == "GuardedResolver":
        resolver = _guarded_resolver_class()
        globals()["GuardedResolver"] = resolver
        return resolver
    raise AttributeError(name)


class HostLimiter:
    """At most `per_host` downloads at once on a host, and starts at least `delay` seconds apart.

    Scrapy's slots should do this (CONCURRENT_REQUESTS_PER_DOMAIN, DOWNLOAD_DELAY), but
    Scrapy 2.19 on the asyncio reactor overshoots: `Downloader._process_queue` starts each
    download as a task and counts it as "transferring" only when the task runs, so a slot
    whose queue holds several requests releases them all at once (measured: 8 in flight
    on a host with a limit of 2). The limit is enforced here, at the last step before the
    network, for HTTP and browser fetches alike.
    """

    def __init__(self, per_host: int, delay: float) -> None:
        self.per_host = per_host
        self.delay = delay
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._pacing: dict[str, asyncio.Lock] = {}
        self._last_start: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        semaphore = self._slots.setdefault(host, asyncio.Semaphore(self.per_host))
        async with semaphore:
            async with self._pacing.setdefault(host, asyncio.Lock()):
                wait = self._last_start.get(host, -math.inf) + self.delay - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._last_start[host] = time.monotonic()
            yield


class RoutingDownloadHandler:
    """Scrapy's HTTP client for "htmlOnly" requests, the browser for "fullDom" ones.

    Being a download handler, the browser sits behind the same per-host limits,
    and it is launched on the first browser request only.
    """

    lazy = False

    def __init__(self, crawler: Any) -> None:
        from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
        from scrapy.utils.misc import load_object

        self.crawler = crawler
        self._http = HTTP11DownloadHandler.from_crawler(crawler)
        self._browser: Any = None
        settings = crawler.settings
        per_host, delay = settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN"), settings.getfloat("DOWNLOAD_DELAY")
        # "factory" names a function (spec, per_host, delay) -> an object with the `slot(host)` of HostLimiter:
        # termshift.distributed.limiter's, which counts over every worker of a fleet.
        spec = settings.getdict("TERMSHIFT_HOST_LIMITER")
        self._limiter = load_object(spec["factory"])(spec, per_host, delay) if spec else HostLimiter(per_host, delay)

    @classmethod
    def from_crawler(cls, crawler: Any) -> RoutingDownloadHandler:
        return cls(crawler)

    async def download_request(self, request: Any) -> Any:
        host = request.meta.get("download_slot") or urlsplit(request.url).hostname or ""
        async with self._limiter.slot(host):
            # Kept across redirects (Scrapy copies the meta): the time covers the whole chain.
            request.meta.setdefault("termshift_started", time.monotonic())
            if request.meta.get("termshift_fetcher") == FULL_DOM:
                return await self._download_in_browser(request)
            return await self._download_over_http(request)

    async def _download_over_http(self, request: Any) -> Any:
        from scrapy.exceptions import DownloadCancelledError

        # Every request Scrapy sends comes here — the declared URL, each redirect hop,
        # robots.txt — so each is checked against the address rules before it is sent.
        work = request.meta.get("termshift_work") or {}
        allow = self.crawler.settings.getlist("TERMSHIFT_ALLOW_PRIVATE_TARGETS")
        await asyncio.to_thread(guard_request, request.url, work.get("location", request.url), allow)
        try:
            return await self._http.download_request(request)
        except DownloadCancelledError as error:
            # Scrapy cancels a body past DOWNLOAD_MAXSIZE (time-outs raise their own error).
            limit = self.crawler.settings.getint("DOWNLOAD_MAXSIZE")
            raise _BodyTooLarge(f"The body is larger than the limit of {limit} bytes") from error

    async def _download_in_browser(self, request: Any) -> Any:
        from scrapy.http import Headers, Response

        from termshift.trackers.fetch_browser import BrowserFetcher

        if self._browser is None:
            job = self.crawler.spider.job
            browser = job["browser"] or {}
            self._browser = BrowserFetcher.from_settings(
                dataclasses.replace(job["fetcher"], browser_endpoint=browser.get("endpoint", "")),
                executable=browser.get("executable"),
            )
        page = await self._browser.fetch(request.url, request.meta.get("termshift_selectors", []))
        body = page.content.encode("utf-8") if isinstance(page.content, str) else page.content
        headers = {
            name: value
            for name, value in page.headers.items()
            # The browser already decoded the body: these would mislead Scrapy's middlewares.
            if name not in {"content-encoding", "content-length", "transfer-encoding", "content-type"}
        }
        headers["content-type"] = page.mime_type
        return Response(url=page.final_url, status=page.status, headers=Headers(headers), body=body,
                        request=request, flags=[FULL_DOM])

    async def close(self) -> None:
        await self._http.close()
        if self._browser is not None:
            await self._browser.close()
        if hasattr(self._limiter, "aclose"):
            await self._limiter.aclose()


def _make_spider_class() -> type:
    """The spider class (built on demand: importing Scrapy is for the worker only)."""
    import scrapy
    from scrapy import signals
    from scrapy.exceptions import DontCloseSpider

    class BatchSpider(scrapy.Spider):
        """Fetches the job's documents and emits each final result."""

        name = "termshift"

        def __init__(self, job: dict[str, Any], emit: Callable[[int, FetchResult], None], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.job = job
            self.emit = emit
            self.fetcher: FetcherSettings = job["fetcher"]
            self.timeout = self.fetcher.timeout
            self.pending_retries = 0

        @classmethod
        def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> BatchSpider:
            spider = super().from_crawler(crawler, *args, **kwargs)
            crawler.signals.connect(spider.keep_open_while_retrying, signal=signals.spider_idle)
            return spider

        async def start(self) -> Any:
            for work in _interleave_hosts(self.job["requests"]):
                request = FetchRequest(work["location"], work["execute_client_scripts"])
                yield self.make_request(work, first_fetcher(request), attempt=1, elapsed=0.0)

        def make_request(self, work: dict[str, Any], fetcher: str, *, attempt: int, elapsed: float) -> Any:
            headers = {}
            if fetcher == HTML_ONLY and work.get("etag"):
                headers["If-None-Match"] = work["etag"]
            if fetcher == HTML_ONLY and work.get("last_modified"):
                headers["If-Modified-Since"] = work["last_modified"]
            meta = {
                "termshift_work": work,
                "termshift_fetcher": fetcher,
                "termshift_attempt": attempt,
                "termshift_elapsed": elapsed,
                "termshift_selectors": work["css_selectors"],
                "cookiejar": (work["index"], fetcher),
                # (No handle_httpstatus_all here: it would stop RedirectMiddleware;
                # HTTPERROR_ALLOW_ALL lets every final status reach the callback.)
                "dont_redirect": fetcher == FULL_DOM,  # Chromium follows redirects itself
            }
            return scrapy.Request(
                work["location"], callback=self.on_response, errback=self.on_failure, headers=headers,
                meta=meta, dont_filter=True, priority=attempt,
            )

        def on_response(self, response: Any) -> None:
            meta = response.meta
            result = response_to_result(
                response, meta["termshift_work"], meta["termshift_fetcher"],
                self._elapsed(meta), meta["termshift_attempt"],
            )
            self.settle(meta, result)

        def on_failure(self, failure: Any) -> None:
            meta = failure.request.meta
            work = meta["termshift_work"]
            # As node-fetch, the redirect limit names the URL where it was reached.
            url = failure.request.url if "max redirections" in str(failure.value) else work["location"]
            error = failure_to_error(failure.value, url, self.timeout)
            if meta["termshift_fetcher"] == FULL_DOM and not isinstance(failure.value, FetchError):
                error = FetchError(f"The browser failed: {failure.value}", ErrorKind.TRANSIENT,
                                   location=work["location"])
            result = FetchResult(
                location=work["location"], fetcher=meta["termshift_fetcher"], error=error,
                elapsed=self._elapsed(meta), attempts=meta["termshift_attempt"],
            )
            self.settle(meta, result)

        def settle(self, meta: dict[str, Any], result: FetchResult) -> None:
            """Emit a final result, or fetch again: in the browser, or after a pause."""
            work = meta["termshift_work"]
            request = FetchRequest(work["location"], work["execute_client_scripts"], work["css_selectors"])
            attempt = meta["termshift_attempt"]
            if result.error is not None and self.job["browser"] and may_fall_back(request, result):
                self._schedule(self.make_request(work, FULL_DOM, attempt=attempt + 1, elapsed=result.elapsed), 0)
                return
            if result.error is not None:
                delay = retry_delay(result.error, attempt, retries=self.fetcher.retries,
                                    backoff=float(self.job["backoff"]))
                # `attempt` counts every download of the document, fallback included:
                # `retries` bounds them all.
                if delay is not None:
                    again = self.make_request(work, result.fetcher or HTML_ONLY, attempt=attempt + 1,
                                              elapsed=result.elapsed)
                    self._schedule(again, delay)
                    return
            self.emit(work["index"], result)

        def _schedule(self, request: Any, delay: float) -> None:
            from twisted.internet import reactor

            self.pending_retries += 1

            def crawl() -> None:
                self.pending_retries -= 1
                self.crawler.engine.crawl(request)

            reactor.callLater(delay, crawl)

        def keep_open_while_retrying(self) -> None:
            if self.pending_retries:
                raise DontCloseSpider

        @staticmethod
        def _elapsed(meta: Mapping[str, Any]) -> float:
            started = meta.get("termshift_started")
            spent = time.monotonic() - started if started is not None else 0.0
            return meta["termshift_elapsed"] + spent

    return BatchSpider


def _interleave_hosts(works: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Round-robin over hosts, so that the first requests already reach every host."""
    by_host: dict[str, list[dict[str, Any]]] = {}
    for work in works:
        by_host.setdefault(urlsplit(work["location"]).hostname or "", []).append(work)
    queues = [list(reversed(items)) for items in by_host.values()]
    while queues:
        for items in queues:
            yield items.pop()
        queues = [items for items in queues if items]


# -- running a batch, in this process ---------------------------------------------------------------


def run_batch(job: dict[str, Any], emit: Callable[[int, FetchResult], None]) -> None:
    """Run the crawl of `job` and call `emit(index, result)` for each final result.

    Installs and runs Twisted's reactor: call it once per process (the worker does).
    """
    from scrapy.utils.reactor import install_reactor

    install_reactor("twisted.internet.asyncioreactor.AsyncioSelectorReactor")
    from scrapy.crawler import CrawlerRunner
    from scrapy.utils.log import configure_logging
    from twisted.internet import reactor, task

    hosts = {urlsplit(work["location"]).hostname for work in job["requests"]}
    settings = scrapy_settings(job["fetcher"], len(hosts), job.get("host_limiter"))
    configure_logging(settings)
    # Size limits and truncated bodies are results, reported per document: not log noise.
    logging.getLogger("scrapy.core.downloader.handlers.http11").setLevel(logging.ERROR)
    runner = CrawlerRunner(settings)
    heartbeat = task.LoopingCall(emit, -1, None)
    heartbeat.start(float(job.get("heartbeat", 2.0)), now=False)
    finished = runner.crawl(_make_spider_class(), job=job, emit=emit)

    def stop(outcome: Any) -> Any:
        if heartbeat.running:
            heartbeat.stop()
        reactor.stop()
        return outcome

    finished.addBoth(stop)
    reactor.run(installSignalHandlers=False)


# -- the worker process: the parent's side and the child's ---------------------------------------

# Silence from a worker for this long (it sends heartbeats) means it hung: it is killed.
STALL_LIMIT = 60.0


class WorkerProcess:
    """The parent's side: the child process running one crawl, and the threads that read it.

    Protocol: the job goes as one pickle on the child's stdin; the child answers
    on its stdout with frames (4-byte big-endian length + pickle) of
    ("result", index, wire), ("heartbeat",) and ("done",). Its stderr carries log
    lines "LEVEL name: message", re-emitted here through `logging`. Both sides are
    this package, so pickle is safe.
    """

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.failure: str | None = None
        self._finished = False  # the child said "done"
        self._messages: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._process: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> WorkerProcess:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from termshift.trackers.fetch_http import worker_main; worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert self._process.stdin is not None
        self._process.stdin.write(pickle.dumps(self.job, protocol=pickle.HIGHEST_PROTOCOL))
        self._process.stdin.close()
        for target in (self._read_frames, self._read_log):
            thread = threading.Thread(target=target, name=f"fetch worker {target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def results(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(index, wire result) pairs until the crawl ends; sets `failure` if it ends badly."""
        while True:
            try:
                message = self._messages.get(timeout=STALL_LIMIT)
            except queue.Empty:
                self.failure = f"no sign of life for {STALL_LIMIT:g} seconds"
                return
            if message is None:  # stdout closed without "done"
                code = self._process.wait() if self._process else None
                self.failure = f"exit code {code}"
                return
            if message[0] == "result":
                yield message[1], message[2]
            elif message[0] == "done":
                self._finished = True
                return

    def __exit__(self, *exc: object) -> None:
        process = self._process
        if process is not None:
            try:
                # A finished crawl exits on its own; otherwise (the caller stopped
                # reading, or the child hung) there is nothing left to wait for.
                process.wait(timeout=10 if self._finished else 0.1)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for thread in self._threads:
            thread.join(timeout=5)

    def _read_frames(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        try:
            while True:
                header = stream.read(4)
                if len(header) < 4:
                    break
                (length,) = struct.unpack(">I", header)
                payload = stream.read(length)
                if len(payload) < length:
                    break
                self._messages.put(pickle.loads(payload))
        finally:
            self._messages.put(None)

    def _read_log(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        level = logging.WARNING
        for raw in self._process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            name, _, _ = line.partition(" ")
            level = logging.getLevelName(name) if isinstance(logging.getLevelName(name), int) else level
            logger.log(level, "fetch worker: %s", line)


def worker_main() -> None:
    """Entry point of the worker process: the job on stdin, results on stdout (see WorkerProcess)."""
    # Ctrl-C reaches the whole process group: the parent handles it and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    job = pickle.load(sys.stdin.buffer)
    # Keep the real stdout for frames, and send anything printed to stderr, so that a
    # stray print in a library cannot corrupt the stream.
    frames = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    writer = _FrameWriter(frames)

    def emit(index: int, result: FetchResult | None) -> None:
        if result is None:
            writer.send(("heartbeat",))
        else:
            writer.send(("result", index, result_to_wire(result)))

    code = 0
    try:
        run_batch(job, emit)
        writer.send(("done",))
    except Exception:  # noqa: BLE001 - reported to the parent through stderr and the exit code
        traceback.print_exc()
        code = 1
    # Leave at once: the browser driver and Twisted's threads would only delay the exit.
    sys.stderr.flush()
    os._exit(code)


class _FrameWriter:
    """Length-prefixed pickles on a binary stream; safe from any thread."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            try:
                self._stream.write(struct.pack(">I", len(payload)) + payload)
                self._stream.flush()
            except BrokenPipeError:
                os._exit(0)  # the parent stopped listening (it kills us anyway): nothing left to do
