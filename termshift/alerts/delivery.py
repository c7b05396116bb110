"""Sending queued events: signed webhooks and Apprise notifications, concurrent but bounded.

`deliver_due(data_dir, settings.webhooks)` runs one pass: `webhooks.concurrency` worker
threads each claim a due row, send it, and record the outcome at once (see
outbox.py for the guarantees), until every row that was due when the pass
began has been tried. `drain(...)` repeats passes, sleeping until the next
retry, until every event is settled or time is up. The scheduler calls
`deliver_due` every `schedule.deliveries` seconds; `termshift track --deliver`
drains right after the run so subscribers hear at once.

Webhook requests use the standard library's http.client so that:
- the connection goes to the address the SSRF guard just checked (no second DNS
  lookup between check and connect: DNS rebinding cannot redirect it), with the
  original host name in `Host` and in TLS SNI/certificate checks;
- redirects are never followed (a 3xx is a failed attempt, logged with its Location);
- the whole attempt (connect, send, wait for the answer, read it) has a wall-clock
  deadline of `webhooks.timeout`: per-read socket time-outs alone would let a
  receiver that drips one byte a second hold a worker for ever. A watchdog shuts
  the socket down at the deadline, and the attempt fails as timed out (even after a
  2xx status line: an answer not received in time is not a delivery);
- the answer is capped: MAX_HEADER_BYTES of status line and headers (and
  http.client's 100 header lines) or the attempt fails; at most MAX_RESPONSE_BYTES
  of body are read, then the connection is closed.

A worker records an outcome only while it still holds the row's claim (see
`outbox.record_success`): an attempt that outlived its lease leaves the row to
the worker that took it over.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from termshift import __version__, ssrf
from termshift.alerts import channels, outbox, store
from termshift.alerts.options import claim_lease
from termshift.alerts.signing import signature_headers
from termshift.config import WebhooksSettings
from termshift.errors import TermshiftError

log = logging.getLogger(__name__)

USER_AGENT = f"Termshift-Webhooks/{__version__}"
MAX_RESPONSE_BYTES = 64 * 1024  # we only need the status; do not let a receiver stream at us
MAX_HEADER_BYTES = 64 * 1024  # the status line and the headers, together


class AnswerTooLargeError(TermshiftError, http.client.HTTPException):
    """The receiver's answer went past MAX_HEADER_BYTES (headers) or MAX_RESPONSE_BYTES (body)."""


@dataclass(frozen=True)
class Attempt:
    """The result of one send."""

    ok: bool
    status_code: int | None
    error: str | None
    duration: float  # seconds


@dataclass
class DeliveryReport:
    """What a pass (or a drain) did: attempts that delivered, will be retried, or gave up."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def attempted(self) -> int:
        return self.delivered + self.retried + self.failed

    def count(self, outcome: str) -> None:
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)

    def add(self, other: DeliveryReport) -> None:
        self.delivered += other.delivered
        self.retried += other.retried
        self.failed += other.failed
        self.seconds += other.seconds


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        return remaining


def _connect_checked(target: ssrf.Target, timeout: float) -> socket.socket:
    """A TCP connection to the first checked address that answers (like create_connection, minus DNS)."""
    last_error: OSError | None = None
    for address in target.addresses:
        try:
            sock = socket.create_connection((address, target.port), timeout)
        except OSError as error:
            last_error = error
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise last_error or OSError(f"{target.host} has no address")


class _CappedReader:
    """The response's socket file, refusing to read more than `limit` bytes in all."""

    def __init__(self, raw: Any, limit: int) -> None:
        self._raw = raw
        self.limit = limit
        self.consumed = 0

    def _count(self, size: int) -> None:
        self.consumed += size
        if self.consumed > self.limit:
            raise AnswerTooLargeError(f"the answer is longer than {self.limit} bytes")

    def _cap(self, size: int | None) -> int:
        left = self.limit - self.consumed + 1  # one byte more than allowed shows it is too long
        return left if size is None or size < 0 else min(size, left)

    def read(self, size: int | None = -1) -> bytes:
        data = self._raw.read(self._cap(size))
        self._count(len(data))
        return data

    def read1(self, size: int = -1) -> bytes:
        data = self._raw.read1(self._cap(size))
        self._count(len(data))
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self._raw.readline(self._cap(size))
        self._count(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)[: self._cap(len(buffer))]
        count = self._raw.readinto(view)
        self._count(count or 0)
        return count

    def peek(self, size: int = 0) -> bytes:
        return self._raw.peek(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _CappedResponse(http.client.HTTPResponse):
    """An answer read through a _CappedReader: headers, then at most MAX_RESPONSE_BYTES of body."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp = _CappedReader(self.fp, MAX_HEADER_BYTES)

    def begin(self) -> None:
        super().begin()
        if isinstance(self.fp, _CappedReader):  # headers read: the body gets its own allowance
            # (twice: chunked framing counts too; `_exchange` reads MAX_RESPONSE_BYTES of body at most)
            self.fp.limit = self.fp.consumed + 2 * MAX_RESPONSE_BYTES


class _Watchdog:
    """Shuts a connection's socket down when the attempt's deadline passes, wherever it is blocked."""

    def __init__(self, connection: http.client.HTTPConnection, deadline: _Deadline) -> None:
        self.connection = connection
        self.fired = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, deadline.end - time.monotonic()), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sock = self.connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to the checked addresses, whatever the host name resolves to now."""

    response_class = _CappedResponse

    def __init__(self, target: ssrf.Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.target = target

    def connect(self) -> None:
        self.sock = _connect_checked(self.target, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same over TLS: certificate checked against the host name, not the address."""

    response_class = _CappedResponse

    def __init__(self, target: ssrf.Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self.target = target

    def connect(self) -> None:
        self.sock = self._context.wrap_socket(_connect_checked(self.target, self.timeout), server_hostname=self.host)


class WebhookSender:
    """Posts signed events for one worker thread.

    It keeps the connection to each target open between events (HTTP keep-alive:
    no new TCP and TLS handshake per event), but only while the target still
    resolves to the very addresses the connection was checked for.
    """

    def __init__(self, webhook_options: WebhooksSettings) -> None:
        self.options = webhook_options
        self._idle: dict[tuple[str, str, int], http.client.HTTPConnection] = {}

    def close(self) -> None:
        for connection in self._idle.values():
            connection.close()
        self._idle.clear()

    def post(self, url: str, secret: str, event_id: str, body: bytes) -> Attempt:
        """POST one signed event. Never raises: failures come back as `Attempt(ok=False, error=…)`."""
        started = time.monotonic()

        def done(ok: bool, status: int | None, error: str | None) -> Attempt:
            return Attempt(ok, status, error, time.monotonic() - started)

        deadline = _Deadline(self.options.timeout)
        try:
            target = ssrf.check_target(url, self.options.allow_private_targets)
        except ssrf.UnsafeTargetError as error:
            return done(False, None, f"refused: {error}")
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {
            **signature_headers(secret, event_id, body),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        try:
            status, reason, location = self._exchange(target, path, body, headers, deadline)
        except TimeoutError:
            return done(False, None, f"timed out after {self.options.timeout:g} s")
        except AnswerTooLargeError as error:
            return done(False, None, f"refused the answer: {error}")
        except (OSError, http.client.HTTPException) as error:
            if time.monotonic() >= deadline.end:  # the watchdog cut the connection
                return done(False, None, f"timed out after {self.options.timeout:g} s")
            return done(False, None, f"{type(error).__name__}: {error}")
        if 200 <= status < 300:
            return done(True, status, None)
        if 300 <= status < 400:
            return done(False, status, f"redirect to {location!r} not followed")
        return done(False, status, f"HTTP {status} {reason}".strip())

    def _connection(self, target: ssrf.Target) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection checked for the same addresses, or a new one; and whether it is reused."""
        key = (target.scheme, target.host, target.port)
        idle = self._idle.pop(key, None)
        if idle is not None and idle.target.addresses == target.addresses:  # type: ignore[attr-defined]
            return idle, True
        if idle is not None:
            idle.close()
        connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
        return connection_class(target, timeout=self.options.timeout), False

    def _exchange(
        self, target: ssrf.Target, path: str, body: bytes, headers: dict[str, str], deadline: _Deadline,
    ) -> tuple[int, str, str | None]:
        connection, reused = self._connection(target)
        try:
            try:
                with _Watchdog(connection, deadline) as watchdog:
                    response = self._request(connection, path, body, headers, deadline)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not reused or watchdog.fired:
                    raise
                # The receiver closed the idle connection meanwhile: once more on a fresh one.
                connection.close()
                connection, reused = self._connection(target)
                with _Watchdog(connection, deadline):
                    response = self._request(connection, path, body, headers, deadline)
            with _Watchdog(connection, deadline):
                connection.sock and connection.sock.settimeout(deadline.left())
                response.read(MAX_RESPONSE_BYTES)  # the rest, if any, is not read: the connection closes
            deadline.left()  # raises TimeoutError when the answer came too late
        except BaseException:
            connection.close()
            raise
        if response.isclosed():  # answer read to the end: the connection can serve the next event
            self._idle[(target.scheme, target.host, target.port)] = connection
        else:
            connection.close()
        return response.status, response.reason, response.getheader("Location")

    @staticmethod
    def _request(
        connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str], deadline: _Deadline,
    ) -> http.client.HTTPResponse:
        """Send and wait for the answer, each step within what is left of the timeout."""
        connection.timeout = deadline.left()
        if connection.sock is not None:
            connection.sock.settimeout(deadline.left())
        connection.request("POST", path, body=body, headers=headers)
        connection.sock.settimeout(deadline.left())
        response = connection.getresponse()
        connection.sock and connection.sock.settimeout(deadline.left())
        return response


def post_webhook(url: str, secret: str, event_id: str, body: bytes, webhook_options: WebhooksSettings) -> Attempt:
    """POST one signed event on a connection of its own (see WebhookSender)."""
    sender = WebhookSender(webhook_options)
    try:
        return sender.post(url, secret, event_id, body)
    finally:
        sender.close()


def _notification_text(event_type: str, body: bytes) -> tuple[str, str]:
    """Title and body of an Apprise notification for a stored event."""
    payload = json.loads(body)
    data = payload["data"]
    if event_type == "webhook.test":
        return "Termshift test", f"{data['message']} (event {payload['id']})"
    kind = "First record" if data["is_first_record"] else "Change"
    title = f"{kind}: {data['service_id']} {data['terms_type']}"
    text = f"{data['summary']}\n\n{data['links']['diff']}\n\nEvent {payload['id']}"
    return title, text


def notify_apprise(url: str, event_type: str, event_id: str, body: bytes, webhook_options: WebhooksSettings) -> Attempt:
    """Send one event through Apprise, under the channel rules (channels.py). Never raises."""
    import apprise  # loaded lazily: importing Apprise loads all its plugins

    started = time.monotonic()
    allow = webhook_options.allow_private_targets
    asset = apprise.AppriseAsset(http_redirects=False)
    try:
        plugin = channels.without_redirects(channels.check_channel_url(url, allow, asset))
    except channels.ChannelError as error:
        return Attempt(False, None, f"refused: url: {error}", time.monotonic() - started)
    plugin.socket_connect_timeout = plugin.socket_read_timeout = webhook_options.timeout
    channel = apprise.Apprise(asset=asset)
    channel.add(plugin)
    with channels.guarded_send(url, allow) as guard:
        try:
            title, text = _notification_text(event_type, body)
            result = channel.notify(body=text, title=title, timeout=webhook_options.timeout)
        except Exception as error:  # noqa: BLE001 - a plugin's bug is one failed attempt, not a dead worker
            return Attempt(False, None, f"Apprise: {type(error).__name__}: {error}", time.monotonic() - started)
    if guard.refused:
        return Attempt(False, None, f"refused: {guard.refused[0]}", time.monotonic() - started)
    if result:
        return Attempt(True, None, None, time.monotonic() - started)
    messages = [str(getattr(entry, "message", entry)) for entry in result.logs()]
    return Attempt(False, None, "; ".join(messages[-3:]) or "Apprise reported a failure", time.monotonic() - started)


def send(claimed: outbox.Claimed, webhook_options: WebhooksSettings, sender: WebhookSender | None = None) -> Attempt:
    """Send one claimed event through its channel."""
    if claimed.kind != "webhook":
        return notify_apprise(claimed.url, claimed.event_type, claimed.event_id, claimed.body, webhook_options)
    if sender is None:
        return post_webhook(claimed.url, claimed.secret, claimed.event_id, claimed.body, webhook_options)
    return sender.post(claimed.url, claimed.secret, claimed.event_id, claimed.body)


class _Pass:
    """One delivery pass: workers claim, send and record until nothing (that was due at the start) is left.

    Each worker claims one row at a time, so a row is claimed only just before it
    is sent. Writes go through one lock per process: the workers then never wait
    in SQLite's busy handler (which sleeps), only on each other, for the length
    of a short transaction.
    """

    def __init__(
        self, data_dir: Path, webhook_options: WebhooksSettings, limit: int | None, event_id: str | None,
        stop: threading.Event | None,
    ):
        self.data_dir = data_dir
        self.options = webhook_options
        self.remaining = limit
        self.event_id = event_id
        self.stop = stop or threading.Event()
        self.report = DeliveryReport()
        # Only what was due when the pass began: a retry scheduled during the pass
        # waits for the next one, so a pass always ends.
        self.due_by = time.time()
        self.recovered: set[int] = set()
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.prefix = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def _take_slot(self) -> bool:
        if self.stop.is_set():  # asked to stop: claim nothing more, finish what is in flight
            return False
        with self.lock:
            if self.remaining is None:
                return True
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True

    def worker(self, number: int) -> None:
        db = store.connect(self.data_dir)
        sender = WebhookSender(self.options)
        token = f"{self.prefix}:{number}"
        try:
            while self._take_slot():
                with self.write_lock:
                    claimed = outbox.claim(
                        db, token, claim_lease(self.options), due_by=self.due_by, event_id=self.event_id,
                    )
                if not claimed:
                    return
                try:
                    self._deliver(db, sender, claimed[0])
                except Exception:  # noqa: BLE001 - the row stays claimed and is retried when its lease ends
                    log.exception("delivering %s failed unexpectedly", claimed[0].event_id)
        finally:
            sender.close()
            db.close()

    def _deliver(self, db, sender: WebhookSender, claimed: outbox.Claimed) -> None:
        started = time.time()
        attempt = send(claimed, self.options, sender)
        if attempt.ok:
            with self.write_lock:
                held = outbox.record_success(db, claimed, started, attempt.duration, attempt.status_code)
            self.report.count("delivered" if held else "retried")
            if not held:
                return
            if claimed.attempt > 1 and claimed.subscription_id not in self.recovered:
                self.recovered.add(claimed.subscription_id)
                with self.write_lock:
                    outbox.hurry_retries(db, claimed.subscription_id)
            return
        with self.write_lock:
            outcome = outbox.record_failure(
                db, claimed, started, attempt.duration, attempt.status_code, attempt.error or "failed", self.options,
            )
        self.report.count("failed" if outcome == "failed" else "retried")
        log.info("webhook %s to subscription %s: %s", claimed.event_id, claimed.subscription_id, attempt.error)


# Seconds between two looks at pending signals while a delivery pass runs (see deliver_due).
JOIN_STEP = 0.1


def deliver_due(
    data_dir: Path, webhooks: WebhooksSettings | None = None, limit: int | None = None, event_id: str | None = None,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Deliver what is due now, once each (at most `limit` attempts; only `event_id` if given).

    `webhooks` is the `[webhooks]` section (`Settings.webhooks`; None: the defaults).

    Failed attempts are rescheduled for a later pass; the call returns when
    every row that was due at its start has been tried, or, once `stop` is set,
    as soon as the requests in flight are answered and recorded (nothing is
    left half-done, so a graceful restart repeats nothing).
    """
    webhook_options = webhooks or WebhooksSettings()
    started = time.monotonic()
    delivery_pass = _Pass(Path(data_dir), webhook_options, limit, event_id, stop)
    workers = 1 if event_id else webhook_options.concurrency
    threads = [
        threading.Thread(target=delivery_pass.worker, args=(number,), name=f"webhooks-{number}", daemon=True)
        for number in range(workers)
    ]
    for thread in threads:
        thread.start()
    # Joined in short steps: Python runs signal handlers in the main thread only, and only between
    # bytecodes. A SIGTERM the kernel hands to a worker thread leaves a main thread blocked in a
    # plain join() waiting for the whole pass, so the stop asked for would come after every event.
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(JOIN_STEP)
    delivery_pass.report.seconds = time.monotonic() - started
    return delivery_pass.report


def drain(
    data_dir: Path, webhooks: WebhooksSettings | None = None, max_seconds: float | None = None,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Deliver passes until no event is pending or in flight, sleeping until the next is due.

    Returns early when `max_seconds` is up or `stop` is set; what is left stays queued.
    """
    stop = stop or threading.Event()
    total = DeliveryReport()
    started = time.monotonic()
    end = None if max_seconds is None else started + max_seconds
    db = store.connect(Path(data_dir))
    try:
        while not stop.is_set():
            total.add(deliver_due(data_dir, webhooks, stop=stop))
            due = outbox.next_due(db)
            if due is None:
                break
            wait = max(0.0, due - time.time())
            if end is not None and time.monotonic() + wait > end:
                break
            stop.wait(min(wait, 1.0) + 0.01)
    finally:
        db.close()
    total.seconds = time.monotonic() - started
    return total
