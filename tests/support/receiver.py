"""A real webhook receiver on 127.0.0.1 for the alerts tests and the delivery benchmark.

It verifies Standard Webhooks signatures with the subscription secret, answers
401 to a bad one, and records every request it gets. It can be told to:
- go down (`stop()`: the port stops listening, senders get "connection refused")
  and come back up on the same port (`start()`);
- answer 500 (`mode = "error"`), or redirect elsewhere (`mode = "redirect"`: 307 to /redirected);
- be slow (`delay = seconds` before answering);
- be hostile: `mode = "drip-body"` answers 200 with a 40-byte body sent one byte
  every `drip` seconds, `"drip-headers"` sends its status line and headers that way,
  `"huge-headers"` sends 200 with ~1 MB of headers (`closed_at` records when the
  sender hung up on a dripping answer).

Requests without `webhook-*` headers (Apprise `json://` notifications) are
recorded as unsigned (`verified is None`).

Also runnable on its own (the benchmark runs it in another process so it does
not compete with the sender for the GIL):
    python -m tests.support.receiver --secret whsec_… [--port N]
prints `listening on <port>` and serves `GET /_stats` (JSON counts).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from termshift.alerts.signing import SignatureError, verify


@dataclass
class Delivery:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    verified: bool | None  # None: unsigned (no webhook-* headers)
    error: str | None = None
    received_at: float = field(default_factory=time.time)

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address) -> None:
        """A sender that gave up (timeout) closes first: that is expected, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Receiver:
    """Start with `start()` (or as a context manager); `url(path)` is where to send."""

    def __init__(self, secret: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.secret = secret
        self.host = host
        self.port = port
        self.mode = "ok"
        self.delay = 0.0
        self.drip = 0.1  # seconds between two bytes of a dripping answer
        self.closed_at: list[float] = []  # when a sender hung up on a dripping answer (time.monotonic())
        self.deliveries: list[Delivery] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests it was answering at once
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- running -------------------------------------------------------------------------------------
    def start(self) -> Receiver:
        """Listen (again) on the same port."""
        self._server = _Server((self.host, self.port), self._handler_class())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: the receiver is down until `start()`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    # -- what was received ---------------------------------------------------------------------------
    def accepted(self) -> list[Delivery]:
        """Signed, verified requests answered 2xx."""
        with self._lock:
            return [d for d in self.deliveries if d.verified and 200 <= d.status < 300]

    def accepted_ids(self) -> Counter:
        """How many times each webhook-id was accepted (a value above 1 is a duplicate)."""
        return Counter(d.webhook_id for d in self.accepted())

    def unsigned(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.verified is None]

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        """Poll `predicate(self)` until true or `timeout` seconds pass."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate(self):
                return True
            time.sleep(0.02)
        return bool(predicate(self))

    def stats(self) -> dict[str, int]:
        ids = self.accepted_ids()
        with self._lock:
            total = len(self.deliveries)
            invalid = sum(1 for d in self.deliveries if d.verified is False)
        return {
            "received": total,
            "accepted": sum(ids.values()),
            "unique": len(ids),
            "duplicates": sum(count - 1 for count in ids.values()),
            "invalid": invalid,
        }

    # -- HTTP ----------------------------------------------------------------------------------------
    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Delivery]:
        verified: bool | None = None
        error = None
        if "webhook-id" in headers or "webhook-signature" in headers:
            if self.secret is None:
                verified, error = False, "no secret configured"
            else:
                try:
                    verify(self.secret, headers, body)
                    verified = True
                except SignatureError as problem:
                    verified, error = False, str(problem)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
        finally:
            with self._lock:
                self.in_flight -= 1
        status = 401 if verified is False else {"error": 500, "redirect": 307}.get(self.mode, 200)
        delivery = Delivery(path=path, headers=headers, body=body, status=status, verified=verified, error=error)
        with self._lock:
            self.deliveries.append(delivery)
        return status, delivery

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as most real receivers
            disable_nagle_algorithm = True  # headers and body go out as two writes

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died mid-request (a test kills it): like a real server, drop
                    # the truncated request instead of judging its signature.
                    self.close_connection = True
                    return
                headers = {key.lower(): value for key, value in self.headers.items()}
                status, _delivery = receiver._answer(self.path, headers, body)
                if receiver.mode in ("drip-body", "drip-headers", "huge-headers"):
                    self._hostile(receiver.mode)
                    return
                extra = {"Location": "/redirected"} if status == 307 else {}
                self._reply(status, b'{"ok": true}' if status == 200 else b'{"ok": false}', extra)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/_stats":
                    self._reply(200, json.dumps(receiver.stats()).encode())
                else:
                    self._reply(404, b"{}")

            def _hostile(self, mode: str) -> None:
                self.close_connection = True
                payload = b'{"ok": true, "padding": "............"}\n'
                head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(payload)}\r\n").encode()
                if mode == "huge-headers":
                    head += b"".join(f"X-Filler-{n}: {'x' * 10_000}\r\n".encode() for n in range(99))
                    self.wfile.write(head + b"\r\n" + payload)
                    return
                if mode == "drip-body":
                    self.wfile.write(head + b"\r\n")
                    self.wfile.flush()
                    slow = payload
                else:
                    slow = head + b"\r\n" + payload
                try:
                    for byte in slow:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(receiver.drip)
                except OSError:
                    with receiver._lock:
                        receiver.closed_at.append(time.monotonic())

            def _reply(self, status: int, payload: bytes, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret", required=True)
    parser.add_argument("--port", type=int, default=0)
    arguments = parser.parse_args()
    receiver = Receiver(secret=arguments.secret, port=arguments.port).start()
    print(f"listening on {receiver.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        receiver.stop()


if __name__ == "__main__":
    main()
