"""Feeds and the webhook admin API, as one Flask blueprint (`blueprint`).

Routes (registered by the viewer's app factory):

    GET /feed.atom  /feed.rss                               the whole collection
    GET /feed/<service>.atom  /feed/<service>.rss            one service
    GET /feed/<service>/<terms type>.atom|.rss               one document
    /api/admin/webhooks…                                     subscriptions (JSON, admin token)

What the blueprint reads from the app (its small interface):
- `app.config["SETTINGS"]`: a `termshift.config.Settings` (data folder,
  declarations folder, `web.base_url`, `feeds.length`, `webhooks.*`);
  `app.config["DATA_DIR"]` overrides the data folder if set;
- `app.config["ADMIN_TOKEN"]`: the bearer token of the admin API. Not set or
  empty → the admin API does not exist (404).

Feeds: newest versions first, technical upgrades left out, `feeds.length`
entries, listed from the viewer's index when the app has one
(`app.extensions["termshift"].catalog`), else from the versions git repository. An unknown service, or a terms type the service neither declares nor
has versions of, is 404. Every answer carries `ETag` and `Last-Modified`
(the newest entry's date), and a matching `If-None-Match` or a fresh
`If-Modified-Since` gets 304 before any diff is computed.

Admin API (JSON in and out; errors are `{"error": "<field>: <reason>"}`):

    GET    /api/admin/webhooks                       list (secrets masked)
    POST   /api/admin/webhooks                       create: {url, secret?, services?, terms_types?,
                                                     include_diff?, kind?, active?} → 201, secret shown once
    GET    /api/admin/webhooks/<id>                  one subscription
    PATCH  /api/admin/webhooks/<id>                  change url, secret, services, terms_types,
                                                     include_diff, active
    DELETE /api/admin/webhooks/<id>                  remove (undelivered events cancelled) → 204
    POST   /api/admin/webhooks/<id>/test             send a signed webhook.test event now
    GET    /api/admin/webhooks/deliveries            counts, latest events and attempts
                                                     (?status=, ?subscription=, ?limit=)
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, jsonify, request
from werkzeug.http import is_resource_modified

from termshift.alerts import delivery, feed_render, options, outbox, store, subscriptions, version_stats
from termshift.archive_repo import listing
from termshift.config import Settings, WebhooksSettings
from termshift.web import security

blueprint = Blueprint("feeds", __name__)
log = logging.getLogger(__name__)

ADMIN_PREFIX = "/api/admin/"


# -- the app's configuration -------------------------------------------------------------------------

def _settings() -> Settings | None:
    return current_app.config.get("SETTINGS")


def _configured() -> Settings:
    """The app's settings, or the defaults when it was built without any."""
    return _settings() or Settings()


def _data_dir() -> Path:
    if current_app.config.get("DATA_DIR"):
        return Path(current_app.config["DATA_DIR"])
    settings = _settings()
    return Path(getattr(settings, "data", None) or "data")


def _base_url() -> str:
    return options.base_url(_configured().web) or request.url_root.rstrip("/")


# -- which services and terms exist ------------------------------------------------------------------

_declared_cache: dict[Path, tuple[tuple, set[tuple[str, str]]]] = {}
_declared_lock = threading.Lock()


def declared_terms(directory: Path) -> set[tuple[str, str]]:
    """(service, terms type) pairs the collection declares, history included; cached until a file changes."""
    if not directory.is_dir():
        return set()
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in directory.glob("*.json")))
    with _declared_lock:
        cached = _declared_cache.get(directory)
        if cached and cached[0] == stamp:
            return cached[1]
    from termshift.declarations import load_collection  # the collection loader, only when needed

    collection = load_collection(directory)
    pairs = {
        (service_id, terms_type)
        for service_id, service in collection.services.items()
        for terms_type in {*service.terms, *service.history}
    }
    with _declared_lock:
        _declared_cache[directory] = (stamp, pairs)
    return pairs


def known_terms() -> set[tuple[str, str]]:
    """Declared terms plus any terms that have versions (a service no longer declared keeps its feed)."""
    settings = _settings()
    declared = declared_terms(Path(settings.declarations)) if settings is not None else set()
    return declared | listing.archived_terms(_data_dir())


# -- feeds -------------------------------------------------------------------------------------------

def feed_versions(service_id: str | None, terms_type: str | None, limit: int) -> list[listing.VersionEntry]:
    """Newest versions first, technical upgrades left out.

    From the viewer's SQLite index when the app has one (`app.extensions["termshift"].catalog`,
    a `termshift.web.catalog.Catalog`), else straight from the versions git repository.
    """
    catalog = getattr(current_app.extensions.get("termshift"), "catalog", None)
    if catalog is None:
        return listing.list_versions(_data_dir(), service_id, terms_type, limit)
    from termshift.web.catalog import ChangeFilter

    rows, _total = catalog.latest_changes(
        ChangeFilter(service_id=service_id, terms_type=terms_type), limit=limit, offset=0,
    )
    return [
        listing.VersionEntry(
            service_id=row["service_id"], terms_type=row["terms_type"], id=row["commit_id"], fetch_date=row["date"],
            is_first_record=bool(row["is_first"]), is_technical_upgrade=bool(row["is_technical"]),
        )
        for row in rows
    ]


def _feed(kind: str, service_id: str | None = None, terms_type: str | None = None) -> Response:
    if service_id is not None:
        known = known_terms()
        if not any(service == service_id for service, _type in known):
            abort(404, description="Service not found")
        if terms_type is not None and (service_id, terms_type) not in known:
            abort(404, description="Terms type not found for this service")
    base = _base_url()
    info = feed_render.FeedInfo(
        base_url=base, authority=options.tag_authority(_configured().feeds, urlsplit(base).hostname or ""),
        service_id=service_id, terms_type=terms_type,
    )
    data_dir = _data_dir()
    versions = feed_versions(service_id, terms_type, _configured().feeds.length)
    tag = feed_render.etag(kind, info, versions)
    modified = feed_render.last_modified(versions)
    if not is_resource_modified(request.environ, etag=tag, last_modified=modified):
        response = Response(status=304)
    else:
        stats = _version_stats(data_dir, versions)
        items = [feed_render.FeedItem(version, stats.get(version.id)) for version in versions]
        response = Response(feed_render.render(kind, info, items), mimetype=feed_render.MEDIA_TYPES[kind].split(";")[0])
        response.charset = "utf-8"
    response.set_etag(tag)
    response.last_modified = modified
    response.headers["Cache-Control"] = "public, max-age=60" if _links_are_trusted() else "no-store"
    return response


def _links_are_trusted() -> bool:
    """Whether the feed's absolute links come from the configuration rather than from the
    request's Host header: `web.base_url` is set, or the app only answers its `web.trusted_hosts`.
    Otherwise `Host: evil.example` would put evil links into a shared cache: the feed is not
    cached at all (production sets `web.base_url`)."""
    return bool(options.base_url(_configured().web)) or bool(current_app.config.get("TRUSTED_HOSTS"))


def _version_stats(data_dir: Path, versions: list[listing.VersionEntry]) -> dict[str, Any]:
    """Word counts of each version, cached in alerts.sqlite; computed without the cache when that
    database cannot be read (a damaged file is reported at start-up and on /status, and must not
    take the feeds down)."""
    try:
        db = store.connect(data_dir)
    except sqlite3.DatabaseError as error:
        log.warning("feeds: %s cannot be read (%s): word counts computed without its cache",
                    store.database_path(data_dir), error)
        return version_stats.stats_for(data_dir, None, versions)
    try:
        return version_stats.stats_for(data_dir, db, versions)
    except sqlite3.DatabaseError as error:
        log.warning("feeds: %s cannot be read (%s)", store.database_path(data_dir), error)
        return version_stats.stats_for(data_dir, None, versions)
    finally:
        db.close()


@blueprint.errorhandler(sqlite3.DatabaseError)
def _alerts_database_unreadable(error: sqlite3.DatabaseError) -> tuple[Response, int]:
    """The admin API on a damaged alerts.sqlite: say so (503), instead of an anonymous 500."""
    log.error("%s cannot be read: %s", store.database_path(_data_dir()), error)
    return jsonify(error="alerts database: cannot be read; webhook subscriptions are unavailable until "
                         "it is restored (see /status)"), 503


@blueprint.get("/feed.<any(atom, rss):kind>")
def collection_feed(kind: str) -> Response:
    return _feed(kind)


@blueprint.get("/feed/<service_id>.<any(atom, rss):kind>")
def service_feed(service_id: str, kind: str) -> Response:
    return _feed(kind, service_id)


@blueprint.get("/feed/<service_id>/<terms_type>.<any(atom, rss):kind>")
def terms_feed(service_id: str, terms_type: str, kind: str) -> Response:
    return _feed(kind, service_id, terms_type)


# -- admin API ---------------------------------------------------------------------------------------

@blueprint.before_request
def _require_admin_token():
    """No token configured: the admin API does not exist. Otherwise `Authorization: Bearer <token>`."""
    if not request.path.startswith(ADMIN_PREFIX):
        return None
    token = current_app.config.get("ADMIN_TOKEN") or ""
    if not token:
        abort(404)
    scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        response = jsonify(error="Authorization: a bearer token is required")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="termshift-admin"'
        return response
    if not security.bearer_is_admin(token):
        return jsonify(error="Authorization: wrong token"), 403
    return None


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message), status


def _webhook_options() -> WebhooksSettings:
    return _configured().webhooks


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        response = jsonify(error="body: expected a JSON object (Content-Type: application/json)")
        response.status_code = 400
        abort(response)
    return body


def _with_subscription(subscription_id: int, action) -> Any:
    db = store.connect(_data_dir())
    try:
        return action(db, subscriptions.get(db, subscription_id))
    except LookupError as error:
        return _error(404, str(error))
    except subscriptions.SubscriptionError as error:
        return _error(400, str(error))
    finally:
        db.close()


@blueprint.get("/api/admin/webhooks")
def list_subscriptions():
    db = store.connect(_data_dir())
    try:
        return jsonify(subscriptions=[s.public() for s in subscriptions.all_subscriptions(db)])
    finally:
        db.close()


@blueprint.post("/api/admin/webhooks")
def create_subscription():
    body = _json_body()
    unknown = set(body) - {"url", "secret", "services", "terms_types", "include_diff", "kind", "active"}
    if unknown:
        return _error(400, f"{sorted(unknown)[0]}: unknown field")
    for flag in ("include_diff", "active"):
        if flag in body and not isinstance(body[flag], bool):
            return _error(400, f"{flag}: expected true or false")
    if not isinstance(body.get("url"), str):
        return _error(400, "url: required, as text")
    db = store.connect(_data_dir())
    try:
        created = subscriptions.add(
            db, body["url"], secret=body.get("secret"), services=body.get("services"),
            terms_types=body.get("terms_types"), include_diff=body.get("include_diff", False),
            kind=body.get("kind"), active=body.get("active", True),
            allow_private_targets=_webhook_options().allow_private_targets,
        )
    except subscriptions.SubscriptionError as error:
        return _error(400, str(error))
    finally:
        db.close()
    return jsonify(created.public(reveal_secret=True)), 201


@blueprint.get("/api/admin/webhooks/<int:subscription_id>")
def show_subscription(subscription_id: int):
    return _with_subscription(subscription_id, lambda _db, found: jsonify(found.public()))


@blueprint.patch("/api/admin/webhooks/<int:subscription_id>")
def change_subscription(subscription_id: int):
    body = _json_body()

    def change(db, _found):
        changed = subscriptions.update(
            db, subscription_id, body, allow_private_targets=_webhook_options().allow_private_targets,
        )
        return jsonify(changed.public())

    return _with_subscription(subscription_id, change)


@blueprint.delete("/api/admin/webhooks/<int:subscription_id>")
def delete_subscription(subscription_id: int):
    def remove(db, _found):
        subscriptions.remove(db, subscription_id)
        return Response(status=204)

    return _with_subscription(subscription_id, remove)


@blueprint.post("/api/admin/webhooks/<int:subscription_id>/test")
def test_subscription(subscription_id: int):
    data_dir = _data_dir()

    def send_test(db, found):
        if not found.active:
            return _error(409, f"active: subscription {subscription_id} is paused")
        event_id = outbox.enqueue_test_event(data_dir, found)
        delivery.deliver_due(data_dir, _webhook_options(), event_id=event_id)
        attempt = outbox.attempts_view(db, event_id=event_id, limit=1)
        return jsonify({"event_id": event_id, "outcome": "not sent", **(attempt[0] if attempt else {})})

    return _with_subscription(subscription_id, send_test)


@blueprint.get("/api/admin/webhooks/deliveries")
def deliveries():
    status = request.args.get("status") or None
    subscription = request.args.get("subscription", type=int)
    limit = min(request.args.get("limit", default=100, type=int) or 100, 1000)
    return jsonify(outbox.delivery_log(_data_dir(), status=status, subscription_id=subscription, limit=limit))
