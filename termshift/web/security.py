"""Security headers for every answer, and the stricter policy of archived (hostile) pages.

The viewer's own pages load scripts and styles only from its origin (no inline code),
cannot be framed by another site, and send no referrer. An archived snapshot is
third-party HTML: it is served only from the raw-snapshot route, with a policy that
forbids every script, every network request and gives it an opaque origin (`sandbox`),
and it is shown only inside an `<iframe sandbox="">`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge, SecurityError

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# For archived pages. `sandbox` (no allow-* token) also applies when the raw URL is
# opened directly, outside the viewer's iframe.
SNAPSHOT_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; "
    "frame-ancestors 'self'; form-action 'none'; base-uri 'none'"
)

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def mark_as_snapshot(response: Response) -> Response:
    """Give a response carrying archived content the snapshot policy."""
    response.headers["Content-Security-Policy"] = SNAPSHOT_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


def register(app: Flask) -> None:
    @app.errorhandler(SecurityError)
    def _untrusted_host(error: SecurityError) -> Response:
        """A `Host` outside `web.trusted_hosts`: a plain answer (no page: no URL can be built for it)."""
        return Response("Bad request: this host name is not served here.\n", 400, mimetype="text/plain")

    @app.before_request
    def _body_limit() -> None:
        """A declared body over MAX_CONTENT_LENGTH is refused before anyone reads it (a handler
        reading JSON with `silent=True` would otherwise see no body and answer 400)."""
        limit = app.config.get("MAX_CONTENT_LENGTH")
        if limit and request.content_length is not None and request.content_length > limit:
            raise RequestEntityTooLarge(f"The request body is larger than {limit} bytes.")

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in COMMON_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response


# --- the administrator ----------------------------------------------------------------------
#
# One admin token (`web.admin_token`, at least MIN_ADMIN_TOKEN characters) opens the admin API,
# the /declare page and the details of /status, /status.json and /healthz. A request proves it
# has the token with `Authorization: Bearer <token>`, or with the session cookie the login form
# of /declare sets: a random id, kept on the server, that expires after `SESSION_LIFETIME`
# seconds (config `ADMIN_SESSION_LIFETIME`) and that logging out revokes.

MIN_ADMIN_TOKEN = 32
SESSION_COOKIE = "termshift_admin"
SESSION_LIFETIME = 8 * 3600.0


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an empty `given` never matches."""
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def admin_token() -> str:
    """The app's admin token ('' when the admin features are off)."""
    return current_app.config.get("ADMIN_TOKEN") or ""


def bearer_is_admin(token: str | None = None) -> bool:
    token = admin_token() if token is None else token
    scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and same_secret(given.strip(), token)


class AdminSessions:
    """Admin sessions of one viewer process: random ids (only their hashes are kept), each
    bound to the token it was opened with, expiring after `lifetime` seconds.

    They live in the process's memory: a restart logs the administrator out, and with
    several worker processes (a WSGI server of your own with workers > 1) use the bearer
    token instead of the login form."""

    def __init__(self, lifetime: float = SESSION_LIFETIME) -> None:
        self.lifetime = lifetime
        self._sessions: dict[str, tuple[str, float]] = {}  # sha256(id) -> (token fingerprint, expiry)
        self._lock = threading.Lock()

    @staticmethod
    def _key(session_id: str) -> str:
        return hashlib.sha256(session_id.encode()).hexdigest()

    @staticmethod
    def _fingerprint(token: str) -> str:
        return hmac.new(token.encode(), b"termshift admin session", hashlib.sha256).hexdigest()

    def open(self, token: str) -> str:
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            self._sessions = {key: value for key, value in self._sessions.items() if value[1] > now}
            self._sessions[self._key(session_id)] = (self._fingerprint(token), now + self.lifetime)
        return session_id

    def valid(self, session_id: str | None, token: str) -> bool:
        if not session_id or not token:
            return False
        with self._lock:
            found = self._sessions.get(self._key(session_id))
        return found is not None and found[1] > time.time() and hmac.compare_digest(found[0], self._fingerprint(token))

    def revoke(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(self._key(session_id), None)


def admin_sessions(app: Flask | None = None) -> AdminSessions:
    """The app's session store (created on first use)."""
    app = app or current_app
    sessions = app.extensions.get("termshift_admin_sessions")
    if sessions is None:
        sessions = AdminSessions(float(app.config.get("ADMIN_SESSION_LIFETIME") or SESSION_LIFETIME))
        app.extensions["termshift_admin_sessions"] = sessions
    return sessions


def session_is_admin(token: str | None = None) -> bool:
    token = admin_token() if token is None else token
    return admin_sessions().valid(request.cookies.get(SESSION_COOKIE), token)


def is_admin() -> bool:
    """True when an admin token is configured and the request proves it has it."""
    token = admin_token()
    return bool(token) and (bearer_is_admin(token) or session_is_admin(token))


# --- rate limits ----------------------------------------------------------------------------
#
# Per client address (`request.remote_addr`: the proxy's client when `web.trusted_proxies` is
# set), in the memory of the viewer process, with the `limits` library's moving window.
# The login form gets the strictest limit; the admin API and /declare a looser one (a /declare
# preview fetches a page twice). Beyond it: 429 with Retry-After.

RATE_LIMITED = (  # (name, config key, does the request count)
    ("login", "LOGIN_RATE_LIMIT", lambda: request.method == "POST" and request.path == "/declare/login"),
    ("admin", "ADMIN_RATE_LIMIT", lambda: request.path.startswith(("/api/admin/", "/declare"))),
)
DEFAULT_RATE_LIMITS = {"LOGIN_RATE_LIMIT": "10/minute", "ADMIN_RATE_LIMIT": "300/minute"}


def register_rate_limits(app: Flask) -> None:
    from limits import parse, storage, strategies

    limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
    rates = {name: parse(app.config.get(key) or DEFAULT_RATE_LIMITS[key]) for name, key, _counts in RATE_LIMITED}

    @app.before_request
    def _rate_limit() -> Response | None:
        for name, _key, counts in RATE_LIMITED:
            if not counts():
                continue
            address = request.remote_addr or "unknown"
            if not limiter.hit(rates[name], name, address):
                reset = limiter.get_window_stats(rates[name], name, address).reset_time
                response = Response(f"Too many requests: at most {rates[name]} from one address.\n", 429,
                                    mimetype="text/plain")
                response.headers["Retry-After"] = str(max(1, int(reset - time.time()) + 1))
                return response
        return None
