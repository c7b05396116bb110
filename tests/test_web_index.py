"""The viewer's SQLite index, built from real git repositories written by plain git."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from termshift.textdiff import count_words
from termshift.web import index as index_module
from termshift.web import index_workers
from termshift.web.index import Indexer, Sources, refresh_index
from tests.support.archive_factory import (
    PRIVACY_V1,
    PRIVACY_V2,
    PRIVACY_V3,
    ArchiveFactory,
    build_sample_archive,
)


@pytest.fixture
def sample(tmp_path: Path):
    return build_sample_archive(tmp_path)


def rows(path: Path, sql: str, parameters=()) -> list[sqlite3.Row]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()


def test_versions_are_indexed_with_kinds_sizes_words_and_snapshot_links(sample):
    stats = refresh_index(sample.data)
    index = sample.data / "index.sqlite"
    assert stats["versions"]["new"] == 7 and stats["snapshots"]["new"] == 6
    privacy = rows(index, "SELECT * FROM versions WHERE service_id = 'Acme' AND terms_type = 'Privacy Policy' "
                          "ORDER BY id")
    assert [row["commit_id"] for row in privacy] == [
        sample.ids["privacy_1"], sample.ids["privacy_2"], sample.ids["privacy_technical"], sample.ids["privacy_3"]]
    assert [row["kind"] for row in privacy] == ["first", "change", "technical", "change"]
    assert [row["is_first"] for row in privacy] == [1, 0, 0, 0]
    assert privacy[0]["words"] == count_words(PRIVACY_V1) and privacy[0]["words_added"] == count_words(PRIVACY_V1)
    assert privacy[1]["words_removed"] == 1  # "never"
    assert privacy[1]["size_delta"] == len(PRIVACY_V2.encode()) - len(PRIVACY_V1.encode())
    assert privacy[3]["words"] == count_words(PRIVACY_V3)
    assert privacy[1]["previous_id"] == privacy[0]["id"]
    assert privacy[1]["fetch_date"] == 1710786609  # 2024-03-18T18:30:09Z
    assert privacy[1]["engine_version"] == "15.1.0"
    references = json.loads(privacy[1]["snapshots"])
    assert references == [{"id": sample.ids["privacy_snapshot_2"],
                           "url": f"https://github.com/OpenTermsArchive/demo-snapshots/commit/"
                                  f"{sample.ids['privacy_snapshot_2']}"}]
    combined = rows(index, "SELECT snapshot_ref FROM version_snapshots JOIN versions ON id = version_id "
                           "WHERE commit_id = ?", (sample.ids["tos_1"],))
    assert {row[0] for row in combined} == {sample.ids["tos_snapshot_a"], sample.ids["tos_snapshot_b"]}


def test_snapshots_keep_document_ids_trailers_and_mime_types(sample):
    refresh_index(sample.data)
    snapshots = rows(sample.data / "index.sqlite",
                     "SELECT * FROM snapshots WHERE terms_type = 'Terms of Service' ORDER BY id")
    assert [(s["service_id"], s["document_id"]) for s in snapshots] == [
        ("Acme", "tos"), ("Acme", "tos-annex"), ("Café & Co", None)]
    assert snapshots[2]["location"] == "https://cafe.example/cgv"
    assert snapshots[2]["fetcher"] == "htmlOnly" and snapshots[2]["mime_type"] == "text/html"
    assert snapshots[0]["kind"] == "first" and snapshots[0]["size"] == len(b"<main>Be nice.</main>")


def test_documents_table_tracks_current_version_last_change_and_removal(sample):
    refresh_index(sample.data)
    index = sample.data / "index.sqlite"
    documents = {(d["service_id"], d["terms_type"]): d for d in rows(index, "SELECT * FROM documents")}
    assert set(documents) == {("Acme", "Privacy Policy"), ("Acme", "Terms of Service"), ("Acme", "Imprint"),
                              ("Café & Co", "Terms of Service")}
    privacy = documents[("Acme", "Privacy Policy")]
    assert (privacy["versions"], privacy["changes"]) == (4, 3)
    latest = rows(index, "SELECT commit_id FROM versions WHERE id = ?", (privacy["latest_id"],))[0][0]
    assert latest == sample.ids["privacy_3"]
    assert documents[("Acme", "Imprint")]["removed"] == 1
    assert documents[("Acme", "Privacy Policy")]["removed"] == 0
    # Files outside <service>/<type>.<ext> (the README) are not records.
    assert not rows(index, "SELECT 1 FROM versions WHERE path = 'README.md'")


def test_full_text_holds_the_version_in_force_only(sample):
    refresh_index(sample.data)
    index = sample.data / "index.sqlite"
    found = rows(index, "SELECT d.service_id, d.terms_type FROM current_text JOIN documents d "
                        "ON d.id = current_text.rowid WHERE current_text MATCH 'cookies'")
    assert [tuple(row) for row in found] == [("Acme", "Privacy Policy")]
    assert not rows(index, "SELECT 1 FROM current_text WHERE current_text MATCH 'never'")  # only in v1
    assert not rows(index, "SELECT 1 FROM current_text WHERE current_text MATCH 'Acme SA'")  # removed


def test_incremental_refresh_reads_only_new_commits(sample):
    refresh_index(sample.data)
    again = refresh_index(sample.data)
    assert again["versions"]["new"] == 0 and again["snapshots"]["new"] == 0
    factory = sample.factory
    _snapshot, version = factory.record("Acme", "Privacy Policy", "2024-07-01T00:00:00Z", "<main>v4</main>",
                                        PRIVACY_V3.replace("audience", "audience and advertising"))
    stats = refresh_index(sample.data)
    assert (stats["versions"]["new"], stats["snapshots"]["new"], stats["versions"]["rebuilt"]) == (1, 1, False)
    index = sample.data / "index.sqlite"
    row = rows(index, "SELECT * FROM versions WHERE commit_id = ?", (version,))[0]
    previous = rows(index, "SELECT id FROM versions WHERE commit_id = ?", (sample.ids["privacy_3"],))[0][0]
    assert (row["previous_id"], row["words_added"], row["words_removed"], row["is_first"]) == (previous, 2, 0, 0)
    assert rows(index, "SELECT 1 FROM current_text WHERE current_text MATCH 'advertising'")
    assert rows(index, "SELECT last_commit FROM repositories WHERE name = 'versions'")[0][0] == version


def test_rewritten_history_is_detected_and_the_repository_reindexed(sample):
    refresh_index(sample.data)
    versions = sample.factory.versions
    rewritten = sample.factory.rewrite_last_commit(versions, "Record new changes of Acme Privacy Policy\n\n"
                                                   "X-engine-version: 16.0.0")
    stats = refresh_index(sample.data)
    assert stats["versions"]["rebuilt"] is True and stats["versions"]["new"] == 7
    assert stats["snapshots"]["rebuilt"] is False and stats["snapshots"]["new"] == 0
    index = sample.data / "index.sqlite"
    assert not rows(index, "SELECT 1 FROM versions WHERE commit_id = ?", (sample.ids["privacy_3"],))
    assert rows(index, "SELECT engine_version FROM versions WHERE commit_id = ?", (rewritten,))[0][0] == "16.0.0"
    assert rows(index, "SELECT count(*) FROM versions")[0][0] == 7


def test_a_different_repository_at_the_same_index_is_indexed_afresh(sample, tmp_path):
    refresh_index(sample.data)
    other = ArchiveFactory(tmp_path / "other")
    other.version("Zed", "Imprint", "2023-01-01T00:00:00Z", "Zed Ltd.\n")
    stats = refresh_index((other.versions, None), sample.data / "index.sqlite")
    assert stats["versions"]["rebuilt"] is True
    services = rows(sample.data / "index.sqlite", "SELECT DISTINCT service_id FROM versions")
    assert [row[0] for row in services] == ["Zed"]


def test_legacy_prefixes_other_commits_and_multi_file_commits(tmp_path):
    factory = ArchiveFactory(tmp_path)
    factory.version("Old", "Terms of Service", "2015-01-01T00:00:00Z", "One.\n")
    repo = factory.versions
    (repo / "Old" / "Terms of Service.md").write_text("One. Two.\n", encoding="utf-8")
    subprocess.run(["git", "commit", "-qam", "Update Old Terms of Service"], cwd=repo, check=True)
    (repo / "Old" / "Terms of Service.md").write_text("One. Two!\n", encoding="utf-8")
    subprocess.run(["git", "commit", "-qam", "Refilter Old Terms of Service"], cwd=repo, check=True)
    (repo / "Old" / "Terms of Service.md").write_text("Hand edit.\n", encoding="utf-8")
    (repo / "Old" / "Privacy Policy.md").write_text("Private.\n", encoding="utf-8")
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "Fix typos by hand"], cwd=repo, check=True)
    refresh_index((repo, None), tmp_path / "index.sqlite")
    found = rows(tmp_path / "index.sqlite", "SELECT terms_type, kind FROM versions ORDER BY id")
    assert [tuple(row) for row in found] == [
        ("Terms of Service", "first"), ("Terms of Service", "change"), ("Terms of Service", "technical"),
        ("Privacy Policy", "other"), ("Terms of Service", "other")]


def test_parallel_workers_give_the_same_statistics_as_one_process(sample, monkeypatch):
    serial = Indexer(Sources.resolve(sample.data, sample.data / "serial.sqlite"))
    serial.refresh()
    serial.close()
    monkeypatch.setattr(index_module, "PARALLEL_THRESHOLD", 1)
    monkeypatch.setattr(index_module, "CHUNK_VERSIONS", 1)  # one job per version: many jobs per worker
    monkeypatch.setattr(index_workers.os, "cpu_count", lambda: 3)
    pools = []

    def recording_pool(*args):
        pools.append(index_workers.statistics_pool(*args))
        return pools[-1]

    monkeypatch.setattr(index_module, "statistics_pool", recording_pool)
    parallel = Indexer(Sources.resolve(sample.data, sample.data / "parallel.sqlite"))
    parallel.refresh()
    parallel.close()
    assert isinstance(pools[0], index_workers.WorkerStatistics) and len(pools[0]._processes) == 3
    query = "SELECT commit_id, size, words, words_added, words_removed, previous_id FROM versions ORDER BY id"
    assert [tuple(r) for r in rows(sample.data / "serial.sqlite", query)] == \
        [tuple(r) for r in rows(sample.data / "parallel.sqlite", query)]


def test_each_version_holds_its_own_word_count_across_jobs_workers_and_refreshes(sample, monkeypatch):
    """Workers send words added and removed; the index adds them up, in history order, from
    the version before (in the same job, an earlier job, or an earlier refresh)."""
    monkeypatch.setattr(index_module, "PARALLEL_THRESHOLD", 1)
    monkeypatch.setattr(index_module, "CHUNK_VERSIONS", 1)  # every version diffed in a job of its own
    monkeypatch.setattr(index_workers.os, "cpu_count", lambda: 2)
    refresh_index(sample.data)
    sample.factory.record("Acme", "Privacy Policy", "2024-07-01T00:00:00Z", "<main>v4</main>",
                          PRIVACY_V3.replace("audience", "audience and its advertisers' partners"))
    refresh_index(sample.data)
    repo = sample.data / "versions"
    found = rows(sample.data / "index.sqlite", "SELECT blob, words, words_added, words_removed FROM versions")
    assert len(found) == 8
    for row in found:
        text = subprocess.run(["git", "cat-file", "blob", row["blob"]], cwd=repo, capture_output=True,
                              check=True).stdout.decode()
        assert row["words"] == count_words(text)
    assert [tuple(row)[1:] for row in found][-1] == (count_words(PRIVACY_V3) + 4, 4, 0)


def test_refresh_of_a_missing_repository_names_it(tmp_path):
    with pytest.raises(Exception, match="no-such-repo"):
        refresh_index((tmp_path / "no-such-repo", None), tmp_path / "index.sqlite")


def test_empty_repository_indexes_nothing(tmp_path):
    factory = ArchiveFactory(tmp_path)
    stats = refresh_index(tmp_path)
    assert stats["versions"] == {"new": 0, "rebuilt": False, "head": None, "seconds": stats["versions"]["seconds"]}
    assert factory.versions.is_dir()
