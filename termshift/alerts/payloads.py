"""What changed in a version, in words, and the JSON events that say so.

- `diff_stats(old, new)`: words added and removed (the one diff engine,
  termshift.textdiff, so feeds and webhooks give the figures of the viewer's diff
  page) and the first sentences that changed, as plain readable text: versions are Markdown, but a summary in a feed reader, a chat message or a
  webhook receiver must not show `**`, `](https://…)` or a heading's `=====`
  (`plain_text` strips the syntax; lines of only syntax are not sentences).
- `version_event(...)`: the `version.recorded` payload sent to subscribers;
  `test_event(...)`: the `webhook.test` payload. Both are described by
  `webhook-event.schema.json` next to this module.
- `event_id(subscription_uid, version_id)`: stable, so a receiver that sees the
  same `webhook-id` twice knows it is a repeat.
"""

from __future__ import annotations

import bisect
import difflib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from termshift.alerts import links
from termshift.textdiff import PAGE_BUDGET, word_changes

SCHEMA_PATH = Path(__file__).with_name("webhook-event.schema.json")
VERSION_RECORDED = "version.recorded"
WEBHOOK_TEST = "webhook.test"

# -- Markdown blocks that say nothing as a sentence --------------------------------------------------
# Setext heading underlines, horizontal rules (`* * *`) and GFM table separators (`| --- | :-: |`).
SETEXT_UNDERLINE = re.compile(r"\s{0,3}(?:=+|-+)\s*")
HORIZONTAL_RULE = re.compile(r"\s{0,3}(?:(?:\*\s*){3,}|(?:-\s*){3,}|(?:_\s*){3,})")
TABLE_SEPARATOR = re.compile(r"\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*")
# A block (a sentence never spans two) ends at a line break, or at a `<br>` (a table cell's
# paragraphs). What opens a block: a table separator that turndown glued to the text after a
# table (`| --- | --- |2023 Terms`), a table cell's pipe, blockquote marks, a list bullet or
# number, an ATX heading's hashes.
BLOCK_BREAK = re.compile(r"\n|<br\s*/?>", re.IGNORECASE)
BLOCK_LEAD = re.compile(
    r"^\s*(?:(?:\|\s*:?-{3,}:?\s*)+\|)?\s*(?:\|\s*)?(?:>\s*)*(?:[*+\-]\s+|\d{1,9}[.)]\s+|#{1,6}(?:\s+|$))?"
)
ATX_CLOSING = re.compile(r"\s+#+\s*$")

# -- Inline Markdown -------------------------------------------------------------------------------
# `[text](target "title")` and `![alt](source)`; the text may hold escaped brackets.
LINK = re.compile(r"(?<!\\)!?\[((?:\\.|[^\]\\])*)\]\((?:[^()\s]|\([^()]*\))*(?:\s+\"[^\"]*\")?\)")
AUTOLINK = re.compile(r"<(?:mailto:)?((?:https?://|[^<>\s@]+@)[^<>\s]+)>")  # <https://x>, <mailto:a@x>
LINE_BREAK_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)
# Backslash escapes (CommonMark: any ASCII punctuation), emphasis and code marks at a word's edge
# (`**Hetzner:**`, `_x_`, `~~x~~`, `` `x` ``; the `_` of `snake_case` stays), table pipes.
INLINE_SYNTAX = re.compile(
    r"\\(?P<escaped>[!-/:-@\[-`{-~])"
    r"|(?<![\w\\])[*_~`]+(?=\S)|(?<=\S)[*_~`]+(?!\w)"
    r"|(?<!\\)\|"
)
# Where a sentence may end: . ! or ? (maybe closed by emphasis, a bracket or a quote), then spaces.
# `_sentence_starts` keeps those followed by a capital letter or a digit, and not after an abbreviation.
SENTENCE_END = re.compile(r"[.!?][*_)\]\"'’”»]*\s+(?=[*_(\[\"'‘“«]*(\w))")
ABBREVIATIONS = frozenset({
    "approx", "art", "ca", "cal", "cf", "civ", "dr", "fig", "incl", "jr", "mr", "mrs", "ms", "no", "nr", "para",
    "pp", "prof", "sec", "sr", "st", "vol", "vs",
})
WORD_BEFORE_PERIOD = re.compile(r"([\w.]+)\.$")
# "6.", "6.1." or "2a." opening a block: a section number, not a sentence.
SECTION_NUMBER = re.compile(r"\d+[a-z]?(?:\.\d+[a-z]?)*\.?")
MAX_SENTENCES = 2
MAX_SENTENCE_CHARS = 240


@dataclass(frozen=True)
class DiffStats:
    """How a version differs from the previous one."""

    words_added: int
    words_removed: int
    changed_sentences: tuple[str, ...]  # from the new text; from the old one when text was only removed

    def summary(self, is_first_record: bool = False) -> str:
        """`+12/−3 words: “first changed sentence” “second one”` (or the first record's length)."""
        if is_first_record:
            return f"First record: {self.words_added} words."
        counts = f"+{self.words_added}/−{self.words_removed} words"
        if self.changed_sentences:
            return counts + ": " + " ".join(f"“{sentence}”" for sentence in self.changed_sentences)
        if not (self.words_added or self.words_removed):
            return counts + " (layout only)."
        return counts + "."


def _is_decoration(line: str) -> bool:
    """A line that is only Markdown structure: a heading underline, a rule, a table separator."""
    return any(pattern.fullmatch(line) for pattern in (SETEXT_UNDERLINE, HORIZONTAL_RULE, TABLE_SEPARATOR))


def _block_content(line: str) -> tuple[int, int]:
    """Where a line's text starts and ends once its bullet, number, `>` or heading hashes are set aside."""
    lead = BLOCK_LEAD.match(line)
    start = lead.end() if lead else 0
    end = len(line)
    if lead and "#" in lead.group():
        closing = ATX_CLOSING.search(line, start)
        end = closing.start() if closing else end
    return start, end


def _is_abbreviation(before: str) -> bool:
    """Whether a block's text up to a period ends with an abbreviation ("s. r. o.", "e.g.",
    "U.S.", "Dr.") or is only a section number (`**6\\.** Fees`)."""
    before = before.replace("\\", "").replace("*", "").replace("_", "").strip()
    if SECTION_NUMBER.fullmatch(before):
        return True
    word = WORD_BEFORE_PERIOD.search(before)
    if word is None:
        return False
    word = word.group(1)
    return len(word) == 1 or "." in word or word.lower() in ABBREVIATIONS


def _sentence_starts(line: str, start: int, end: int) -> list[int]:
    """Offsets in `line` where a new sentence starts after a sentence end.

    A sentence ends at . ! or ? followed by a capital letter or a digit, never inside a link and never
    after an abbreviation (so "UptimeRobot s. r. o." stays whole).
    """
    links = [match.span() for match in LINK.finditer(line, start, end)]
    starts = []
    for match in SENTENCE_END.finditer(line, start, end):
        at = match.start()
        if not (match.group(1).isupper() or match.group(1).isdigit()) or any(a <= at < b for a, b in links):
            continue
        if line[at] == "." and _is_abbreviation(line[start: at + 1]):
            continue
        starts.append(match.end())
    return starts


def _blocks(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each block of `text`: its lines, and a line's `<br>`-separated parts."""
    start = 0
    for match in BLOCK_BREAK.finditer(text):
        yield start, match.start()
        start = match.end()
    yield start, len(text)


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets in `text` of each sentence of each block, block syntax left out."""
    spans: list[tuple[int, int]] = []
    for block_start, block_end in _blocks(text):
        block = text[block_start:block_end]
        if block.strip() and not _is_decoration(block):
            start, end = _block_content(block)
            bounds = [start, *_sentence_starts(block, start, end), end]
            spans += [(block_start + a, block_start + b) for a, b in zip(bounds, bounds[1:], strict=False) if a < b]
    return spans


def _unlink(text: str) -> str:
    """Links and images as their text; twice, for an image inside a link (`[![logo](a.png)](b)`)."""
    for _ in range(2):
        text = LINK.sub(r"\1", text)
    return AUTOLINK.sub(r"\1", text)


def _inline_replacement(match: re.Match[str]) -> str:
    if match.group("escaped"):
        return match.group("escaped")
    return " " if match.group() == "|" else ""


def plain_text(markdown: str) -> str:
    """A Markdown sentence as readable text: no emphasis or code marks, links as their text,
    no escapes, `<br>` or table pipes, whitespace collapsed."""
    text = _unlink(LINE_BREAK_TAG.sub(" ", markdown))
    text = INLINE_SYNTAX.sub(_inline_replacement, text)
    return " ".join(text.split())


def _shorten(sentence: str) -> str:
    """At most MAX_SENTENCE_CHARS, cut between words with an ellipsis."""
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return sentence
    cut = sentence[: MAX_SENTENCE_CHARS - 1]
    space = cut.rfind(" ")
    if space > MAX_SENTENCE_CHARS // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-–—") + "…"


def _sentences_at(text: str, offsets: list[int], limit: int) -> tuple[str, ...]:
    """The first `limit` distinct readable sentences of `text` holding one of `offsets`.

    Sentences with no letter or digit once the syntax is gone (a lone `*`, `---`) are skipped.
    """
    spans = _sentence_spans(text)
    starts = [start for start, _end in spans]
    chosen: list[int] = []
    sentences: list[str] = []
    for offset in offsets:
        index = bisect.bisect_right(starts, offset) - 1
        if index < 0 or offset >= spans[index][1] or index in chosen:
            continue
        chosen.append(index)
        sentence = plain_text(text[spans[index][0]: spans[index][1]])
        if any(character.isalnum() for character in sentence):
            sentences.append(_shorten(sentence))
            if len(sentences) == limit:
                break
    return tuple(sentences)


def diff_stats(old: str | None, new: str, budget: float = PAGE_BUDGET) -> DiffStats:
    """Compare two versions word by word. `old=None` (a first record) counts every word as added.

    The counts are the viewer's (`textdiff.word_changes`, within `budget` seconds of CPU);
    the sentences are those holding the first changed words of the new text, or of the old
    one when words were only removed.
    """
    changes = word_changes(old or "", new, budget)
    if changes.added_at:
        sentences = _sentences_at(new, list(changes.added_at), MAX_SENTENCES)
    else:
        sentences = _sentences_at(old or "", list(changes.removed_at), MAX_SENTENCES)
    return DiffStats(words_added=changes.added, words_removed=changes.removed, changed_sentences=sentences)


def unified_diff(old: str | None, new: str, path: str, max_bytes: int) -> dict[str, Any]:
    """The line diff put in payloads for subscriptions that ask for it, cut at `max_bytes`."""
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True), new.splitlines(keepends=True),
        fromfile=f"a/{path}" if old is not None else "/dev/null", tofile=f"b/{path}",
    )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    encoded = text.encode("utf-8")
    truncated = len(encoded) > max_bytes
    if truncated:
        text = encoded[:max_bytes].decode("utf-8", "ignore")
        text = text[: text.rfind("\n") + 1]
    return {"format": "unified", "text": text, "truncated": truncated}


def event_id(subscription_uid: str, version_id: str) -> str:
    """The stable id of the event telling one subscription about one version."""
    return f"evt_{subscription_uid}_{version_id}"


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with `Z`, to the second (the precision of git dates)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def version_links(base_url: str, service_id: str, terms_type: str, version_id: str) -> dict[str, str]:
    return {
        "version": links.version_url(base_url, service_id, terms_type, version_id),
        "diff": links.diff_url(base_url, service_id, terms_type, version_id),
        "feed": links.feed_url(base_url, service_id, terms_type),
        "service_feed": links.feed_url(base_url, service_id),
    }


def version_event(
    identifier: str, version: Any, stats: DiffStats | None, base_url: str,
    diff: dict[str, Any] | None = None, now: datetime | None = None,
) -> dict[str, Any]:
    """The `version.recorded` payload. `version` has archive_repo Version's attributes."""
    data: dict[str, Any] = {
        "service_id": version.service_id,
        "terms_type": version.terms_type,
        "version_id": version.id,
        "fetch_date": iso(version.fetch_date),
        "is_first_record": bool(version.is_first_record),
        "stats": None if stats is None else {"words_added": stats.words_added, "words_removed": stats.words_removed},
        "summary": stats.summary(bool(version.is_first_record)) if stats else "Changed (statistics unavailable).",
        "changed_sentences": list(stats.changed_sentences) if stats else [],
        "links": version_links(base_url, version.service_id, version.terms_type, version.id),
    }
    if diff is not None:
        data["diff"] = diff
    return {"id": identifier, "type": VERSION_RECORDED, "timestamp": iso(now or datetime.now(UTC)), "data": data}


def test_event(identifier: str, subscription_id: int, now: datetime | None = None) -> dict[str, Any]:
    """The `webhook.test` payload sent by `termshift webhooks test ID`."""
    return {
        "id": identifier,
        "type": WEBHOOK_TEST,
        "timestamp": iso(now or datetime.now(UTC)),
        "data": {"subscription_id": subscription_id, "message": "Termshift test event: this endpoint is reachable."},
    }


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed (stored once, so every retry sends the same body)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
