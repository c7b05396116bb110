"""The snapshots and versions repositories: OTA's layout and commit conventions, read back.

Every check of what was written goes through the git command line, independently of the
code under test.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import filelock
import pytest

import termshift
from termshift.archive_repo import (
    Archive,
    ArchiveError,
    ArchiveLockedError,
    InvalidRecordError,
    RecordRepository,
    Snapshot,
    Version,
    archive_heads,
)
from termshift.config import load_settings

DAY = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
HTML = "<html><body><p>Terms</p></body></html>"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def snapshot(content: str | bytes = HTML, *, service="service·A", terms_type="Terms of Service", date=DAY, **fields):
    return Snapshot(service, terms_type, date, content, **fields)


def version(content: str = "# Terms", *, service="service·A", terms_type="Terms of Service", date=DAY, **fields):
    fields.setdefault("snapshot_ids", ["a" * 40])
    return Version(service, terms_type, date, content, **fields)


@pytest.fixture
def snapshots(tmp_path):
    with RecordRepository(tmp_path / "snapshots", "snapshots") as repository:
        yield repository


@pytest.fixture
def versions(tmp_path):
    with RecordRepository(tmp_path / "versions", "versions") as repository:
        yield repository


# --- layout and messages --------------------------------------------------------------------

def test_snapshot_of_combined_terms_path_message_and_trailers(snapshots):
    recorded = snapshots.record(snapshot(
        document_id="tos",
        metadata={"x-fetcher": "htmlOnly", "x-source-document-location": "https://a.example/tos"},
    ))
    assert len(recorded.id) == 40 and git(snapshots.path, "rev-parse", "HEAD").strip() == recorded.id
    assert git(snapshots.path, "show", "--name-only", "--format=", "HEAD").splitlines() == [
        "service·A/Terms of Service #tos.html"
    ]
    assert git(snapshots.path, "log", "-1", "--format=%B") == (
        "First record of service·A Terms of Service\n\n"
        "Document ID tos\n\n"
        f"X-engine-version: {termshift.__version__}\n"
        "X-fetcher: htmlOnly\n"
        "X-source-document-location: https://a.example/tos\n\n"
    )
    assert recorded.metadata == {
        "x-engine-version": termshift.__version__,
        "x-fetcher": "htmlOnly",
        "x-source-document-location": "https://a.example/tos",
    }
    assert (snapshots.path / "service·A" / "Terms of Service #tos.html").read_text() == HTML


def test_snapshot_without_document_id_has_a_plain_path_and_no_body(snapshots):
    snapshots.record(snapshot(service="Service B!", terms_type="Privacy Policy"))
    assert git(snapshots.path, "show", "--name-only", "--format=", "HEAD").splitlines() == [
        "Service B!/Privacy Policy.html"
    ]
    assert git(snapshots.path, "log", "-1", "--format=%b").strip() == f"X-engine-version: {termshift.__version__}"


def test_git_settings_and_identity_come_from_settings(tmp_path):
    settings = load_settings(environ={}, overrides={"archive": {
        "author_name": "Archive Robot", "author_email": "robot@example.org",
        "snapshot_id_template": "https://example.org/snapshots/%SNAPSHOT_ID",
    }})
    with Archive.open(tmp_path / "data", settings.archive) as archive:
        archive.snapshots.record(snapshot())
        for repository in (archive.snapshots, archive.versions):
            assert git(repository.path, "config", "core.autocrlf").strip() == "false"
            assert git(repository.path, "config", "core.quotePath").strip() == "false"
            assert git(repository.path, "config", "user.name").strip() == "Archive Robot"
        assert git(archive.snapshots.path, "log", "-1", "--format=%an <%ae>|%cn <%ce>").strip() == (
            "Archive Robot <robot@example.org>|Archive Robot <robot@example.org>"
        )
        recorded = archive.versions.record(version(snapshot_ids=["b" * 40]))
        assert f"snapshot https://example.org/snapshots/{'b' * 40}" in git(archive.versions.path, "log", "-1", "--format=%b")
        assert recorded.snapshot_ids == ["b" * 40]


def test_author_and_committer_dates_are_the_fetch_date_in_utc_seconds(snapshots):
    paris = timezone(timedelta(hours=2))
    fetched = datetime(2024, 6, 30, 23, 59, 58, 987654, tzinfo=paris)
    recorded = snapshots.record(snapshot(date=fetched))
    assert git(snapshots.path, "log", "-1", "--format=%aI|%cI").strip() == (
        "2024-06-30T21:59:58+00:00|2024-06-30T21:59:58+00:00"
    )
    assert recorded.fetch_date == datetime(2024, 6, 30, 21, 59, 58, tzinfo=UTC)
    assert snapshots.find_by_id(recorded.id).fetch_date == recorded.fetch_date


def test_identical_content_makes_no_commit(snapshots):
    first = snapshots.record(snapshot())
    assert snapshots.record(snapshot(date=DAY + timedelta(hours=12))) is None
    assert git(snapshots.path, "rev-list", "--count", "HEAD").strip() == "1"
    changed = snapshots.record(snapshot(HTML + " ", date=DAY + timedelta(days=1)))
    assert changed.id != first.id and changed.is_first_record is False
    assert git(snapshots.path, "log", "-1", "--format=%s").strip() == "Record new changes of service·A Terms of Service"


def test_first_record_is_per_document(snapshots, versions):
    tos = snapshots.record(snapshot(document_id="tos"))
    privacy = snapshots.record(snapshot("<p>privacy</p>", document_id="privacy"))
    tos_again = snapshots.record(snapshot("<p>changed</p>", document_id="tos"))
    other_type = snapshots.record(snapshot(terms_type="Privacy Policy"))
    assert [tos.is_first_record, privacy.is_first_record, tos_again.is_first_record, other_type.is_first_record] == [
        True, True, False, True,
    ]
    # The versions repository has its own history.
    assert versions.record(version()).is_first_record is True


def test_technical_upgrade_subject_and_first_record_precedence(versions):
    first = versions.record(version(is_technical_upgrade=True))
    assert first.is_first_record and git(versions.path, "log", "-1", "--format=%s").startswith("First record of")
    versions.record(version("# Terms, upgraded", is_technical_upgrade=True))
    assert git(versions.path, "log", "-1", "--format=%s").strip() == (
        "Apply technical or declaration upgrade on service·A Terms of Service"
    )
    assert versions.latest("service·A", "Terms of Service").is_technical_upgrade is True


def test_version_bodies_with_one_and_two_snapshots(versions):
    one, two = "1" * 40, "2" * 40
    recorded = versions.record(version(snapshot_ids=[one]))
    assert git(versions.path, "log", "-1", "--format=%b").startswith(
        f"This version was recorded after extracting from snapshot ./data/snapshots/{one}\n"
    )
    assert versions.find_by_id(recorded.id).snapshot_ids == [one]
    recorded = versions.record(version("# Two", snapshot_ids=[one, two]))
    body = git(versions.path, "log", "-1", "--format=%b")
    assert "from 2 source documents:\n" in body
    assert f"- ./data/snapshots/{one}\n- ./data/snapshots/{two}\n" in body
    assert versions.find_by_id(recorded.id).snapshot_ids == [one, two]


def test_a_commit_includes_only_the_recorded_file_even_if_others_are_staged(snapshots):
    snapshots.record(snapshot())
    (snapshots.path / "Other").mkdir()
    (snapshots.path / "Other" / "Terms.html").write_text("staged by someone")
    git(snapshots.path, "add", "Other/Terms.html")
    recorded = snapshots.record(snapshot("<p>new</p>"))
    assert git(snapshots.path, "show", "--name-only", "--format=", recorded.id).splitlines() == [
        "service·A/Terms of Service.html"
    ]


# --- content --------------------------------------------------------------------------------

def test_pdf_bytes_round_trip_byte_identical(snapshots):
    pdf = b"%PDF-1.7\r\n" + bytes(range(256)) * 40 + b"\n%%EOF  \n\n"
    recorded = snapshots.record(snapshot(pdf, mime_type="application/pdf"))
    assert git(snapshots.path, "show", "--name-only", "--format=", "HEAD").strip() == "service·A/Terms of Service.pdf"
    read = snapshots.find_by_id(recorded.id)
    assert read.mime_type == "application/pdf" and read.content == pdf
    assert (snapshots.path / "service·A" / "Terms of Service.pdf").read_bytes() == pdf


def test_text_is_stored_utf8_and_read_back_exactly(snapshots, versions):
    html = "\n  <p>Conditions générales — ½ \u00a0</p>\r\n\n"
    snapshots.record(snapshot(html))
    blob = subprocess.run(["git", "-C", str(snapshots.path), "show", "HEAD:service·A/Terms of Service.html"],
                          capture_output=True, check=True).stdout
    assert blob == html.encode("utf-8")
    assert snapshots.latest("service·A", "Terms of Service").content == html
    markdown = "# Titre\n\nTexte sans saut de ligne final"
    versions.record(version(markdown))
    assert versions.latest("service·A", "Terms of Service").content == markdown


def test_html_that_becomes_pdf_is_still_the_latest(snapshots):
    snapshots.record(snapshot())
    pdf = snapshots.record(snapshot(b"%PDF-1.4 x", mime_type="application/pdf", date=DAY + timedelta(days=1)))
    assert pdf.is_first_record is False
    latest = snapshots.latest("service·A", "Terms of Service")
    assert latest.id == pdf.id and latest.content == b"%PDF-1.4 x"


def test_iterated_contents_load_on_access(snapshots):
    snapshots.record(snapshot())
    record = next(snapshots.iterate())
    assert not record.is_content_loaded
    assert record.content == HTML and record.is_content_loaded
    unloaded = next(snapshots.iterate())
    assert pickle.loads(pickle.dumps(unloaded)) == record  # pickling carries the content


# --- queries --------------------------------------------------------------------------------

def test_find_by_id(snapshots):
    recorded = snapshots.record(snapshot())
    assert snapshots.find_by_id(recorded.id).content == HTML
    assert snapshots.find_by_id(recorded.id[:10]).id == recorded.id
    assert snapshots.find_by_id("0" * 40) is None
    assert snapshots.find_by_id("not a sha") is None
    assert snapshots.find_by_id("--all") is None


def test_find_by_date_returns_the_latest_at_or_before(snapshots):
    dates = [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    ids = [snapshots.record(snapshot(f"<p>{n}</p>", date=date)).id for n, date in enumerate(dates)]

    def found(date):
        record = snapshots.find_by_date("service·A", "Terms of Service", date)
        return record and record.id

    assert found(DAY - timedelta(seconds=1)) is None
    assert found(DAY) == ids[0]
    assert found(DAY + timedelta(hours=23)) == ids[0]
    assert found(dates[1]) == ids[1]
    assert found(dates[2] - timedelta(seconds=1)) == ids[1]
    assert found(dates[2] + timedelta(days=300)) == ids[2]
    with pytest.raises(ValueError, match="timezone-aware"):
        snapshots.find_by_date("service·A", "Terms of Service", datetime(2024, 1, 1))


def test_latest_of_unknown_documents_is_none(snapshots):
    assert snapshots.latest("service·A", "Terms of Service") is None  # empty repository
    snapshots.record(snapshot(document_id="tos"))
    assert snapshots.latest("service·A", "Terms of Service") is None  # only the #tos document
    assert snapshots.latest("Nobody", "Terms of Service") is None
    assert snapshots.latest("service·A", "Terms of Service", "tos").document_id == "tos"


def test_history_is_newest_first_and_can_leave_out_technical_upgrades(versions):
    first = versions.record(version("# 1", date=DAY))
    upgrade = versions.record(version("# 1 upgraded", date=DAY, is_technical_upgrade=True))
    change = versions.record(version("# 2", date=DAY + timedelta(days=1)))
    versions.record(version("# other", service="Service B!"))
    assert [r.id for r in versions.history("service·A", "Terms of Service")] == [change.id, upgrade.id, first.id]
    assert [r.id for r in versions.history("service·A", "Terms of Service", include_technical_upgrades=False)] == [
        change.id, first.id,
    ]


def test_count_globally_per_service_and_per_type(snapshots):
    snapshots.record(snapshot())
    snapshots.record(snapshot("<p>2</p>"))
    snapshots.record(snapshot(terms_type="Privacy Policy"))
    snapshots.record(snapshot(service="Service B!"))
    assert snapshots.count() == 4
    assert snapshots.count("service·A") == 3
    assert snapshots.count("service·A", "Terms of Service") == 2
    assert snapshots.count("Nobody") == 0


def test_iterate_is_oldest_first_and_skips_non_record_commits(snapshots):
    ids = [snapshots.record(snapshot(f"<p>{n}</p>", date=DAY + timedelta(days=n))).id for n in range(3)]
    (snapshots.path / "README.md").write_text("# Snapshots\n")
    git(snapshots.path, "add", "README.md")
    git(snapshots.path, "-c", "user.name=x", "-c", "user.email=x@example.org", "commit", "-q", "-m", "Add README")
    (snapshots.path / "service·A" / "notes.txt").write_text("not recorded by the archive")
    git(snapshots.path, "add", "service·A/notes.txt")
    git(snapshots.path, "-c", "user.name=x", "-c", "user.email=x@example.org", "commit", "-q", "-m", "Add notes")
    ids.append(snapshots.record(snapshot("<p>3</p>", date=DAY + timedelta(days=3))).id)
    assert [record.id for record in snapshots.iterate()] == ids
    assert snapshots.count() == 4
    readme_commit = git(snapshots.path, "log", "--format=%H", "--", "README.md").strip()
    assert snapshots.find_by_id(readme_commit) is None


def test_iterate_filters_by_service_and_type(snapshots):
    snapshots.record(snapshot())
    snapshots.record(snapshot(terms_type="Privacy Policy"))
    b = snapshots.record(snapshot(service="Service B!"))
    assert [r.id for r in snapshots.iterate(services=["Service B!"])] == [b.id]
    assert [(r.service_id, r.terms_type) for r in snapshots.iterate(types=["Privacy Policy"])] == [
        ("service·A", "Privacy Policy")
    ]
    assert list(snapshots.iterate(services=[])) == []


# --- validation and access ------------------------------------------------------------------

def test_invalid_records_are_refused_naming_the_field(snapshots, versions):
    with pytest.raises(InvalidRecordError, match='Snapshot is not valid; "content" is missing'):
        snapshots.record(Snapshot("A", "Terms", DAY))
    with pytest.raises(InvalidRecordError, match='Snapshot is not valid; "content" is empty or null'):
        snapshots.record(snapshot(""))
    with pytest.raises(InvalidRecordError, match='"fetch_date" must be a timezone-aware'):
        snapshots.record(snapshot(date=datetime(2024, 1, 1)))
    with pytest.raises(InvalidRecordError, match='Version is not valid; "snapshot_ids" is missing'):
        versions.record(version(snapshot_ids=[]))
    with pytest.raises(InvalidRecordError, match="stores Snapshot records, not Version"):
        snapshots.record(version())
    with pytest.raises(InvalidRecordError, match="terms type 'a #b'"):
        snapshots.record(snapshot(terms_type="a #b"))
    with pytest.raises(InvalidRecordError, match="no file extension is known"):
        snapshots.record(snapshot(mime_type="application/x-unknown-thing"))
    assert git(snapshots.path, "rev-list", "--all").strip() == ""


def test_read_only_repository_neither_creates_nor_writes(tmp_path, snapshots):
    with pytest.raises(ArchiveError, match="no git repository"):
        RecordRepository(tmp_path / "missing", "snapshots", read_only=True)
    assert not (tmp_path / "missing").exists()
    recorded = snapshots.record(snapshot())
    with RecordRepository(snapshots.path, "snapshots", read_only=True) as reader:
        assert reader.latest("service·A", "Terms of Service").id == recorded.id
        with pytest.raises(ArchiveError, match="read-only"):
            reader.record(snapshot("<p>2</p>"))


def test_a_bare_mirror_reads_but_does_not_write(tmp_path, snapshots):
    recorded = snapshots.record(snapshot(document_id="tos"))
    mirror = tmp_path / "mirror.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(snapshots.path), str(mirror)], check=True)
    with RecordRepository(mirror, "snapshots", read_only=True) as reader:
        assert reader.latest("service·A", "Terms of Service", "tos").content == HTML
        assert reader.find_by_id(recorded.id).document_id == "tos"
    with pytest.raises(ArchiveError, match="bare repository can only be opened read-only"):
        RecordRepository(mirror, "snapshots")


def test_a_second_writer_waits_then_fails_clearly(snapshots):
    impatient = RecordRepository(snapshots.path, "snapshots", lock_timeout=0.2)
    holder = filelock.FileLock(str(snapshots.path / ".git" / "termshift.lock"))
    with holder:
        with pytest.raises(ArchiveLockedError, match=r"another writer holds .*termshift\.lock \(waited 0\.2 s\)"):
            RecordRepository(snapshots.path, "snapshots", lock_timeout=0.2)  # recovery needs the lock
        with pytest.raises(ArchiveLockedError):
            impatient.record(snapshot())  # and so does every record
    assert impatient.record(snapshot()).is_first_record  # free again
    impatient.close()


def test_concurrent_writers_serialise_and_lose_nothing(tmp_path):
    path = tmp_path / "snapshots"
    RecordRepository(path, "snapshots").close()
    writers = [RecordRepository(path, "snapshots") for _ in range(2)]
    recorded: list[str] = []

    def write(writer: RecordRepository, name: str) -> None:
        for n in range(15):
            recorded.append(writer.record(snapshot(f"<p>{name} {n}</p>", service=name, date=DAY + timedelta(minutes=n))).id)

    threads = [threading.Thread(target=write, args=(w, f"Service {i}")) for i, w in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for writer in writers:
        writer.close()
    assert sorted(git(path, "rev-list", "HEAD").split()) == sorted(recorded)
    assert len(recorded) == 30
    subprocess.run(["git", "-C", str(path), "fsck", "--strict"], check=True, capture_output=True)
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""


def test_optimize_writes_the_commit_graph_and_keeps_everything_readable(snapshots):
    ids = [snapshots.record(snapshot(f"<p>{n}</p>", date=DAY + timedelta(hours=n))).id for n in range(5)]
    snapshots.optimize()
    assert (snapshots.path / ".git" / "objects" / "info" / "commit-graph").is_file()
    assert [r.id for r in snapshots.history("service·A", "Terms of Service")] == ids[::-1]
    assert git(snapshots.path, "status", "--porcelain") == ""  # optimize also refreshes the index
    git(snapshots.path, "gc", "--quiet", "--prune=now")  # packs everything, removes loose object folders
    assert not list((snapshots.path / ".git" / "objects").glob("??"))
    again = snapshots.record(snapshot("<p>after gc</p>", date=DAY + timedelta(days=1)))
    assert snapshots.latest("service·A", "Terms of Service").id == again.id
    assert snapshots.record(snapshot("<p>after gc</p>")) is None  # compared with the packed blob
    subprocess.run(["git", "-C", str(snapshots.path), "fsck", "--strict"], check=True, capture_output=True)


def test_archive_open_creates_both_repositories(tmp_path):
    with Archive.open(tmp_path / "data") as archive:
        assert archive.snapshots.kind == "snapshots" and archive.versions.kind == "versions"
        assert (tmp_path / "data" / "snapshots" / ".git").is_dir()
        assert (tmp_path / "data" / "versions" / ".git").is_dir()
        assert archive.snapshots.count() == archive.versions.count() == 0


def test_archive_heads_name_the_commits_head_points_at(tmp_path):
    data = tmp_path / "data"
    assert archive_heads(data) == (None, None)  # no repositories yet
    with Archive.open(data) as archive:
        assert archive_heads(data) == (None, None)  # repositories without commits
        recorded = archive.versions.record(Version("Acme", "Terms of Service", DAY, "Terms.", snapshot_ids=["0" * 40]))
    assert archive_heads(data) == (None, recorded.id)
    assert recorded.id == git(data / "versions", "rev-parse", "HEAD").strip()


def test_a_non_empty_folder_that_is_not_a_repository_is_refused(tmp_path):
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "snapshots" / "notes.txt").write_text("mine")
    with pytest.raises(ArchiveError, match="is not a git repository and is not empty"):
        RecordRepository(tmp_path / "snapshots", "snapshots")


# --- the real OTA demo repository -----------------------------------------------------------

@pytest.fixture(scope="module")
def demo_snapshots(corpus_dir, tmp_path_factory):
    clone = tmp_path_factory.mktemp("demo") / "snapshots"
    subprocess.run(["git", "clone", "-q", "-b", "subset", str(corpus_dir / "snapshots.bundle"), str(clone)], check=True)
    with RecordRepository(clone, "snapshots", read_only=True) as repository:
        yield repository


@pytest.mark.corpus
def test_demo_bundle_reads_as_ota_recorded_it(demo_snapshots, corpus_dir):
    reference = [json.loads(line) for line in (corpus_dir / "ota-reference.jsonl").read_text().splitlines()]
    records = list(demo_snapshots.iterate())
    assert [(r.id, r.service_id, r.terms_type) for r in records] == [
        (line["commit"], line["service"], line["type"]) for line in reference
    ]
    assert [r.fetch_date for r in records] == [datetime.fromisoformat(line["date"]) for line in reference]
    assert all(r.mime_type == "text/html" and r.document_id is None for r in records)


@pytest.mark.corpus
def test_demo_bundle_counts_per_document(demo_snapshots):
    names = [name for name in git(demo_snapshots.path, "log", "--format=", "--name-only").split("\n") if name]
    expected = Counter(tuple(name.removesuffix(".html").split("/")) for name in names)
    assert Counter((r.service_id, r.terms_type) for r in demo_snapshots.iterate()) == expected
    assert demo_snapshots.count() == len(names) == 3663  # corpus README
    for service, terms_type in [("GitHub", "Privacy Policy"), ("Open Terms Archive", "Brand Guidelines")]:
        assert demo_snapshots.count(service, terms_type) == expected[service, terms_type]
        history = demo_snapshots.history(service, terms_type)
        assert len(history) == expected[service, terms_type]
        assert [r.fetch_date for r in history] == sorted((r.fetch_date for r in history), reverse=True)
    assert demo_snapshots.count("Open Terms Archive") == sum(
        n for (service, _type), n in expected.items() if service == "Open Terms Archive"
    )


@pytest.mark.corpus
def test_demo_bundle_trailers_first_records_and_content(demo_snapshots):
    head = demo_snapshots.latest("Open Collective", "Privacy Policy")
    assert head.id == git(demo_snapshots.path, "rev-parse", "HEAD").strip()
    assert head.metadata == {
        "x-engine-version": "15.1.0",
        "x-fetcher": "htmlOnly",
        "x-source-document-location": "https://opencollective.com/privacypolicy",
    }
    assert head.content == (demo_snapshots.path / "Open Collective" / "Privacy Policy.html").read_text()
    first_records = [r for r in demo_snapshots.iterate() if r.is_first_record]
    subjects = git(demo_snapshots.path, "log", "--format=%s").splitlines()
    assert len(first_records) == sum(s.startswith("First record of ") for s in subjects) > 0
    root = git(demo_snapshots.path, "rev-list", "--max-parents=0", "HEAD").strip()
    assert demo_snapshots.find_by_id(root).is_first_record
