"""Fetching documents: which fetcher serves a request, when to fall back or retry, and the batch API.

`fetch_all(requests, settings.fetcher)` (or `iter_fetch` to get results as they come)
fetches a whole batch — a tracking run's ~1,000 documents on ~100 hosts — in
ONE Scrapy crawl, many hosts in parallel and politely per host.

Why the crawl runs in a child process: Scrapy runs on Twisted's reactor, and a
reactor can be started only once per process. Termshift calls `fetch_all` many
times in one process (the scheduler every 12 hours, the tests dozens of times),
so each batch gets a fresh `python -c …fetch_http.worker_main()` process that
runs the reactor once and exits. The child streams each result back as soon as
it is final, so the caller records snapshots while the crawl goes on. The cost
is the child's start-up (about one second), small against a run. The
alternatives were worse: a reactor kept running in a background thread
(crochet-style) stays in the scheduler's process for good, with Scrapy's global
logging and signal state, and one stuck download or leaked page there affects
every later run; `multiprocessing` with `spawn` re-imports the caller's
`__main__`, which breaks scripts without a main guard. A plain subprocess has
neither problem, and a crash or hang only loses its own batch (reported per
document as a transient error).

The browser (Playwright driving Chromium) runs inside the same child, as a Scrapy
download handler, so that per-host limits and delays apply to browser fetches
too, and it is launched only when a request needs it.

Choice of fetcher (as OTA, reference §2.2): `execute_client_scripts` True →
browser only; False → HTTP only; absent → HTTP first, and the browser when HTTP
fails with a bot-blocking error (403, 406, 502, ECONNRESET) or gets a block page.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from termshift import ssrf
from termshift.config import FetcherSettings
from termshift.errors import BlockedPageError, ErrorKind, FetchError, refused_target_message

__all__ = [
    "FULL_DOM",
    "HTML_ONLY",
    "FetchRequest",
    "FetchResult",
    "fetch_all",
    "first_fetcher",
    "guard_request",
    "iter_fetch",
    "may_fall_back",
    "retry_delay",
]

HTML_ONLY = "htmlOnly"
FULL_DOM = "fullDom"
FetcherName = Literal["htmlOnly", "fullDom"]

# Exponential back-off of in-run retries: BACKOFF, 2×BACKOFF, 4×BACKOFF… seconds.
DEFAULT_BACKOFF = 1.0
# A Retry-After longer than this is not waited for within the run: the error keeps
# `retry_after` so that a later run (or the scheduler) can honour it.
RETRY_AFTER_CAP = 30.0
# The worker sends a heartbeat every HEARTBEAT seconds (fetch_http.WorkerProcess
# kills a worker silent for longer than its STALL_LIMIT).
HEARTBEAT = 2.0
# How often a stoppable batch looks at its `stop_event` while waiting for the worker.
STOP_POLL = 0.2


@dataclass
class FetchRequest:
    """One document to fetch.

    `css_selectors` are the declaration's select and remove selectors (ranges
    expanded): the browser waits for them to hold text. `etag` and
    `last_modified` are the validators of the previous fetch, for a conditional
    GET. `key` is the caller's own identifier, returned untouched in the result.
    """

    location: str
    execute_client_scripts: bool | None = None
    css_selectors: list[str] = field(default_factory=list)
    key: Any = None
    etag: str | None = None
    last_modified: str | None = None


@dataclass
class FetchResult:
    """The outcome of one request.

    On success `content` is a `str` for text types (HTML, XML, plain text, decoded
    with the detected charset) and `bytes` otherwise (PDF…), and `error` is None.
    A block or challenge page keeps its `content` (to be stored, marked blocked)
    and has a `BlockedPageError`. Any other failure has `error` and no content.
    A 304 answer to a conditional GET has `not_modified` True and no content.
    `mime_type` is the raw Content-Type header as OTA records it (parameters
    included; always "text/html" for a rendered page). `elapsed` is the time
    spent downloading, over all attempts, in seconds.
    """

    location: str
    key: Any = None
    content: str | bytes | None = None
    mime_type: str | None = None
    fetcher: FetcherName | None = None
    status: int | None = None
    error: FetchError | None = None
    etag: str | None = None
    last_modified: str | None = None
    final_url: str | None = None
    elapsed: float = 0.0
    not_modified: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # response headers, names lower-cased
    attempts: int = 1  # downloads made, fallback and retries included

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def blocked(self) -> bool:
        return isinstance(self.error, BlockedPageError)

    @property
    def redirected_to(self) -> str | None:
        """The URL the content finally came from, when redirects led away from `location`
        (an empty path counts as "/": https://example.com and https://example.com/ are one)."""
        if not self.final_url:
            return None

        def normal(url: str) -> tuple[str, ...]:
            parts = urlsplit(url)
            return (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, parts.fragment)

        return None if normal(self.final_url) == normal(self.location) else self.final_url


# -- the address guard: every request a fetch makes ------------------------------------------


def guard_request(url: str, location: str, allow: Iterable[str]) -> None:
    """Raise a permanent FetchError when `url` — the document at `location`, one of its
    redirects, or (in the browser) one of its subresources — leads to a loopback, private,
    link-local or otherwise non-public address not in `fetcher.allow_private_targets`.

    Every address the host resolves to must pass (`termshift.ssrf`, the webhooks' rules).
    A host that does not resolve passes: the fetch itself then fails with ENOTFOUND.
    Blocking: call it from a thread in asyncio code.
    """
    try:
        ssrf.check_fetch_url(url, allow)
    except ssrf.UnresolvableHostError:
        return
    except ssrf.UnsafeTargetError as error:
        raise FetchError(refused_target_message(str(error), location), ErrorKind.PERMANENT,
                         location=location) from None


# -- decisions (pure functions; the worker applies them) ----------------------------------


def first_fetcher(request: FetchRequest) -> FetcherName:
    """The fetcher to try first: the browser only when client scripts must run."""
    return FULL_DOM if request.execute_client_scripts else HTML_ONLY


def may_fall_back(request: FetchRequest, result: FetchResult) -> bool:
    """Whether a failed plain-HTTP fetch should be tried again in the browser.

    As OTA: only when the declaration leaves `executeClientScripts` out, and the
    error may come from bot blocking (403/406/502/ECONNRESET). Unlike OTA, a
    block page (challenge, captcha, empty shell) also goes to the browser, which
    can pass a JavaScript challenge or render the shell.
    """
    if request.execute_client_scripts is not None or result.fetcher != HTML_ONLY or result.error is None:
        return False
    return result.error.may_be_bot_blocking or isinstance(result.error, BlockedPageError)


def retry_delay(error: FetchError, attempt: int, *, retries: int, backoff: float = DEFAULT_BACKOFF) -> float | None:
    """Seconds to wait before retrying within the run, or None not to retry.

    Retried: transient errors (5xx, time-outs, 429, truncated bodies…), and of the
    bot-blocking ones a 502 and a reset connection (often passing). Not retried within
    the run: 403/406 (the browser fallback handles them; hammering a blocking site does
    not help), block pages and permanent errors. A 429 waits for its Retry-After, unless that is longer than
    RETRY_AFTER_CAP.
    """
    if attempt > retries:
        return None
    passing = error.kind is ErrorKind.BOT_BLOCKING and (error.status == 502 or error.code == "ECONNRESET")
    if error.kind is not ErrorKind.TRANSIENT and not passing:
        return None
    delay = backoff * 2 ** (attempt - 1)
    if error.retry_after is not None:
        if error.retry_after > RETRY_AFTER_CAP:
            return None
        delay = max(delay, error.retry_after)
    return delay


# -- the wire format between the worker and this process -----------------------------------


def error_to_wire(error: FetchError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "message": str(error),
        "kind": error.kind.value,
        "location": error.location,
        "status": error.status,
        "code": error.code,
        "timeout": error.timeout,
        "retry_after": error.retry_after,
        "signature": getattr(error, "signature", None),
    }


def error_from_wire(data: Mapping[str, Any] | None, location: str) -> FetchError | None:
    if data is None:
        return None
    if data.get("signature"):
        return BlockedPageError(location, data["signature"], status=data["status"])
    return FetchError(
        data["message"], ErrorKind(data["kind"]), location=data["location"], status=data["status"],
        code=data["code"], timeout=data["timeout"], retry_after=data["retry_after"],
    )


def result_to_wire(result: FetchResult) -> dict[str, Any]:
    wire = {name: getattr(result, name) for name in result.__dataclass_fields__ if name != "key"}
    wire["error"] = error_to_wire(result.error)
    return wire


def result_from_wire(data: Mapping[str, Any], key: Any = None) -> FetchResult:
    fields = dict(data)
    fields["error"] = error_from_wire(fields.get("error"), fields["location"])
    return FetchResult(key=key, **fields)


# -- the batch API ---------------------------------------------------------------------------


@dataclass
class _Work:
    """One distinct download: requests with the same URL and validators share it."""

    index: int
    location: str
    execute_client_scripts: bool | None
    css_selectors: list[str]
    etag: str | None
    last_modified: str | None
    members: list[int] = field(default_factory=list)  # positions of the requests it serves

    def to_job(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "location": self.location,
            "execute_client_scripts": self.execute_client_scripts,
            "css_selectors": self.css_selectors,
            "etag": self.etag,
            "last_modified": self.last_modified,
        }


def fetch_all(
    requests: Iterable[FetchRequest],
    settings: FetcherSettings,
    progress: Callable[[FetchResult], None] | None = None,
    *,
    backoff: float = DEFAULT_BACKOFF,
) -> list[FetchResult]:
    """Fetch every request; results in the order of `requests`.

    `settings` is the `[fetcher]` section of the configuration (`Settings.fetcher`).
    `progress(result)` is called for each result as soon as it is final, so a
    caller can record it while other documents are still being fetched.
    """
    requests = list(requests)
    results: list[FetchResult | None] = [None] * len(requests)
    for position, result in _iter_positions(requests, settings, backoff):
        results[position] = result
        if progress is not None:
            progress(result)
    missing = [requests[position].location for position, result in enumerate(results) if result is None]
    if missing:  # every request gets exactly one result, whatever happens: this is a bug
        raise RuntimeError(f"no fetch result for {missing}")
    return results  # type: ignore[return-value]


def iter_fetch(
    requests: Iterable[FetchRequest],
    settings: FetcherSettings,
    *,
    backoff: float = DEFAULT_BACKOFF,
    stop_event: threading.Event | None = None,
    host_limiter: Mapping[str, Any] | None = None,
) -> Iterator[FetchResult]:
    """Yield one result per request, in the order they complete.

    Closing the iterator early (break) stops the crawl. So does setting `stop_event`,
    without waiting for the next result (which may be a time-out away): within
    STOP_POLL seconds the iterator yields the results already received, then ends,
    and the fetch worker is killed. Requests not fetched by then get no result.

    `host_limiter`: a limiter shared with other processes, in place of the in-process
    per-host one: {"factory": "module:function", ...}, the function called in the fetch
    worker with (spec, per_host, host_delay) (`termshift.distributed.limiter.host_limiter_spec`).
    """
    for _position, result in _iter_positions(list(requests), settings, backoff, stop_event, host_limiter):
        yield result


def _iter_positions(
    requests: list[FetchRequest], settings: FetcherSettings, backoff: float, stop_event: threading.Event | None = None,
    host_limiter: Mapping[str, Any] | None = None,
) -> Iterator[tuple[int, FetchResult]]:
    """(position in `requests`, result) pairs, as results become final, until `stop_event` is set."""
    if stop_event is not None and stop_event.is_set():
        return
    work, rejected = _plan(requests)
    yield from rejected
    browser, browser_problem = _browser_target(settings, work)
    runnable = []
    for item in work:
        if item.execute_client_scripts and browser_problem is not None:
            yield from _failed(item, requests, browser_problem, FULL_DOM)
        else:
            runnable.append(item)
    if runnable and not (stop_event is not None and stop_event.is_set()):
        yield from _crawl(runnable, requests, settings, browser, backoff, stop_event, host_limiter)


def _plan(requests: list[FetchRequest]) -> tuple[list[_Work], list[tuple[int, FetchResult]]]:
    """The distinct downloads to make, and the results of requests refused at once (bad URLs)."""
    work: list[_Work] = []
    rejected: list[tuple[int, FetchResult]] = []
    groups: dict[tuple[Any, ...], _Work] = {}
    for position, request in enumerate(requests):
        problem = _invalid_location(request.location)
        if problem:
            rejected.append((position, FetchResult(location=request.location, key=request.key, error=problem,
                                                   attempts=0)))
            continue
        identity = (request.location, request.execute_client_scripts, request.etag, request.last_modified)
        item = groups.get(identity)
        if item is None:
            item = _Work(len(work), request.location, request.execute_client_scripts, [],
                         request.etag, request.last_modified)
            groups[identity] = item
            work.append(item)
        item.members.append(position)
        # The browser waits for the selectors of every request sharing the page.
        item.css_selectors.extend(s for s in request.css_selectors if s not in item.css_selectors)
    return work, rejected


def _failed(
    item: _Work, requests: list[FetchRequest], error: FetchError, fetcher: FetcherName | None = None
) -> Iterator[tuple[int, FetchResult]]:
    for position in item.members:
        request = requests[position]
        yield position, FetchResult(location=request.location, key=request.key, fetcher=fetcher, error=error,
                                    attempts=0)


def _crawl(
    work: list[_Work],
    requests: list[FetchRequest],
    fetcher_settings: FetcherSettings,
    browser: dict[str, Any] | None,
    backoff: float,
    stop_event: threading.Event | None = None,
    host_limiter: Mapping[str, Any] | None = None,
) -> Iterator[tuple[int, FetchResult]]:
    """Run the worker on `work`; every item gets a result, even if the worker dies, unless stopped."""
    from termshift.trackers.fetch_http import WorkerProcess

    job = {
        "fetcher": fetcher_settings,
        "browser": browser,
        "backoff": backoff,
        "heartbeat": HEARTBEAT,
        "requests": [item.to_job() for item in work],
        "host_limiter": dict(host_limiter or {}),
    }
    pending = {item.index: item for item in work}
    # Leaving this block, early or not, kills a worker that has not finished.
    with WorkerProcess(job) as worker:
        for index, wire in _until_stopped(worker.results(), stop_event):
            item = pending.pop(index, None)
            if item is None:
                continue
            for position in item.members:
                yield position, result_from_wire(wire, requests[position].key)
        failure = worker.failure
    if stop_event is not None and stop_event.is_set():
        return  # asked to stop: what was not fetched did not fail
    for item in pending.values():
        error = FetchError(
            f"The fetch worker stopped ({failure or 'no result'}) before fetching '{item.location}'",
            ErrorKind.TRANSIENT, location=item.location,
        )
        yield from _failed(item, requests, error)


_END = object()


def _until_stopped(messages: Iterator[Any], stop_event: threading.Event | None) -> Iterator[Any]:
    """The items of `messages` until it ends, or until `stop_event` is set.

    `messages` blocks until the worker's next message, which may be a slow download
    away, so a thread reads it into a queue and this generator waits on the queue in
    STOP_POLL steps. Once stopped, it yields what was already received, and ends; the
    reading thread ends by itself when the worker it reads from is killed.
    """
    if stop_event is None:
        yield from messages
        return
    received: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        try:
            for message in messages:
                received.put(message)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            received.put(error)
        finally:
            received.put(_END)

    threading.Thread(target=read, name="fetch worker results", daemon=True).start()
    while not stop_event.is_set():
        try:
            message = received.get(timeout=STOP_POLL)
        except queue.Empty:
            continue
        if message is _END:
            return
        if isinstance(message, BaseException):
            raise message
        yield message
    while True:  # stopped: only what is already in hand
        try:
            message = received.get_nowait()
        except queue.Empty:
            return
        if message is _END or isinstance(message, BaseException):
            return
        yield message


def _invalid_location(location: Any) -> FetchError | None:
    if not location:
        return FetchError("URL is required", ErrorKind.CONFIGURATION)
    if not isinstance(location, str) or not location.startswith(("http://", "https://")):
        return FetchError(
            f"Unsupported URL '{location}': only http:// and https:// documents can be fetched",
            ErrorKind.CONFIGURATION,
        )
    return None


def _browser_target(fetcher_settings: FetcherSettings, work: list[_Work]) -> tuple[dict | None, FetchError | None]:
    """Where the worker's browser comes from (None: no browser), and why there is none if one is needed.

    Only looked up when some request may need the browser; the browser itself is
    launched by the worker on its first use.
    """
    if all(item.execute_client_scripts is False for item in work):
        return None, None  # no request may use it: not even looked for
    endpoint = fetcher_settings.browser_endpoint
    if endpoint:
        return {"endpoint": endpoint, "executable": None}, None
    from termshift.trackers.browser_path import resolve_browser_path

    try:
        executable = resolve_browser_path(fetcher_settings.browser_path)
    except FetchError as error:
        return None, error
    if executable is None:
        return None, FetchError(
            "No Chromium browser found to execute client scripts: install chromium, or set "
            "fetcher.browser_path or fetcher.browser_endpoint",
            ErrorKind.CONFIGURATION,
        )
    return {"endpoint": "", "executable": str(executable)}, None
