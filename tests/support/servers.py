"""Real local HTTP servers for tests: real sockets on 127.0.0.x, no mocks.

Three classes, all usable as context managers::

    with FaultServer(hosts=3, latency=0.05) as server:
        url = server.url("/status/503", host=1)     # served by 127.0.0.2
        ...
        assert server.max_in_flight("127.0.0.2") <= 1

- `LocalServer`: a threaded HTTP/1.1 server listening on one or several loopback
  addresses. Each address is a distinct *host* (fetchers limit concurrency per
  host, so several addresses let tests check those limits). It records every
  request (`requests`, `hits(path)`) and the peak number of requests in flight per
  host (`max_in_flight(host)`). Routes are functions registered by path prefix
  (`route()`), or fixed pages (`add_page()`). `latency` delays every answer.
- `FaultServer`: built-in misbehaving routes (statuses, resets, time-outs,
  truncated and dripping bodies, redirect chains and loops, charsets, ETag/304,
  PDF, challenge pages, flaky answers). The route table is in its docstring.
- `JsPageServer`: pages whose content only exists after JavaScript ran, and a
  challenge page that a real browser passes (a cookie then a reload).

Every answer is produced by code here, so a test can read what the server did
(`requests`) rather than trust the client.
"""

from __future__ import annotations

import gzip
import http.server
import json
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from tests.fixtures.pdf.make_pdfs import pdf_document

__all__ = [
    "CLOUDFLARE_CHALLENGE_PAGE",
    "LOOPBACK_ALLOW_ENV",
    "LOOPBACK_NETWORK",
    "Exchange",
    "FaultServer",
    "JsPageServer",
    "LocalServer",
    "RecordedRequest",
    "html_page",
    "minimal_pdf",
    "self_signed_tls",
]


# The servers here listen on loopback, which the fetchers refuse unless allowed
# (fetcher.allow_private_targets): tests/conftest.py allows this network for every test;
# a test that starts `termshift` with an environment of its own passes it on.
LOOPBACK_NETWORK = "127.0.0.0/8"
LOOPBACK_ALLOW_ENV = {"TERMSHIFT_FETCHER_ALLOW_PRIVATE_TARGETS": LOOPBACK_NETWORK}


def html_page(title: str, text: str, *, head: str = "") -> str:
    """A small, ordinary HTML page with a title and a paragraph of text."""
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{title}</title>{head}</head>\n"
        f"<body><main><h1>{title}</h1><p>{text}</p></main></body></html>\n"
    )


def minimal_pdf(text: str = "Hello PDF") -> bytes:
    """A valid one-page PDF whose text layer holds `text` (ASCII), built by hand."""
    stream = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf_document(objects)


def self_signed_tls(hosts: Iterable[str] = ("127.0.0.1",)) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for `hosts` (no client trusts it)."""
    import datetime
    import ipaddress
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "termshift test server")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)) for host in hosts]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = f"{folder}/cert.pem", f"{folder}/key.pem"
        with open(cert_file, "wb") as out:
            out.write(certificate.public_bytes(serialization.Encoding.PEM))
        with open(key_file, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        context.load_cert_chain(cert_file, key_file)
    return context


# A Cloudflare managed-challenge page, reduced to the markers that identify it.
CLOUDFLARE_CHALLENGE_PAGE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="robots" content="noindex,nofollow"></head><body>
<div class="main-wrapper" role="main"><div class="main-content">
<noscript><div class="h2"><span id="challenge-error-text">Enable JavaScript and cookies to continue</span></div></noscript>
</div></div>
<script>(function(){window._cf_chl_opt={cvId: '3',cZone: 'example.com',cType: 'managed'};
var a = document.createElement('script');a.src = '/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1?ray=8';
document.getElementsByTagName('head')[0].appendChild(a);}());</script></body></html>
"""


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    host: str  # the local address that received it, e.g. "127.0.0.2"
    method: str
    path: str  # path and query, as sent
    headers: dict[str, str]  # names lower-cased
    started: float  # time.monotonic() when the request was read
    received_at: float  # the same moment as time.time(), to compare with HTTP dates
    answered: float | None = None  # monotonic time the answer started (or the connection was dropped)


@dataclass
class Exchange:
    """What a route function gets: the request, and ways to answer it."""

    handler: http.server.BaseHTTPRequestHandler
    host: str
    method: str
    path: str  # without the query
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    server: LocalServer

    @property
    def hits(self) -> int:
        """How many times this path (with its query) was requested, this one included."""
        return self.server.hits(self.handler.path)

    def send(
        self,
        status: int = 200,
        body: str | bytes = b"",
        content_type: str | None = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        """A complete answer with a Content-Length."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.handler.send_response(status)
        if content_type is not None:
            self.handler.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.handler.send_header(name, value)
        self.handler.send_header("Content-Length", str(len(data)))
        self.handler.end_headers()
        if self.method != "HEAD":
            self.handler.wfile.write(data)

    def send_head(self, status: int, headers: dict[str, str]) -> None:
        """Status line and headers only: the route writes the body itself (`write`)."""
        self.handler.send_response(status)
        for name, value in headers.items():
            self.handler.send_header(name, value)
        self.handler.end_headers()

    def write(self, data: bytes) -> None:
        self.handler.wfile.write(data)
        self.handler.wfile.flush()

    def redirect(self, location: str, status: int = 302) -> None:
        self.send(status, "", content_type=None, headers={"Location": location})

    def reset(self) -> None:
        """Abort the connection with a TCP reset (ECONNRESET on the client)."""
        connection = self.handler.connection
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
        self.handler.close_connection = True

    def close(self) -> None:
        """Close the connection after what was written (no more keep-alive)."""
        self.handler.wfile.flush()
        self.handler.close_connection = True
        self.handler.connection.shutdown(socket.SHUT_RDWR)


Route = Callable[[Exchange], None]


class LocalServer:
    """A threaded HTTP/1.1 server on one or several loopback addresses.

    `hosts` is a number of hosts (addresses 127.0.0.1, 127.0.0.2, …) or a list of
    addresses. Each address gets its own ephemeral port. `latency` (seconds) is
    waited before every answer; a `?delay=<seconds>` query adds to it. With `tls`
    (e.g. `self_signed_tls()`) it speaks HTTPS.
    """

    def __init__(
        self, hosts: int | Iterable[str] = 1, *, latency: float = 0.0, tls: ssl.SSLContext | None = None
    ) -> None:
        if isinstance(hosts, int):
            hosts = [f"127.0.0.{index + 1}" for index in range(hosts)]
        self.hosts: list[str] = list(hosts)
        self.latency = latency
        self.tls = tls
        self.robots_txt: str | None = None  # served at /robots.txt when set, else 404
        self.requests: list[RecordedRequest] = []
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()
        self._max_in_flight: Counter[str] = Counter()
        self._hits: Counter[str] = Counter()
        self._servers: list[http.server.ThreadingHTTPServer] = []
        self._ports: dict[str, int] = {}

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> LocalServer:
        handler = _make_handler(self)
        for host in self.hosts:
            server = _QuietServer((host, 0), handler)
            if self.tls is not None:
                # A client that rejects the certificate makes accept() fail: the server
                # shrugs it off (socketserver ignores OSError there) and goes on.
                server.socket = self.tls.wrap_socket(server.socket, server_side=True)
            self._ports[host] = server.server_address[1]
            self._servers.append(server)
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"LocalServer {host}", daemon=True
            ).start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses and routes ---------------------------------------------------------

    def url(self, path: str = "/", host: int | str = 0) -> str:
        """The URL of `path` on a host (its index in `hosts`, or its address)."""
        address = self.hosts[host] if isinstance(host, int) else host
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{address}:{self._ports[address]}{path}"

    def route(self, prefix: str, function: Route) -> None:
        """Answer every path starting with `prefix` with `function` (longest prefix wins)."""
        self._routes[prefix] = function

    def add_page(
        self,
        path: str,
        body: str | bytes,
        *,
        status: int = 200,
        content_type: str | None = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> str:
        """Serve a fixed answer at exactly `path`; returns its URL on the first host."""

        def fixed(exchange: Exchange) -> None:
            if exchange.path != path:
                exchange.send(404, "Not found")
                return
            exchange.send(status, body, content_type, headers)

        self.route(path, fixed)
        return self.url(path)

    # -- what happened -----------------------------------------------------------------

    def hits(self, path: str) -> int:
        """Requests received for `path` (including its query string, if any)."""
        with self._lock:
            return self._hits[path]

    def max_in_flight(self, host: str | None = None) -> int:
        """Peak number of requests in flight at once on a host (or on any host)."""
        with self._lock:
            if host is None:
                return max(self._max_in_flight.values(), default=0)
            return self._max_in_flight[host]

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    # -- internals ------------------------------------------------------------------

    def _find_route(self, path: str) -> Route | None:
        matches = [prefix for prefix in self._routes if path.startswith(prefix)]
        return self._routes[max(matches, key=len)] if matches else None

    def _begin(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)
            self._hits[record.path] += 1
            self._in_flight[record.host] += 1
            self._max_in_flight[record.host] = max(
                self._max_in_flight[record.host], self._in_flight[record.host]
            )

    def _answer(self, record: RecordedRequest) -> None:
        """The request stops being "in flight" when its answer starts: counting until the
        answer is fully written would race with a client already sending its next request."""
        with self._lock:
            if record.answered is None:
                record.answered = time.monotonic()
                self._in_flight[record.host] -= 1


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up (time-outs, size limits) are part of the tests


def _make_handler(owner: LocalServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers
        timeout = 30  # a client that vanishes does not hold a thread forever

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._serve()

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve()

        def _serve(self) -> None:
            host = self.connection.getsockname()[0]
            parts = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            headers = {name.lower(): value for name, value in self.headers.items()}
            record = RecordedRequest(host, self.command, self.path, headers, time.monotonic(), time.time())
            owner._begin(record)
            self._record = record
            try:
                delay = owner.latency + float(query.get("delay", 0))
                if delay:
                    time.sleep(delay)
                exchange = Exchange(self, host, self.command, parts.path, query, headers, owner)
                if parts.path == "/robots.txt" and owner.robots_txt is not None:
                    exchange.send(200, owner.robots_txt, "text/plain")
                    return
                route = owner._find_route(parts.path)
                if route is None:
                    exchange.send(404, html_page("Not found", f"No page at {parts.path}"))
                else:
                    route(exchange)
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True  # the client went away: nothing to answer
            finally:
                owner._answer(record)

        def send_response(self, code: int, message: str | None = None) -> None:
            owner._answer(self._record)
            super().send_response(code, message)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # tests read `requests`, not a log

    return Handler


class FaultServer(LocalServer):
    """A server whose routes misbehave in the ways real websites do.

    | path | answer |
    |---|---|
    | `/page/<name>` | 200, an HTML page titled `<name>` (`?size=N` pads the text to about N bytes) |
    | `/status/<code>` | that status with a small HTML body |
    | `/flaky/<n>/<code>/<token>` | `<code>` for the first `n` requests of this URL, then 200; `?retry_after=V` adds a Retry-After header |
    | `/sleep/<seconds>` | waits, then 200 (for time-outs) |
    | `/reset` | TCP reset before any answer |
    | `/truncated` | announces 5,000 bytes, sends 100, closes |
    | `/drip/<seconds>` | sends one byte every 50 ms for `<seconds>` |
    | `/redirect/<n>` | a chain of `n` 302 redirects ending on a 200 page |
    | `/loop` | redirects to itself forever |
    | `/big/<bytes>` | 200 with a body of that size (`?unsized=1`: no Content-Length) |
    | `/empty` | 200 with `Content-Length: 0` |
    | `/cp1251` | a windows-1251 page whose charset is only in `<meta http-equiv>` |
    | `/gzip` | a gzip-compressed page (when the client accepts gzip) |
    | `/no-content-type` | an HTML body without a Content-Type header |
    | `/etag` | ETag `"v1"` and Last-Modified; 304 when either validator matches |
    | `/pdf` | a small PDF (`minimal_pdf()`) |
    | `/challenge` | a Cloudflare challenge page (`?status=403` to change its status, `?header=1` for `cf-mitigated`) |
    """

    PAGE_TEXT = "These terms govern your use of the service. " * 4
    CP1251_TEXT = "Пользовательское соглашение"
    LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"

    def __init__(
        self, hosts: int | Iterable[str] = 1, *, latency: float = 0.0, tls: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(hosts, latency=latency, tls=tls)
        self.pdf = minimal_pdf("Terms of the PDF")
        for prefix, function in {
            "/page/": self._page,
            "/status/": self._status,
            "/flaky/": self._flaky,
            "/sleep/": self._sleep,
            "/reset": self._reset,
            "/truncated": self._truncated,
            "/drip/": self._drip,
            "/redirect/": self._redirect,
            "/loop": self._loop,
            "/big/": self._big,
            "/empty": self._empty,
            "/cp1251": self._cp1251,
            "/gzip": self._gzip,
            "/no-content-type": self._no_content_type,
            "/etag": self._etag,
            "/pdf": self._pdf,
            "/challenge": self._challenge,
        }.items():
            self.route(prefix, function)

    @staticmethod
    def _last(exchange: Exchange) -> str:
        return exchange.path.rstrip("/").rsplit("/", 1)[-1]

    def _page(self, exchange: Exchange) -> None:
        name = self._last(exchange)
        text = self.PAGE_TEXT
        size = int(exchange.query.get("size", 0))
        if size > len(text):
            text = (text * (size // len(text) + 1))[:size]
        exchange.send(200, html_page(name, text))

    def _status(self, exchange: Exchange) -> None:
        code = int(self._last(exchange))
        exchange.send(code, html_page(f"Status {code}", f"This answer has the status {code}."))

    def _flaky(self, exchange: Exchange) -> None:
        _, _, failures, code, _token = exchange.path.split("/", 4)
        if exchange.hits <= int(failures):
            headers = {}
            if "retry_after" in exchange.query:
                headers["Retry-After"] = exchange.query["retry_after"]
            exchange.send(int(code), html_page(f"Status {code}", "Try again later."), headers=headers)
        else:
            exchange.send(200, html_page("Recovered", self.PAGE_TEXT))

    def _sleep(self, exchange: Exchange) -> None:
        time.sleep(float(self._last(exchange)))
        exchange.send(200, html_page("Slow", self.PAGE_TEXT))

    def _reset(self, exchange: Exchange) -> None:
        exchange.reset()

    def _truncated(self, exchange: Exchange) -> None:
        exchange.send_head(200, {"Content-Type": "text/html", "Content-Length": "5000"})
        exchange.write(b"<html><body>" + b"x" * 88)
        exchange.close()

    def _drip(self, exchange: Exchange) -> None:
        seconds = float(self._last(exchange))
        count = max(1, int(seconds / 0.05))
        exchange.send_head(200, {"Content-Type": "text/html", "Content-Length": str(count)})
        for _ in range(count):
            exchange.write(b"x")
            time.sleep(0.05)

    def _redirect(self, exchange: Exchange) -> None:
        remaining = int(self._last(exchange))
        if remaining <= 0:
            exchange.send(200, html_page("Redirect target", self.PAGE_TEXT))
        else:
            exchange.redirect(f"/redirect/{remaining - 1}")

    def _loop(self, exchange: Exchange) -> None:
        exchange.redirect("/loop")

    def _big(self, exchange: Exchange) -> None:
        size = int(self._last(exchange))
        headers = {"Content-Type": "text/html"}
        if exchange.query.get("unsized"):
            headers["Connection"] = "close"
        else:
            headers["Content-Length"] = str(size)
        exchange.send_head(200, headers)
        chunk = b"<p>" + b"a" * 1017 + b"</p>\n"
        sent = 0
        while sent < size:
            piece = chunk[: size - sent]
            exchange.write(piece)
            sent += len(piece)
        if exchange.query.get("unsized"):
            exchange.close()

    def _empty(self, exchange: Exchange) -> None:
        exchange.send(200, b"", "text/html")

    def _cp1251(self, exchange: Exchange) -> None:
        page = (
            '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
            f"<title>{self.CP1251_TEXT}</title></head><body><p>{self.CP1251_TEXT}</p></body></html>"
        )
        exchange.send(200, page.encode("windows-1251"), "text/html")

    def _gzip(self, exchange: Exchange) -> None:
        body = html_page("Compressed", self.PAGE_TEXT).encode("utf-8")
        if "gzip" in exchange.headers.get("accept-encoding", ""):
            exchange.send(200, gzip.compress(body), headers={"Content-Encoding": "gzip"})
        else:
            exchange.send(200, body)

    def _no_content_type(self, exchange: Exchange) -> None:
        exchange.send(200, html_page("Untyped", self.PAGE_TEXT), content_type=None)

    def _etag(self, exchange: Exchange) -> None:
        validators = {"ETag": '"v1"', "Last-Modified": self.LAST_MODIFIED}
        if (
            exchange.headers.get("if-none-match") == '"v1"'
            or exchange.headers.get("if-modified-since") == self.LAST_MODIFIED
        ):
            exchange.send(304, b"", content_type=None, headers=validators)
        else:
            exchange.send(200, html_page("Versioned", self.PAGE_TEXT), headers=validators)

    def _pdf(self, exchange: Exchange) -> None:
        exchange.send(200, self.pdf, "application/pdf")

    def _challenge(self, exchange: Exchange) -> None:
        status = int(exchange.query.get("status", 200))
        headers = {"Server": "cloudflare", "CF-RAY": "8a1b2c3d4e5f-CDG"}
        if exchange.query.get("header"):
            headers["cf-mitigated"] = "challenge"
        exchange.send(status, CLOUDFLARE_CHALLENGE_PAGE, headers=headers)


class JsPageServer(LocalServer):
    """Pages whose content exists only after JavaScript ran.

    | path | answer |
    |---|---|
    | `/js/delayed?ms=N` | `<div id="terms">` with the terms text is added N ms after load (default 300) |
    | `/js/filled?ms=N` | `<div id="terms">` exists at once but gets its text after N ms |
    | `/js/never` | `<div id="terms">` never gets any text |
    | `/js/challenge` | without the `passed` cookie: a 403 challenge page whose script sets the cookie and reloads after 300 ms; with it: the terms page |
    | `/js/language` | a page that writes `navigator.language(s)` and the Accept-Language it was sent |
    | `/js/pdf` | a small PDF |
    | `/js/echo-headers` | a JSON echo of the request headers |
    """

    # Long enough to be a real page, not an empty shell (blocking.SHELL_TEXT_LIMIT).
    TERMS_TEXT = "These terms were written by JavaScript. " + "They govern your use of the service. " * 8

    def __init__(self, hosts: int | Iterable[str] = 1, *, latency: float = 0.0) -> None:
        super().__init__(hosts, latency=latency)
        self.pdf = minimal_pdf("Terms of the PDF")
        self.route("/js/delayed", self._delayed)
        self.route("/js/filled", self._filled)
        self.route("/js/never", self._never)
        self.route("/js/challenge", self._challenge)
        self.route("/js/language", self._language)
        self.route("/js/pdf", lambda exchange: exchange.send(200, self.pdf, "application/pdf"))
        self.route("/js/echo-headers", self._echo_headers)

    def _delayed(self, exchange: Exchange) -> None:
        ms = int(exchange.query.get("ms", 300))
        script = (
            "setTimeout(function () { var d = document.createElement('div'); d.id = 'terms';"
            f" d.textContent = {json.dumps(self.TERMS_TEXT)}; document.body.appendChild(d); }}, {ms});"
        )
        exchange.send(200, html_page("Delayed", "Loading the terms…", head=f"<script>{script}</script>"))

    def _filled(self, exchange: Exchange) -> None:
        ms = int(exchange.query.get("ms", 300))
        body = (
            "<!DOCTYPE html><html><head><title>Filled</title></head><body>"
            '<div id="terms"> </div>'
            "<script>setTimeout(function () { document.getElementById('terms').textContent = "
            f"{json.dumps(self.TERMS_TEXT)}; }}, {ms});</script></body></html>"
        )
        exchange.send(200, body)

    def _never(self, exchange: Exchange) -> None:
        exchange.send(200, '<!DOCTYPE html><html><body><p>Shell text only.</p><div id="terms"></div></body></html>')

    def _challenge(self, exchange: Exchange) -> None:
        if "passed=1" in exchange.headers.get("cookie", ""):
            exchange.send(200, html_page("Terms", self.TERMS_TEXT))
            return
        script = "<script>setTimeout(function () { document.cookie = 'passed=1; path=/'; location.reload(); }, 300);</script>"
        page = CLOUDFLARE_CHALLENGE_PAGE.replace("</body>", script + "</body>")
        exchange.send(403, page, headers={"Server": "cloudflare", "cf-mitigated": "challenge"})

    def _language(self, exchange: Exchange) -> None:
        header = json.dumps(exchange.headers.get("accept-language", ""))
        body = (
            "<!DOCTYPE html><html><body><pre id=\"language\"></pre><script>"
            "document.getElementById('language').textContent = JSON.stringify("
            f"{{language: navigator.language, languages: navigator.languages, header: {header},"
            " webdriver: navigator.webdriver, userAgent: navigator.userAgent,"
            " width: window.innerWidth, height: window.innerHeight});"
            "</script></body></html>"
        )
        exchange.send(200, body)

    def _echo_headers(self, exchange: Exchange) -> None:
        exchange.send(200, json.dumps(exchange.headers), "application/json")
