"""The one diff engine: line alignment first, then words inside changed lines, and the
word statistics computed from it (words added and removed).

diff-match-patch does the aligning: its C++ implementation (fast_diff_match_patch) for the
costly part, Myers' algorithm on each gap between anchors, and the Python one for the
clean-ups around it (the same algorithm in both).

Terms are Markdown with one paragraph per line, so lines are the natural unit to align:
diff-match-patch's line mode (`diff_linesToChars`) pairs up unchanged paragraphs, and
only inside the changed regions do we diff word by word, so that a reader sees the three
words that changed in a paragraph instead of the whole paragraph struck through. Lines,
and the words of a changed region, are aligned by one C++ diff-match-patch call (its
semantic clean-up included) when that is cheap; when it is not (`ANCHOR_ABOVE`) they are
anchored first on those found once in each text (patience diff), and only the gaps
between anchors go to diff-match-patch. Each line, or token, is compared as one character
(`_encode`, `_TokenCodes`). A comparison is computed one way round (`_mirrored`): the diff
of B against A is the mirror of A against B's.

Everything that counts changed words uses this module, so the figures agree everywhere:
the viewer's diff page and index (`termshift.web.diffing`, `termshift.web.index_workers`),
the alerts' feeds and webhooks (`termshift.alerts.payloads.diff_stats`) and the dataset's
`versions.csv`. A bottom-layer module: it imports nothing of Termshift.

- `line_diff(old, new)`, `word_diff(old, new)`: (op, lines) and (op, text) runs.
- `hunks(old, new, budget)`: the changed and unchanged regions (`Hunk`), words aligned
  inside the changed ones within a budget of CPU time (`Budget`); past it a region is
  `approximate` (whole lines, its words counted as a bag).
- `change_counts(old, new, budget)`, `count_changes(old, new)`: words added and removed.
- `word_changes(old, new, budget)`: the same, and where each added and removed word is
  (offsets in the new and the old text), for those who quote what changed.
- `count_words(text)`: words as counted everywhere (runs of letters and digits).
"""

from __future__ import annotations

import re
import threading
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain, groupby
from operator import itemgetter

from diff_match_patch import diff_match_patch
from fast_diff_match_patch import diff as native_diff

EQUAL, INSERT, DELETE = 0, 1, -1

# Words as counted everywhere in the viewer: runs of letters and digits (any script).
WORD = re.compile(r"\w+")
# Units of the word-level diff: words, runs of spaces, single punctuation marks. Line
# breaks are kept as their own tokens so a changed region splits back into its lines.
TOKEN = re.compile(r"\w+|\n|[^\S\n]+|[^\w\s]")
SPACE = re.compile(r"\s")

# A change region this large (in tokens) is shown as whole lines: word alignment of two
# unrelated 100 KB blocks is slow and unreadable anyway.
MAX_WORD_DIFF_TOKENS = 60_000
# Tokens are at least one character: a region longer than this is not even tokenised.
MAX_WORD_DIFF_CHARS = 6 * MAX_WORD_DIFF_TOKENS
# What one comparison may spend aligning lines and words (see `Budget`). Past it, the
# changed regions not aligned yet are shown as whole lines and their words counted the
# cheap way (`_bag_counts`), and the figures are marked approximate. The diff page can
# afford more than the index, which compares every version with the one before.
PAGE_BUDGET = 0.25  # seconds of CPU
INDEX_BUDGET = 0.05
# Work units (tokens × estimated edits) per second of budget: diff-match-patch's cost on
# one gap is about (n + m) · d; a gap estimated above budget × WORK_PER_SECOND is not
# aligned. Measured on real terms of service with the C++ implementation.
WORK_PER_SECOND = 200_000_000
# Lines (or the words of a changed region) whose alignment would cost more than this
# (work units, as above: about 5 ms) are anchored on the unique ones before
# diff-match-patch aligns the gaps; below it, one C++ call aligns and cleans up (lines:
# 27 % less CPU than anchoring them all, on pga-versions' 4,708 pairs).
ANCHOR_ABOVE = 1_000_000
# Gaps between anchors are anchored again, this many levels deep, unless this small.
MAX_ANCHOR_DEPTH = 3
SMALL_GAP = 32
# Line diffs encode each distinct line as one Unicode character.
MAX_LINES = 1_000_000


@dataclass
class Hunk:
    """A run of lines that is unchanged, inserted, deleted or changed.

    `segments` (for "change" hunks) is the word-level diff of the old lines against the
    new ones: (op, text) pairs whose text, joined per side, gives back those lines.
    """

    kind: str  # "equal" | "insert" | "delete" | "change"
    old_start: int  # 0-based index of the first old line
    new_start: int
    old_lines: list[str]
    new_lines: list[str]
    segments: list[tuple[int, str]] = field(default_factory=list)
    section: str | None = None  # the heading this change falls under (set by web.diffing.compare())
    # A "change" too large (or too slow) to align word by word: shown as whole lines, and
    # its words counted as a bag (see `_bag_counts`).
    approximate: bool = False

    @property
    def whitespace_only(self) -> bool:
        """A change of layout alone: only spaces or line breaks added, removed or swapped
        (say spaces that became non-breaking spaces); not one word differs."""
        if self.kind == "equal":
            return False
        if self.kind == "change":
            return all(not text.strip() for op, text in self.segments if op != EQUAL)
        return all(not line.strip() for line in self.old_lines + self.new_lines)

    def mirrored(self) -> Hunk:
        """The same region seen from the other side (new against old)."""
        kind = {"insert": "delete", "delete": "insert"}.get(self.kind, self.kind)
        return Hunk(kind, self.new_start, self.old_start, self.new_lines, self.old_lines,
                    _mirrored_segments(self.segments), self.section, self.approximate)

    def to_json(self) -> dict:
        data = {
            "kind": self.kind,
            "section": self.section,
            "whitespace_only": self.whitespace_only,
            "old_start": self.old_start,
            "new_start": self.new_start,
            "old_lines": self.old_lines,
            "new_lines": self.new_lines,
        }
        if self.segments:
            data["segments"] = [[op, text] for op, text in self.segments]
        if self.approximate:
            data["approximate"] = True
        return data

    @classmethod
    def from_json(cls, data: dict) -> Hunk:
        return cls(
            data["kind"], data["old_start"], data["new_start"], data["old_lines"], data["new_lines"],
            [(op, text) for op, text in data.get("segments", [])], data.get("section"),
            bool(data.get("approximate", False)),
        )


def count_words(text: str) -> int:
    return len(WORD.findall(text))


def _engine(timeout: float = 1.0) -> diff_match_patch:
    engine = diff_match_patch()
    # A time limit keeps pathological inputs bounded; the result is then still a correct
    # (if not minimal) diff. (A positive one also enables its half-match speed-up.)
    engine.Diff_Timeout = timeout
    return engine


def _split_lines(text: str) -> list[str]:
    return text.split("\n")


def _encode(old_items: list[str], new_items: list[str]) -> tuple[str, str, list[str]]:
    """Encode each distinct line as one character (tokens: `_TokenCodes`).

    This is diff_linesToChars' trick: diff-match-patch then compares whole lines at the
    cost of characters. Code 0 is left unused. (Built with C-level dict and map calls.)
    """
    distinct = dict.fromkeys(chain(("",), old_items, new_items))  # insertion order: position == code
    codes = dict(zip(distinct, map(chr, range(len(distinct))), strict=True))
    return "".join(map(codes.__getitem__, old_items)), "".join(map(codes.__getitem__, new_items)), list(distinct)


def _longest_increasing_run(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest subsequence of (i, j) pairs (sorted by i) whose j increase too."""
    tails: list[int] = []  # tails[k] = index in pairs of the smallest tail of a run of length k+1
    tail_values: list[int] = []
    previous: list[int] = [-1] * len(pairs)
    longest = 0
    for index, (_i, j) in enumerate(pairs):
        position = bisect_left(tail_values, j)
        if position:
            previous[index] = tails[position - 1]
        if position == longest:
            tails.append(index)
            tail_values.append(j)
            longest += 1
        else:
            tails[position] = index
            tail_values[position] = j
    run = []
    index = tails[-1] if tails else -1
    while index != -1:
        run.append(pairs[index])
        index = previous[index]
    return run[::-1]


def _estimated_work(old_gap: str, new_gap: str, enough: int) -> int:
    """diff-match-patch's cost of aligning two gaps, (n + m) · d in work units: at most
    (n + m) · min(n, m), every item an edit; when that is above `enough`, with the edits d
    estimated from a bag count (items more or fewer in one than in the other)."""
    size = len(old_gap) + len(new_gap)
    worst = size * min(len(old_gap), len(new_gap))
    if worst <= enough:
        return worst
    old_items, new_items = Counter(old_gap), Counter(new_gap)
    edits = sum(((old_items - new_items) + (new_items - old_items)).values())
    return min(worst, size * max(edits, 1))


class Budget:
    """The work one comparison may do, so that no pair of versions costs more than it.

    Two limits, both independent of the machine's load (tests can rely on them): a gap is
    aligned only if its estimated cost fits (`WORK_PER_SECOND`), and no new gap is started
    once the thread has used `seconds` of CPU. diff-match-patch's own wall-clock timeout is
    only a safety net, set well beyond. `cut` counts the gaps left unaligned.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.thread_time() + seconds
        self.work_limit = seconds * WORK_PER_SECOND
        self.cut = 0

    def spent(self) -> bool:
        return time.thread_time() >= self.deadline

    def allows(self, old_gap: str, new_gap: str) -> bool:
        """Whether aligning these two gaps fits (their cost estimated from a bag count)."""
        return not self.spent() and _estimated_work(old_gap, new_gap, self.work_limit) <= self.work_limit

    def fits(self, work: int) -> bool:
        """Whether this much work (`_estimated_work`) fits."""
        return not self.spent() and work <= self.work_limit

    def time_limit(self) -> float:
        """diff-match-patch's own time limit (wall-clock seconds) for one gap: a safety net
        for a gap whose cost was misjudged, well beyond what the budget has left."""
        return 0.5 + 4 * self.seconds


def _anchored_diff(engine: diff_match_patch, old: str, new: str, budget: Budget | None = None,
                   depth: int = 0) -> list[tuple[int, str]]:
    """Diff two encoded strings, anchored on items that occur once in each (patience diff).

    Paragraphs of terms are nearly all unique, so anchoring on them leaves diff-match-patch
    only the small gaps between anchors: fast on long documents, and the alignment follows
    the paragraphs a reader recognises. Words repeat more, so a gap is anchored again on
    what is unique within it, a few levels deep, before diff-match-patch sees it.
    `budget` bounds the work: a gap it does not allow is one deletion and one insertion
    (still a correct diff, if not a minimal one), counted in `budget.cut`. Strings with no
    anchor at all are not anchored again (that would find none again, level after level).
    """
    diffs: list[tuple[int, str]] = []
    old_at = new_at = 0
    anchors = _unique_anchors(old, new)
    for i, j in [*anchors, (len(old), len(new))]:
        old_gap, new_gap = old[old_at:i], new[new_at:j]
        if old_gap == new_gap:
            diffs.append((EQUAL, old_gap))
        elif not old_gap or not new_gap:
            diffs.append((INSERT, new_gap) if new_gap else (DELETE, old_gap))
        elif anchors and depth < MAX_ANCHOR_DEPTH and min(len(old_gap), len(new_gap)) > SMALL_GAP:
            diffs.extend(_anchored_diff(engine, old_gap, new_gap, budget, depth + 1))
        elif budget is not None and not budget.allows(old_gap, new_gap):
            budget.cut += 1
            diffs += [(DELETE, old_gap), (INSERT, new_gap)]
        else:
            diffs.extend(_gap_diff(old_gap, new_gap, budget))
        if i < len(old):
            diffs.append((EQUAL, old[i]))
        old_at, new_at = i + 1, j + 1
    diffs = [(op, text) for op, text in diffs if text]
    if depth == 0:
        # One run per stretch of equal (inserted, deleted) items rather than one per
        # anchor: the Python clean-up after it walks a list as long as this one.
        diffs = [(op, "".join(text for _op, text in run)) for op, run in groupby(diffs, itemgetter(0))]
        engine.diff_cleanupMerge(diffs)
    return diffs


def _gap_diff(old: str, new: str, budget: Budget | None, cleanup: str = "No") -> list[tuple[int, str]]:
    """diff-match-patch's diff of two encoded strings, by its C++ implementation."""
    limit = 0 if budget is None else budget.time_limit()
    started = time.monotonic()
    diffs: list[tuple[int, str]] = []
    old_at = new_at = 0
    for op, length in native_diff(old, new, timelimit=limit, checklines=False, cleanup=cleanup, counts_only=True):
        if op == "=":
            diffs.append((EQUAL, old[old_at:old_at + length]))
            old_at += length
            new_at += length
        elif op == "-":
            diffs.append((DELETE, old[old_at:old_at + length]))
            old_at += length
        else:
            diffs.append((INSERT, new[new_at:new_at + length]))
            new_at += length
    if budget is not None and limit and time.monotonic() - started >= limit:
        budget.cut += 1  # it gave up: a correct diff, but not a minimal one
    return diffs


def _semantic_diff(engine: diff_match_patch, old: str, new: str, budget: Budget,
                   work: float) -> list[tuple[int, str]]:
    """The diff of two encoded strings (lines or tokens), semantically cleaned up: each
    character is a whole line or token, so the clean-up weighs those and never splits one.

    Cheap (`work`, from `_estimated_work`, up to `ANCHOR_ABOVE`): one C++ call, clean-up
    included. Costly for diff-match-patch alone (say a section deleted, a sentence kept):
    anchored on the items found once in each side first, so that it only aligns the gaps,
    then cleaned up in Python.
    """
    if work > ANCHOR_ABOVE:
        diffs = _anchored_diff(engine, old, new, budget)
        engine.diff_cleanupSemantic(diffs)
        return diffs
    return _gap_diff(old, new, budget, cleanup="Semantic")


def _unique_anchors(old: str, new: str) -> list[tuple[int, int]]:
    """Positions (i, j) of items occurring once in each string, in an order both agree on."""
    old_count, new_count = Counter(old), Counter(new)
    new_position = {char: j for j, char in enumerate(new) if new_count[char] == 1}
    pairs = [
        (i, new_position[char])
        for i, char in enumerate(old)
        if old_count[char] == 1 and char in new_position
    ]
    return _longest_increasing_run(pairs)


def _common_line_prefix(engine: diff_match_patch, old: str, new: str) -> int:
    """Length of the longest common prefix of whole lines (ending with a newline)."""
    return old.rfind("\n", 0, engine.diff_commonPrefix(old, new)) + 1


def _common_line_suffix(engine: diff_match_patch, old: str, new: str) -> int:
    """Length of a common suffix made of whole lines (starting after a newline in both)."""
    common = engine.diff_commonSuffix(old, new)
    start = old.find("\n", len(old) - common)
    return 0 if start == -1 else len(old) - start - 1


def _lines(text: str, ends_before_suffix: bool) -> list[str]:
    """Lines of a middle part. Before a common tail it ends with a newline (or is empty);
    at the end of the text, even an empty string is one (empty) line."""
    if ends_before_suffix:
        return text[:-1].split("\n") if text else []
    return text.split("\n")


def line_diff(old: str, new: str, timeout: float = 2.0) -> list[tuple[int, list[str]]]:
    """(op, lines) runs aligning the lines of `old` and `new`.

    The common head and tail are cut first, at C speed, so the line-by-line work is
    only done on the region between the first and the last change.
    """
    return _line_runs(old, new, Budget(timeout))


def _line_runs(old: str, new: str, budget: Budget, ends: bool = True) -> list[tuple[int, list[str]]]:
    """`line_diff`'s runs; without the unchanged head and tail if not `ends` (what counts the
    changes needs only the changed lines: splitting two long texts' common parts into lines
    for nothing was a tenth of the line-level work)."""
    engine = _engine()
    head = _common_line_prefix(engine, old, new)
    tail = _common_line_suffix(engine, old[head:], new[head:])
    old_middle = old[head:len(old) - tail]
    new_middle = new[head:len(new) - tail]
    old_lines, new_lines = _lines(old_middle, tail > 0), _lines(new_middle, tail > 0)
    runs: list[tuple[int, list[str]]] = []
    if head and ends:
        runs.append((EQUAL, old[:head - 1].split("\n")))
    if len(old_lines) + len(new_lines) > MAX_LINES:  # one character per line must stay possible
        runs += [(DELETE, old_lines), (INSERT, new_lines)]
    elif old_lines or new_lines:
        old_chars, new_chars, table = _encode(old_lines, new_lines)
        # The semantic clean-up absorbs lone unchanged lines (typically the blank line
        # between two changed paragraphs) into the surrounding change, so one edit reads
        # as one region.
        work = _estimated_work(old_chars, new_chars, ANCHOR_ABOVE)
        diffs = _semantic_diff(engine, old_chars, new_chars, budget, work)
        runs += [(op, list(map(table.__getitem__, map(ord, chars)))) for op, chars in diffs]
    if tail and ends:
        runs.append((EQUAL, old[len(old) - tail:].split("\n")))
    return _merge_runs([run for run in runs if run[1]])


def _merge_runs(runs: list[tuple[int, list[str]]]) -> list[tuple[int, list[str]]]:
    merged: list[tuple[int, list[str]]] = []
    for op, lines in runs:
        if merged and merged[-1][0] == op:
            merged[-1] = (op, merged[-1][1] + lines)
        else:
            merged.append((op, lines))
    return merged


# ASCII punctuation marks: tokens coded as themselves (see `_TokenCodes`).
ASCII_PUNCTUATION = frozenset(chr(code) for code in range(33, 127) if not re.match(r"\w", chr(code)))


class _TokenCodes(dict):
    """Each distinct token's code (one character), kept by a thread from one comparison to
    the next (`_token_codes`).

    Terms repeat the same words, pair after pair, so a region's tokens are encoded with one
    C-level dict lookup each; only a token not seen before costs a Python call. A code's
    value only matters through the class diff-match-patch's semantic clean-up gives it when
    it slides an edit along (`diff_cleanupSemanticScore`): a line break is "\n" (so edits
    gather at line breaks and blank lines), every run of spaces is " " (any kind of space is
    the same separator, so `a b` against `a\u00a0b` changes a space, not the words around
    it), an ASCII punctuation mark is itself, and any other token (a word, a mark of another
    script) is a private use character, neither a letter nor a space. So the alignment, and
    the figures, do not depend on the order in which a thread met its tokens. (Words and
    marks share that class: a class of letters would depend on the C library's locale, since
    the C++ clean-up asks `iswalnum`; CJK codes, say, are letters in C.UTF-8 but not in C.)
    """

    FIRST = 0xF0000  # private use, from plane 15 on
    # Distinct tokens kept at most (about 11 MB); past it, the table starts again (codes are
    # compared within one region only).
    CAPACITY = 65_536

    def __init__(self) -> None:
        super().__init__()
        self.start_again()

    def start_again(self) -> None:
        self.clear()
        self.next = self.FIRST
        # For str.translate: the codes of tokens that are not words (`_word_counts`).
        self.not_words: dict[int, None] = {ord(char): None for char in {"\n", " ", *ASCII_PUNCTUATION}}

    def __missing__(self, token: str) -> str:
        if token == "\n" or token in ASCII_PUNCTUATION:
            code = token
        elif token[0].isspace():
            code = " "
        else:
            code = chr(self.next)
            self.next += 1
            if not WORD.match(token):
                self.not_words[ord(code)] = None
        self[token] = code
        return code

    def encode(self, old_tokens: list[str], new_tokens: list[str]) -> tuple[str, str]:
        """The two lists of tokens as strings of their codes."""
        if len(self) + len(old_tokens) + len(new_tokens) > self.CAPACITY:  # (so codes stay below U+100000)
            self.start_again()
        code = self.__getitem__
        return "".join(map(code, old_tokens)), "".join(map(code, new_tokens))


_THIS_THREAD = threading.local()


def _token_codes() -> _TokenCodes:
    """This thread's `_TokenCodes` (threads of a server diff at once: a table shared by them
    could give two tokens one code, or start again in the middle of another's region)."""
    codes = getattr(_THIS_THREAD, "codes", None)
    if codes is None:
        codes = _THIS_THREAD.codes = _TokenCodes()
    return codes


def _last_space_before(text: str, end: int) -> int:
    """Index of the last whitespace character of `text[:end]`, or -1."""
    for index in range(end - 1, -1, -1):
        if text[index].isspace():
            return index
    return -1


def _whole_word_edges(engine: diff_match_patch, old: str, new: str) -> tuple[int, int]:
    """Lengths of a common head and tail that never cut a word (they end or start at a space)."""
    common = engine.diff_commonPrefix(old, new)
    head = _last_space_before(old, common) + 1
    rest_old, rest_new = old[head:], new[head:]
    common = engine.diff_commonSuffix(rest_old, rest_new)
    if not common:
        return head, 0
    space = SPACE.search(rest_old, len(rest_old) - common)
    return head, (len(rest_old) - space.start() - 1) if space else 0


def _token_segments(diffs: list[tuple[int, str]], old_tokens: list[str],
                    new_tokens: list[str]) -> list[tuple[int, str]]:
    """Turn a diff of encoded tokens back into texts.

    Separators were compared as one (`_TokenCodes`), so an "equal" run may pair a space with
    a non-breaking space: such a pair becomes a deletion and an insertion of whitespace
    alone (no word), which the diff page shows with visible markers.
    """
    segments: list[tuple[int, str]] = []
    old_at = new_at = 0
    for op, chars in diffs:
        count = len(chars)
        if op == DELETE:
            segments.append((DELETE, "".join(old_tokens[old_at:old_at + count])))
            old_at += count
        elif op == INSERT:
            segments.append((INSERT, "".join(new_tokens[new_at:new_at + count])))
            new_at += count
        else:
            for old_token, new_token in zip(old_tokens[old_at:old_at + count], new_tokens[new_at:new_at + count],
                                            strict=True):
                if old_token == new_token:
                    segments.append((EQUAL, old_token))
                else:
                    segments += [(DELETE, old_token), (INSERT, new_token)]
            old_at += count
            new_at += count
    return segments


def word_diff(old: str, new: str, timeout: float = 1.0) -> list[tuple[int, str]]:
    """Word-level (op, text) segments of two short texts, semantically cleaned up.

    The common head and tail are cut first (at C speed, on word boundaries), so only the
    changed middle is tokenised and diffed. Tokens are aligned with every kind of space
    counted as the same separator, so `a b` against `a\u00a0b` changes one space, not the
    words around it. Computed one way round, as `hunks` (`_mirrored`).
    """
    if _mirrored(old, new):
        return _mirrored_segments(word_diff(new, old, timeout))
    return _word_segments(old, new, Budget(timeout))[0]


def _fewest_tokens(text: str) -> int:
    """A lower bound of `len(TOKEN.findall(text))`, at C speed: each run of non-spaces holds
    a token at least, and a run of spaces or a line break separates each from the next."""
    chunks = len(text.split())
    return max(0, 2 * chunks - 1)


def _aligned_tokens(old: str, new: str, budget: Budget) -> tuple[int, int, tuple | None]:
    """The word-level alignment of a changed region, shared by `_word_segments` (texts)
    and `_word_counts` (figures only): (head, tail, alignment), the common head and tail
    cut on word boundaries, and the alignment of the middle (old tokens, new tokens,
    encoded diff, the codes that are no word), or None when it is too large for the budget."""
    engine = _engine()
    head, tail = _whole_word_edges(engine, old, new)
    old_middle, new_middle = old[head:len(old) - tail], new[head:len(new) - tail]
    size = len(old_middle) + len(new_middle)
    if size > MAX_WORD_DIFF_CHARS or budget.spent():
        return head, tail, None
    if size > MAX_WORD_DIFF_TOKENS and _fewest_tokens(old_middle) + _fewest_tokens(new_middle) > MAX_WORD_DIFF_TOKENS:
        return head, tail, None  # too many tokens, known without tokenising (5x slower)
    old_tokens, new_tokens = TOKEN.findall(old_middle), TOKEN.findall(new_middle)
    if len(old_tokens) + len(new_tokens) > MAX_WORD_DIFF_TOKENS:
        return head, tail, None
    codes = _token_codes()
    old_chars, new_chars = codes.encode(old_tokens, new_tokens)
    work = _estimated_work(old_chars, new_chars, min(ANCHOR_ABOVE, budget.work_limit))
    if not budget.fits(work):
        budget.cut += 1
        return head, tail, None
    cut = budget.cut
    diffs = _semantic_diff(engine, old_chars, new_chars, budget, work)
    if budget.cut != cut:
        return head, tail, None
    return head, tail, (old_tokens, new_tokens, diffs, codes.not_words)


def _word_segments(old: str, new: str, budget: Budget) -> tuple[list[tuple[int, str]], bool]:
    """`word_diff`'s segments, and whether they are aligned word by word (False: the
    region was too large for the budget, and it is shown as whole lines)."""
    head, tail, alignment = _aligned_tokens(old, new, budget)
    if alignment is None:
        middle = [(DELETE, old[head:len(old) - tail]), (INSERT, new[head:len(new) - tail])]
    else:
        old_tokens, new_tokens, diffs, _not_words = alignment
        middle = _token_segments(diffs, old_tokens, new_tokens)
    segments = [(EQUAL, old[:head]), *middle, (EQUAL, old[len(old) - tail:])]
    return _merge_segments(segments), alignment is not None


def _word_counts(old: str, new: str, budget: Budget) -> tuple[int, int] | None:
    """(words added, words removed) in a changed region, as `count_changed_words` counts
    its segments but without building them; None when it is not aligned (then counted
    as a bag). A word is one token, so the words of an inserted run are its word tokens
    (tokens compared equal but different are spaces: no word)."""
    _head, _tail, alignment = _aligned_tokens(old, new, budget)
    if alignment is None:
        return None
    _old_tokens, _new_tokens, diffs, not_words = alignment
    added = removed = 0
    for op, chars in diffs:
        if op == INSERT:
            added += len(chars.translate(not_words))
        elif op == DELETE:
            removed += len(chars.translate(not_words))
    return added, removed


def _merge_segments(segments: list[tuple[int, str]]) -> list[tuple[int, str]]:
    merged: list[tuple[int, str]] = []
    for op, text in segments:
        if not text:
            continue
        if merged and merged[-1][0] == op:
            merged[-1] = (op, merged[-1][1] + text)
        else:
            merged.append((op, text))
    return merged


def _regions(runs: list[tuple[int, list[str]]]):
    """Group line runs into regions (kind, old start, new start, old lines, new lines):
    adjacent deletions and insertions form a "change"."""
    old_at = new_at = 0
    pending_old: list[str] = []
    pending_new: list[str] = []
    for op, lines in [*runs, (EQUAL, [])]:
        if op != EQUAL:
            if op == DELETE:
                pending_old = pending_old + lines
            else:
                pending_new = pending_new + lines
            continue
        if pending_old or pending_new:
            kind = "change" if pending_old and pending_new else ("delete" if pending_old else "insert")
            yield kind, old_at, new_at, pending_old, pending_new
            old_at += len(pending_old)
            new_at += len(pending_new)
            pending_old, pending_new = [], []
        if lines:
            yield "equal", old_at, new_at, lines, lines
            old_at += len(lines)
            new_at += len(lines)


def _hunks(runs: list[tuple[int, list[str]]], budget: Budget) -> list[Hunk]:
    """The regions as hunks, changed ones aligned word by word within `budget`."""
    found: list[Hunk] = []
    for kind, old_start, new_start, old_lines, new_lines in _regions(runs):
        hunk = Hunk(kind, old_start, new_start, old_lines, new_lines)
        if kind == "change":
            segments, aligned = _word_segments("\n".join(old_lines), "\n".join(new_lines), budget)
            hunk.segments, hunk.approximate = segments, not aligned
        found.append(hunk)
    return found


def _bag_counts(old: str, new: str) -> tuple[int, int]:
    """(added, removed) counting words as a bag: each word as many times more (fewer) as it
    occurs in `new` than in `old`. Linear time; a lower bound of the word diff's figures,
    and exact for a pure reflow. The totals still add up: old + added - removed = new."""
    old_words, new_words = Counter(WORD.findall(old)), Counter(WORD.findall(new))
    return sum((new_words - old_words).values()), sum((old_words - new_words).values())


def count_changed_words(found: list[Hunk]) -> tuple[int, int]:
    """(words added, words removed) in these hunks: approximate ones counted as a bag."""
    added = removed = 0
    for hunk in found:
        if hunk.kind == "insert":
            added += count_words("\n".join(hunk.new_lines))
        elif hunk.kind == "delete":
            removed += count_words("\n".join(hunk.old_lines))
        elif hunk.approximate:
            more, fewer = _bag_counts("\n".join(hunk.old_lines), "\n".join(hunk.new_lines))
            added += more
            removed += fewer
        elif hunk.kind == "change":
            for op, text in hunk.segments:
                if op == INSERT:
                    added += count_words(text)
                elif op == DELETE:
                    removed += count_words(text)
    return added, removed


@dataclass(frozen=True)
class ChangeCounts:
    """Words added and removed from one version to the next, as the index stores them."""

    added: int
    removed: int
    approximate: bool  # counted as a bag in some region (see `Hunk.approximate`)


def hunks(old: str, new: str, budget: float = PAGE_BUDGET) -> list[Hunk]:
    """The regions of the diff of `old` and `new`, changed regions aligned word by word.

    `budget` (seconds of CPU) bounds the alignment work; regions left unaligned when it
    runs out are whole lines, marked `approximate`. Computed one way round whichever text
    comes first (`_mirrored`).
    """
    if _mirrored(old, new):
        return [hunk.mirrored() for hunk in hunks(new, old, budget)]
    limit = Budget(budget)
    return _hunks(_line_runs(old, new, limit), limit)


def _mirrored_segments(segments: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Word segments seen from the other side: insertions become deletions and the other way
    round, and a deletion that ends up just after an insertion is put before it, as
    diff-match-patch gives them (each segment kept whole: a space that became a non-breaking
    one stays a change of whitespace alone, which the page marks). Its own inverse."""
    mirrored = [(-op, text) for op, text in segments]
    at = 0
    while at < len(mirrored) - 1:
        if mirrored[at][0] == INSERT and mirrored[at + 1][0] == DELETE:
            mirrored[at], mirrored[at + 1] = mirrored[at + 1], mirrored[at]
            at += 2
        else:
            at += 1
    return mirrored


def _mirrored(old: str, new: str) -> bool:
    """Whether a comparison is computed as the mirror of new against old.

    Two alignments of the same texts can differ where diff-match-patch breaks a tie, so the
    diff of B against A is made the mirror of A against B by computing both one way round:
    a change and its undoing show the same words, and a document that flips between two
    texts (an error page and back, an A/B test) costs one comparison (see
    `web.index_workers`). A plain string comparison, at C speed.
    """
    return new < old


def change_counts(old: str, new: str, budget: float = INDEX_BUDGET) -> ChangeCounts:
    """`count_changes` within a budget (seconds of CPU), saying whether it had to estimate.

    The same figures as `count_changed_words(hunks(old, new, budget))`, counted without
    building the texts of the hunks (what the index does for every version).
    """
    if _mirrored(old, new):
        counts = change_counts(new, old, budget)
        return ChangeCounts(counts.removed, counts.added, counts.approximate)
    limit = Budget(budget)
    added = removed = 0
    approximate = False
    for kind, _old_start, _new_start, old_lines, new_lines in _regions(_line_runs(old, new, limit, ends=False)):
        if kind == "insert":
            added += count_words("\n".join(new_lines))
        elif kind == "delete":
            removed += count_words("\n".join(old_lines))
        elif kind == "change":
            old_text, new_text = "\n".join(old_lines), "\n".join(new_lines)
            counts = _word_counts(old_text, new_text, limit)
            if counts is None:
                approximate = True
                counts = _bag_counts(old_text, new_text)
            added += counts[0]
            removed += counts[1]
    return ChangeCounts(added, removed, approximate)


def count_changes(old: str, new: str) -> tuple[int, int]:
    """(words added, words removed) from `old` to `new`: the figures the diff page reports."""
    counts = change_counts(old, new, PAGE_BUDGET)
    return counts.added, counts.removed


# Where a changed word or mark is: any token but spaces and line breaks.
VISIBLE_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class WordChanges(ChangeCounts):
    """`ChangeCounts`, and where the changes are: the offset of each added token (a word or
    a punctuation mark) in the new text, and of each removed one in the old text, in order."""

    added_at: tuple[int, ...] = ()
    removed_at: tuple[int, ...] = ()


def _line_offsets(text: str) -> list[int]:
    """The offset in `text` where each of its lines ("\n"-separated) starts."""
    offsets = [0]
    at = text.find("\n")
    while at != -1:
        offsets.append(at + 1)
        at = text.find("\n", at + 1)
    return offsets


def _visible_at(text: str, start: int) -> list[int]:
    return [start + match.start() for match in VISIBLE_TOKEN.finditer(text)]


def word_changes(old: str, new: str, budget: float = PAGE_BUDGET) -> WordChanges:
    """Words added and removed from `old` to `new` (the diff page's figures) and where they are.

    An approximate region (past the budget) counts all its lines as removed and added.
    From an empty `old`, every word of `new` is added.
    """
    if not old:
        return WordChanges(count_words(new), 0, False, tuple(_visible_at(new, 0)), ())
    found = hunks(old, new, budget)
    added, removed = count_changed_words(found)
    old_lines, new_lines = _line_offsets(old), _line_offsets(new)
    added_at: list[int] = []
    removed_at: list[int] = []
    for hunk in found:
        if hunk.kind == "equal":
            continue
        old_at = old_lines[hunk.old_start] if hunk.old_lines else 0
        new_at = new_lines[hunk.new_start] if hunk.new_lines else 0
        if hunk.kind != "change" or hunk.approximate:
            if hunk.old_lines:
                removed_at += _visible_at("\n".join(hunk.old_lines), old_at)
            if hunk.new_lines:
                added_at += _visible_at("\n".join(hunk.new_lines), new_at)
            continue
        for op, text in hunk.segments:
            if op == INSERT:
                added_at += _visible_at(text, new_at)
                new_at += len(text)
            elif op == DELETE:
                removed_at += _visible_at(text, old_at)
                old_at += len(text)
            else:
                old_at += len(text)
                new_at += len(text)
    return WordChanges(added, removed, any(hunk.approximate for hunk in found), tuple(added_at), tuple(removed_at))


