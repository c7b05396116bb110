"""The viewer's diff: line alignment, word-level highlighting, word counts and sections."""

from __future__ import annotations

import json
import random
import sys

import pytest

from termshift.textdiff import DELETE, EQUAL, INSERT, change_counts, count_changes, count_words, line_diff
from termshift.web.diffing import Comparison, compare, headings
from termshift.web.diffview import build_blocks, section_links
from tests.support.archive_factory import PRIVACY_V1, PRIVACY_V2, PRIVACY_V3


def sides(comparison: Comparison) -> tuple[str, str]:
    """Both texts rebuilt from the hunks (and, for changes, from the word segments)."""
    old, new = [], []
    for hunk in comparison.hunks:
        old += hunk.old_lines
        new += hunk.new_lines
        if hunk.kind == "change":
            assert "".join(t for op, t in hunk.segments if op != INSERT) == "\n".join(hunk.old_lines)
            assert "".join(t for op, t in hunk.segments if op != DELETE) == "\n".join(hunk.new_lines)
    return "\n".join(old), "\n".join(new)


def test_changed_words_are_isolated_within_an_aligned_paragraph():
    comparison = compare(PRIVACY_V1, PRIVACY_V2)
    changes = comparison.changes
    assert [hunk.kind for hunk in changes] == ["change"]
    segments = changes[0].segments
    assert (DELETE, "never") in segments
    assert (INSERT, "may") in segments
    assert any(op == INSERT and "advertising partners" in text for op, text in segments)
    # Unchanged words of the paragraph stay unmarked.
    assert any(op == EQUAL and "share your data" in text for op, text in segments)
    assert comparison.words_added == count_words("may with our advertising partners")
    assert comparison.words_removed == 1


def test_sections_touched_are_the_headings_above_each_change():
    comparison = compare(PRIVACY_V2, PRIVACY_V3)
    # "five years" is under the title; the cookie paragraph is a new section at the end.
    assert comparison.sections == ["Privacy Policy", "Your rights", "Cookies"]
    links = section_links(comparison)
    # v3 also reformats the "Your rights" heading (change 2), then adds a section (change 3).
    assert links == [{"title": "Privacy Policy", "change": 1}, {"title": "Your rights", "change": 2},
                     {"title": "Cookies", "change": 3}]


def test_sections_and_hunk_sections_are_plain_titles_each_once():
    old = ("# **Data** we [keep](https://x.example)\n\nWe keep it.\n\n## Data we keep\n\nOld.\n\n"
           "## 3\\. Rights\n\nYou may ask.\n")
    new = old.replace("We keep it.", "We keep it all.").replace("Old.", "New.").replace("You may", "You can")
    comparison = compare(old, new)
    # "**Data** we [keep](…)" and "Data we keep" read the same: one section.
    assert comparison.sections == ["Data we keep", "3. Rights"]
    assert [hunk.section for hunk in comparison.changes] == ["Data we keep", "Data we keep", "3. Rights"]


def test_setext_atx_and_escaped_headings_are_recognised_but_not_lists_or_rules():
    text = ("Title\n=====\n\nSome *text*\n\n## 2\\. The [rules](https://x.example) ##\n\n"
            "1. item\n---\n\n- - -\n\nLast\n----\n")
    assert headings(text) == [(0, "Title"), (5, "2. The rules"), (12, "Last")]


def test_texts_rebuild_exactly_from_the_diff_for_random_edits():
    rng = random.Random(7)
    alphabet = ["alpha beta", "gamma", "", "delta, epsilon.", "## Heading", "zeta eta theta", "-----"]
    for _ in range(400):
        old = "\n".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9))) + rng.choice(["", "\n"])
        new = "\n".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9))) + rng.choice(["", "\n"])
        comparison = compare(old, new)
        assert sides(comparison) == (old, new)
        runs = line_diff(old, new)
        if old == new:
            assert all(op == EQUAL for op, _lines in runs)


def test_appending_a_line_is_an_insertion_not_a_change_of_the_last_line():
    comparison = compare("One.\nTwo.", "One.\nTwo.\nThree.")
    assert [hunk.kind for hunk in comparison.changes] == ["insert"]
    assert comparison.changes[0].new_lines == ["Three."]
    assert (comparison.words_added, comparison.words_removed) == (1, 0)


def test_moved_paragraphs_align_on_unique_lines():
    paragraphs = [f"Paragraph number {n} says something unique." for n in range(30)]
    moved = paragraphs[:5] + paragraphs[6:20] + [paragraphs[5]] + paragraphs[20:]
    comparison = compare("\n".join(paragraphs), "\n".join(moved))
    changed = [hunk for hunk in comparison.changes]
    # One deletion and one insertion of the moved paragraph; everything else aligned.
    assert sorted(hunk.kind for hunk in changed) == ["delete", "insert"]
    assert comparison.words_added == comparison.words_removed == count_words(paragraphs[5])


def test_count_changes_agrees_with_compare_and_word_totals():
    rng = random.Random(3)
    words = ["terms", "data", "privacy", "we", "you", "share", "keep", "delete"]
    old = "\n\n".join(" ".join(rng.choices(words, k=12)) for _ in range(40))
    new_paragraphs = old.split("\n\n")
    for _ in range(6):
        index = rng.randrange(len(new_paragraphs))
        new_paragraphs[index] = " ".join(rng.choices(words, k=rng.randint(5, 15)))
    new = "\n\n".join(new_paragraphs)
    added, removed = count_changes(old, new)
    comparison = compare(old, new)
    assert (added, removed) == (comparison.words_added, comparison.words_removed)
    # The index derives a version's word count from its predecessor's with these figures.
    assert count_words(old) + added - removed == count_words(new)


def test_the_index_counts_without_texts_what_the_diff_page_counts_from_them():
    # change_counts (the index: figures only) and count_changed_words(hunks()) (the diff
    # page: from the word segments) are two paths through one alignment; they must agree,
    # also on spaces that changed kind, punctuation, underscores and other scripts.
    from termshift.textdiff import count_changed_words, hunks

    rng = random.Random(11)
    words = ["terms", "data_processing", "privacy", "we", "you", "Éditeur", "données", "数据", "42", "3,5"]
    marks = [" ", " ", " ", "\u00a0", "  ", ", ", ". ", "; ", "\n", "\n\n", " - "]

    def paragraph() -> str:
        return "".join(rng.choice(words) + rng.choice(marks) for _ in range(rng.randint(1, 14)))

    for _ in range(300):
        old_paragraphs = [paragraph() for _ in range(rng.randint(0, 8))]
        new_paragraphs = [rng.choice([paragraph, lambda p=p: p, lambda p=p: p.replace(" ", "\u00a0", 1)])()
                          for p in old_paragraphs] + [paragraph() for _ in range(rng.randint(0, 2))]
        rng.shuffle(new_paragraphs) if rng.random() < 0.2 else None
        old, new = "\n".join(old_paragraphs), "\n".join(new_paragraphs)
        for budget in (10.0, 0.0):  # aligned; and nothing aligned (every change counted as a bag)
            counts = change_counts(old, new, budget)
            found = hunks(old, new, budget)
            assert (counts.added, counts.removed) == count_changed_words(found), (old, new, budget)
            assert counts.approximate == any(hunk.approximate for hunk in found)
            assert count_words(old) + counts.added - counts.removed == count_words(new)


def test_first_version_compared_with_nothing_is_all_inserted():
    comparison = compare("", PRIVACY_V1)
    assert comparison.words_added == count_words(PRIVACY_V1)
    assert comparison.words_removed == 0


def test_comparison_survives_its_json_form():
    comparison = compare(PRIVACY_V1, PRIVACY_V3)
    assert any(hunk.kind == "equal" for hunk in comparison.hunks)
    stored = comparison.to_json()
    # Unchanged lines are not kept: where they are in the old text is enough.
    assert "We collect" not in json.dumps([hunk for hunk in stored["hunks"] if hunk["kind"] == "equal"])
    again = Comparison.from_json(stored, PRIVACY_V1)
    assert again.to_json() == stored
    assert again.hunks == comparison.hunks  # unchanged lines given back on both sides
    assert again.sections == comparison.sections and again.words_added == comparison.words_added


@pytest.mark.parametrize("side_by_side", [False, True])
def test_unchanged_stretches_fold_to_the_context_around_changes(side_by_side):
    lines = [f"Line {n} of the terms." for n in range(100)]
    changed = list(lines)
    changed[50] = "Line 50 of the new terms."
    comparison = compare("\n".join(lines), "\n".join(changed))
    blocks = build_blocks(comparison, side_by_side=side_by_side, context=3)
    rows = [row for block in blocks for row in block.rows]
    skips = [row.skipped for row in rows if row.kind == "skip"]
    assert skips == [47, 46]  # 50 lines before minus 3 of context, 49 after minus 3
    shown = [row.new_number for row in rows if row.kind == "equal"]
    assert shown == [48, 49, 50, 52, 53, 54]
    change = next(block for block in blocks if block.change_number == 1)
    if side_by_side:
        assert (INSERT, "new ") in change.rows[0].new and (EQUAL, "Line 50 of the ") in change.rows[0].old
    else:
        assert (INSERT, "new ") in change.rows[0].parts
    everything = build_blocks(comparison, side_by_side=side_by_side, context=None)
    assert not [row for block in everything for row in block.rows if row.kind == "skip"]


def test_side_by_side_rows_pair_the_lines_of_a_changed_region():
    old = "Intro.\n\nWe keep data for one year.\n\nOutro."
    new = "Intro.\n\nWe keep data for two years.\nAnd we sell it.\n\nOutro."
    blocks = build_blocks(compare(old, new), side_by_side=True, context=None)
    change = next(block for block in blocks if block.change_number)
    left = ["".join(text for _op, text in row.old) for row in change.rows]
    right = ["".join(text for _op, text in row.new) for row in change.rows]
    assert left == ["We keep data for one year.", ""]
    assert right == ["We keep data for two years.", "And we sell it."]
    assert change.rows[1].old_number is None and change.rows[1].new_number == 4


def test_huge_unrelated_regions_fall_back_to_whole_lines():
    old = " ".join(f"a{n}" for n in range(40_000))
    new = " ".join(f"b{n}" for n in range(40_000))
    comparison = compare(old, new)
    change = comparison.changes[0]
    assert change.segments == [(DELETE, old), (INSERT, new)]
    assert comparison.words_added == comparison.words_removed == 40_000


# --------------------------------------------------------------------------- whitespace

# An excerpt of UptimeRobot's Privacy Policy (OTA demo collection) whose 2026-06-24 version
# only turned spaces around its links into non-breaking spaces.
UPTIMEROBOT = (
    "Privacy policy.\n===============\n\n"
    "UptimeRobot (a service by UptimeRobot s. r. o.) operates several websites including "
    "[uptimerobot.com](https://uptimerobot.com/), [uptimerobot.com/api/](http://uptimerobot.com/api/) and "
    "[uptimerobot.com/blog/](https://uptimerobot.com/blog/). It is UptimeRobot's policy to respect your privacy.\n\n"
    "What This Policy Covers\n-----------------------\n\n"
    "For users who qualify as data controllers, a separate GDPR-compliant "
    "[Data Processing Agreement (“DPA”)](https://uptimerobot.com/dpa/) is available upon request.\n"
)
UPTIMEROBOT_NBSP = (UPTIMEROBOT.replace("including [", "including\u00a0[").replace(", [", ",\u00a0[")
                    .replace(") and [", ")\u00a0and\u00a0[").replace("compliant [", "compliant\u00a0[")
                    .replace(") is", ")\u00a0is"))


def changed_segments(comparison: Comparison) -> list[tuple[int, str]]:
    return [(op, text) for hunk in comparison.changes for op, text in hunk.segments if op != EQUAL]


def test_spaces_that_became_non_breaking_change_no_word():
    assert UPTIMEROBOT_NBSP.count("\u00a0") == 6
    comparison = compare(UPTIMEROBOT, UPTIMEROBOT_NBSP)
    assert (comparison.words_added, comparison.words_removed) == (0, 0)
    assert count_changes(UPTIMEROBOT, UPTIMEROBOT_NBSP) == (0, 0)
    assert len(comparison.changes) == 2 and comparison.whitespace_only
    assert all(hunk.whitespace_only for hunk in comparison.changes)
    # Each swapped space is its own deletion and insertion, words around it stay unchanged.
    assert changed_segments(comparison) == [(DELETE, " "), (INSERT, "\u00a0")] * 6
    assert sides(comparison) == (UPTIMEROBOT, UPTIMEROBOT_NBSP)
    assert comparison.to_json()["hunks"][1]["whitespace_only"] is True


@pytest.mark.parametrize("space", ["\u00a0", "\u202f", "\u2009", "\t", "  "])
def test_every_kind_of_space_is_the_same_separator(space):
    old = "Intro.\n\nWe keep your data for one year and then we delete it.\n\nOutro."
    new = old.replace("one year and then", f"one{space}year{space}and{space}then")
    comparison = compare(old, new)
    assert (comparison.words_added, comparison.words_removed) == (0, 0)
    assert comparison.whitespace_only
    assert {text for op, text in changed_segments(comparison)} == {" ", space}


def test_a_word_change_next_to_a_changed_space_is_not_whitespace_only():
    old = "We keep your data for one year."
    new = "We keep your data for\u00a0two years."
    comparison = compare(old, new)
    assert (comparison.words_added, comparison.words_removed) == (2, 2)
    assert not comparison.whitespace_only and not comparison.changes[0].whitespace_only
    assert sides(comparison) == (old, new)


def test_unchanged_texts_are_not_whitespace_only():
    assert not compare(PRIVACY_V1, PRIVACY_V1).whitespace_only


def test_changed_whitespace_gets_visible_named_marks():
    from termshift.web.diffview import draws_whitespace_marks, whitespace_marks

    assert whitespace_marks("\u00a0 \t") == [("⍽", "non-breaking space", "U+00A0", "\u00a0"),
                                             ("·", "space", "U+0020", " "), ("→", "tab", "U+0009", "\t")]
    assert whitespace_marks("\u3000")[0][:3] == ("␣", "other space", "U+3000")
    assert draws_whitespace_marks(compare(UPTIMEROBOT, UPTIMEROBOT_NBSP))
    assert not draws_whitespace_marks(compare(PRIVACY_V1, PRIVACY_V2))
    blocks = build_blocks(compare(UPTIMEROBOT, UPTIMEROBOT_NBSP), side_by_side=False, context=1)
    assert [block.whitespace_only for block in blocks if block.change_number] == [True, True]


# --------------------------------------------------------------------------- bounded cost

def test_a_comparison_over_its_budget_counts_words_as_a_bag_and_says_so():
    old = "\n\n".join(f"Clause {n}: we keep your data for {n} days." for n in range(50))
    new = old.replace("we keep", "we may keep").replace("days.", "days, or longer.")
    exact = change_counts(old, new, budget=1.0)
    assert not exact.approximate
    assert (exact.added, exact.removed) == count_changes(old, new) == (150, 0)
    # No time at all: every changed region is counted as a bag of words, marked approximate.
    rough = change_counts(old, new, budget=0)
    assert rough.approximate
    assert (rough.added, rough.removed) == (150, 0)  # a bag count is exact for pure insertions of words
    assert count_words(old) + rough.added - rough.removed == count_words(new)
    comparison = compare(old, new, budget=0)
    assert comparison.approximate and comparison.to_json()["approximate"] is True
    change = comparison.changes[0]
    # Shown as whole lines: one deletion and one insertion between the common edges.
    assert change.approximate and [op for op, _text in change.segments] == [EQUAL, DELETE, INSERT]
    assert sides(comparison) == (old, new)
    assert Comparison.from_json(comparison.to_json(), old).approximate


def test_a_bag_count_is_a_lower_bound_that_keeps_the_totals_right():
    old = "alpha beta gamma delta\nepsilon zeta"
    new = "delta gamma beta alpha omega\nzeta"  # reordered, one word swapped
    rough = change_counts(old, new, budget=0)
    assert rough.approximate and (rough.added, rough.removed) == (1, 1)
    exact = change_counts(old, new, budget=1.0)
    assert not exact.approximate and exact.added >= rough.added and exact.removed >= rough.removed
    assert count_words(old) + exact.added - exact.removed == count_words(new)


def test_tokens_are_coded_alike_when_they_are_the_same_token_or_both_runs_of_spaces():
    """Two tokens get one code if they are the same, or both runs of spaces of any kind (so
    a space that became a non-breaking one is not a changed word); line breaks, spaces and
    ASCII punctuation are coded as themselves, every other token as a private use character."""
    from termshift.textdiff import TOKEN, _TokenCodes

    pieces = ["word", "Été", "x_1", " ", "  ", "\u00a0", "\t", "\r", "\r\n", "\n", "\n\n", "\u2009", "\u3000 ",
              " \u00a0 ", ".", ",", "«", "»", "—", "\u200b", "42", "_"]
    rng = random.Random(7)
    codes = _TokenCodes()
    for _ in range(500):
        old, new = ("".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _side in range(2))
        tokens = TOKEN.findall(old), TOKEN.findall(new)
        encoded = codes.encode(*tokens)
        assert [len(text) for text in encoded] == [len(side) for side in tokens]
        pairs = {pair for side, text in zip(tokens, encoded, strict=True) for pair in zip(side, text, strict=True)}
        for token, code in pairs:
            if token == "\n" or (len(token) == 1 and token.isascii() and not token.isspace()
                                  and not token.isalnum() and token != "_"):
                assert code == token
            elif token.isspace():
                assert code == " "
            else:
                assert 0xF0000 <= ord(code) <= 0x10FFFD and not code.isalnum() and not code.isspace()
        for token, code in pairs:
            assert {other for other, other_code in pairs if other_code == code} == (
                {other for other, _ in pairs if other.isspace() and other != "\n"} if code == " " else {token})


def test_a_table_of_token_codes_keeps_at_most_its_capacity(monkeypatch):
    """Runs of spaces all share one code but are kept one by one: they count too."""
    from termshift.textdiff import TOKEN, _TokenCodes

    monkeypatch.setattr(_TokenCodes, "CAPACITY", 64)
    codes = _TokenCodes()
    for length in range(1, 300):
        old = "a" + " " * length + "b"
        encoded = codes.encode(TOKEN.findall(old), TOKEN.findall("c d"))
        assert len(codes) <= 64 and encoded[0][1] == " " == encoded[1][1]
        assert all(ord(code) < 0x100000 for text in encoded for code in text)


def test_the_diff_does_not_depend_on_the_tokens_a_process_met_before(monkeypatch):
    """Codes differ with the order in which a process met its tokens (and its table starts
    again when full), but only equality and the class of a code matter: same diff, same figures."""
    from termshift import textdiff

    rng = random.Random(11)
    vocabulary = [f"w{n}" for n in range(40)] + [".", ",", "«", "»", "—", "2024", "Été"]
    texts = [" ".join(rng.choice(vocabulary) for _ in range(200)).replace("w1 ", "w1\n\n") for _ in range(6)]
    pairs = list(zip(texts, texts[1:], strict=False))
    first = [(textdiff.hunks(old, new), textdiff.change_counts(old, new, 5.0)) for old, new in pairs]
    for capacity in (10_000, 50):  # met in another order; a table that starts again every few regions
        codes = textdiff._TokenCodes()
        monkeypatch.setattr(codes, "CAPACITY", capacity)
        monkeypatch.setattr(textdiff._THIS_THREAD, "codes", codes)
        codes.encode(rng.sample(vocabulary, len(vocabulary)), [])
        again = [(textdiff.hunks(old, new), textdiff.change_counts(old, new, 5.0)) for old, new in reversed(pairs)]
        assert again[::-1] == first


def test_the_token_count_known_without_tokenising_is_a_lower_bound():
    from termshift.textdiff import TOKEN, _fewest_tokens

    pieces = ["word", "x_1", " ", "  ", "\u00a0", "\t", "\n", "\n\n", "\u2009", "\x1c", ".", "«", "\u200b", "42"]
    rng = random.Random(8)
    exact = 0
    for _ in range(1000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert _fewest_tokens(text) <= len(TOKEN.findall(text)), repr(text)
        exact += _fewest_tokens(text) == len(TOKEN.findall(text))
    assert _fewest_tokens("a b\nc") == 5 and exact > 50  # tight on plain words and spaces


@pytest.mark.parametrize(("text", "expected"), [
    ("# x", [(0, "x")]),  # at the very start
    ("x\n=", [(0, "x")]),
    ("a\n  ---  \n", [(0, "a")]),
    ("a\n-x", []),  # a line starting with a dash is no underline
    ("    # no", []),  # four spaces: code, not a heading
    ("t\n\n   ## deep ##\n", [(2, "deep")]),
    ("- item\n---\n", []),  # a list item is not a setext title
])
def test_headings_at_the_edges(text, expected):
    assert headings(text) == expected


def test_a_costly_region_is_anchored_on_its_unique_words_and_stays_exact():
    """A paragraph whose long middle was cut, a word changed on each side of the cut: costly
    for diff-match-patch alone, so its words are anchored first; still word by word."""
    from termshift import textdiff

    def part(numbers) -> str:
        return " ".join(f"Term w{n} applies." for n in numbers)

    first, cut, last = part(range(0, 100)), part(range(100, 3000)), part(range(3000, 3100))
    old = f"Intro.\n{first} {cut} {last}\nEnd."
    new = f"Intro.\n{first.replace('w5 applies', 'w5 ends')} {last.replace('w3095 applies', 'w3095 ends')}\nEnd."
    old_chars, new_chars = textdiff._token_codes().encode(*(textdiff.TOKEN.findall(text) for text in (old, new)))
    assert textdiff._estimated_work(old_chars, new_chars, 0) > textdiff.ANCHOR_ABOVE  # the anchored path
    comparison = compare(old, new)
    assert not comparison.approximate
    assert sides(comparison) == (old, new)
    expected = (2, count_words(cut) + 2)
    assert (comparison.words_added, comparison.words_removed) == expected == count_changes(old, new)
    assert [text for op, text in changed_segments(comparison) if op == INSERT] == ["ends", "ends"]


def test_a_blank_line_between_two_changed_paragraphs_joins_them_into_one_change():
    comparison = compare("Intro.\nFirst clause.\n\nSecond clause.\nEnd.", "Intro.\nFirst rule.\n\nSecond rule.\nEnd.")
    assert [hunk.kind for hunk in comparison.changes] == ["change"]
    assert (comparison.words_added, comparison.words_removed) == (2, 2)


def test_a_costly_line_alignment_is_anchored_on_unique_lines_and_stays_exact():
    """Every tenth paragraph of a long text edited: too costly for one diff-match-patch
    call on its lines, so they are anchored first; each edit is still one word."""
    from termshift import textdiff

    old_lines = [f"Clause {n} binds party p{n}." for n in range(5000)]
    new_lines = [line.replace(" binds ", " frees ") if n % 10 == 5 else line for n, line in enumerate(old_lines)]
    old_chars, new_chars, _table = textdiff._encode(old_lines, new_lines)
    assert textdiff._estimated_work(old_chars, new_chars, 0) > textdiff.ANCHOR_ABOVE  # the anchored path
    old, new = "\n".join(old_lines), "\n".join(new_lines)
    comparison = compare(old, new)
    assert not comparison.approximate
    assert sides(comparison) == (old, new)
    assert (comparison.words_added, comparison.words_removed) == (500, 500) == count_changes(old, new)
    assert len(comparison.changes) == 500


def test_threads_diffing_at_once_each_keep_their_own_token_codes(monkeypatch):
    """A server's threads diff at the same time, each with its own table of codes (one shared
    table, starting again while another thread is in the middle of a region, would mix codes)."""
    from concurrent.futures import ThreadPoolExecutor

    from termshift import textdiff

    monkeypatch.setattr(textdiff._TokenCodes, "CAPACITY", 64)  # tables start again every region or two
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns every few bytecodes, as on a busy server
    rng = random.Random(5)
    pairs = []
    for thread in range(4):
        words = [f"t{thread}w{n}" for n in range(60)]
        texts = [" ".join(rng.choice(words) for _ in range(30)) + "." for _ in range(21)]
        pairs.append(list(zip(texts, texts[1:], strict=False)))

    def counts(some_pairs):
        return [textdiff.change_counts(old, new, 5.0) for old, new in some_pairs for _again in range(10)]

    expected = [counts(some_pairs) for some_pairs in pairs]
    try:
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(counts, pairs)) == expected
    finally:
        sys.setswitchinterval(switch_interval)


def whitespace_changes(hunk) -> list[str]:
    return sorted(text for op, text in hunk.segments if op != EQUAL and text.isspace())


def test_the_diff_of_b_against_a_is_the_mirror_of_a_against_b():
    """Where diff-match-patch could break a tie either way, the comparison is computed one way
    round: a change and its undoing show the same words, on the page and in the figures."""
    from termshift import textdiff

    rng = random.Random(13)
    words = ["the", "data", "we", "share", "may", "never", ".", ",", "partners", "and", "or"]
    spaces = [" "] * 8 + ["\u00a0", "  ", "\t"]  # a space that becomes another kind is a change of its own
    pairs = []
    for _ in range(300):
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(rng.randint(1, 6))]
        edited = [line if rng.random() < 0.5 else " ".join(rng.sample(line.split(), len(line.split())) + ["may"])
                  for line in lines]
        edited = ["".join(rng.choice(spaces) if char == " " else char for char in line) for line in edited]
        pairs.append(("\n".join(lines), "\n".join(edited)))
    tied = 0
    for a, b in pairs:
        forth, back = compare(a, b), compare(b, a)
        assert sides(forth) == (a, b) and sides(back) == (b, a)
        assert back.hunks == [hunk.mirrored() for hunk in forth.hunks]
        assert forth.hunks == [hunk.mirrored().mirrored() for hunk in forth.hunks]
        assert textdiff.word_diff(b, a) == textdiff._mirrored_segments(textdiff.word_diff(a, b))
        for one, other in zip(forth.hunks, back.hunks, strict=True):  # segments kept whole: spaces apart
            assert whitespace_changes(one) == whitespace_changes(other)
        assert (back.words_added, back.words_removed) == (forth.words_removed, forth.words_added)
        assert count_changes(b, a) == count_changes(a, b)[::-1] == (back.words_added, back.words_removed)
        low, high = sorted((a, b))
        unmirrored = textdiff._hunks(textdiff._line_runs(high, low, textdiff.Budget(1.0)), textdiff.Budget(1.0))
        tied += unmirrored != [hunk.mirrored() for hunk in textdiff.hunks(low, high)]
    assert tied > 10  # the sample holds comparisons whose two ways round would differ


def test_a_space_made_non_breaking_beside_a_changed_word_is_marked_both_ways_round():
    old, new = "a foo b baz c", "a qux\u00a0b zap c"
    for one, other in ((old, new), (new, old)):
        segments = compare(one, other).changes[0].segments
        assert [(op, text) for op, text in segments if op != EQUAL and text.isspace()] == [
            (DELETE, " " if one == old else "\u00a0"), (INSERT, "\u00a0" if one == old else " ")]


def test_an_index_worker_compares_a_pair_and_its_mirror_once(monkeypatch):
    from termshift.web import index_workers

    calls = []
    real = index_workers.change_counts
    monkeypatch.setattr(index_workers, "change_counts", lambda *args: calls.append(args) or real(*args))
    monkeypatch.setattr(index_workers, "_PAIRS", type(index_workers._PAIRS)())
    policy, error = "We never share your data.\nContact us.", "Service unavailable."
    forth = index_workers._pair_counts("p", "e", policy, error)
    back = index_workers._pair_counts("e", "p", error, policy)
    assert index_workers._pair_counts("p", "e", policy, error) == forth == (2, 7, False)
    assert back == (7, 2, False) and len(calls) == 1
