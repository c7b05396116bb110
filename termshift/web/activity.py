"""Which services changed when: a services × months grid of the collection's changes.

A new law coming into force makes many services update their terms in the same few
weeks; on this grid it shows as a dark column and a tall bar above it. The figures are
the index's (`Catalog.monthly_activity`): changes per service and month, technical
upgrades and first records left out unless the filters ask for technical upgrades.
`build_activity()` lays them out for `drawings.activity_svg`; each square links to
the latest-changes list filtered on that service and month.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_MONTHS = 120  # ten years of columns; earlier months are reached by choosing dates
CELL = 14  # side of a square, gap included
LEFT = 170  # room for the service names
LABEL_CHARS = 26
BARS = 48  # height of the monthly totals above the grid
TOP = 16
# Levels of the squares' shade: (at least this many changes, label).
LEVELS = [(1, "1"), (2, "2"), (3, "3–4"), (5, "5–8"), (9, "9+")]


@dataclass
class Cell:
    month: str  # "2024-03"
    x: int
    changes: int
    added: int
    removed: int
    level: int
    href: str


@dataclass
class Row:
    service_id: str
    name: str
    label: str  # the name, shortened to fit
    y: int
    href: str
    changes: int = 0
    cells: list[Cell] = field(default_factory=list)


@dataclass
class Column:
    month: str
    x: int
    label: str  # the year, on January's column (and the first one); else ""
    href: str
    changes: int = 0
    services: int = 0
    bar_height: float = 0.0


@dataclass
class Activity:
    columns: list[Column]
    rows: list[Row]
    truncated: bool  # earlier months were left out (MAX_MONTHS)
    cell: int = CELL
    left: int = LEFT
    top: int = TOP + BARS + 6
    bars_bottom: int = TOP + BARS
    label_y: int = TOP - 4
    legend: list[tuple[int, str]] = field(default_factory=lambda: [(i + 1, label) for i, (_n, label) in
                                                                    enumerate(LEVELS)])

    @property
    def right(self) -> int:
        return self.left + len(self.columns) * self.cell

    @property
    def bottom(self) -> int:
        return self.top + len(self.rows) * self.cell

    @property
    def width(self) -> int:
        return self.right + 8

    @property
    def height(self) -> int:
        return self.bottom + 4

    def to_json(self) -> dict:
        return {
            "months": [column.month for column in self.columns],
            "truncated": self.truncated,
            "totals": {column.month: column.changes for column in self.columns if column.changes},
            "services": [
                {"id": row.service_id, "name": row.name, "changes": row.changes,
                 "months": {cell.month: {"changes": cell.changes, "words_added": cell.added,
                                         "words_removed": cell.removed, "url": cell.href} for cell in row.cells}}
                for row in self.rows
            ],
        }


def level(changes: int) -> int:
    """1 to len(LEVELS): the shade of a square holding `changes` changes."""
    return max(index + 1 for index, (least, _label) in enumerate(LEVELS) if changes >= least)


def month_range(first: str, last: str) -> list[str]:
    """Every month from `first` to `last` ("YYYY-MM"), both included."""
    year, month = int(first[:4]), int(first[5:7])
    months = []
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def month_bounds(month: str) -> tuple[str, str]:
    """First and last day of a month, as the latest-changes filters take them."""
    year, number = int(month[:4]), int(month[5:7])
    return f"{month}-01", f"{month}-{calendar.monthrange(year, number)[1]:02d}"


def shorten(name: str, limit: int = LABEL_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1].rstrip() + "…"


def build_activity(counts: list[dict], names: dict[str, str],
                   link: Callable[[str | None, str | None], str],
                   first_month: str | None = None, last_month: str | None = None) -> Activity | None:
    """Lay out `counts` (dicts with service_id, month "YYYY-MM", changes, words_added,
    words_removed). `link(service_id or None, month or None)` gives the list of those
    changes. The months run from `first_month` (default: the first with a change) to
    `last_month` (default: the last), at most MAX_MONTHS (the latest ones).
    None when there is no change to draw.
    """
    if not counts:
        return None
    seen = sorted({count["month"] for count in counts})
    months = month_range(first_month or seen[0], last_month or seen[-1])
    truncated = len(months) > MAX_MONTHS
    months = months[-MAX_MONTHS:]
    kept = set(months)
    counts = [count for count in counts if count["month"] in kept]
    if not counts:
        return None
    activity = Activity([], [], truncated)
    position = {month: index for index, month in enumerate(months)}
    for index, month in enumerate(months):
        activity.columns.append(Column(month, activity.left + index * CELL,
                                       month[:4] if index == 0 or month.endswith("-01") else "",
                                       link(None, month)))
    by_service: dict[str, list[dict]] = {}
    for count in counts:
        by_service.setdefault(count["service_id"], []).append(count)
    order = sorted(by_service, key=lambda sid: (names.get(sid, sid).casefold(), sid))
    for number, service_id in enumerate(order):
        name = names.get(service_id, service_id)
        row = Row(service_id, name, shorten(name), activity.top + number * CELL, link(service_id, None))
        for count in sorted(by_service[service_id], key=lambda c: c["month"]):
            column = activity.columns[position[count["month"]]]
            row.cells.append(Cell(count["month"], column.x, count["changes"], count["words_added"],
                                  count["words_removed"], level(count["changes"]),
                                  link(service_id, count["month"])))
            row.changes += count["changes"]
            column.changes += count["changes"]
            column.services += 1
        activity.rows.append(row)
    busiest = max(column.changes for column in activity.columns)
    for column in activity.columns:
        if column.changes:
            column.bar_height = round(max(2.0, BARS * column.changes / busiest), 1)
    return activity
