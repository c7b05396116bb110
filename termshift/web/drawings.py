"""The viewer's pictures as inline SVG: a document's timeline (`timeline.py` lays it out)
and the collection's activity grid (`activity.py`).

No script and no inline style (the pages' CSP forbids both): colours come from
style.css's classes. Every mark is a link with a `<title>` (its tooltip and its
accessible name); the tables beside the pictures hold the same figures. Every text and
attribute is escaped. Drawn with f-strings rather than a Jinja macro: a timeline has
hundreds of marks of a dozen values each, and a macro's `{{ }}` cost three times as
much (most of a document page's first view).
"""

from __future__ import annotations

from markupsafe import Markup, escape

from termshift.web.activity import Activity
from termshift.web.i18n import (
    current_language,
    format_date,
    format_datetime,
    format_number,
    translate,
    translate_plural,
)
from termshift.web.timeline import Timeline


def timeline_svg(t: Timeline, heading_id: str) -> Markup:
    """Every version of a document on a time axis, `heading_id` naming the section."""
    lang = current_language()

    def _(text: str) -> str:
        return escape(translate(lang, text))

    scale = "".join(
        f'\n    <line x1="{t.left}" x2="{t.right}" y1="{line.y_up}" y2="{line.y_up}"/>'
        f'\n    <line x1="{t.left}" x2="{t.right}" y1="{line.y_down}" y2="{line.y_down}"/>'
        f'\n    <text x="{t.left - 6}" y="{line.y_up + 3}" text-anchor="end">+{format_number(line.words, lang)}</text>'
        f'\n    <text x="{t.left - 6}" y="{line.y_down + 3}" text-anchor="end">−{format_number(line.words, lang)}'
        '</text>'
        for line in t.scale)
    ticks = "".join(
        f'\n    <line class="tick" x1="{tick.x}" x2="{tick.x}" y1="{t.top}" y2="{t.bottom + 4}"/>'
        f'\n    <text x="{tick.x}" y="{t.label_y - 8}" text-anchor="middle">{escape(tick.label)}</text>'
        for tick in t.ticks)
    added_text, removed_text, first_text = _("words added"), _("words removed"), _("first record")
    marks = []
    for mark in t.marks:
        if mark.versions == 1:
            title = format_datetime(mark.start)
        else:
            title = (f'{escape(translate_plural(lang, "{n} version", "{n} versions", mark.versions))}, '
                     f'{format_date(mark.start)} – {format_date(mark.end)}')
        if mark.first_record:
            title += f" · {first_text}"
        if mark.added or mark.removed or not mark.first_record:
            title += (f": +{format_number(mark.added, lang)} {added_text}, "
                      f"−{format_number(mark.removed, lang)} {removed_text}")
        shapes = f'<rect class="hit" x="{mark.x - 1}" y="{t.top}" width="{mark.width + 2}" height="{t.bottom - t.top}"/>'
        if mark.added_height:
            shapes += (f'<rect class="added" x="{mark.x}" y="{t.axis_y - mark.added_height}" width="{mark.width}" '
                       f'height="{mark.added_height}"/>')
        if mark.removed_height:
            shapes += (f'<rect class="removed" x="{mark.x}" y="{t.axis_y}" width="{mark.width}" '
                       f'height="{mark.removed_height}"/>')
        if mark.first_record:
            shapes += f'<circle class="first" cx="{mark.x + mark.width / 2}" cy="{t.axis_y}" r="4"/>'
        if not mark.added_height and not mark.removed_height and not mark.first_record:
            shapes += f'<rect class="unchanged" x="{mark.x}" y="{t.axis_y - 3}" width="{mark.width}" height="6"/>'
        marks.append(f'\n  <a href="{escape(mark.href)}" class="mark{" technical" if mark.technical else ""}">'
                     f'\n    <title>{title}</title>\n    {shapes}\n  </a>')
    caption = _("Each bar is a change: its height above the line is the number of words added, below it the "
                "number removed (logarithmic scale). Point at a bar for its date; click it to see the change.")
    return Markup(
        f'<figure class="picture timeline-picture">\n<div class="picture-scroll">\n'
        f'<svg class="timeline-chart" viewBox="0 0 {t.width} {t.height}" role="group" '
        f'aria-labelledby="{escape(heading_id)} timeline-caption" preserveAspectRatio="xMinYMin meet">\n'
        f'  <g class="scale" aria-hidden="true">{scale}{ticks}\n'
        f'    <line class="axis" x1="{t.left}" x2="{t.right}" y1="{t.axis_y}" y2="{t.axis_y}"/>\n  </g>'
        f'{"".join(marks)}\n</svg>\n</div>\n<figcaption id="timeline-caption">\n  {caption}\n'
        f'  <span class="legend"><span class="swatch swatch-added" aria-hidden="true"></span>{added_text}\n'
        f'  <span class="swatch swatch-removed" aria-hidden="true"></span>{removed_text}\n'
        f'  <span class="swatch swatch-first" aria-hidden="true"></span>{first_text}\n'
        f'  <span class="swatch swatch-unchanged" aria-hidden="true"></span>{_("no word changed (layout only)")}'
        f'</span>\n</figcaption>\n</figure>')


def activity_svg(a: Activity) -> Markup:
    """Services × months: a square per service and month, a bar per month's total."""
    lang = current_language()

    def changes(n: int) -> str:
        return escape(translate_plural(lang, "{n} change", "{n} changes", n))

    grid = "".join(
        f'\n    <line class="year" x1="{column.x}" x2="{column.x}" y1="{a.top - 4}" y2="{a.bottom}"/>'
        f'\n    <text x="{column.x + 2}" y="{a.label_y}">{escape(column.label)}</text>'
        for column in a.columns if column.label)
    bars = "".join(
        f'\n  <a href="{escape(column.href)}" class="month-total">'
        f'\n    <title>{escape(column.month)}: {changes(column.changes)}, '
        f'{escape(translate_plural(lang, "{n} service", "{n} services", column.services))}</title>'
        f'\n    <rect x="{column.x}" y="{a.bars_bottom - column.bar_height}" width="{a.cell - 2}" '
        f'height="{column.bar_height}"/>\n  </a>'
        for column in a.columns if column.changes)
    words_text = escape(translate(lang, "words"))
    rows = []
    for row in a.rows:
        name = escape(row.name)
        rows.append(
            f'\n  <a href="{escape(row.href)}" class="service-label"><title>{name}: {changes(row.changes)}</title>'
            f'<text x="{a.left - 6}" y="{row.y + a.cell - 4}" text-anchor="end">{escape(row.label)}</text></a>'
            f'\n  <rect class="row-band" x="{a.left}" y="{row.y}" width="{a.right - a.left}" height="{a.cell - 2}" '
            'aria-hidden="true"/>')
        rows.extend(
            f'\n  <a href="{escape(cell.href)}" class="cell level-{cell.level}"><title>{name}, {escape(cell.month)}: '
            f'{changes(cell.changes)} (+{format_number(cell.added, lang)} −{format_number(cell.removed, lang)} '
            f'{words_text})</title><rect x="{cell.x}" y="{row.y}" width="{a.cell - 2}" height="{a.cell - 2}"/></a>'
            for cell in row.cells)
    legend = "".join(f' <span class="swatch level-{level}" aria-hidden="true"></span>{escape(label)}'
                     for level, label in a.legend)
    truncated = escape(translate(lang, "Only the most recent {n} months are drawn; choose dates to see earlier ones.",
                                 n=len(a.columns))) if a.truncated else ""
    caption = escape(translate(lang, (
        "One row per service, one column per month; the darker a square, the more changes that month (first "
        "records not counted). The bars on top add up each month: a wave of updates shows as a tall bar and a "
        "full column. Click a square or a bar to list those changes.")))
    return Markup(
        f'<figure class="picture activity-picture">\n'
        f'<svg class="activity-chart" viewBox="0 0 {a.width} {a.height}" width="{a.width}" height="{a.height}" '
        f'role="group" aria-labelledby="activity-heading activity-caption">\n'
        f'  <g class="grid" aria-hidden="true">{grid}\n  </g>{bars}{"".join(rows)}\n</svg>\n'
        f'<figcaption id="activity-caption">\n  {caption}\n'
        f'  <span class="legend">{escape(translate(lang, "Changes in a month:"))}{legend}</span>\n'
        f'  {f"""<span class="note">{truncated}</span>""" if truncated else ""}\n</figcaption>\n</figure>')
