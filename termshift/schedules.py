"""Schedule expressions and time zones, as the settings write them (`schedule.*`).

`parse_schedule` turns a 5-field cron expression or `every <n><s|m|h|d>` into an
APScheduler trigger, `parse_timezone` an IANA name (or `""`, the machine's zone) into a
tzinfo; both raise `ScheduleError` with the reason. Used by termshift.config to check a
file and by termshift.scheduler to register its jobs. Bottom layer: APScheduler's
triggers are imported when an expression is parsed, never at import, so checking the
configuration does not load the scheduler.
"""

from __future__ import annotations

import re
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from termshift.errors import TermshiftError

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger


class ScheduleError(TermshiftError, ValueError):
    """A schedule expression or time zone that cannot be used; the message says why."""


_EVERY = re.compile(r"every\s+(\d+(?:\.\d+)?)\s*(s|sec|seconds?|m|min|minutes?|h|hours?|d|days?)", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_timezone(name: str) -> tzinfo:
    """`""` is the machine's local time zone (as OTA's cron), else an IANA name."""
    if not name:
        from tzlocal import get_localzone

        return get_localzone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r} (expected an IANA name such as 'Europe/Paris')") from None


def parse_schedule(expression: str, timezone: tzinfo | None = None) -> BaseTrigger | None:
    """A trigger from a 5-field cron expression or `every <n><s|m|h|d>`; None when empty (disabled).

    `every` exists for intervals shorter than a minute (tests, busy collections); cron
    is what operators know, and what OTA's `trackingSchedule` uses.
    """
    expression = (expression or "").strip()
    if not expression:
        return None
    every = _EVERY.fullmatch(expression)
    if every:
        from apscheduler.triggers.interval import IntervalTrigger

        seconds = float(every.group(1)) * _UNIT_SECONDS[every.group(2)[0].lower()]
        if seconds <= 0:
            raise ScheduleError(f"{expression!r}: the interval must be more than 0")
        return IntervalTrigger(seconds=seconds, timezone=timezone or UTC)
    if len(expression.split()) != 5:
        raise ScheduleError(
            f"{expression!r}: expected a cron expression of 5 fields (minute hour day month weekday) "
            "or 'every <n>s|m|h|d'"
        )
    from apscheduler.triggers.cron import CronTrigger

    try:
        return CronTrigger.from_crontab(expression, timezone=timezone)
    except ValueError as error:
        raise ScheduleError(f"{expression!r}: {error}") from None
