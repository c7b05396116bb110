"""What changed in a version, in words, and the JSON events that say so.

- `diff_stats(old, new)`: words added and removed (a word-level diff with
  diff-match-patch, one "character" per token so a 20-page policy diffs in
  milliseconds) and the first sentences that changed.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from diff_match_patch import diff_match_patch

from termshift.alerts import links

SCHEMA_PATH = Path(__file__).with_name("webhook-event.schema.json")
VERSION_RECORDED = "version.recorded"
WEBHOOK_TEST = "webhook.test"

# A token is a word (with inner apostrophes, dots or hyphens: "don't", "e.g", "opt-in")
# or a single punctuation mark. Only words are counted; punctuation still diffs.
TOKEN = re.compile(r"\w+(?:['’.\-]\w+)*|[^\w\s]")
WORD = re.compile(r"\w+")
# Sentences end at . ! ? followed by a space, or at a line break (Markdown blocks).
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
MARKDOWN_LEAD = re.compile(r"^(?:[#>*+\-]+|\d+\\?\.)\s+")
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


def _tokens(text: str) -> list[re.Match[str]]:
    return list(TOKEN.finditer(text))


def _count_words(tokens: list[re.Match[str]]) -> int:
    """Words as the viewer counts them (runs of letters and digits: "don't" is two)."""
    return sum(len(WORD.findall(token.group())) for token in tokens)


def _encode(tokens: list[re.Match[str]], codes: dict[str, str]) -> str:
    """One private character per distinct token, as diff-match-patch's line mode does for lines."""
    characters = []
    for token in tokens:
        word = token.group()
        code = codes.get(word)
        if code is None:
            number = len(codes) + 0x100
            if number >= 0xD800:  # skip the surrogate block
                number += 0x800
            code = codes[word] = chr(number)
        characters.append(code)
    return "".join(characters)


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in SENTENCE_BREAK.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def _tidy(sentence: str) -> str:
    sentence = MARKDOWN_LEAD.sub("", " ".join(sentence.split()))
    if len(sentence) > MAX_SENTENCE_CHARS:
        sentence = sentence[: MAX_SENTENCE_CHARS - 1].rstrip() + "…"
    return sentence


def _sentences_at(text: str, offsets: list[int], limit: int) -> tuple[str, ...]:
    """The first `limit` distinct sentences of `text` holding one of `offsets`."""
    spans = _sentence_spans(text)
    starts = [start for start, _end in spans]
    chosen: list[int] = []
    for offset in offsets:
        index = bisect.bisect_right(starts, offset) - 1
        if index >= 0 and offset < spans[index][1] and index not in chosen:
            chosen.append(index)
            if len(chosen) == limit:
                break
    return tuple(_tidy(text[spans[i][0]: spans[i][1]]) for i in chosen)


def diff_stats(old: str | None, new: str, timeout: float = 2.0) -> DiffStats:
    """Compare two versions word by word. `old=None` (a first record) counts every word as added."""
    old = old or ""
    old_tokens, new_tokens = _tokens(old), _tokens(new)
    codes: dict[str, str] = {}
    old_chars, new_chars = _encode(old_tokens, codes), _encode(new_tokens, codes)
    engine = diff_match_patch()
    engine.Diff_Timeout = timeout  # beyond this a coarser but still correct diff comes back
    added = removed = 0
    added_at: list[int] = []
    removed_at: list[int] = []
    old_index = new_index = 0
    for operation, chunk in engine.diff_main(old_chars, new_chars, False):
        count = len(chunk)
        if operation == engine.DIFF_INSERT:
            inserted = new_tokens[new_index: new_index + count]
            added += _count_words(inserted)
            added_at += [token.start() for token in inserted]
            new_index += count
        elif operation == engine.DIFF_DELETE:
            deleted = old_tokens[old_index: old_index + count]
            removed += _count_words(deleted)
            removed_at += [token.start() for token in deleted]
            old_index += count
        else:
            old_index += count
            new_index += count
    if added_at:
        sentences = _sentences_at(new, added_at, MAX_SENTENCES)
    else:
        sentences = _sentences_at(old, removed_at, MAX_SENTENCES)
    return DiffStats(words_added=added, words_removed=removed, changed_sentences=sentences)


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
