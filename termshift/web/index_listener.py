"""The viewer's listener to the tracking pipeline: the index refreshed after each run.

`IndexRefresher(settings)` is attached to a tracking run by whoever starts it (the
`track` command and the scheduler: termshift.listeners). On `run_finished` it brings
`index.sqlite` up to date (`termshift.web.index.refresh_index`), unless the
`schedule.refresh_index` setting is off. A failure leaves the run's records safe (the
index catches up next time) and is listed in the run's summary.
"""

from __future__ import annotations

import logging
from pathlib import Path

from termshift.config import Settings
from termshift.trackers.events import hookimpl
from termshift.web.index import refresh_index

# The run's log: a failed refresh is one of the run's problems.
log = logging.getLogger("termshift.track")


class IndexRefresher:
    """Refreshes the viewer's index when a tracking run is over, if `schedule.refresh_index`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @hookimpl
    def run_finished(self) -> str | None:
        if not self.settings.schedule.refresh_index:
            return None
        try:
            refresh_index(Path(self.settings.data))
        except Exception as error:  # noqa: BLE001 - the run's records are safe; the index catches up next time
            log.exception("refreshing the viewer's index failed")
            return f"index refresh failed: {error}"
        return None
