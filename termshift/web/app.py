"""The Flask app factory of the viewer (`termshift serve`).

`create_app(versions_repo, snapshots_repo=None, declarations_dir=None, index_path=None, **config)`
wires the index, the blueprints (pages, versions, snapshots, the OTA-compatible API and,
when present, the feeds of `termshift.web.feed_routes`), security headers, languages and
JSON error answers. Templates live in `templates/`, static files in `static/`.

It is also the WSGI application for a server of your own: `create_app()` with no
argument reads the configuration as every command does (`$TERMSHIFT_CONFIG`,
`./termshift.toml`, `TERMSHIFT_*`), e.g. `gunicorn 'termshift.web:create_app()'`.
The `[web]` settings apply whoever serves it: request body limit, trusted hosts,
trusted proxies (ProxyFix), rate limits, admin token and session lifetime.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.middleware.proxy_fix import ProxyFix

from termshift import monitoring, urls
from termshift.config import MIN_ADMIN_TOKEN, Settings, WebSettings, load_settings
from termshift.trackers.run_store import RUNS_FILE
from termshift.web import api, error_pages, i18n, pages, security, snapshots, snippets, versions
from termshift.web.index import Sources
from termshift.web.state import Viewer

log = logging.getLogger(__name__)

DEFAULTS = {
    "PAGE_SIZE": 50,  # rows per page of timelines and lists
    "REFRESH_ON_START": True,  # index new commits on start (before serving if they are few)
    "BACKGROUND_INDEX_ABOVE": 500,  # more new commits than this: index them in the background
    "REFRESH_INTERVAL": 5.0,  # seconds between checks for new commits (0: never)
    "DIFF_CONTEXT": 3,  # unchanged lines shown around each change
    "JSON_SORT_KEYS": False,
}


class IsoJSONProvider(DefaultJSONProvider):
    """JSON with dates as `2024-03-18T18:30:09Z` (Flask's default is an HTTP date)."""

    sort_keys = False
    ensure_ascii = False

    @staticmethod
    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return urls.iso(value)
        if hasattr(value, "to_json"):
            return value.to_json()
        return DefaultJSONProvider.default(value)


def _sources_from_settings(settings: Settings) -> tuple[Path, Path | None, Path | None, Path]:
    data = Path(settings.data)
    snapshots = data / "snapshots"
    return data / "versions", snapshots if snapshots.exists() else None, settings.declarations, data / "index.sqlite"


# Blueprints written alongside the viewer, registered when their module exists:
# feeds (/feed…), the service's health (/status, /healthz, /metrics), /declare.
OPTIONAL_BLUEPRINTS = {"termshift.web.feed_routes": "FEEDS", "termshift.web.health_routes": "HEALTH",
                       "termshift.web.declare": "DECLARE"}


def _register_optional(app: Flask) -> None:
    """Register each optional blueprint whose module can be imported (a missing one is skipped;
    any other import failure is a bug and surfaces)."""
    for module_name, flag in OPTIONAL_BLUEPRINTS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            log.info("%s is not available", module_name)
            continue
        app.register_blueprint(module.blueprint)
        app.config[flag] = True


def compile_templates(app: Flask) -> None:
    """Compile every template now: a production server calls it before its first request
    (otherwise concurrent first requests each compile the same templates)."""
    for name in app.jinja_env.list_templates(extensions=["html"]):
        app.jinja_env.get_template(name)


def create_app(
    versions_repo: Path | str | Settings | None = None,
    snapshots_repo: Path | str | None = None,
    declarations_dir: Path | str | None = None,
    index_path: Path | str | None = None,
    **config: Any,
) -> Flask:
    """Build the viewer for an OTA-format versions repository (and optional snapshots).

    `versions_repo` may also be a `termshift.config.Settings`, whose data folder then
    gives both repositories and the index. Extra keyword arguments go into `app.config`
    (upper-cased): PAGE_SIZE, REFRESH_ON_START, REFRESH_INTERVAL, RUNS_DB, DATA_DIR…
    """
    if versions_repo is None and snapshots_repo is None and declarations_dir is None:
        versions_repo = load_settings()  # a WSGI server calling the factory: the configuration file
    settings = versions_repo if isinstance(versions_repo, Settings) else None
    if settings is not None:
        versions_repo, default_snapshots, default_declarations, default_index = _sources_from_settings(settings)
        snapshots_repo = snapshots_repo or default_snapshots
        declarations_dir = declarations_dir or (default_declarations if default_declarations.is_dir() else None)
        index_path = index_path or default_index
    if versions_repo is None:
        raise ValueError("create_app: a versions repository (or Settings) is required")

    app = Flask(__name__, static_url_path="/-/static")
    app.json = IsoJSONProvider(app)
    app.config.update(DEFAULTS)
    app.config.update({key.upper(): value for key, value in config.items()})

    sources = Sources(
        Path(versions_repo),
        Path(snapshots_repo) if snapshots_repo else None,
        Path(index_path) if index_path else Sources.resolve((Path(versions_repo), None)).index,
    )
    data_dir = Path(app.config.get("DATA_DIR") or _guess_data_dir(sources))
    app.config.setdefault("DATA_DIR", str(data_dir))
    app.config.setdefault("RUNS_DB", str(data_dir / RUNS_FILE))
    if "SETTINGS" not in app.config:
        # The feeds blueprint reads its options from a Settings object.
        app.config["SETTINGS"] = settings or load_settings(
            environ={}, overrides={"": {"data": str(data_dir),
                                        "declarations": str(declarations_dir) if declarations_dir else None}},
        )

    _apply_web_settings(app, app.config["SETTINGS"].web, explicit=set(config))
    for problem in monitoring.problems(data_dir):
        log.error("%s %s", problem["public"], problem["detail"])
        app.config.setdefault("STARTUP_PROBLEMS", []).append(problem)

    viewer = Viewer(
        sources,
        Path(declarations_dir) if declarations_dir else None,
        Path(app.config["RUNS_DB"]),
        float(app.config["REFRESH_INTERVAL"]),
    )
    app.extensions["termshift"] = viewer
    indexing_in_background = False
    if app.config["REFRESH_ON_START"]:
        indexing_in_background = _index_on_start(app, viewer)

    for module in (pages, versions, snapshots, api):
        app.register_blueprint(module.blueprint)
    _register_optional(app)
    error_pages.register(app)
    i18n.register(app)
    snippets.register(app)
    security.register(app)
    security.register_rate_limits(app)

    @app.before_request
    def _check_for_changes() -> None:
        viewer.poke()

    @app.context_processor
    def _index_progress() -> dict:
        return {"index_progress": viewer.index_progress()}  # the base template's banner

    @app.after_request
    def _vary(response: Response) -> Response:
        if not request.path.startswith("/-/static/"):
            response.vary.add("Accept")
        return response

    viewer.refresher.after_refresh = lambda: (warm_pages(app), draw_timelines(app))
    if app.config["REFRESH_ON_START"] and not indexing_in_background:
        warm_pages(app)
        threading.Thread(target=draw_timelines, args=(app,), name="timelines", daemon=True).start()
    return app


def _apply_web_settings(app: Flask, web: WebSettings, explicit: set[str]) -> None:
    """The production settings of `[web]`, for every server (ours or one of your own); a keyword
    argument given to `create_app` wins over the setting."""
    values = {
        "ADMIN_TOKEN": web.admin_token or None,
        "MAX_CONTENT_LENGTH": web.max_request_bytes,
        "TRUSTED_HOSTS": list(web.trusted_hosts) or None,
        "ADMIN_SESSION_LIFETIME": web.session_lifetime,
        "LOGIN_RATE_LIMIT": web.login_rate_limit,
        "ADMIN_RATE_LIMIT": web.admin_rate_limit,
    }
    for key, value in values.items():
        if key.lower() not in explicit:
            app.config[key] = value
    token = app.config.get("ADMIN_TOKEN") or ""
    if token and len(token) < MIN_ADMIN_TOKEN:
        raise ValueError(f"web.admin_token: must be at least {MIN_ADMIN_TOKEN} characters (it has {len(token)})")
    proxies = web.trusted_proxies
    if proxies:
        # Behind a TLS-terminating proxy: the client's address, scheme and host come from the
        # X-Forwarded-* headers the last `proxies` proxies set (and only those).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies,
                                x_port=proxies, x_prefix=proxies)


def _index_on_start(app: Flask, viewer: Viewer) -> bool:
    """Index new commits: at once if they are few (a restart, a small archive), else in the
    background, so that the viewer answers within seconds whatever the archive's size.
    Returns True when the index is being built in the background."""
    pending = viewer.refresher.pending()
    if pending > app.config["BACKGROUND_INDEX_ABOVE"]:
        log.info("%d new commits to index: indexing in the background, pages show progress", pending)
        viewer.refresher.start(pending)
        app.config["STARTUP_INDEX_STATS"] = {}
        return True
    started = time.perf_counter()
    stats = viewer.refresher.refresh()
    log.info("index ready in %.1f s: %s", time.perf_counter() - started, stats)
    app.config["STARTUP_INDEX_STATS"] = stats
    return False


WARM_PAGES = ("/", "/-/changes")


def warm_pages(app: Flask) -> None:
    """Render the busiest pages once per language, so their first visitor gets them cached."""
    client = app.test_client()
    trusted = app.config.get("TRUSTED_HOSTS")
    base_url = f"http://{trusted[0].lstrip('.')}/" if trusted else None  # a host the app answers to
    for language in i18n.CODES:
        for path in WARM_PAGES:
            client.get(path, headers={"Accept-Language": language}, base_url=base_url)


def draw_timelines(app: Flask) -> None:
    """Draw the documents' timelines ahead (see `pages.draw_timelines_ahead`)."""
    started = time.perf_counter()
    try:
        with app.app_context():
            count = pages.draw_timelines_ahead()
    except Exception:  # a page draws its own on its first view
        log.exception("drawing the timelines ahead failed")
        return
    log.info("timelines of %d documents drawn in %.1f s", count, time.perf_counter() - started)


def _guess_data_dir(sources: Sources) -> Path:
    """The data folder when the versions repository sits in one (`<data>/versions`)."""
    parent = sources.versions.resolve().parent
    return parent if sources.versions.name == "versions" else sources.index.parent
