"""What the tracking pipeline tells the layers around it: pluggy hook specifications.

The tracking run (`termshift.trackers.run`), the rebuild replay and the technical
upgrades (`termshift.trackers.replay`) emit these events on a `pluggy.PluginManager` and never
import who listens. Listeners live in their own (outer) layer and are attached by
whoever starts the run, the `track` command and the scheduler
(`termshift.listeners.run_listeners`): the alerts queue webhook events for new versions
(`termshift.alerts.listener`), the viewer's index is refreshed after each run
(`termshift.web.index_listener`).

A listener is any object with methods marked `@hookimpl`, named as the hooks below and
taking any subset of their (keyword) arguments. It returns None, or a message saying
what it could not do (`Emitter.errors`: the tracking run lists them in its summary's
`errors`). A listener that raises is logged and reported the same way; the other
listeners are still called and the run goes on.

The hooks, in the order a tracking run emits them:

- `run_started(run_id, started_at)`: a tracking run is starting.
- `snapshot_recorded(snapshot, run_id)`: a fetched page was recorded (block pages too).
- `version_recorded(event)`: a version was recorded (`VersionRecorded`: the record,
  its Markdown and the Markdown it replaced, where it comes from), so that listeners
  read nothing back from git. Technical upgrades (also
  those a run applies before fetching) and rebuilds emit it too.
- `terms_failed(result, run_id)`: a terms got no version because a step failed
  (`trackers.run.TermsResult`, with the error).
- `records_written(run_id)`: every record is written, also when the run stops on an
  error: listeners holding a batch hand it over now.
- `run_finished(summary)`: the run completed or was interrupted (not when it raised);
  the repositories are closed and optimised; the summary is stored right after.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Union

import pluggy

if TYPE_CHECKING:
    from termshift.archive_repo import Snapshot, Version

__all__ = [
    "PROJECT",
    "REBUILD",
    "TECHNICAL_UPGRADE",
    "TRACKING",
    "Emitter",
    "Listeners",
    "TrackingEvents",
    "VersionRecorded",
    "emitter",
    "hookimpl",
    "hookspec",
    "manager",
]

log = logging.getLogger("termshift.events")

PROJECT = "termshift"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# Where a version comes from (`VersionRecorded.origin`).
TRACKING = "tracking"
REBUILD = "rebuild"
TECHNICAL_UPGRADE = "technical-upgrade"


@dataclass(frozen=True)
class VersionRecorded:
    """A version just recorded, with what listeners need in memory (nothing to read back).

    `version` is the record as stored (id, service_id, terms_type, fetch_date,
    is_first_record, is_technical_upgrade, snapshot_ids); `markdown` its text;
    `previous_markdown` the text of the version it replaced (None for a first record);
    `origin` one of TRACKING, REBUILD, TECHNICAL_UPGRADE; `run_id` the tracking run's,
    when there is one.
    """

    version: Version
    markdown: str
    previous_markdown: str | None
    origin: str
    run_id: int | None = None


class TrackingEvents:
    """The hook specifications (see the module docstring)."""

    @hookspec
    def run_started(self, run_id: int, started_at: datetime) -> str | None:
        """A tracking run is starting (its id in runs.sqlite)."""

    @hookspec
    def snapshot_recorded(self, snapshot: Snapshot, run_id: int | None) -> str | None:
        """A fetched page was recorded as a snapshot (content in memory during the call)."""

    @hookspec
    def version_recorded(self, event: VersionRecorded) -> str | None:
        """A version was recorded."""

    @hookspec
    def terms_failed(self, result: Any, run_id: int | None) -> str | None:
        """A terms got no version in this run: a fetch or extraction failed (`result.error`)."""

    @hookspec
    def records_written(self, run_id: int | None) -> str | None:
        """Every record is written (also when the run is about to raise): flush batches."""

    @hookspec
    def run_finished(self, summary: Any) -> str | None:
        """The tracking run completed or was interrupted (`trackers.run.RunSummary`)."""


def manager(listeners: Iterable[object] = ()) -> pluggy.PluginManager:
    """A plugin manager with the hook specifications and `listeners` registered."""
    plugins = pluggy.PluginManager(PROJECT)
    plugins.add_hookspecs(TrackingEvents)
    for listener in listeners:
        plugins.register(listener)
    return plugins


Listeners = Union["Emitter", pluggy.PluginManager, Iterable[object], None]


class Emitter:
    """Emits the events on a plugin manager; what listeners report goes to `errors`.

    `listeners`: an Emitter (returned by `emitter()` as it is), a plugin manager, or
    listener objects to register on a new one.
    """

    def __init__(self, listeners: Listeners = (), errors: list[str] | None = None) -> None:
        if isinstance(listeners, Emitter):
            listeners = listeners.plugins
        self.plugins = listeners if isinstance(listeners, pluggy.PluginManager) else manager(listeners or ())
        self.errors: list[str] = errors if errors is not None else []

    def listening(self, hook: str) -> bool:
        """Whether any listener implements `hook` (to skip preparing an event nobody reads)."""
        return bool(getattr(self.plugins.hook, hook).get_hookimpls())

    def emit(self, hook: str, **arguments: Any) -> list[str]:
        """Call each listener of `hook`; the messages they return are added to `errors` (and returned).

        Listeners are called in pluggy's order (the last registered first, `tryfirst` and
        `trylast` honoured), each on its own: one that raises is logged and reported as a
        message, and the others are still called. (Hook wrappers are not supported.)
        """
        messages = []
        for implementation in reversed(getattr(self.plugins.hook, hook).get_hookimpls()):
            try:
                result = implementation.function(*(arguments[name] for name in implementation.argnames))
            except Exception as error:  # noqa: BLE001 - a listener's failure must not stop the run
                log.exception("listener %s of %s failed", implementation.plugin_name, hook)
                messages.append(f"{hook}: {type(error).__name__}: {error}")
            else:
                if result:
                    messages.append(str(result))
        self.errors.extend(messages)
        return messages


def emitter(listeners: Listeners = ()) -> Emitter:
    """`listeners` as an Emitter (an Emitter is returned as it is, keeping its `errors`)."""
    return listeners if isinstance(listeners, Emitter) else Emitter(listeners)
