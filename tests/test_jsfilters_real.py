"""Real filters of OTA collections, unchanged, on small pages where their selectors match.

The filters are in tests/fixtures/jsfilters (see its README for their origin and licence); the
zoo of ../shared/corpus/jsfilters (every filters file of three collections) must load and pass
`validate` too, when it is there.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from termshift.declarations import load_collection
from termshift.errors import ExtractError
from termshift.jsfilters import filters_at
from termshift.trackers.extract import extract
from termshift.validate import validate_collection

FIXTURES = Path(__file__).parent / "fixtures" / "jsfilters"
ZOO = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "jsfilters" / "zoo"
NBSP = "\u00a0"


def page(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head>{head}</head><body><main>{body}</main></body></html>"


# (service, location, filters, page, expected Markdown)
CASES = [
    ("Zoom", "https://zoom.us/terms", ["removeAmpDeviceId"],
     page('<a href="/privacy?amp_device_id=abc123&amp;x=1">Privacy</a>'),
     "[Privacy](https://zoom.us/privacyx=1)"),  # the real regular expression takes the "?" too, as in OTA
    ("Booking.com", "https://www.booking.com/content/terms.html", ["removeLabelAndSidFromUrls"],
     page('<a href="/content/privacy.html?label=gen173&amp;sid=abc;lang=en">Privacy</a>'),
     "[Privacy](https://www.booking.com/content/privacy.html?&lang=en)"),
    ("Yuka", "https://yuka.io/en/privacy/", ["replaceDaysAgo"],
     page('<h1>Privacy</h1><div><img src="a.png"><div>Updated 3 days ago by Julie</div></div>',
          '<meta property="article:modified_time" content="2024-05-01T10:00:00+00:00">'),
     "Privacy\n=======\n\n![](a.png)\n\nUpdated 2024-05-01T10:00:00+00:00 by Julie"),
    ("happn", "https://www.happn.com/en/privacy", ["replaceEmailProtection"],
     page('<p>Write to <a href="/cdn-cgi/l/email-protection#a1b2c3">[email&#160;protected]</a></p>'),
     f"Write to [\\[email{NBSP}protected\\]](https://www.happn.com/cdn-cgi/l/email-protection)"),
    ("Alibaba", "https://rule.alibaba.com/rule/detail/2034.htm", ["replaceNonBreakingSpaces"],
     page("<p>Terms&nbsp;of&nbsp;use</p><p>a\u00a0b</p>"),
     # innerHTML writes U+00A0 as "&nbsp;", so in jsdom (and so in OTA) this filter changes nothing
     f"Terms{NBSP}of{NBSP}use\n\na{NBSP}b"),
    ("H&M", "https://www2.hm.com/fr_fr/customer-service/legal.html", ["fixBrTag"],
     page("<p><b>Title<br></b>Text</p>"),
     "**Title**  \nText"),
    ("Quora", "https://www.quora.com/about/privacy", ["replaceTimeAgoByDate"],
     page('<p>Updated <time datetime="2023-01-02">2 days ago</time>.</p>'),
     "Updated 2023-01-02."),
    ("Vertbaudet", "https://www.vertbaudet.fr/cgv", ["removeJavascriptLinks", "stopImagesSourcesBlinking"],
     page('<p><a href="javascript:openPopup()">Open</a></p>'
          '<img alt="x" src="https://www.vertbaudet.fr/fstrz/r/s/c/media.vertbaudet.fr/medias/x.png?frz-v=123">'),
     "Open\n\n![x](https://media.vertbaudet.fr/medias/x.png)"),
    ("Bitwarden", "https://bitwarden.com/terms/", ["removeEmptySVGLinks"],
     page('<p>Text</p><a href="/home"><svg viewBox="0 0 1 1"></svg></a><p><a href="/x">kept</a></p>'),
     "Text\n\n[kept](https://bitwarden.com/x)"),
    ("Google", "https://policies.google.com/terms", ["removeUTMfromUrls", "removeCountryVersion"],
     page('<p><a data-name="country-version" href="#cv">Country version</a></p>'
          '<p><a href="https://policies.google.com/x?utm_source=a&amp;hl=en">Link</a></p>'
          '<h3 id="footnote-country-version">Country version</h3><p>Country text</p>'
          '<h3 id="footnote-disclaimer">Disclaimer</h3><p>Disclaimer text</p>'),
     "[Link](https://policies.google.com/x?hl=en)\n\n### Disclaimer\n\nDisclaimer text"),
    ("Gmail", "https://policies.google.com/terms?gmail", ["removeUTMfromUrls"],  # re-exported from Google's file
     page('<p><a href="https://support.google.com/mail?utm_medium=b&amp;x=1">Help</a></p>'),
     "[Help](https://support.google.com/mail?x=1)"),
    ("Iberia", "https://www.iberia.com/fr/conditions/", ["makePreviousVersionsLinksClickable", "removeEmptyLinks"],
     page('<p><a title="Old" data-contenttype="T" data-contentorigin="O" data-contentid="7" href="#">Old</a> '
          '<a href="#">Top</a></p>'),
     "[Old](https://www.iberia.com/cs/Satellite?pagename=IB_SE%2FCacheControl6h%2FBrowserCache3600%2FPage%2F"
     "ShowModal&locale=fr&market=FR&assettype=T&assetid=7&origin=O&modalTitle=Old&url=%23&d= \"Old\") Top"),
    ("Twitter", "https://twitter.com/en/tos", ["removeBanner", "removeEmptyLinks"],
     page('<div class="ap01-breadcrumb">Home &gt; Terms</div><p>Terms <a href="/x"> </a>text</p>'),
     "Terms text"),
    ("Cdiscount", "https://www.cdiscount.com/cgv.html", ["recoverReplacementCharacters"],
     page("<p>L\ufffd\ufffd\ufffdutilisation est r\ufffd\ufffdserv\ufffd\ufffde</p>"),
     "L'utilisation est réservée"),
]


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("declarations")
    for path in FIXTURES.glob("*.js"):
        shutil.copy(path, directory)
    for service_id, location, filters, _page, _expected in CASES:
        terms = {"Terms of Service": {"fetch": location, "select": "main", "filter": filters}}
        (directory / f"{service_id}.json").write_text(json.dumps({"name": service_id, "terms": terms}))
    return directory


def test_the_copied_filters_load_and_pass_validate(collection: Path):
    report = validate_collection(collection, schema_only=True)
    assert {service: [str(error) for error in errors] for service, errors in report.errors.items() if errors} == {}
    assert sorted(load_collection(collection).services) == sorted(case[0] for case in CASES)


@pytest.mark.parametrize(("service_id", "expected"), [(case[0], case[4]) for case in CASES],
                         ids=[case[0] for case in CASES])
def test_a_real_filter_does_on_its_page_what_it_was_written_for(collection: Path, service_id: str, expected: str):
    service = load_collection(collection, service_ids=[service_id]).services[service_id]
    page_html = next(case[3] for case in CASES if case[0] == service_id)
    document = service.terms["Terms of Service"].documents[0]
    assert extract(page_html, "text/html", document, service.filters) == expected


def test_vertbaudets_filter_history_applies_before_its_date(collection: Path):
    service = load_collection(collection, service_ids=["Vertbaudet"]).services["Vertbaudet"]
    document = service.terms["Terms of Service"].documents[0]
    page_html = next(case[3] for case in CASES if case[0] == "Vertbaudet")
    before = datetime(2022, 2, 23, 12, 35, 3, tzinfo=UTC)  # validUntil 2022-02-23T13:35:03+01:00, inclusive
    # The first entry only mapped two known image addresses; query parameters were removed already.
    assert extract(page_html, "text/html", document, filters_at(service.filters, before)) == (
        "Open\n\n![x](https://www.vertbaudet.fr/fstrz/r/s/c/media.vertbaudet.fr/medias/x.png)")


def test_a_real_filter_that_meets_a_page_without_its_element_fails_as_in_ota(collection: Path):
    service = load_collection(collection, service_ids=["Twitter"]).services["Twitter"]
    document = service.terms["Terms of Service"].documents[0]
    with pytest.raises(ExtractError) as raised:
        extract(page("<p>No banner</p>"), "text/html", document, service.filters)
    assert str(raised.value) == ('The filter function "removeBanner" failed: TypeError: Cannot read properties '
                                 "of null (reading 'remove')")


@pytest.mark.skipif(not ZOO.is_dir(), reason="../shared/corpus/jsfilters is not available")
def test_every_filters_file_of_the_zoo_loads_and_passes_validate(tmp_path: Path):
    files = sorted(ZOO.glob("*/*.js"))
    assert len(files) == 47
    for folder in sorted(ZOO.iterdir()):
        directory = tmp_path / folder.name
        shutil.copytree(folder, directory)
        services = sorted({path.name.split(".filters.")[0] for path in folder.glob("*.js")})
        for service_id in services:
            # A declaration that calls every filter the files export, each as it is called in OTA.
            names = sorted(load_collection_names(directory, service_id))
            terms = {"Terms of Service": {"fetch": "https://example.com/terms", "select": "main", "filter": names}}
            (directory / f"{service_id}.json").write_text(json.dumps({"name": service_id, "terms": terms}))
        report = validate_collection(directory, schema_only=True)
        assert {service: [str(error) for error in errors]
                for service, errors in report.errors.items() if errors} == {}, folder.name
        assert sorted(load_collection(directory).services) == services


def load_collection_names(directory: Path, service_id: str) -> list[str]:
    """The names a service's filters files export (current functions only, as declarations use them)."""
    from termshift.jsfilters import load_js_filters

    main = directory / f"{service_id}.filters.js"
    history = directory / f"{service_id}.filters.history.js"
    filters = load_js_filters(main, history if history.is_file() else None)
    return [name for name, function in filters.items() if name in function.file.exports]
