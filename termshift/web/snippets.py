"""The HTML of the viewer's table rows, built in Python.

`version_rows` (a document's history), `change_rows` (the latest changes), `diff_blocks`
(the rows of a diff, unified or split) and `options` (the filters' choices) build whole
rows; `when(moment)`, `word_change(added, removed, approximate)` and `kind_label(kind)`
are also used by the templates on their own, `diff_parts` on each side of a diff row.
As Jinja loops and macros, with one `escape()` and one `Markup` per `{{ }}`, they were
most of those pages' rendering (a document page's first view: 6.8 ms of CPU with them,
4.0 ms without); f-strings around `escape()` cost a few µs a row. The templates see them
as globals (`register`). Every value is escaped.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from flask import Flask
from markupsafe import Markup, escape

from termshift import urls
from termshift.urls import iso
from termshift.web.diffview import whitespace_marks
from termshift.web.i18n import (
    KIND_NAMES,
    current_language,
    format_bytes,
    format_date,
    format_datetime,
    format_number,
    format_signed,
    translate,
    translate_plural,
)

# (f-strings around `escape()`, which is C: `Markup.format` is a Python string.Formatter, 5x slower.)


def when(moment: datetime | None, with_time: bool = True) -> Markup:
    """A date (and time) as a `<time>` element; a dash when there is none."""
    if not moment:
        return Markup("—")
    text = format_datetime(moment) if with_time else format_date(moment)
    return Markup(f'<time datetime="{escape(iso(moment))}">{escape(text)}</time>')


def kind_label(kind: str, lang: str | None = None) -> Markup:
    return _kind_label(lang or current_language(), kind)


@lru_cache(maxsize=64)  # a few kinds × languages: built once, not once a row
def _kind_label(lang: str, kind: str) -> Markup:
    name = translate(lang, KIND_NAMES.get(kind, "Other commit"))
    return Markup(f'<span class="kind kind-{escape(kind)}">{escape(name)}</span>')


@lru_cache(maxsize=8)
def _word_labels(lang: str) -> tuple[str, str, str, str, str]:
    """`word_change`'s texts in one language, escaped: the same on every row."""
    return tuple(str(escape(translate(lang, text))) for text in (
        "estimated: this change is too large to count word by word", "words added", "words added:",
        "words removed", "words removed:"))


def word_change(added: int, removed: int, approximate: bool = False, lang: str | None = None) -> Markup:
    """Words added and removed (≈ when estimated), with their names for screen readers."""
    lang = lang or current_language()
    estimated, added_title, added_label, removed_title, removed_label = _word_labels(lang)
    estimate = f'<abbr class="approximate" title="{estimated}">≈</abbr>' if approximate else ""
    return Markup(
        f'<span class="words">{estimate}\n'
        f'    <span class="added" title="{added_title}"><span aria-hidden="true">+</span>'
        f'<span class="visually-hidden">{added_label} </span>'
        f'{escape(format_number(added, lang))}</span>\n'
        f'    <span class="removed" title="{removed_title}"><span aria-hidden="true">−</span>'
        f'<span class="visually-hidden">{removed_label} </span>'
        f'{escape(format_number(removed, lang))}</span>\n  </span>'
    )


def diff_parts(parts: list[tuple[int, str]]) -> Markup:
    """One side of a row of the diff: (op, text) parts as text, `<ins>` and `<del>`. Changed
    whitespace alone (a space that became a non-breaking space…) is invisible as text: each
    of its characters gets a mark, named in a tooltip and for screen readers."""
    lang = current_language()
    html = []
    for op, text in parts:
        if op != 0 and text.isspace():
            tag = "ins" if op == 1 else "del"
            marks = []
            for mark, name, code, char in whitespace_marks(text):
                label = escape(translate(lang, name))
                marks.append(f'<span class="ws-mark" title="{label} ({escape(code)})"><span aria-hidden="true">'
                             f'{escape(mark)}</span><span class="visually-hidden">{label}</span></span>'
                             + ("\n" if char == "\n" else ""))
            html.append(f'<{tag} class="ws">{"".join(marks)}</{tag}>')
        elif op == 1:
            html.append(f"<ins>{escape(text)}</ins>")
        elif op == -1:
            html.append(f"<del>{escape(text)}</del>")
        else:
            html.append(str(escape(text)))
    return Markup("".join(html))


def version_rows(versions: list[dict]) -> Markup:
    """The rows of a document's history (`version_summary` dicts, newest first): radio
    buttons to pick two versions to compare (the two newest picked), date, kind, size,
    words and links. One function rather than a template loop: a page has 50 of them,
    and this is a third of what a loop of `{{ }}` costs."""
    lang = current_language()
    compare_from, compare_to = escape(translate(lang, "Compare from this version")), \
        escape(translate(lang, "Compare to this version"))
    from_label, to_label = escape(translate(lang, "from")), escape(translate(lang, "to"))
    see_changes, markdown = escape(translate(lang, "See the changes")), escape(translate(lang, "Markdown"))
    rows = []
    for number, version in enumerate(versions, 1):
        ref = escape(version["url"].rsplit("/", 1)[1])
        moment = escape(format_datetime(version["date"]))
        diff = "" if version["is_first_record"] else (
            f'<a href="{escape(version["diff_url"])}">{see_changes}<span class="visually-hidden">: '
            f'{moment}</span></a>\n        ')
        rows.append(
            f'<tr>\n      <td class="compare">\n'
            f'        <input type="radio" name="from" value="{ref}" id="from-{number}" '
            f'{"checked" if number == 2 else ""}>\n'
            f'        <label for="from-{number}"><span class="visually-hidden">{compare_from}</span>'
            f'<span aria-hidden="true">{from_label}</span></label>\n'
            f'        <input type="radio" name="to" value="{ref}" id="to-{number}" '
            f'{"checked" if number == 1 else ""}>\n'
            f'        <label for="to-{number}"><span class="visually-hidden">{compare_to}</span>'
            f'<span aria-hidden="true">{to_label}</span></label>\n      </td>\n'
            f'      <td><a href="{escape(version["url"])}">{when(version["date"])}</a></td>\n'
            f'      <td>{kind_label(version["kind"], lang)}</td>\n'
            f'      <td>{escape(format_bytes(version["size"], lang))} <span class="delta">'
            f'({escape(format_signed(version["size_delta"], lang))})</span></td>\n'
            f'      <td>{word_change(version["words_added"], version["words_removed"], version["words_approximate"], lang)}'
            f'</td>\n      <td class="links">\n        {diff}'
            f'<a href="{escape(version["markdown_url"])}" download>{markdown}<span class="visually-hidden">: '
            f'{moment}</span></a>\n      </td>\n    </tr>')
    return Markup("\n    ".join(rows))


def change_rows(changes: list[dict]) -> Markup:
    """The rows of the latest changes (`version_summary` dicts): date, service, document,
    kind, words and a link to the change (see `version_rows`). A document's cells are built
    once per list: a page often lists several changes of one document or service."""
    lang = current_language()
    see_changes = escape(translate(lang, "See the changes"))
    documents: dict[tuple[str, str, str], tuple[str, str]] = {}
    rows = []
    for change in changes:
        key = (change["service_id"], change["terms_type"], change["service_name"])
        cells = documents.get(key)
        if cells is None:
            service, terms_type = escape(change["service_name"]), escape(change["terms_type"])
            cells = documents[key] = (
                f'      <td><a href="{escape(urls.service_url(change["service_id"]))}">{service}</a></td>\n'
                f'      <td><a href="{escape(urls.document_url(change["service_id"], change["terms_type"]))}">'
                f'{terms_type}</a></td>\n', f"{service}, {terms_type}")
        document_cells, names = cells
        rows.append(
            f'<tr>\n      <td>{when(change["date"])}</td>\n{document_cells}'
            f'      <td>{kind_label(change["kind"], lang)}</td>\n'
            f'      <td>{word_change(change["words_added"], change["words_removed"], change["words_approximate"], lang)}'
            f'</td>\n'
            f'      <td class="links"><a href="{escape(change["diff_url"])}">{see_changes}'
            f'<span class="visually-hidden">: {names}, {escape(format_datetime(change["date"]))}'
            f'</span></a></td>\n    </tr>')
    return Markup("\n    ".join(rows))


def options(choices: list[tuple[str, str]] | list[str], selected: str | None) -> Markup:
    """`<option>`s of a filter's `<select>`, from (value, label) pairs or from values that
    are their own labels (hundreds of services on a large collection)."""
    pairs = ((choice, choice) if isinstance(choice, str) else choice for choice in choices)
    return Markup("\n        ".join(
        f'<option value="{escape(value)}" {"selected" if value == selected else ""}>{escape(label)}</option>'
        for value, label in pairs))


def diff_blocks(blocks: list, view: str, changes: int, all_context_url: str) -> Markup:
    """The `<tbody>`s of a diff table: one per block of `diffview.build_blocks` (a change,
    headed by its number, section and links to the previous and next ones; or unchanged
    lines, folded), in the unified or the split (`view == "split"`) layout. A 200 KB diff
    has thousands of rows: as a template loop they cost more than comparing the texts."""
    lang = current_language()
    columns = 4
    previous, following = escape(translate(lang, "previous")), escape(translate(lang, "next"))
    whitespace_only = escape(translate(lang, "whitespace only"))
    context_url = escape(all_context_url)
    markers = {"insert": "+", "delete": "−", "change": "±"}
    html = []
    for block in blocks:
        number = block.change_number
        html.append(f'<tbody class="block block-{escape(block.kind)}" ' + (f'id="change-{number}"' if number else "")
                    + ">\n    ")
        if number:
            title = str(escape(translate(lang, "Change {n} of {total}", n=number, total=changes)))
            if block.section:
                title += f" — {escape(block.section)}"
            if block.whitespace_only:
                title += f' <span class="kind kind-whitespace">({whitespace_only})</span>'
            links = ""
            if number > 1:
                links += f'<a href="#change-{number - 1}" class="previous-change">↑ {previous}</a>'
            if number < changes:
                links += f'\n          <a href="#change-{number + 1}" class="next-change">↓ {following}</a>'
            html.append(f'<tr class="change-heading">\n      <th colspan="{columns}" scope="rowgroup">\n'
                        f'        <span>{title}</span>\n        <span class="change-nav">\n          {links}\n'
                        '        </span>\n      </th>\n    </tr>\n    ')
        for row in block.rows:
            if row.kind == "skip":
                skipped = escape(translate_plural(lang, "{n} unchanged line", "{n} unchanged lines", row.skipped))
                html.append(f'\n      <tr class="skip"><td colspan="{columns}"><a href="{context_url}">⋯ {skipped}'
                            '</a></td></tr>\n      ')
                continue
            old_number = row.old_number or ""
            new_number = row.new_number or ""
            if view == "split":
                old_marker = '<span class="marker" aria-hidden="true">−</span>' \
                    if row.kind in ("delete", "change") and row.old_number is not None else ""
                new_marker = '<span class="marker" aria-hidden="true">+</span>' \
                    if row.kind in ("insert", "change") and row.new_number is not None else ""
                html.append(
                    f'\n      <tr class="row-{escape(row.kind)}">\n        <td class="ln">{old_number}</td>\n'
                    f'        <td class="text old{" empty" if row.old_number is None else ""}">{old_marker}'
                    f'{diff_parts(row.old)}</td>\n        <td class="ln">{new_number}</td>\n'
                    f'        <td class="text new{" empty" if row.new_number is None else ""}">{new_marker}'
                    f'{diff_parts(row.new)}</td>\n      </tr>\n      ')
            else:
                html.append(
                    f'\n      <tr class="row-{escape(row.kind)}">\n        <td class="ln">{old_number}</td>\n'
                    f'        <td class="ln">{new_number}</td>\n'
                    f'        <td class="marker" aria-hidden="true">{markers.get(row.kind, "")}</td>\n'
                    f'        <td class="text">{diff_parts(row.parts)}</td>\n      </tr>\n      ')
        html.append("\n  </tbody>\n  ")
    return Markup("".join(html))


def register(app: Flask) -> None:
    app.jinja_env.globals.update({"when": when, "kind_label": kind_label, "word_change": word_change,
                                  "version_rows": version_rows, "change_rows": change_rows, "options": options,
                                  "diff_blocks": diff_blocks})
