"""Pictures for readers: the timeline and activity builders, the formatted diff, the citation.

Builders are tested on their own (geometry and links they produce), then through the
Flask test client on a real archive (HTML, JSON twins, French).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import lxml.html
import pytest

from termshift.web import create_app
from termshift.web.activity import MAX_MONTHS, build_activity, level, month_bounds
from termshift.web.diffing import compare
from termshift.web.rendered_diff import (
    DEL_OPEN,
    INS_OPEN,
    faithful,
    merge_pair,
    pair_lines,
    render_comparison,
    well_nested,
)
from termshift.web.timeline import HALF, bar_height, build_timeline, tick_dates
from tests.support.archive_factory import ArchiveFactory, build_sample_archive

PRIVACY = "/Acme/Privacy%20Policy"


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def version(number: int, date: str, added: int = 0, removed: int = 0, *, first: bool = False,
            technical: bool = False) -> dict:
    return {"id": number, "date": day(date), "words_added": added, "words_removed": removed, "is_first": first,
            "is_technical": technical}


def link(target: dict, against: dict | None) -> str:
    return f"/v{target['id']}" + (f"?from={against['id']}" if against else "")


# --------------------------------------------------------------------------- timeline


def test_timeline_draws_each_change_up_for_words_added_and_down_for_words_removed():
    versions = [version(1, "2022-01-01", 5000, first=True), version(2, "2023-01-01", 10, 0),
                version(3, "2024-01-01", 1000, 3000), version(4, "2025-01-01", 0, 0)]
    timeline = build_timeline(versions, link)
    first, small, large, unchanged = timeline.marks
    # The first record is a dot: its words were found, not added, and do not set the scale.
    assert first.first_record and first.added == 0 and first.added_height == 0 and first.href == "/v1"
    assert timeline.largest == 3000
    assert small.added_height > 0 and small.removed_height == 0
    assert large.removed_height == pytest.approx(HALF) and 0 < large.added_height < large.removed_height
    assert small.added_height < large.added_height
    assert unchanged.added_height == unchanged.removed_height == 0
    assert [mark.href for mark in timeline.marks[1:]] == ["/v2?from=1", "/v3?from=2", "/v4?from=3"]
    # Bars sit in date order along the axis, inside the plot.
    xs = [mark.x for mark in timeline.marks]
    assert xs == sorted(xs) and timeline.left <= xs[0] and xs[-1] < timeline.right
    # The gap of a year between versions 2, 3 and 4 is the same length on the axis.
    assert (xs[2] - xs[1]) == pytest.approx(xs[3] - xs[2], abs=5)


def test_timeline_scale_is_logarithmic_so_small_changes_stay_visible():
    assert bar_height(1, 100_000) >= 2  # a one-word fix beside a rewrite
    assert bar_height(0, 100_000) == 0
    assert bar_height(100_000, 100_000) == pytest.approx(HALF)
    # Ten times more words is a constant step, not ten times the height.
    step_low = bar_height(100, 100_000) - bar_height(10, 100_000)
    step_high = bar_height(10_000, 100_000) - bar_height(1000, 100_000)
    assert step_low == pytest.approx(step_high, rel=0.1)
    timeline = build_timeline([version(1, "2024-01-01", first=True), version(2, "2024-06-01", 4000, 20)], link)
    assert [line.words for line in timeline.scale] == [10, 100, 1000]


def test_versions_closer_than_a_bar_share_one_whose_link_spans_them_all():
    start = day("2020-01-01")
    versions = [version(1, "2020-01-01", first=True)]
    # Three versions within an hour, five years into a long history.
    for number, minutes in ((2, 0), (3, 20), (4, 40)):
        moment = start + timedelta(days=5 * 365, minutes=minutes)
        versions.append({**version(number, "2020-01-01", 10 * number, number), "date": moment})
    versions.append(version(5, "2026-01-01", 7, 0))
    timeline = build_timeline(versions, link)
    shared = [mark for mark in timeline.marks if mark.versions == 3]
    assert len(shared) == 1
    bar = shared[0]
    assert (bar.added, bar.removed) == (20 + 30 + 40, 2 + 3 + 4)
    assert bar.href == "/v4?from=1"  # from the version before the first of the bar to its last
    assert sum(mark.versions for mark in timeline.marks) == len(versions)


def test_timeline_marks_technical_upgrades_and_extends_to_the_given_end():
    versions = [version(1, "2024-01-01", first=True), version(2, "2024-02-01", 3, 3, technical=True)]
    assert build_timeline(versions, link).marks[1].technical
    assert not build_timeline(versions, link).marks[0].technical
    # A document still tracked: the axis runs on to today, unless that silence would dwarf the history.
    timeline = build_timeline(versions, link, now=day("2024-02-10"))
    assert timeline.end == day("2024-02-10") and timeline.marks[1].x > timeline.left + 0.7 * (
        timeline.right - timeline.left)
    assert day("2024-02-01") < build_timeline(versions, link, now=day("2030-01-01")).end < day("2024-02-03")
    assert build_timeline([], link) is None


@pytest.mark.parametrize(("start", "end", "unit", "first_label"), [
    ("2019-05-03", "2026-02-01", "year", "2020"),
    ("2024-01-15", "2024-11-20", "month", "2024-02"),
    ("2024-03-01", "2024-03-20", "day", "2024-03-01"),
])
def test_axis_ticks_fall_on_round_dates_inside_the_range(start, end, unit, first_label):
    dates, found_unit = tick_dates(day(start), day(end))
    assert found_unit == unit
    assert 2 <= len(dates) <= 12
    assert all(day(start) <= moment <= day(end) for moment in dates)
    timeline = build_timeline([version(1, start, first=True), version(2, end, 1, 1)], link)
    assert timeline.ticks[0].label == first_label
    assert all(timeline.left <= tick.x <= timeline.right for tick in timeline.ticks)


# --------------------------------------------------------------------------- activity


def count(service: str, month: str, changes: int, added: int = 1, removed: int = 1) -> dict:
    return {"service_id": service, "month": month, "changes": changes, "words_added": added,
            "words_removed": removed}


def activity_link(service: str | None, month: str | None) -> str:
    return f"/changes?service={service or ''}&month={month or ''}"


def test_activity_grid_has_every_month_and_a_row_per_service_sorted_by_name():
    counts = [count("b", "2024-01", 1), count("b", "2024-05", 9), count("a", "2024-05", 2),
              count("c", "2024-05", 4), count("a", "2023-11", 1)]
    grid = build_activity(counts, {"a": "Zeta", "b": "alpha", "c": "Mu"}, activity_link)
    assert [column.month for column in grid.columns] == [
        "2023-11", "2023-12", "2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]
    assert [row.name for row in grid.rows] == ["alpha", "Mu", "Zeta"]
    may = grid.columns[-1]
    # The wave: every service changed in May; its bar is the tallest, its column full.
    assert (may.changes, may.services) == (15, 3)
    assert may.bar_height == max(column.bar_height for column in grid.columns)
    assert all(any(cell.month == "2024-05" for cell in row.cells) for row in grid.rows)
    alpha = grid.rows[0]
    assert [(cell.month, cell.level) for cell in alpha.cells] == [("2024-01", 1), ("2024-05", 5)]
    assert alpha.cells[1].x == may.x and alpha.cells[1].href == "/changes?service=b&month=2024-05"
    assert grid.columns[0].label == "2023" and grid.columns[2].label == "2024" and grid.columns[1].label == ""
    assert grid.to_json()["totals"] == {"2023-11": 1, "2024-01": 1, "2024-05": 15}


def test_activity_keeps_the_most_recent_months_and_says_so():
    counts = [count("a", f"{year}-06", 1) for year in range(2000, 2025)]
    grid = build_activity(counts, {}, activity_link)
    assert grid.truncated and len(grid.columns) == MAX_MONTHS
    assert grid.columns[-1].month == "2024-06"
    assert build_activity([], {}, activity_link) is None


def test_activity_levels_and_month_bounds():
    assert [level(n) for n in (1, 2, 3, 4, 5, 8, 9, 100)] == [1, 2, 3, 3, 4, 4, 5, 5]
    assert month_bounds("2024-02") == ("2024-02-01", "2024-02-29")
    assert month_bounds("2023-12") == ("2023-12-01", "2023-12-31")


# --------------------------------------------------------------------------- formatted diff


OLD = """# Terms

Intro paragraph that stays.

## Data

We collect your **name** and [email](https://a.example/x).

- item one
- item two

| a | b |
|---|---|
| 1 | 2 |

Last paragraph.
"""
NEW = OLD.replace("## Data", "### Data").replace("https://a.example/x", "https://b.example/x") \
    .replace("- item two", "- item 2\n- item three").replace("| 1 | 2 |", "| 1 | 3 |") \
    .replace("Last paragraph.", "Last paragraph changed.")


def rendered(old: str, new: str, context: int | None = None) -> str:
    return "".join(stretch.html for stretch in render_comparison(compare(old, new), context))


def test_formatted_diff_marks_words_inside_lists_tables_and_paragraphs():
    html = rendered(OLD, NEW)
    tree = lxml.html.fromstring(f"<div>{html}</div>")
    items = [lxml.html.tostring(li, encoding="unicode", with_tail=False) for li in tree.iter("li")]
    assert items == ["<li>item one</li>", "<li>item <del>two</del><ins>2</ins></li>", "<li><ins>item three</ins></li>"]
    cells = [cell.text_content() for cell in tree.iter("td")]
    assert cells == ["1", "23"] and "<td><del>2</del><ins>3</ins></td>" in html
    assert "<p>Last paragraph<ins> changed</ins>.</p>" in html
    # Unchanged structure is rendered as such.
    assert "<h2>Terms</h2>" in html and "<strong>name</strong>" in html and "<table>" in html


def test_a_changed_link_address_or_heading_level_shows_the_old_block_removed_and_the_new_added():
    html = rendered(OLD, NEW)
    assert re.search(r"<p><del>We collect your <strong>name</strong> and <a href=\"https://a\.example/x\"[^>]*>"
                     r"email</a>\.</del></p>\s*<p><ins>We collect your <strong>name</strong> and "
                     r"<a href=\"https://b\.example/x\"", html)
    assert "<h3><del>Data</del></h3>" in html and "<h4><ins>Data</ins></h4>" in html
    # No mark character leaks, and every mark became a tag.
    assert not re.search("[\u2e26-\u2e29]", html)
    assert html.count("<ins>") == html.count("</ins>") and html.count("<del>") == html.count("</del>")


def test_merged_lines_are_kept_only_when_they_render_faithfully():
    assert faithful(merge_pair("- a b c", "- a x c"), "- a b c", "- a x c")
    # A heading that changes level cannot be one line with marks.
    assert not faithful(merge_pair("## Title", "### Title"), "## Title", "### Title")
    # A link target that changes would put marks inside an address.
    old, new = "See [this](https://a.example/one).", "See [this](https://a.example/two)."
    assert not faithful(merge_pair(old, new), old, new)
    # Emphasis right next to a change still renders.
    old, new = "We **never** share it.", "We **may** share it."
    assert faithful(merge_pair(old, new), old, new)
    assert well_nested(f"<p>{INS_OPEN}a <em>b</em>\u2e29</p>") and not well_nested(f"<p>{INS_OPEN}a <em>b\u2e29</em></p>")
    assert not well_nested(f'<a href="x{DEL_OPEN}">')


def test_changed_lines_are_paired_with_the_line_they_became():
    old = ["First paragraph about data.", "", "Second paragraph about cookies."]
    new = ["First paragraph about personal data.", "", "A brand new paragraph.", "",
           "Second paragraph about tracking cookies."]
    pairs = pair_lines(old, new)
    assert ("First paragraph about data.", "First paragraph about personal data.") in pairs
    assert ("Second paragraph about cookies.", "Second paragraph about tracking cookies.") in pairs
    assert (None, "A brand new paragraph.") in pairs


def test_formatted_diff_folds_unchanged_paragraphs_far_from_changes():
    paragraphs = [f"Paragraph number {n} of the terms." for n in range(40)]
    old = "\n\n".join(paragraphs) + "\n"
    new = old.replace("number 20 of", "number twenty of")
    stretches = render_comparison(compare(old, new), 2)
    kinds = [stretch.kind for stretch in stretches]
    assert kinds == ["skip", "html", "skip"]
    assert stretches[0].lines + stretches[2].lines == 40 - 5  # two paragraphs each side, and the changed one
    assert stretches[1].anchor == "change-1" and "<del>20</del><ins>twenty</ins>" in stretches[1].html
    assert [stretch.kind for stretch in render_comparison(compare(old, new), None)] == ["html"]


def test_formatted_diff_is_sanitised_like_a_version_and_ignores_mark_characters_in_the_text():
    old = "Intro.\n"
    new = ("Intro.\n\nBon <script>alert(1)</script> [x](javascript:alert(2)) <img src=x onerror=alert(3)>\n\n"
           "Fake \u2e28marks\u2e29 and </ins><b>tags</b>.\n")
    html = rendered(old, new)
    tree = lxml.html.fromstring(f"<div>{html}</div>")
    assert not tree.xpath("//script | //img | //b | //*[@onerror] | //a[starts-with(@href, 'javascript')]")
    assert "&lt;script&gt;" in html and "&lt;/ins&gt;" in html  # shown as text, as on a version's page
    # The only <ins> elements are the two inserted paragraphs, marked by the diff.
    assert [ins.text_content()[:4] for ins in tree.iter("ins")] == ["Bon ", "Fake"]


# --------------------------------------------------------------------------- through the app


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return build_sample_archive(tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="module")
def client(sample):
    application = create_app(
        sample.data / "versions", sample.data / "snapshots", sample.declarations, sample.data / "index.sqlite",
        refresh_interval=0, testing=True,
    )
    yield application.test_client()
    application.extensions["termshift"].close()


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.data[:300]
    return response.get_data(as_text=True)


def test_document_page_draws_every_version_on_its_timeline(client, sample):
    data = client.get(f"{PRIVACY}.json?technical=1").get_json()
    bars = data["timeline"]["bars"]
    assert sum(bar["versions"] for bar in bars) == data["pagination"]["total"] == 4
    assert bars[0]["first_record"] and "/diff" not in bars[0]["url"]
    # The technical upgrade shares its date with the change it follows: one bar for both.
    assert [bar["versions"] for bar in bars] == [1, 2, 1]
    assert unquote(bars[1]["url"]).endswith("/diff?from=2024-01-10T10:00:00Z")
    html = page(client, PRIVACY)
    tree = lxml.html.fromstring(html)
    svg = tree.cssselect("svg.timeline-chart")[0]
    links = [a.get("href") for a in svg.iter("{*}a", "a") if a.get("href")]
    hidden = client.get(f"{PRIVACY}.json").get_json()["timeline"]["bars"]
    assert links == [bar["url"] for bar in hidden]
    for href in links:  # every bar leads to a page that exists
        assert client.get(href).status_code == 200, href
    assert "style=" not in lxml.html.tostring(svg, encoding="unicode")  # the CSP forbids inline styles


def test_changes_page_shows_which_services_changed_when(client):
    data = client.get("/-/changes.json?technical=1").get_json()
    activity = data["activity"]
    changes = [c for c in data["changes"] if not c["is_first_record"]]
    expected: dict[tuple[str, str], int] = {}
    for change in changes:
        key = (change["service_id"], change["date"][:7])
        expected[key] = expected.get(key, 0) + 1
    found = {(service["id"], month): cell["changes"] for service in activity["services"]
             for month, cell in service["months"].items()}
    assert found == expected and found
    # A square's link lists exactly that service's changes of that month.
    cell = activity["services"][0]["months"][next(iter(activity["services"][0]["months"]))]
    query = parse_qs(urlsplit(cell["url"]).query)
    listed = client.get(urlsplit(cell["url"]).path + ".json?" + urlsplit(cell["url"]).query).get_json()
    month = query["from"][0][:7]
    assert all(c["service_id"] == query["service"][0] and c["date"].startswith(month) for c in listed["changes"])
    assert len([c for c in listed["changes"] if not c["is_first_record"]]) == cell["changes"]
    assert client.get("/-/changes.json?page=2").get_json()["activity"] is None  # drawn above page 1 only
    html = page(client, "/-/changes?lang=en")
    assert 'class="activity-chart"' in html and "Activity by service and month" in html
    french = page(client, "/-/changes?lang=fr")
    assert "Activité par service et par mois" in french and "Changements dans le mois" in french


def test_diff_page_offers_the_formatted_view_and_its_json(client, sample):
    url = f"{PRIVACY}/{sample.ids['privacy_2']}/diff"
    html = page(client, url + "?view=rendered")
    tree = lxml.html.fromstring(html)
    section = tree.cssselect("section.rendered-diff")[0]
    inserted = " ".join(ins.text_content() for ins in section.iter("ins"))
    removed = " ".join(d.text_content() for d in section.iter("del"))
    assert "advertising partners" in inserted and "never" in removed
    assert not tree.cssselect("table.diff")  # the source table is the other view
    assert 'aria-current="true" data-view="rendered"' in html
    data = client.get(url + ".json?view=rendered").get_json()
    assert any("<ins>" in stretch.get("html", "") for stretch in data["rendered"])
    assert "rendered" not in client.get(url + ".json").get_json()
    assert client.get(url + "?view=pretty").status_code == 400
    assert "Texte mis en forme" in page(client, url + "?view=rendered&lang=fr")


def test_diff_page_cites_both_versions_and_their_snapshots_with_a_permalink(client, sample):
    ids = sample.ids
    url = f"{PRIVACY}/{ids['privacy_3']}/diff"
    data = client.get(url + ".json").get_json()
    citation = data["citation"]
    assert citation["service"] == {"id": "Acme", "name": "Acme Corp"}
    assert citation["old"]["version_id"] == ids["privacy_technical"]
    assert citation["new"]["version_id"] == ids["privacy_3"]
    assert citation["new"]["snapshot_ids"] == [ids["privacy_snapshot_3"]]
    assert citation["old"]["date"] == "2024-03-18T18:30:09Z" and citation["new"]["date"] == "2024-06-01T00:00:00Z"
    permalink = urlsplit(citation["permalink"])
    assert permalink.scheme == "http" and ids["privacy_3"] in permalink.path
    assert parse_qs(permalink.query)["from"] == [ids["privacy_technical"]]
    same = client.get(unquote(permalink.path) + ".json?" + permalink.query).get_json()
    assert (same["old"]["id"], same["new"]["id"]) == (ids["privacy_technical"], ids["privacy_3"])
    html = page(client, url + "?lang=en")
    block = lxml.html.fromstring(html).cssselect("section.citation")[0].text_content()
    for value in (ids["privacy_technical"], ids["privacy_3"], ids["privacy_snapshot_2"], ids["privacy_snapshot_3"],
                  "Acme Corp", "Privacy Policy", "2024-06-01 00:00 UTC"):
        assert value in block, value
    assert "Citer ce changement" in page(client, url + "?lang=fr")


def test_a_first_record_is_cited_alone(client, sample):
    data = client.get(f"/Acme/Terms%20of%20Service/{sample.ids['tos_1']}/diff.json").get_json()
    assert data["citation"]["old"] is None
    assert data["citation"]["new"]["snapshot_ids"] == [sample.ids["tos_snapshot_a"], sample.ids["tos_snapshot_b"]]
    html = page(client, f"/Acme/Terms%20of%20Service/{sample.ids['tos_1']}/diff?lang=en")
    assert "first version recorded on 2024-01-12 08:00 UTC" in html
    formatted = page(client, f"/Acme/Terms%20of%20Service/{sample.ids['tos_1']}/diff?view=rendered")
    assert 'class="rendered-diff rd-first"' in formatted and "shown without marks" in formatted


def test_timeline_of_a_busy_history_groups_versions_of_the_same_hours(tmp_path):
    """Two versions an hour apart every day for a month: pairs share a bar."""
    factory = ArchiveFactory(tmp_path / "data")
    start = day("2020-01-01")
    text = "Intro.\n"
    for number in range(60):
        text += f"\nClause {number}.\n"
        moment = start + timedelta(days=number // 2, hours=number % 2)
        factory.version("Big", "Terms", moment.strftime("%Y-%m-%dT%H:%M:%SZ"), text)
    application = create_app(factory.versions, None, None, tmp_path / "index.sqlite", refresh_interval=0,
                             testing=True)
    try:
        client = application.test_client()
        bars = client.get("/Big/Terms.json").get_json()["timeline"]["bars"]
        assert sum(bar["versions"] for bar in bars) == 60
        assert 30 <= len(bars) < 40 and max(bar["versions"] for bar in bars) == 2
        # Each clause adds two words; the first record's words are not "added".
        assert all(bar["words_added"] == 2 * bar["versions"] for bar in bars if not bar["first_record"])
        pair = next(bar for bar in bars[1:] if bar["versions"] == 2)
        before = datetime.fromisoformat(pair["start"].replace("Z", "+00:00")) - timedelta(hours=23)
        assert unquote(pair["url"]).endswith(f"/diff?from={before:%Y-%m-%dT%H:%M:%S}Z")
    finally:
        application.extensions["termshift"].close()
