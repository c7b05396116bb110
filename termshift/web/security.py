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
import sqlite3
import threading
import time
from pathlib import Path

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge, SecurityError

from termshift import sqlite_wal

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
    """Admin sessions of one viewer: random ids (only their hashes are kept), each bound to
    the token it was opened with, expiring after `lifetime` seconds.

    Kept in a small SQLite file beside the index, so that every process of a server
    (`web.processes`) knows them and a restart does not log the administrator out.
    """

    def __init__(self, path: Path | None, lifetime: float = SESSION_LIFETIME) -> None:
        self.path = Path(path) if path is not None else None  # None: this process's memory only
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite_wal.connect(self.path, check_same_thread=False, timeout=10) if self.path \
                else sqlite3.connect(":memory:", check_same_thread=False)
            connection.execute("CREATE TABLE IF NOT EXISTS admin_sessions "
                               "(key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, expires REAL NOT NULL)")
            connection.commit()
            self._connection = connection
        return self._connection

    @staticmethod
    def _key(session_id: str) -> str:
        return hashlib.sha256(session_id.encode()).hexdigest()

    @staticmethod
    def _fingerprint(token: str) -> str:
        return hmac.new(token.encode(), b"termshift admin session", hashlib.sha256).hexdigest()

    def open(self, token: str) -> str:
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock, self._db() as db:
            db.execute("DELETE FROM admin_sessions WHERE expires <= ?", (now,))
            db.execute("INSERT INTO admin_sessions VALUES (?, ?, ?)",
                       (self._key(session_id), self._fingerprint(token), now + self.lifetime))
        return session_id

    def valid(self, session_id: str | None, token: str) -> bool:
        if not session_id or not token:
            return False
        with self._lock:
            found = self._db().execute("SELECT fingerprint, expires FROM admin_sessions WHERE key = ?",
                                       (self._key(session_id),)).fetchone()
        return found is not None and found[1] > time.time() and hmac.compare_digest(found[0], self._fingerprint(token))

    def revoke(self, session_id: str | None) -> None:
        if session_id:
            with self._lock, self._db() as db:
                db.execute("DELETE FROM admin_sessions WHERE key = ?", (self._key(session_id),))


def sessions_path(index_path: Path) -> Path:
    """Where the admin sessions of the viewer using this index are kept."""
    index_path = Path(index_path)
    return index_path.with_name(index_path.stem + "-sessions.sqlite")


def admin_sessions(app: Flask | None = None) -> AdminSessions:
    """The app's session store (created on first use)."""
    app = app or current_app
    sessions = app.extensions.get("termshift_admin_sessions")
    if sessions is None:
        viewer = app.extensions.get("termshift")  # None: a blueprint used in an app of one's own
        sessions = AdminSessions(sessions_path(viewer.sources.index) if viewer else None,
                                 float(app.config.get("ADMIN_SESSION_LIFETIME") or SESSION_LIFETIME))
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
