"""The service's health, as one Flask blueprint (`blueprint`).

Routes (registered by the viewer's app factory):

    GET /status        the status page: last run, next runs, failing documents, deliveries, publishing
    GET /status.json   the same data as JSON
    GET /healthz       for probes: 200 {"status": "ok", ...} or 503 {"status": "fail", ...}
    GET /metrics       Prometheus text format

Everyone sees what is wrong in plain words; the details (push remotes, git's and SQLite's
messages, the lock holder's host and pid, paths) only the administrator: a request with
`Authorization: Bearer <web.admin_token>`, or with the session of the /declare login form.

What the blueprint reads from the app (as the feeds blueprint does):
`app.config["SETTINGS"]` (a `termshift.config.Settings`), and `app.config["DATA_DIR"]`
which, when set, overrides the data folder. Everything shown is read from the data
folder at each request (termshift.monitoring), so it is right even when the scheduler runs
in another process. The status page extends the site's base template (header,
navigation, language switch, footer); registering the blueprint installs what that
template needs (`termshift.web.layout`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, send_from_directory, url_for
from flask.blueprints import BlueprintSetupState
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from termshift import monitoring
from termshift.config import Settings, load_settings
from termshift.web import layout, security

blueprint = Blueprint("health", __name__, template_folder="templates")


@blueprint.record_once
def _install_site_layout(state: BlueprintSetupState) -> None:
    """/status extends the site's base template: make sure the app has what it needs."""
    layout.install(state.app)
    state.app.config["HEALTH"] = True  # the base template's navigation links /status


def _settings() -> Settings:
    """The app's settings, with `DATA_DIR` applied; the defaults when the app has none."""
    settings = current_app.config.get("SETTINGS")
    if settings is None:
        settings = load_settings()
        current_app.config["SETTINGS"] = settings
    data_dir = current_app.config.get("DATA_DIR")
    if data_dir and Path(data_dir) != settings.data:
        settings = dataclasses.replace(settings, data=Path(data_dir))
    return settings


def _private(response: Response, details: bool) -> Response:
    """What a response shows depends on who asks: never share it between them in a cache."""
    response.vary.update(("Authorization", "Cookie"))
    if details:
        response.headers["Cache-Control"] = "private, no-store"
    return response


def _status(details: bool) -> dict[str, Any]:
    """`monitoring.status`, plus the services whose declarations this viewer cannot load now,
    and how far the viewer's index is when the viewer runs here."""
    data = monitoring.status(_settings(), details=details)
    viewer = current_app.extensions.get("termshift")
    declarations = getattr(viewer, "declarations", None)
    skipped = getattr(declarations, "skipped", None) or {}
    data["declarations_skipped"] = [
        {"service_id": service_id,
         "errors": [str(error) if details else monitoring.public_file_error(str(error)) for error in errors]}
        for service_id, errors in sorted(skipped.items())]
    if viewer is not None:
        data["index"] = viewer.index_progress().to_json()
    return data


@blueprint.get("/status")
def status_page() -> Response:
    details = security.is_admin()
    html = render_template("health/status.html", status=_status(details), active="status",
                           json_url=url_for("health.status_json"))
    return _private(Response(html, mimetype="text/html"), details)


@blueprint.get("/-/health/status.css")
def stylesheet() -> Response:
    """The page's styles, from our origin: the viewer's Content-Security-Policy forbids inline ones."""
    return send_from_directory(Path(blueprint.root_path) / "templates" / "health", "status.css",
                               mimetype="text/css", max_age=3600)


@blueprint.get("/status.json")
def status_json() -> Response:
    details = security.is_admin()
    return _private(jsonify(_status(details)), details)


@blueprint.get("/healthz")
def healthz() -> tuple[Response, int]:
    details = security.is_admin()
    healthy, body = monitoring.healthz(_settings(), details=details)
    response = _private(jsonify(body), details)
    response.headers["Cache-Control"] = "no-store"
    return response, 200 if healthy else 503


@blueprint.get("/metrics")
def metrics() -> Response:
    registry = monitoring.metrics_registry(_settings())
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


@blueprint.app_template_filter("duration")
def format_duration(seconds: Any) -> str:
    """`3725` → `1 h 2 min 5 s` (the status page's durations)."""
    if seconds is None:
        return "–"
    seconds = int(round(float(seconds)))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    if seconds or not parts:
        parts.append(f"{seconds} s")
    return " ".join(parts)
