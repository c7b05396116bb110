"""The alerts' listener to the tracking pipeline: new versions queued as webhook events.

`AlertsListener(settings)` is attached to a tracking run by whoever starts it (the
`track` command and the scheduler: termshift.listeners). It takes each new version
from `version_recorded`, with its Markdown and the previous one in memory, and hands
them to the outbox (`outbox.enqueue_new_versions`: statistics and diffs computed from
those texts, nothing read back from git) in batches of `ALERT_BATCH` as the run goes, and what is left on `records_written`, so
that a killed run loses at most one batch of alerts. It never delivers. Technical
upgrades are never announced.
"""

from __future__ import annotations

import logging
from pathlib import Path

from termshift.alerts.outbox import enqueue_new_versions
from termshift.config import Settings
from termshift.trackers.events import VersionRecorded, hookimpl

# The run's log: a batch that could not be queued is one of the run's problems.
log = logging.getLogger("termshift.track")

# New versions are handed to the webhook outbox in batches of this size as the run goes,
# so that a killed run loses at most one batch of alerts.
ALERT_BATCH = 50


class AlertsListener:
    """Hands new versions to the webhook outbox in batches as the run goes (never delivers)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pending: list[VersionRecorded] = []

    @hookimpl
    def version_recorded(self, event: VersionRecorded) -> str | None:
        if event.version.is_technical_upgrade:
            return None  # never announced
        self.pending.append(event)
        if len(self.pending) >= ALERT_BATCH:
            return self.flush()
        return None

    @hookimpl
    def records_written(self) -> str | None:
        return self.flush()

    def flush(self) -> str | None:
        """Queue the pending versions; a message saying which were not queued, if that failed."""
        if not self.pending:
            return None
        batch, self.pending = self.pending, []
        versions = [event.version for event in batch]
        # The texts are in memory: statistics and diffs need not read them back from git.
        texts = {event.version.id: (event.previous_markdown, event.markdown) for event in batch}
        try:
            enqueue_new_versions(Path(self.settings.data), versions, self.settings.web.base_url,
                                 self.settings.webhooks, texts=texts)
        except Exception as error:  # noqa: BLE001 - the versions are recorded; say what was not queued
            ids = ", ".join(version.id or "?" for version in versions)
            message = f"webhook events for {len(versions)} versions were not queued ({ids}): {error}"
            log.exception("%s", message)
            return message
        return None
