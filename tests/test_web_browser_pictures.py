"""The pictures in a real Chromium: timeline, collection activity, formatted diff, citation, print.

The real `termshift serve` runs on 127.0.0.1 over an archive written for these tests
(three services changing over two years, then all of them in the same month: a "wave").
Screenshots go to $TERMSHIFT_SCREENSHOTS when set (to look at them), else to a temporary
folder. Skipped cleanly when Playwright or /usr/bin/chromium is missing.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.archive_factory import ArchiveFactory, write_declarations
from tests.test_web_browser import CHROMIUM, CHROMIUM_ARGS, ROOT, free_port

pytestmark = pytest.mark.browser

BASE_TEXT = """# Terms of use

Welcome to the service.

## Your data

We collect your **name** and your [email address](https://example.org/email).

- You may ask for a copy.
- You may ask us to delete it.

| Data | Kept for |
|---|---|
| Name | 1 year |
| Email | 2 years |

## Disputes

The courts of Paris have jurisdiction.
"""


def evolve(text: str, step: int) -> str:
    """The terms after `step` edits: a clause grows, a table cell changes, a paragraph appears."""
    text = text.replace("| 1 year |", f"| {step + 1} years |") if step else text
    extra = "".join(f"\n## Clause {n}\n\nThe provider may change clause {n} at any time.\n" for n in range(step))
    return text + extra


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    factory = ArchiveFactory(root / "data")
    ids: dict[str, str] = {}
    for service, offset in (("Acme", 0), ("Bolt", 1), ("Café & Co", 2)):
        for step in range(6):
            month = 1 + offset + 3 * step  # 2023: a change every third month, services shifted
            year, month = 2023 + (month - 1) // 12, (month - 1) % 12 + 1
            date = f"{year}-{month:02d}-1{offset}T09:00:00Z"
            ids[f"{service}-{step}"] = factory.record(service, "Terms of Service", date, f"<main>{step}</main>",
                                                      evolve(BASE_TEXT, step))[1]
        # The wave: a new law comes into force, every service updates in June 2025.
        wave = evolve(BASE_TEXT, 6).replace("The courts of Paris", "The courts of the European Union")
        ids[f"{service}-wave"] = factory.record(service, "Terms of Service", f"2025-06-0{offset + 2}T10:00:00Z",
                                                "<main>wave</main>", wave)[1]
    declarations = write_declarations(root / "declarations")
    return root, factory, declarations, ids


@pytest.fixture(scope="module")
def server(archive):
    root, factory, declarations, _ids = archive
    port = free_port()
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(root / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-m", "termshift.cli", "serve", "--versions", str(factory.versions),
         "--snapshots", str(factory.snapshots), "--declarations", str(declarations),
         "--index", str(root / "index.sqlite"), "--host", "127.0.0.1", "--port", str(port)],
        cwd=root, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/index.json", timeout=2) as answer:
                if b"Terms of Service" in answer.read():
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("termshift serve did not start:\n" + process.stdout.read().decode())
        time.sleep(0.1)
    yield base
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    args = CHROMIUM_ARGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.console = []  # CSP violations and script errors are reported on the console
    page.on("console", lambda message: page.console.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: page.console.append(str(error)))
    yield page
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("TERMSHIFT_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_timeline_bars_show_each_change_and_lead_to_it(server, page, shots):
    page.goto(server + "/Acme/Terms%20of%20Service")
    chart = page.locator("svg.timeline-chart")
    box = chart.bounding_box()
    assert box["width"] > 900 and 100 < box["height"] < 260  # drawn across the page, not a thumbnail
    bars = page.locator("svg.timeline-chart a.mark")
    assert bars.count() == 7
    # Words added go up, words removed go down, in the page's colours.
    added = page.locator("svg.timeline-chart rect.added").first
    assert added.evaluate("e => getComputedStyle(e).fill") == "rgb(21, 88, 168)"
    heights = [float(h) for h in page.locator("svg.timeline-chart rect.added").evaluate_all(
        "els => els.map(e => e.getAttribute('height'))")]
    assert max(heights) > min(heights) > 0
    page.screenshot(path=str(shots / "timeline.png"))
    # The tooltip names the date and the figures; clicking leads to that change.
    title = bars.nth(6).locator("title").text_content()
    assert "2025-06-02" in title and "words added" in title
    bars.nth(6).locator("rect.hit").click()
    page.wait_for_url("**/diff*")
    assert "/Acme/Terms%20of%20Service/2025-06-02T10:00:00Z/diff" in page.url
    assert page.locator("h1").inner_text().startswith("Changes to the Terms of Service")
    assert page.console == []


def test_the_wave_shows_as_a_column_and_each_square_lists_its_changes(server, page, shots):
    page.goto(server + "/-/changes")
    chart = page.locator("svg.activity-chart")
    assert chart.is_visible()
    page.screenshot(path=str(shots / "activity.png"))
    june = page.locator("svg.activity-chart a.month-total", has=page.locator("title", has_text="2025-06"))
    heights = page.locator("svg.activity-chart a.month-total rect").evaluate_all(
        "els => els.map(e => parseFloat(e.getAttribute('height')))")
    assert float(june.locator("rect").get_attribute("height")) == max(heights)
    assert "3 changes, 3 services" in june.locator("title").text_content()
    # Every service has a square in June 2025, in the same column.
    squares = page.locator("svg.activity-chart a.cell", has=page.locator("title", has_text="2025-06"))
    assert squares.count() == 3
    assert len(set(squares.locator("rect").evaluate_all("els => els.map(e => e.getAttribute('x'))"))) == 1
    squares.first.locator("rect").click()
    page.wait_for_url("**/-/changes?*")
    query = parse_qs(urlsplit(page.url).query)
    assert query["service"] == ["Acme"] and query["from"] == ["2025-06-01"] and query["to"] == ["2025-06-30"]
    rows = page.locator("table.list tbody tr")
    assert rows.count() == 1 and "2025-06-02" in rows.first.inner_text()
    assert page.console == []


def test_formatted_diff_reads_like_tracked_changes(server, archive, page, shots):
    ids = archive[3]
    page.goto(server + f"/Bolt/Terms%20of%20Service/{ids['Bolt-2']}/diff?view=rendered")
    section = page.locator("section.rendered-diff")
    # The table is a table, its changed cell marked; the new section's heading is a heading.
    cell = section.locator("td", has=page.locator("ins"))
    assert cell.locator("del").inner_text() == "2" and cell.locator("ins").inner_text() == "3"
    assert section.locator("h3 ins", has_text="Clause 1").count() == 1
    ins_colour = section.locator("ins").first.evaluate("e => getComputedStyle(e).backgroundColor")
    del_colour = section.locator("del").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert ins_colour != del_colour and "0, 0, 0, 0" not in ins_colour
    assert section.locator("del").first.evaluate("e => getComputedStyle(e).textDecorationLine") == "line-through"
    page.screenshot(path=str(shots / "rendered-diff.png"), full_page=True)
    # Its tabs: the source view is one click away.
    page.get_by_role("link", name="Inline").click()
    page.wait_for_selector("table.diff")
    assert page.console == []


def test_citation_prints_cleanly_to_pdf(server, archive, page, shots):
    pypdf = pytest.importorskip("pypdf")
    ids = archive[3]
    page.goto(server + f"/Caf%C3%A9%20%26%20Co/Terms%20of%20Service/{ids['Café & Co-wave']}/diff?view=rendered")
    citation = page.locator("section.citation")
    assert ids["Café & Co-wave"] in citation.inner_text() and ids["Café & Co-5"] in citation.inner_text()
    assert page.locator(".print-button").is_visible()  # shown by the script, hidden without it
    permalink = citation.locator("a.permalink").get_attribute("href")
    page.emulate_media(media="print")
    assert not page.locator(".site-header").is_visible() and not page.locator(".diff-tools").is_visible()
    assert citation.is_visible() and not page.locator(".print-button").is_visible()
    page.screenshot(path=str(shots / "diff-print.png"))
    pdf = page.pdf(format="A4")
    (shots / "diff.pdf").write_bytes(pdf)
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages).replace("\n", "")
    for value in (ids["Café & Co-wave"], ids["Café & Co-5"], "Café & Co", "Cite this change", "European Union"):
        assert value in text, value
    assert "Latest changes" not in text and "Keyboard" not in text  # no navigation on paper
    # The permalink names both versions by their ids and shows the same change.
    page.emulate_media(media="screen")
    page.goto(permalink)
    assert ids["Café & Co-wave"] in page.url and page.locator("section.citation").is_visible()
    assert page.console == []


def test_pictures_speak_french(server, page, shots):
    page.goto(server + "/Acme/Terms%20of%20Service?lang=fr")
    assert "Chaque barre est un changement" in page.locator("#timeline-caption").inner_text()
    title = page.locator("svg.timeline-chart a.mark title").nth(3).text_content()
    assert "mots ajoutés" in title
    page.goto(server + "/-/changes?lang=fr")
    assert page.locator("#activity-heading").inner_text() == "Activité par service et par mois"
    assert "3 changements" in page.locator("svg.activity-chart a.month-total title").last.text_content()
    page.screenshot(path=str(shots / "activity-fr.png"))
    page.goto(server + "/Acme/Terms%20of%20Service/2025-06-02T10:00:00Z/diff?view=rendered&lang=fr")
    assert page.locator("#citation-heading").inner_text().startswith("Citer ce changement")
    assert page.get_by_role("link", name="Texte mis en forme").get_attribute("aria-current") == "true"
    page.screenshot(path=str(shots / "diff-fr.png"))
    assert page.console == []


def test_on_a_phone_the_timeline_scrolls_rather_than_shrinks(server, browser, shots):
    context = browser.new_context(locale="en-GB", viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        page.goto(server + "/Acme/Terms%20of%20Service")
        chart = page.locator("svg.timeline-chart")
        assert chart.bounding_box()["width"] >= 700  # labels keep a readable size…
        scroller = page.locator(".timeline-picture .picture-scroll")
        assert scroller.evaluate("e => e.scrollWidth > e.clientWidth")  # …and the picture scrolls
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the page itself does not
        page.screenshot(path=str(shots / "timeline-phone.png"))
    finally:
        context.close()
