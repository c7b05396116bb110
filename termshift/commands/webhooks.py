"""`termshift webhooks …`: manage subscriptions, look at the delivery log, deliver now."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import click

from termshift.alerts import delivery, outbox, store, subscriptions
from termshift.commands.options import (
    config_option,
    data_option,
    services_option,
    settings_for_command,
    types_option,
)
from termshift.config import Settings, WebhooksSettings


def _common(function):
    function = data_option(function, help="Data folder holding alerts.sqlite (default: ./data).")
    return config_option(function, help="Configuration file (default: $TERMSHIFT_CONFIG or ./termshift.toml).",
                         metavar=None)


def _context(data_dir: Path | None) -> tuple[Settings, WebhooksSettings]:
    settings = settings_for_command(data_dir=data_dir)
    return settings, settings.webhooks


def _subscription(db, subscription_id: int) -> subscriptions.Subscription:
    try:
        return subscriptions.get(db, subscription_id)
    except LookupError as error:
        raise click.ClickException(str(error)) from None


def _describe(subscription: subscriptions.Subscription) -> str:
    filters = []
    if subscription.services:
        filters.append("services=" + ",".join(subscription.services))
    if subscription.terms_types:
        filters.append("types=" + ",".join(subscription.terms_types))
    flags = ["active" if subscription.active else "paused"]
    if subscription.include_diff:
        flags.append("include-diff")
    return (f"{subscription.id}\t{subscription.kind}\t{subscription.url}\t{' '.join(flags)}\t"
            f"{' '.join(filters) or 'all changes'}")


@click.group("webhooks")
def webhooks_group() -> None:
    """Webhook and Apprise subscriptions to new versions, and their deliveries."""


@webhooks_group.command("add")
@click.argument("url")
@click.option("--secret", default=None, help="Signing secret whsec_<base64> (default: a new one, printed once).")
@services_option(help="Only these service ids (repeat, or comma-separate).")
@types_option(help="Only these terms types (repeat, or comma-separate).")
@click.option("--include-diff", is_flag=True, help="Put the unified diff in each payload.")
@click.option("--kind", type=click.Choice(subscriptions.KINDS), default=None,
              help="webhook (http/https URLs, the default for them) or apprise (any Apprise URL).")
@_common
def add_command(url, secret, services, types, include_diff, kind, data_dir) -> None:
    """Subscribe URL to new versions."""
    settings, webhook_options = _context(data_dir)
    db = store.connect(settings.data)
    try:
        created = subscriptions.add(
            db, url, secret=secret, services=services, terms_types=types, include_diff=include_diff,
            kind=kind, allow_private_targets=webhook_options.allow_private_targets,
        )
    except subscriptions.SubscriptionError as error:
        raise click.ClickException(str(error)) from None
    finally:
        db.close()
    click.echo(f"added subscription {created.id}")
    click.echo(_describe(created))
    if created.kind == "webhook" and not secret:
        click.echo(f"secret (shown once, give it to the receiver): {created.secret}")


@webhooks_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_common
def list_command(as_json, data_dir) -> None:
    """List subscriptions."""
    settings, _ = _context(data_dir)
    db = store.connect(settings.data)
    try:
        found = subscriptions.all_subscriptions(db)
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps([s.public() for s in found], indent=2))
    elif not found:
        click.echo("no subscriptions")
    for subscription in [] if as_json else found:
        click.echo(_describe(subscription))


@webhooks_group.command("remove")
@click.argument("subscription_id", type=int)
@_common
def remove_command(subscription_id, data_dir) -> None:
    """Remove a subscription (its undelivered events are cancelled)."""
    settings, _ = _context(data_dir)
    db = store.connect(settings.data)
    try:
        _subscription(db, subscription_id)
        removed = subscriptions.remove(db, subscription_id)
    finally:
        db.close()
    click.echo(f"removed subscription {removed.id} ({removed.url})")


def _set_active(subscription_id: int, active: bool, data_dir) -> None:
    settings, webhook_options = _context(data_dir)
    db = store.connect(settings.data)
    try:
        _subscription(db, subscription_id)
        changed = subscriptions.update(db, subscription_id, {"active": active})
    finally:
        db.close()
    click.echo(_describe(changed))


@webhooks_group.command("pause")
@click.argument("subscription_id", type=int)
@_common
def pause_command(subscription_id, data_dir) -> None:
    """Stop queueing and sending events to a subscription (pending ones wait)."""
    _set_active(subscription_id, False, data_dir)


@webhooks_group.command("resume")
@click.argument("subscription_id", type=int)
@_common
def resume_command(subscription_id, data_dir) -> None:
    """Resume a paused subscription."""
    _set_active(subscription_id, True, data_dir)


@webhooks_group.command("test")
@click.argument("subscription_id", type=int)
@_common
def test_command(subscription_id, data_dir) -> None:
    """Send a signed `webhook.test` event now and show the answer (exit 1 if it failed)."""
    settings, webhook_options = _context(data_dir)
    db = store.connect(settings.data)
    try:
        subscription = _subscription(db, subscription_id)
    finally:
        db.close()
    event_id = outbox.enqueue_test_event(settings.data, subscription)
    report = delivery.deliver_due(settings.data, webhook_options, event_id=event_id)
    db = store.connect(settings.data)
    try:
        attempt = outbox.attempts_view(db, event_id=event_id, limit=1)
    finally:
        db.close()
    if not attempt:
        raise click.ClickException(f"subscription {subscription_id} is paused: nothing was sent")
    line = attempt[0]
    click.echo(f"{event_id}: {line['outcome']} status={line['status_code']} {line['duration_ms']} ms"
               + (f" error={line['error']}" if line["error"] else ""))
    if not report.delivered:
        raise SystemExit(1)


@webhooks_group.command("deliveries")
@click.option("--status", type=click.Choice(["pending", "delivering", "delivered", "failed", "cancelled"]),
              default=None, help="Only events in this state.")
@click.option("--subscription", "subscription_id", type=int, default=None, help="Only this subscription.")
@click.option("--attempts", is_flag=True, help="Show every attempt (status code, duration, error) instead of events.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_common
def deliveries_command(status, subscription_id, attempts, limit, as_json, data_dir) -> None:
    """The delivery log: events and their state, or every attempt."""
    settings, _ = _context(data_dir)
    db = store.connect(settings.data)
    try:
        if attempts:
            outcome = {"delivered": "delivered", "failed": "failed", "pending": "retry"}.get(status) if status else None
            rows = outbox.attempts_view(db, outcome=outcome, subscription_id=subscription_id, limit=limit)
        else:
            rows = outbox.events_view(db, status=status, subscription_id=subscription_id, limit=limit)
        totals = outbox.counts(db)
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps({"counts": totals, "rows": rows}, indent=2))
        return
    click.echo(" ".join(f"{name}={count}" for name, count in totals.items()))
    for row in rows:
        if attempts:
            click.echo(f"{row['started_at']}\t{row['event_id']}\tsub={row['subscription_id']}\t#{row['attempt']}\t"
                       f"{row['outcome']}\t{row['status_code'] or '-'}\t{row['duration_ms']} ms\t{row['error'] or ''}")
        else:
            when = row["delivered_at"] or row["next_attempt_at"] or ""
            click.echo(f"{row['created_at']}\t{row['event_id']}\tsub={row['subscription_id']}\t{row['status']}\t"
                       f"attempts={row['attempts']}\t{row['last_status_code'] or '-'}\t{when}\t{row['last_error'] or ''}")


@webhooks_group.command("deliver")
@click.option("--drain", is_flag=True, help="Keep going, waiting for retries, until every event is settled.")
@click.option("--max-seconds", type=float, default=None, help="With --drain: stop after this long.")
@_common
def deliver_command(drain, max_seconds, data_dir) -> None:
    """Send the events that are due now (the scheduler does this every minute).

    SIGTERM or Ctrl-C: no new request is started; those in flight are answered
    and recorded, then the command exits (a restart then repeats nothing).
    """
    settings, webhook_options = _context(data_dir)
    stop = threading.Event()
    previous = {number: signal.signal(number, lambda *_: stop.set()) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        if drain:
            report = delivery.drain(settings.data, webhook_options, max_seconds=max_seconds, stop=stop)
        else:
            report = delivery.deliver_due(settings.data, webhook_options, stop=stop)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    click.echo(f"delivered={report.delivered} retry={report.retried} failed={report.failed} "
               f"in {report.seconds:.2f} s")
