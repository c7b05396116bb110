"""Security headers for every answer, and the stricter policy of archived (hostile) pages.

The viewer's own pages load scripts and styles only from its origin (no inline code),
cannot be framed by another site, and send no referrer. An archived snapshot is
third-party HTML: it is served only from the raw-snapshot route, with a policy that
forbids every script, every network request and gives it an opaque origin (`sandbox`),
and it is shown only inside an `<iframe sandbox="">`.
"""

from __future__ import annotations

from flask import Flask, Response

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
    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in COMMON_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response
