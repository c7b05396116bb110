"""The viewer's comparison of two versions: the regions of the diff and what a reader wants
to know about them first (words added and removed, the sections touched).

The diff itself, line alignment then words inside changed lines within a budget of CPU
time, is the one engine of `termshift.textdiff`; this module adds the Markdown headings
(`headings`, `Comparison.sections`). The same `compare()` feeds the diff page, and the
index counts words with the same engine (`textdiff.change_counts`), so the timeline and
the diff page can never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from termshift.textdiff import PAGE_BUDGET, Hunk, count_changed_words, hunks

ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
# A setext heading: a non-blank line that does not start a list, quote, heading or code
# fence, underlined with = or - (no spaces inside: `- - -` is a thematic break).
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
# A line that may be a heading or a setext underline, with the line break before it: a
# pattern starting with a literal character is searched for at C speed, where `^` in
# MULTILINE mode is tried at every position (a third of a 200 KB diff page's time).
HEADING_CANDIDATE = re.compile(r"\n {0,3}[#=-][^\n]*")
NOT_A_SETEXT_TITLE = re.compile(r"^ {0,3}(?:[*+-][ \t]|\d+[.)][ \t]|>|#|```|~~~)")
MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
EMPHASIS = re.compile(r"(?<!\\)(?:\*\*|__|\*|_(?=\w)|(?<=\w)_)")
BACKSLASH_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>~|=])")
TITLE_MARKUP = re.compile(r"[\[*_\\]")  # what the three patterns above need to find anything


@dataclass
class Comparison:
    """The diff of two texts and what a reader wants to know about it first."""

    hunks: list[Hunk]
    words_added: int
    words_removed: int
    sections: list[str | None]  # headings whose section changed; None = before any heading

    @property
    def approximate(self) -> bool:
        """Some changed region was not aligned word by word: the word counts are estimates."""
        return any(hunk.approximate for hunk in self.hunks)

    @property
    def changes(self) -> list[Hunk]:
        return [hunk for hunk in self.hunks if hunk.kind != "equal"]

    @property
    def whitespace_only(self) -> bool:
        """The texts differ, but only in their whitespace."""
        changes = self.changes
        return bool(changes) and all(hunk.whitespace_only for hunk in changes)

    def to_json(self) -> dict:
        """The form kept in the index's `diff_cache` (the diff page's JSON twin gives each
        hunk's own `to_json`). An unchanged hunk keeps only where it is and how many lines
        it has: its lines are the old text's, given back by `from_json`. Most of a large
        diff is unchanged text, and what a first view serialises, compresses and writes is
        then only what changed."""
        hunks = []
        for hunk in self.hunks:
            if hunk.kind == "equal":
                hunks.append({"kind": "equal", "old_start": hunk.old_start, "new_start": hunk.new_start,
                              "lines": len(hunk.old_lines)})
            else:
                hunks.append(hunk.to_json())
        return {
            "words_added": self.words_added,
            "words_removed": self.words_removed,
            "sections": self.sections,
            "approximate": self.approximate,
            "hunks": hunks,
        }

    @classmethod
    def from_json(cls, data: dict, old: str) -> Comparison:
        """The comparison `to_json` gave, `old` being the old text (its unchanged lines)."""
        old_lines = old.split("\n")
        hunks = []
        for item in data["hunks"]:
            if item["kind"] == "equal":
                start = item["old_start"]
                lines = old_lines[start:start + item["lines"]]
                hunks.append(Hunk("equal", start, item["new_start"], lines, lines))
            else:
                hunks.append(Hunk.from_json(item))
        return cls(hunks, data["words_added"], data["words_removed"], data["sections"])


def plain_title(markdown: str) -> str:
    """A heading's text without Markdown syntax: links, emphasis and backslash escapes."""
    if not TITLE_MARKUP.search(markdown):
        return markdown.strip()  # most titles: nothing to take out
    text = MARKDOWN_LINK.sub(r"\1", markdown)
    text = EMPHASIS.sub("", text)
    return BACKSLASH_ESCAPE.sub(r"\1", text).strip()


def headings(text: str) -> list[tuple[int, str]]:
    """(line index, title) of every Markdown heading, ATX (`## x`) or setext (`x` + `---`)."""
    return [(line, plain_title(title)) for line, title in _marked_up_headings(text)]


def _marked_up_headings(text: str) -> list[tuple[int, str]]:
    """`headings`, titles still in Markdown (a diff page shows the few its changes fall under).

    One regular expression pass finds the candidate lines (a `#` or an underline near the
    start), at C speed; only those are examined (the diff page needs this for 200 KB texts).
    """
    found = []
    line = 0
    position = 0
    for match in HEADING_CANDIDATE.finditer("\n" + text):  # match.start(): where its line starts in `text`
        line += text.count("\n", position, match.start())
        position = match.start()
        candidate = match.group(0)[1:]
        if candidate.lstrip(" ").startswith("#"):
            atx = ATX_HEADING.match(candidate)
            if atx:
                found.append((line, atx.group(2) or ""))
        elif line > 0 and SETEXT_UNDERLINE.match(candidate):
            title = text[text.rfind("\n", 0, position - 1) + 1:position - 1]
            if title.strip() and not NOT_A_SETEXT_TITLE.match(title):
                found.append((line - 1, title.strip()))
    return found


@lru_cache(maxsize=64)  # as many as the viewer's cached texts (`Viewer.version_text`)
def version_headings(text: str) -> tuple[tuple[int, str], ...]:
    """`headings` of a whole version (titles in Markdown), remembered for the latest ones: a
    version is one side of two diffs (with the one before and the one after), and scanning
    200 KB takes milliseconds. (The texts are the viewer's cached strings: the key's hash
    is computed once.)"""
    return tuple(_marked_up_headings(text))


def _heading_at(found: tuple[tuple[int, str], ...], line: int) -> str | None:
    title = None
    for index, text in found:
        if index > line:
            break
        title = text
    return None if title is None else plain_title(title)


def _sections(hunks: list[Hunk], old_headings, new_headings) -> list[str | None]:
    """Headings whose section holds a change, in document order, each once.

    Also sets each changed hunk's `section`: the heading in force where it starts.
    (The headings are `version_headings`: titles made plain here, for these few.)
    """
    touched: list[str | None] = []

    def add(title: str | None) -> None:
        if title not in touched:
            touched.append(title)

    for hunk in hunks:
        if hunk.kind == "equal":
            continue
        if hunk.kind == "delete":
            hunk.section = _heading_at(old_headings, hunk.old_start)
            inside = [t for i, t in old_headings if hunk.old_start <= i < hunk.old_start + len(hunk.old_lines)]
        else:
            hunk.section = _heading_at(new_headings, hunk.new_start)
            inside = [t for i, t in new_headings if hunk.new_start <= i < hunk.new_start + len(hunk.new_lines)]
        add(hunk.section)
        for title in inside:
            add(plain_title(title))
    return touched


def compare(old: str, new: str, budget: float = PAGE_BUDGET) -> Comparison:
    """The full comparison of two versions: hunks, word counts and sections touched.

    `budget` (seconds of CPU) bounds the alignment work; regions left unaligned when it
    runs out are shown as whole lines and make the comparison `approximate`.
    """
    found = hunks(old, new, budget)
    added, removed = count_changed_words(found)
    sections = _sections(found, version_headings(old), version_headings(new))
    return Comparison(found, added, removed, sections)
