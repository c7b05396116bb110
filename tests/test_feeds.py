"""Atom and RSS feeds: served by the real blueprint from real git archives, read back with
feedparser and a strict XML parser."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
from flask import Flask
from lxml import etree

from termshift.alerts import store
from termshift.archive_repo import listing
from termshift.config import load_settings
from termshift.web.feed_routes import blueprint
from tests.support.alerts import VersionsRepo

BASE = "https://terms.example.org"
TOS = "Terms of Service"
PRIVACY = "Privacy Policy"

POLICY_V1 = """# Privacy Policy

We collect your e-mail address. We keep it for one year.

## Sharing

We never share your data.
"""
POLICY_V2 = POLICY_V1.replace("We never share your data.", "We may share your data with our advertising partners.")
POLICY_V3 = POLICY_V2.replace("We keep it for one year.", "We keep it for five years.")


def declare(directory: Path, service_id: str, types: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    terms = {t: {"fetch": f"https://{service_id.lower()}.example/{i}", "select": "main"} for i, t in enumerate(types)}
    (directory / f"{service_id}.json").write_text(json.dumps({"name": service_id, "terms": terms}), encoding="utf-8")


@pytest.fixture
def archive_dir(tmp_path: Path):
    """Acme (declared: ToS + Privacy Policy), Bolt (declared, never recorded), and
    "Café & Co" (recorded, no longer declared)."""
    data = tmp_path / "data"
    repo = VersionsRepo(data)
    recorded = {
        "privacy_first": repo.record("Acme", PRIVACY, POLICY_V1),
        "tos_first": repo.record("Acme", TOS, "# Terms\n\nBe nice.\n"),
        "privacy_change": repo.record("Acme", PRIVACY, POLICY_V2),
        "technical": repo.record("Acme", PRIVACY, POLICY_V2 + "\nFooter.\n", kind="technical"),
        "cafe_first": repo.record("Café & Co", TOS, "# Conditions <générales>\n\nBon appétit.\n"),
    }
    declarations = tmp_path / "declarations"
    declare(declarations, "Acme", [TOS, PRIVACY])
    declare(declarations, "Bolt", [TOS])
    return data, declarations, repo, recorded


def make_client(data: Path, declarations: Path, length: int = 100):
    settings = load_settings(environ={}, overrides={
        "": {"data": str(data), "declarations": str(declarations)},
        "feeds": {"length": length},
        "web": {"base_url": BASE},
    })
    app = Flask(__name__)
    app.config.update(SETTINGS=settings)
    app.register_blueprint(blueprint)
    return app.test_client()


def strict(body: bytes) -> etree._Element:
    """Raises on anything that is not well-formed XML (no recovery)."""
    return etree.fromstring(body, parser=etree.XMLParser(recover=False, resolve_entities=False))


def test_collection_atom_feed_lists_new_versions_newest_first(archive_dir):
    data, declarations, _repo, recorded = archive_dir
    response = make_client(data, declarations).get("/feed.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    root = strict(response.data)
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"

    feed = feedparser.parse(response.data)
    assert not feed.bozo, feed.bozo_exception
    ids = [entry.id for entry in feed.entries]
    expected = [recorded[key].id for key in ("cafe_first", "privacy_change", "tos_first", "privacy_first")]
    assert ids == [f"tag:terms.example.org,2026:version:{version_id}" for version_id in expected]
    assert recorded["technical"].id not in response.get_data(as_text=True)  # technical upgrades are left out
    assert feed.feed.id == "tag:terms.example.org,2026:feed"
    assert feed.feed.updated_parsed[:6] == recorded["cafe_first"].fetch_date.timetuple()[:6]


def test_entries_carry_title_summary_diff_link_and_record_type(archive_dir):
    data, declarations, _repo, recorded = archive_dir
    feed = feedparser.parse(make_client(data, declarations).get("/feed.atom").data)
    change = next(e for e in feed.entries if e.id.endswith(recorded["privacy_change"].id))
    first = next(e for e in feed.entries if e.id.endswith(recorded["privacy_first"].id))

    # The change: counts in the title, the changed sentence in the summary, a link to the diff page.
    assert change.title == "Acme Privacy Policy changed (+5/−1 words)"
    assert change.summary.startswith("+5/−1 words: ")
    assert "We may share your data with our advertising partners." in change.summary
    assert change.link == f"{BASE}/Acme/Privacy%20Policy/{recorded['privacy_change'].id}/diff"
    assert {t.term for t in change.tags} == {"Acme", PRIVACY, "Change"}
    assert change.updated_parsed[:6] == recorded["privacy_change"].fetch_date.timetuple()[:6]

    # The first record is marked as such and links to the version (nothing to diff against).
    assert first.title == "Acme Privacy Policy: first record"
    assert first.summary == "First record: 20 words."
    assert "First record" in {t.term for t in first.tags}
    assert first.link == f"{BASE}/Acme/Privacy%20Policy/{recorded['privacy_first'].id}"


def test_rss_feed_has_the_same_entries(archive_dir):
    data, declarations, _repo, recorded = archive_dir
    response = make_client(data, declarations).get("/feed.rss")
    assert response.status_code == 200
    assert response.mimetype == "application/rss+xml"
    assert strict(response.data).tag == "rss"
    feed = feedparser.parse(response.data)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "rss20"
    assert [e.id for e in feed.entries] == [
        f"tag:terms.example.org,2026:version:{recorded[k].id}"
        for k in ("cafe_first", "privacy_change", "tos_first", "privacy_first")
    ]
    assert feed.entries[1].guidislink is False
    assert feed.entries[1].summary.startswith("+5/−1 words")


def test_service_and_document_feeds_are_filtered_and_escaped(archive_dir):
    data, declarations, _repo, recorded = archive_dir
    client = make_client(data, declarations)

    acme = feedparser.parse(client.get("/feed/Acme.atom").data)
    assert [e.id.rsplit(":", 1)[1] for e in acme.entries] == [
        recorded[k].id for k in ("privacy_change", "tos_first", "privacy_first")
    ]
    assert acme.feed.id == "tag:terms.example.org,2026:feed:Acme"

    document = feedparser.parse(client.get("/feed/Acme/Privacy%20Policy.rss").data)
    assert [e.id.rsplit(":", 1)[1] for e in document.entries] == [
        recorded[k].id for k in ("privacy_change", "privacy_first")
    ]

    # A service id with a space, an ampersand and accents; content with angle brackets.
    response = client.get("/feed/Caf%C3%A9%20%26%20Co/Terms%20of%20Service.atom")
    assert response.status_code == 200
    strict(response.data)
    cafe = feedparser.parse(response.data)
    assert cafe.entries[0].title == "Café & Co Terms of Service: first record"
    assert cafe.entries[0].link == f"{BASE}/Caf%C3%A9%20%26%20Co/Terms%20of%20Service/{recorded['cafe_first'].id}"
    assert cafe.feed.id == "tag:terms.example.org,2026:feed:Caf%C3%A9%20%26%20Co:Terms%20of%20Service"


def test_unknown_service_or_terms_type_is_404_and_declared_but_empty_is_200(archive_dir):
    data, declarations, _repo, _recorded = archive_dir
    client = make_client(data, declarations)
    assert client.get("/feed/Nobody.atom").status_code == 404
    assert client.get("/feed/acme.atom").status_code == 404  # ids are case-sensitive
    assert client.get("/feed/Acme/Cookie%20Policy.rss").status_code == 404
    assert client.get("/feed/Acme.xml").status_code == 404

    empty = client.get("/feed/Bolt/Terms%20of%20Service.atom")
    assert empty.status_code == 200
    feed = feedparser.parse(empty.data)
    assert feed.entries == []
    assert feed.feed.updated_parsed[:6] == (1970, 1, 1, 0, 0, 0)  # the epoch, so conditional GET still works
    assert empty.headers["Last-Modified"] == "Thu, 01 Jan 1970 00:00:00 GMT"


def test_length_setting_keeps_only_the_newest_entries(archive_dir):
    data, declarations, _repo, recorded = archive_dir
    feed = feedparser.parse(make_client(data, declarations, length=2).get("/feed.atom").data)
    assert [e.id.rsplit(":", 1)[1] for e in feed.entries] == [
        recorded[k].id for k in ("cafe_first", "privacy_change")
    ]


def test_conditional_get_answers_304_until_a_new_version_arrives(archive_dir):
    data, declarations, repo, recorded = archive_dir
    client = make_client(data, declarations)
    first = client.get("/feed/Acme.atom")
    tag = first.headers["ETag"]
    modified = first.headers["Last-Modified"]
    assert modified == format_datetime(recorded["privacy_change"].fetch_date, usegmt=True)

    assert client.get("/feed/Acme.atom", headers={"If-None-Match": tag}).status_code == 304
    assert client.get("/feed/Acme.atom", headers={"If-Modified-Since": modified}).status_code == 304
    earlier = format_datetime(recorded["privacy_change"].fetch_date - timedelta(seconds=1), usegmt=True)
    assert client.get("/feed/Acme.atom", headers={"If-Modified-Since": earlier}).status_code == 200
    assert client.get("/feed/Acme.atom", headers={"If-None-Match": '"other"'}).status_code == 200
    # The same request gives the same bytes (the ETag is a strong validator).
    assert client.get("/feed/Acme.atom").data == first.data
    assert client.get("/feed/Acme.rss").headers["ETag"] != tag

    newer = repo.record("Acme", PRIVACY, POLICY_V3)
    again = client.get("/feed/Acme.atom", headers={"If-None-Match": tag, "If-Modified-Since": modified})
    assert again.status_code == 200
    assert again.headers["ETag"] != tag
    entries = feedparser.parse(again.data).entries
    assert entries[0].id.endswith(newer.id)
    # Compared with the text just before it, the technical upgrade's "Footer." included.
    assert entries[0].title == "Acme Privacy Policy changed (+2/−3 words)"
    assert "“We keep it for five years.”" in entries[0].summary
    # Entry ids did not move when a new entry came in.
    assert [e.id for e in entries[1:]] == [e.id for e in feedparser.parse(first.data).entries]


def test_git_fallback_reads_flags_and_skips_non_records(archive_dir):
    data, _declarations, _repo, recorded = archive_dir
    everything = listing.list_versions(data, limit=10, include_technical_upgrades=True)
    assert [v.id for v in everything] == [
        recorded[k].id for k in ("cafe_first", "technical", "privacy_change", "tos_first", "privacy_first")
    ]  # the README commit at the root is not a record
    technical = everything[1]
    assert technical.is_technical_upgrade and not technical.is_first_record
    assert technical.fetch_date == recorded["technical"].fetch_date.astimezone(UTC)
    assert listing.archived_terms(data) == {("Acme", TOS), ("Acme", PRIVACY), ("Café & Co", TOS)}
    previous, text = listing.read_texts(data, [everything[2]])[0]
    assert (previous, text) == (POLICY_V1, POLICY_V2)
    assert listing.read_texts(data, [everything[4]])[0] == (None, POLICY_V1)


def test_feed_of_an_empty_data_folder_is_empty(tmp_path):
    declarations = tmp_path / "declarations"
    declare(declarations, "Acme", [TOS])
    response = make_client(tmp_path / "data", declarations).get("/feed.atom")
    assert response.status_code == 200
    assert feedparser.parse(response.data).entries == []


def test_in_the_viewer_feeds_come_from_its_index_and_link_to_its_pages(archive_dir):
    """The real app: entries listed from the viewer's index, every link answered by the viewer."""
    create_app = pytest.importorskip("termshift.web.app").create_app
    data, declarations, repo, recorded = archive_dir
    settings = load_settings(environ={}, overrides={
        "": {"data": str(data), "declarations": str(declarations)}, "web": {"base_url": BASE},
    })
    app = create_app(settings, REFRESH_INTERVAL=0)
    client = app.test_client()
    assert app.extensions["termshift"].catalog is not None
    response = client.get("/feed.atom")
    assert response.status_code == 200
    feed = feedparser.parse(response.data)
    standalone = feedparser.parse(make_client(data, declarations).get("/feed.atom").data)
    assert [(e.id, e.title, e.summary, e.link) for e in feed.entries] == \
        [(e.id, e.title, e.summary, e.link) for e in standalone.entries]
    for entry in feed.entries:
        link = urlsplit(entry.link)
        assert client.get(link.path + (f"?{link.query}" if link.query else "")).status_code == 200, entry.link
    diff_page = client.get(urlsplit(feed.entries[1].link).path).get_data(as_text=True)
    assert "advertising" in diff_page


SUBPROCESSORS_V1 = """Sub-processors
==============

*   **Hetzner:** for [hosting](https://hetzner.com/legal) servers, operated by Hetzner s. r. o. in Germany.
*   **Stripe:** for payments.
"""
SUBPROCESSORS_V2 = SUBPROCESSORS_V1.replace("**Hetzner:**", "**Hetzner Online:**")


def test_summaries_are_plain_text_even_where_an_older_cache_kept_markdown(tmp_path):
    """Feed summaries quote sentences without Markdown; statistics cached before that are computed again."""
    data = tmp_path / "data"
    repo = VersionsRepo(data)
    repo.record("Acme", PRIVACY, SUBPROCESSORS_V1)
    change = repo.record("Acme", PRIVACY, SUBPROCESSORS_V2)
    declarations = tmp_path / "declarations"
    declare(declarations, "Acme", [PRIVACY])
    db = store.connect(data)
    try:  # the row an earlier release cached: a bare JSON list of Markdown lines
        with store.transaction(db):
            db.execute("INSERT INTO version_stats VALUES (?, 1, 0, ?)",
                       (change.id, json.dumps(["**Hetzner Online:** for [hosting](https://hetzner.com/legal)"])))
    finally:
        db.close()

    for kind in ("atom", "rss"):
        feed = feedparser.parse(make_client(data, declarations).get(f"/feed.{kind}").data)
        assert feed.entries[0].summary == (
            "+1/−0 words: “Hetzner Online: for hosting servers, operated by Hetzner s. r. o. in Germany.”"
        )
