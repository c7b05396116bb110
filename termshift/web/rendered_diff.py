"""A change shown as formatted text, insertions and deletions marked as tracked changes.

The diff page's source view shows Markdown; readers of law would rather see headings,
lists and links as they read them. This module builds that view from the same
`Comparison` (one diff engine):

1. Each changed line is paired with the line it became (`pair_lines`) and the pair is
   merged into one Markdown line, the deleted words wrapped in ⸦…⸧ and the inserted ones
   in ⸨…⸩ (`merge_pair`). Those are Unicode punctuation marks, so Markdown treats them as
   it would a bracket and emphasis next to them still works; any occurrence of them in
   the archived text is removed first.
2. A merged line is kept only if, rendered, it gives back exactly the rendering of the
   old line once the insertions are dropped, and of the new line once the deletions are
   dropped, with the marks well nested (`faithful`). Otherwise (a change inside a link
   target, a heading level that changed…) the old line is shown wholly deleted and the
   new one wholly inserted.
3. Unchanged paragraphs far from any change are folded, as in the source view; then each
   shown stretch is rendered by `render.markdown_to_html` (markdown-it, raw HTML off, nh3
   allow-list), the marks become `<del>`/`<ins>`, and the result is sanitised again with
   the same allow-list plus `<ins>`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from termshift.textdiff import DELETE, EQUAL, WORD, word_diff
from termshift.web.diffing import Comparison
from termshift.web.render import ALLOWED_TAGS, markdown_to_html, sanitise

RENDERED_FORMAT = 1  # bump when the HTML produced changes

DEL_OPEN, DEL_CLOSE, INS_OPEN, INS_CLOSE = "\u2e26", "\u2e27", "\u2e28", "\u2e29"
MARKS = re.compile("[\u2e26-\u2e29]")
TAGS = {DEL_OPEN: "<del>", DEL_CLOSE: "</del>", INS_OPEN: "<ins>", INS_CLOSE: "</ins>"}
TRACKED_TAGS = ALLOWED_TAGS | {"ins"}

# What starts a Markdown block line: heading marks, quotes, list bullets and numbers.
BLOCK_PREFIX = re.compile(r"^[ \t]{0,3}(?:#{1,6}[ \t]+|>[ \t]?|[*+-][ \t]+|\d{1,9}[.)][ \t]+)*")
# Lines that are structure alone: thematic breaks, setext underlines, code fences, table rules.
STRUCTURE_ONLY = re.compile(r"^[ \t]*(?:[-*_=][ \t]*){2,}$|^[ \t]*(?:```|~~~)|^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
TABLE_CELL = re.compile(r"(?<!\\)\|")
HTML_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)[^>]*>")
VOID_TAGS = {"br", "hr", "img", "wbr"}
MAX_MERGED_PAIRS = 400  # beyond this many changed lines, whole lines are marked (reflows)
MAX_PAIRING = 2_500  # old × new lines of one changed region paired by similarity
SIMILAR = 0.5  # paragraphs sharing less than this share of words are shown removed and added whole
SIMILAR_ALONE = 0.25  # … unless each is alone in its changed region
WORD_DIFF_TIMEOUT = 0.2  # seconds per paired line (diff-match-patch then returns a coarser diff)


@dataclass
class Line:
    """A line of the merged text; `change` is the number of the change it belongs to (None: unchanged)."""

    text: str
    change: int | None = None


@dataclass
class Stretch:
    """What the template shows: rendered HTML, or a fold of unchanged lines."""

    kind: str  # "html" | "skip"
    html: str = ""
    lines: int = 0
    anchor: str | None = None  # "change-N" of the first change inside
    changes: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        if self.kind == "skip":
            return {"kind": "skip", "unchanged_lines": self.lines}
        return {"kind": "html", "html": self.html, "changes": self.changes}


def clean(text: str) -> str:
    """The archived text without the characters used as marks."""
    return MARKS.sub("", text)


def wrap_line(line: str, opening: str, closing: str) -> str:
    """Mark a whole line's content, leaving its block syntax (heading, list, quote, table) outside."""
    if not line.strip() or STRUCTURE_ONLY.match(line):
        return line
    if line.lstrip().startswith("|"):
        cells = TABLE_CELL.split(line)
        inner = [wrap_line(cell, opening, closing) if 0 < index < len(cells) - 1 or cell.strip() else cell
                 for index, cell in enumerate(cells)]
        return "|".join(inner)
    prefix = BLOCK_PREFIX.match(line).group(0)
    content = line[len(prefix):]
    body = content.rstrip()
    if not body.strip():
        return line
    lead = len(body) - len(body.lstrip())
    return prefix + body[:lead] + opening + body[lead:] + closing + content[len(body):]


def merge_pair(old: str, new: str) -> str:
    """One line holding both: deleted words in ⸦…⸧, inserted ones in ⸨…⸩."""
    pieces = []
    for op, text in word_diff(old, new, timeout=WORD_DIFF_TIMEOUT):
        if op == EQUAL:
            pieces.append(text)
        elif op == DELETE:
            pieces.append(DEL_OPEN + text + DEL_CLOSE)
        else:
            pieces.append(INS_OPEN + text + INS_CLOSE)
    return "".join(pieces)


def _drop(html: str, opening: str, closing: str, other: str) -> str:
    """The rendering seen from one side: one kind of marked text removed, the other unmarked."""
    html = re.sub(f"{opening}[^{closing}]*{closing}", "", html)
    return re.sub(f"[{other}]", "", html)


def well_nested(html: str) -> bool:
    """Marks and tags close in the order they opened, and no mark sits inside a tag."""
    stack: list[str] = []
    for match in re.finditer(r"<[^>]*>|[\u2e26-\u2e29]", html):
        token = match.group(0)
        if token in (DEL_OPEN, INS_OPEN):
            stack.append(token)
        elif token in (DEL_CLOSE, INS_CLOSE):
            if not stack or stack.pop() != {DEL_CLOSE: DEL_OPEN, INS_CLOSE: INS_OPEN}[token]:
                return False
        else:
            if MARKS.search(token):
                return False
            tag = HTML_TAG.match(token)
            if tag is None or tag.group(2).lower() in VOID_TAGS or token.endswith("/>"):
                continue
            if tag.group(1):
                if not stack or stack.pop() != tag.group(2).lower():
                    return False
            else:
                stack.append(tag.group(2).lower())
    return not stack


# Characters that may make Markdown inline syntax (links, emphasis, code, entities, escapes,
# autolinks, table cells); a line without any is plain text once its block prefix is set.
INLINE_SYNTAX = re.compile(r"[\[\]()*_`<>&\\|!~]|https?:|www\.")


def faithful(merged: str, old: str, new: str) -> bool:
    """Whether the merged line renders as the old line minus insertions and the new one minus deletions."""
    prefix = BLOCK_PREFIX.match(old).group(0)
    if (not INLINE_SYNTAX.search(merged) and prefix.strip() == BLOCK_PREFIX.match(new).group(0).strip()
            and merged.startswith(prefix) and not MARKS.search(prefix) and not STRUCTURE_ONLY.match(old)
            and not STRUCTURE_ONLY.match(new) and (prefix.strip() or not old.startswith("    "))):
        return True  # plain words under the same heading/list/quote mark: nothing to check
    html = markdown_to_html(merged)
    return (well_nested(html)
            and _drop(html, INS_OPEN, INS_CLOSE, DEL_OPEN + DEL_CLOSE) == markdown_to_html(old)
            and _drop(html, DEL_OPEN, DEL_CLOSE, INS_OPEN + INS_CLOSE) == markdown_to_html(new))


def _similarity(old: str, new: str) -> float:
    """Share of words in common (order ignored: linear time, enough to pair paragraphs)."""
    return difflib.SequenceMatcher(None, WORD.findall(old), WORD.findall(new), autojunk=False).quick_ratio()


def pair_lines(old_lines: list[str], new_lines: list[str]) -> list[tuple[str | None, str | None]]:
    """Align the lines of a changed region: identical ones, then similar ones in order."""
    pairs: list[tuple[str | None, str | None]] = []
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        old, new = old_lines[i1:i2], new_lines[j1:j2]
        if tag == "equal":
            pairs += list(zip(old, new, strict=True))
        elif tag == "delete":
            pairs += [(line, None) for line in old]
        elif tag == "insert":
            pairs += [(None, line) for line in new]
        elif len(old) == len(new) == 1 and _similarity(old[0], new[0]) >= SIMILAR_ALONE:
            pairs.append((old[0], new[0]))  # one paragraph became another: they correspond
        elif len(old) * len(new) > MAX_PAIRING:
            pairs += [(line, None) for line in old] + [(None, line) for line in new]
        else:
            pairs += _pair_similar(old, new)
    return pairs


def _pair_similar(old: list[str], new: list[str]) -> list[tuple[str | None, str | None]]:
    """Greedy, in order: each old line goes with the next new line that resembles it enough."""
    pairs: list[tuple[str | None, str | None]] = []
    at = 0
    for line in old:
        if not line.strip():
            pairs.append((line, None))
            continue
        match = next((j for j in range(at, len(new)) if new[j].strip() and _similarity(line, new[j]) >= SIMILAR),
                     None)
        if match is None:
            pairs.append((line, None))
            continue
        pairs += [(None, inserted) for inserted in new[at:match]]
        pairs.append((line, new[match]))
        at = match + 1
    pairs += [(None, inserted) for inserted in new[at:]]
    return pairs


def _is_paragraph(line: str) -> bool:
    return not BLOCK_PREFIX.match(line).group(0) and not line.lstrip().startswith("|")


def merged_lines(comparison: Comparison) -> list[Line]:
    """The whole text once, each changed line marked, numbered by the change it belongs to."""
    lines: list[Line] = []
    number = 0
    budget = MAX_MERGED_PAIRS
    for hunk in comparison.hunks:
        if hunk.kind == "equal":
            lines += [Line(clean(text)) for text in hunk.old_lines]
            continue
        number += 1
        if hunk.kind == "insert":
            lines += [Line(wrap_line(clean(text), INS_OPEN, INS_CLOSE), number) for text in hunk.new_lines]
            continue
        if hunk.kind == "delete":
            lines += [Line(wrap_line(clean(text), DEL_OPEN, DEL_CLOSE), number) for text in hunk.old_lines]
            continue
        for old, new in pair_lines([clean(t) for t in hunk.old_lines], [clean(t) for t in hunk.new_lines]):
            if old is not None and new is not None:
                if old == new:
                    lines.append(Line(old, number))
                    continue
                if budget > 0:
                    budget -= 1
                    merged = merge_pair(old, new)
                    if faithful(merged, old, new):
                        lines.append(Line(merged, number))
                        continue
                lines.append(Line(wrap_line(old, DEL_OPEN, DEL_CLOSE), number))
                if _is_paragraph(old) and _is_paragraph(new):
                    lines.append(Line("", number))  # keep the two paragraphs apart
                lines.append(Line(wrap_line(new, INS_OPEN, INS_CLOSE), number))
            elif old is not None:
                lines.append(Line(wrap_line(old, DEL_OPEN, DEL_CLOSE), number))
            else:
                lines.append(Line(wrap_line(new, INS_OPEN, INS_CLOSE), number))
    return lines


def _visible(lines: list[Line], context: int | None) -> list[bool]:
    """Which lines to show: changed ones and `context` paragraphs around them, whole blocks."""
    if context is None:
        return [True] * len(lines)
    shown = [line.change is not None for line in lines]
    changed = [index for index, line in enumerate(lines) if line.change is not None]
    for index in changed:
        for step in (-1, 1):
            at, left = index + step, context
            while 0 <= at < len(lines) and left > 0:
                if lines[at].change is None and lines[at].text.strip():
                    left -= 1
                shown[at] = True
                at += step
    # Never cut a block (a table, a list, a paragraph over several lines) in the middle.
    for index in range(1, len(lines)):
        if shown[index] and not shown[index - 1] and lines[index].text.strip():
            at = index - 1
            while at >= 0 and lines[at].text.strip() and not shown[at]:
                shown[at] = True
                at -= 1
    for index in range(len(lines) - 2, -1, -1):
        if shown[index] and not shown[index + 1] and lines[index].text.strip():
            at = index + 1
            while at < len(lines) and lines[at].text.strip() and not shown[at]:
                shown[at] = True
                at += 1
    return shown


def to_html(markdown: str) -> str:
    """Render marked Markdown: sanitised, then the marks turned into `<del>`/`<ins>`, then sanitised again."""
    html = markdown_to_html(markdown)
    html = MARKS.sub(lambda match: TAGS[match.group(0)], html)
    return sanitise(html, tags=TRACKED_TAGS)


def render_comparison(comparison: Comparison, context: int | None) -> list[Stretch]:
    """The stretches of the formatted diff: rendered text and folds of unchanged lines."""
    lines = merged_lines(comparison)
    shown = _visible(lines, context)
    stretches: list[Stretch] = []
    index = 0
    while index < len(lines):
        end = index
        while end < len(lines) and shown[end] == shown[index]:
            end += 1
        part = lines[index:end]
        if shown[index]:
            changes = sorted({line.change for line in part if line.change is not None})
            html = to_html("\n".join(line.text for line in part))
            stretches.append(Stretch("html", html, len(part), f"change-{changes[0]}" if changes else None, changes))
        else:
            folded = sum(1 for line in part if line.text.strip())
            if folded:
                stretches.append(Stretch("skip", lines=folded))
        index = end
    return stretches
