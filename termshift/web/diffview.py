"""Turn a Comparison into rows a template can show, inline or side by side.

Long unchanged stretches are folded to a few lines of context around each change. Every
piece of text stays plain text here (Jinja escapes it); the template wraps inserted parts
in `<ins>` and deleted parts in `<del>`. Changed whitespace would be invisible there, so
`whitespace_marks` gives a visible mark and a name for each of its characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import zip_longest

from termshift.textdiff import DELETE, EQUAL, INSERT, Hunk
from termshift.web.diffing import Comparison, headings

Part = tuple[int, str]  # (op, text): op is EQUAL, INSERT or DELETE

# How a changed whitespace character is drawn: (visible mark, English name; the template
# translates it). Others are drawn as "␣", named "other space" with their code point.
WHITESPACE_MARKS = {
    " ": ("·", "space"),
    "\u00a0": ("⍽", "non-breaking space"),
    "\u202f": ("⍽", "narrow non-breaking space"),
    "\u2009": ("·", "thin space"),
    "\t": ("→", "tab"),
    "\n": ("↵", "line break"),
}
OTHER_SPACE = ("␣", "other space")


@dataclass
class Row:
    """One line of the diff table.

    kind: "equal", "insert", "delete", "change" (a changed line pair) or "skip" (folded
    unchanged lines; `skipped` says how many). In the inline view a change is one row
    whose `parts` interleave deletions and insertions; side by side, `old` and `new`.
    """

    kind: str
    old_number: int | None = None
    new_number: int | None = None
    old: list[Part] = field(default_factory=list)
    new: list[Part] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)
    skipped: int = 0


@dataclass
class Block:
    """The rows of one hunk; changed hunks are numbered (1-based) for navigation."""

    kind: str
    rows: list[Row]
    change_number: int | None = None
    section: str | None = None
    whitespace_only: bool = False


def _split_lines(parts: list[Part]) -> list[list[Part]]:
    """Cut (op, text) parts into lines at each newline."""
    lines: list[list[Part]] = [[]]
    for op, text in parts:
        pieces = text.split("\n")
        for index, piece in enumerate(pieces):
            if index:
                lines.append([])
            if piece:
                lines[-1].append((op, piece))
    return lines


def _equal_rows(hunk: Hunk, context: int | None, first: bool, last: bool) -> list[Row]:
    count = len(hunk.old_lines)

    def rows(start: int, end: int) -> list[Row]:
        # Only the rows shown are built: a 200 KB text is mostly folded away.
        return [Row("equal", hunk.old_start + i + 1, hunk.new_start + i + 1, [(EQUAL, hunk.old_lines[i])],
                    [(EQUAL, hunk.old_lines[i])], [(EQUAL, hunk.old_lines[i])]) for i in range(start, end)]

    if context is None:
        return rows(0, count)
    head = 0 if first else context
    tail = 0 if last else context
    if count <= head + tail + 1:
        return rows(0, count)
    folded = Row("skip", skipped=count - head - tail)
    return rows(0, head) + [folded] + rows(count - tail, count)


def _change_rows(hunk: Hunk, side_by_side: bool) -> list[Row]:
    if hunk.kind == "insert":
        return [Row("insert", None, hunk.new_start + i + 1, [], [(INSERT, line)], [(INSERT, line)])
                for i, line in enumerate(hunk.new_lines)]
    if hunk.kind == "delete":
        return [Row("delete", hunk.old_start + i + 1, None, [(DELETE, line)], [], [(DELETE, line)])
                for i, line in enumerate(hunk.old_lines)]
    if not side_by_side:
        return [Row("change", hunk.old_start + 1, hunk.new_start + 1, parts=hunk.segments)]
    old_lines = _split_lines([(op, text) for op, text in hunk.segments if op != INSERT])
    new_lines = _split_lines([(op, text) for op, text in hunk.segments if op != DELETE])
    rows = []
    for index, (old, new) in enumerate(zip_longest(old_lines, new_lines)):
        rows.append(Row(
            "change",
            hunk.old_start + index + 1 if old is not None else None,
            hunk.new_start + index + 1 if new is not None else None,
            old or [],
            new or [],
        ))
    return rows


def build_blocks(comparison: Comparison, *, side_by_side: bool, context: int | None) -> list[Block]:
    """Blocks of rows; `context` None shows every unchanged line."""
    blocks = []
    number = 0
    last_index = len(comparison.hunks) - 1
    for index, hunk in enumerate(comparison.hunks):
        if hunk.kind == "equal":
            blocks.append(Block("equal", _equal_rows(hunk, context, index == 0, index == last_index)))
        else:
            number += 1
            blocks.append(Block(hunk.kind, _change_rows(hunk, side_by_side), number, hunk.section,
                                hunk.whitespace_only))
    return blocks


def section_links(comparison: Comparison) -> list[dict]:
    """Each section touched, with the number of its first change (for an anchor link).

    A section is reached by the change it is in, or by the change that adds or removes
    its heading.
    """
    first_change: dict[str | None, int] = {}
    number = 0
    for hunk in comparison.hunks:
        if hunk.kind == "equal":
            continue
        number += 1
        first_change.setdefault(hunk.section, number)
        lines = hunk.old_lines if hunk.kind == "delete" else hunk.new_lines
        for _line, title in headings("\n".join(lines)):
            first_change.setdefault(title, number)
    return [{"title": title, "change": first_change.get(title)} for title in comparison.sections]


def whitespace_marks(text: str) -> list[tuple[str, str, str, str]]:
    """(mark, name, code point, character) for each character of a changed run of whitespace."""
    return [(*WHITESPACE_MARKS.get(char, OTHER_SPACE), f"U+{ord(char):04X}", char) for char in text]


def draws_whitespace_marks(comparison: Comparison) -> bool:
    """Whether the diff shows any changed whitespace as marks (the legend then explains them)."""
    return any(op != EQUAL and text.isspace() for hunk in comparison.changes for op, text in hunk.segments)
