"""The listeners a tracking run is given by those who start one: `termshift track` and the scheduler.

The tracking pipeline (termshift.trackers) emits events and imports none of the layers
that listen (termshift.trackers.events). This module, above both, is where they meet:
`run_listeners(settings)` are the alerts (webhook events queued for new versions as the
run goes: termshift.alerts.listener) and the viewer's index (refreshed after the run,
when `schedule.refresh_index`: termshift.web.index_listener).
"""

from __future__ import annotations

from termshift.alerts.listener import AlertsListener
from termshift.config import Settings
from termshift.web.index_listener import IndexRefresher

__all__ = ["run_listeners"]


def run_listeners(settings: Settings) -> list[object]:
    """The listeners of a tracking run started by `termshift track` or the scheduler."""
    return [AlertsListener(settings), IndexRefresher(settings)]
