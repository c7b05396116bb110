"""Telling subscribers about every new version, once: Atom/RSS feeds and signed webhooks.

The public interface (details in each module, the whole picture in docs/alerts.md):

- `enqueue_new_versions(data_dir, versions, base_url, webhooks=None, texts=None) -> EnqueueResult`
  — with the Version records a tracking run recorded (technical upgrades are
  skipped here), handed over as the run goes by `termshift.alerts.listener`
  with their texts. Queues one `version.recorded` event per version and
  matching subscription in `data_dir/alerts.sqlite`; sends nothing.
- `deliver_due(data_dir, webhooks=None, stop=None) -> DeliveryReport` — one
  delivery pass (the scheduler runs it every minute; the tracking run may run
  it right after enqueueing). `drain(...)` repeats passes until all is settled.
- `delivery_log(data_dir, status=None, subscription_id=None, limit=100)` —
  counts, latest events and attempts, for the viewer.
- `termshift.web.feed_routes.blueprint` — the feeds and the admin API;
  `termshift.commands.webhooks.webhooks_group` — `termshift webhooks …`.
- The payload's JSON Schema: `webhook-event.schema.json` beside this file.
"""

from termshift.alerts.delivery import DeliveryReport, deliver_due, drain
from termshift.alerts.outbox import EnqueueResult, delivery_log, enqueue_new_versions

enqueue = enqueue_new_versions  # a short name

__all__ = [
    "DeliveryReport",
    "EnqueueResult",
    "deliver_due",
    "delivery_log",
    "drain",
    "enqueue",
    "enqueue_new_versions",
]
