"""The pieces of HTML on every row of the viewer's tables, built in Python.

`when(moment)`, `word_change(added, removed, approximate)` and `kind_label(kind)` appear
on each of the 50 rows of a document's history and of the latest changes, `diff_parts`
on each side of each row of a diff (hundreds on a diff page). As Jinja macros
each call cost about 40 µs, half of those pages' rendering (the latest-changes page: 12.5
ms with them, 5.5 ms without); as functions returning `Markup` they cost a few µs. They
are template globals (`register`), so every template and macro sees them; the HTML and
the words are the same as the macros made. Every value is escaped.
"""

from __future__ import annotations

from datetime import datetime

from flask import Flask
from markupsafe import Markup, escape

from termshift.urls import iso
from termshift.web.diffview import whitespace_marks
from termshift.web.i18n import (
    KIND_NAMES,
    current_language,
    format_date,
    format_datetime,
    format_number,
    translate,
)

# (f-strings around `escape()`, which is C: `Markup.format` is a Python string.Formatter, 5x slower.)


def when(moment: datetime | None, with_time: bool = True) -> Markup:
    """A date (and time) as a `<time>` element; a dash when there is none."""
    if not moment:
        return Markup("—")
    text = format_datetime(moment) if with_time else format_date(moment)
    return Markup(f'<time datetime="{escape(iso(moment))}">{escape(text)}</time>')


def kind_label(kind: str) -> Markup:
    name = translate(current_language(), KIND_NAMES.get(kind, "Other commit"))
    return Markup(f'<span class="kind kind-{escape(kind)}">{escape(name)}</span>')


def word_change(added: int, removed: int, approximate: bool = False) -> Markup:
    """Words added and removed (≈ when estimated), with their names for screen readers."""
    lang = current_language()
    estimate = ""
    if approximate:
        title = escape(translate(lang, "estimated: this change is too large to count word by word"))
        estimate = f'<abbr class="approximate" title="{title}">≈</abbr>'
    return Markup(
        f'<span class="words">{estimate}\n'
        f'    <span class="added" title="{escape(translate(lang, "words added"))}"><span aria-hidden="true">+</span>'
        f'<span class="visually-hidden">{escape(translate(lang, "words added:"))} </span>'
        f'{escape(format_number(added, lang))}</span>\n'
        f'    <span class="removed" title="{escape(translate(lang, "words removed"))}"><span aria-hidden="true">−</span>'
        f'<span class="visually-hidden">{escape(translate(lang, "words removed:"))} </span>'
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


def register(app: Flask) -> None:
    app.jinja_env.globals.update({"when": when, "kind_label": kind_label, "word_change": word_change,
                                  "diff_parts": diff_parts})
