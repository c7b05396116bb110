"""A document's history as a picture: every version on a time axis, each change's size.

`build_timeline()` turns a document's versions (oldest first, as the index lists them)
into the geometry of a small SVG chart that `drawings.timeline_svg` draws: one
bar per change, words added going up (blue), words removed going down (orange), on a
logarithmic scale so that a three-word fix stays visible beside a rewrite. When
versions are closer together than a bar's width they share one bar, whose link is the
diff across all of them. The first record is a dot on the axis (its words were not
"added", they were found). Only the index's figures are used: no text is read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# Geometry of the picture, in SVG user units (the chart scales to the page's width).
WIDTH = 960
HEIGHT = 176
LEFT = 52  # room for the scale's labels
RIGHT = 14
TOP = 8
HALF = 62  # height of the "added" half (and of the "removed" half)
AXIS_Y = TOP + HALF
LABEL_Y = AXIS_Y + HALF + 26
SLOT = 4.0  # a bar and its gap; versions closer than this share a bar
MIN_BAR = 2.0  # a change of one word is still this tall
MAX_TICKS = 12
WIDEST_BAR = 8.0  # a bar with room around it (a sparse history) is drawn wider, up to this


@dataclass
class Mark:
    """One bar: a version, or several versions too close together to draw apart."""

    x: float
    width: float
    start: datetime  # date of the first version in the bar
    end: datetime  # date of the last one
    versions: int
    added: int
    removed: int
    href: str
    first_record: bool = False  # the bar holds the document's first record
    technical: bool = False  # every version in it is a technical upgrade
    added_height: float = 0.0
    removed_height: float = 0.0

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "versions": self.versions, "words_added": self.added,
                "words_removed": self.removed, "first_record": self.first_record, "technical": self.technical,
                "url": self.href}


@dataclass
class Tick:
    x: float
    label: str


@dataclass
class ScaleLine:
    """A horizontal guide at `words` words, above (`y_up`) and below (`y_down`) the axis."""

    words: int
    y_up: float
    y_down: float


@dataclass
class Timeline:
    start: datetime
    end: datetime
    marks: list[Mark] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    scale: list[ScaleLine] = field(default_factory=list)
    largest: int = 0  # the largest count of words added or removed in one bar
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    axis_y: int = AXIS_Y
    bottom: int = AXIS_Y + HALF
    label_y: int = LABEL_Y

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "largest_change": self.largest,
                "bars": [mark.to_json() for mark in self.marks]}


def bar_height(words: int, largest: int) -> float:
    """Height of a bar of `words` words when the largest bar has `largest` (log scale)."""
    if words <= 0 or largest <= 0:
        return 0.0
    return max(MIN_BAR, HALF * math.log10(1 + words) / math.log10(1 + largest))


def _month_start(moment: datetime, step: int) -> datetime:
    month = (moment.month - 1) // step * step + 1
    return moment.replace(month=month, day=1, hour=0, minute=0, second=0, microsecond=0)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1)


def tick_dates(start: datetime, end: datetime) -> tuple[list[datetime], str]:
    """Round dates between `start` and `end` for the axis, at most MAX_TICKS, and their unit."""
    span = (end - start).days
    if span > 3 * 365:
        years = max(1, math.ceil((end.year - start.year + 1) / MAX_TICKS))
        first = datetime(math.ceil(start.year / years) * years, 1, 1, tzinfo=UTC)
        if first < start:
            first = first.replace(year=first.year + years)
        dates = [first.replace(year=year) for year in range(first.year, end.year + 1, years)]
        return [d for d in dates if d <= end], "year"
    if span > 90:
        months = next(step for step in (1, 2, 3, 6, 12) if span / 30.4 / step <= MAX_TICKS)
        moment = _month_start(start, months)
        if moment < start:
            moment = _add_months(moment, months)
        dates = []
        while moment <= end:
            dates.append(moment)
            moment = _add_months(moment, months)
        return dates, "month"
    days = next(step for step in (1, 2, 7, 14, 30) if span / step <= MAX_TICKS)
    moment = start.replace(hour=0, minute=0, second=0, microsecond=0)
    if moment < start:
        moment += timedelta(days=1)
    dates = []
    while moment <= end:
        dates.append(moment)
        moment += timedelta(days=days)
    return dates, "day"


def tick_label(moment: datetime, unit: str) -> str:
    return {"year": f"{moment.year}", "month": f"{moment.year}-{moment.month:02d}"}.get(unit) or \
        moment.date().isoformat()


def build_timeline(versions: list[dict], link: Callable[[dict, dict | None], str],
                   now: datetime | None = None) -> Timeline | None:
    """The picture of `versions` (oldest first; each with date, words_added, words_removed,
    is_first, is_technical). `link(version, against)` is the URL of the diff from `against`
    to `version`, or of the version itself when `against` is None (the first record).
    The axis runs from the first version to the last, or on to `now` (a document still
    tracked) when that quiet stretch is not longer than half the history: a long silence
    would squeeze the history itself into a corner. None when there is nothing to draw.
    """
    if not versions:
        return None
    start, end = versions[0]["date"], versions[-1]["date"]
    if now is not None and now > end and (now - end) <= (end - start) / 2:
        end = now
    else:
        end += (end - start) / 50  # room for the last bar
    if end - start < timedelta(days=1):
        # Too short a history for a time axis: give it a day on each side.
        start, end = start - timedelta(days=1), end + timedelta(days=1)
    timeline = Timeline(start, end)
    plot = timeline.right - timeline.left
    seconds = (end - start).total_seconds()
    slots = max(1, int(plot // SLOT))

    def slot_of(moment: datetime) -> int:
        return min(slots - 1, int((moment - start).total_seconds() / seconds * slots))

    groups: list[list[int]] = []  # positions in `versions`, one list per bar
    last_slot = None
    for position, version in enumerate(versions):
        slot = slot_of(version["date"])
        if slot != last_slot:
            groups.append([])
            last_slot = slot
        groups[-1].append(position)

    for positions in groups:
        members = [versions[p] for p in positions]
        first, last = members[0], members[-1]
        before = versions[positions[0] - 1] if positions[0] > 0 else None
        changes = [v for v in members if not v["is_first"]]
        added = sum(v["words_added"] for v in changes)
        removed = sum(v["words_removed"] for v in changes)
        is_first = any(v["is_first"] for v in members)
        if len(members) == 1:
            href = link(first, None) if first["is_first"] else link(first, before)
        else:
            # The bar stands for several versions: its diff spans them all.
            href = link(last, before) if before is not None else link(last, first)
        x = timeline.left + slot_of(first["date"]) * plot / slots
        timeline.marks.append(Mark(
            x=round(x, 1), width=round(max(1.0, plot / slots - 1), 1), start=first["date"], end=last["date"],
            versions=len(members), added=added, removed=removed, href=href, first_record=is_first,
            technical=bool(changes) and all(v["is_technical"] for v in changes),
        ))

    # Where versions are sparse, widen the bars (never into the next one) so they are easy to point at.
    for mark, following in zip(timeline.marks, [*timeline.marks[1:], None], strict=True):
        room = (following.x if following else timeline.right) - mark.x - 1
        mark.width = round(max(mark.width, min(WIDEST_BAR, room)), 1)

    timeline.largest = max([m.added for m in timeline.marks] + [m.removed for m in timeline.marks] + [0])
    largest = max(timeline.largest, 10)
    for mark in timeline.marks:
        mark.added_height = round(bar_height(mark.added, largest), 1)
        mark.removed_height = round(bar_height(mark.removed, largest), 1)
    words = 10
    while words <= largest:
        height = bar_height(words, largest)
        timeline.scale.append(ScaleLine(words, round(AXIS_Y - height, 1), round(AXIS_Y + height, 1)))
        words *= 10
    dates, unit = tick_dates(start, end)
    timeline.ticks = [Tick(round(timeline.left + (d - start).total_seconds() / seconds * plot, 1),
                           tick_label(d, unit)) for d in dates]
    return timeline
