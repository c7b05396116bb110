"""The viewer on archives of any size: batches, progress, background builds, a corrupt index.

The first build of a large archive must not keep the viewer from answering: it runs in the
background, committed batch by batch, and pages say how far it is. These tests use the
small sample archive with small batches, and hold the index's lock to keep a build "under
way" for as long as they look at it (no timing is asserted).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from filelock import FileLock

from termshift.web import index as index_module
from termshift.web.app import create_app
from termshift.web.index import Indexer, Sources, refresh_index
from tests.support.archive_factory import build_sample_archive
from tests.support.waiting import wait_until

VERSIONS_IN_SAMPLE = 7


@pytest.fixture
def sample(tmp_path: Path):
    return build_sample_archive(tmp_path)


def count(path: Path, sql: str) -> int:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchone()[0]
    finally:
        connection.close()


def test_batches_are_committed_as_they_are_indexed_and_progress_is_reported(sample, monkeypatch):
    monkeypatch.setattr(index_module, "BATCH_VERSIONS", 2)
    index = sample.data / "index.sqlite"
    seen: list[tuple[int, int]] = []

    def progress(indexed: int, total: int) -> None:
        seen.append((indexed, total))
        # What a batch wrote is committed: another connection (a page) already sees it.
        assert count(index, "SELECT count(*) FROM versions") == indexed

    indexer = Indexer(Sources.resolve(sample.data), progress=progress)
    indexer.refresh()
    indexer.close()
    assert seen[0] == (0, VERSIONS_IN_SAMPLE)
    assert seen[-1] == (VERSIONS_IN_SAMPLE, VERSIONS_IN_SAMPLE)
    assert len(seen) >= 4 and [indexed for indexed, _ in seen] == sorted(indexed for indexed, _ in seen)


def test_an_interrupted_build_resumes_from_its_last_batch_without_duplicates(sample, monkeypatch):
    monkeypatch.setattr(index_module, "BATCH_VERSIONS", 2)
    index = sample.data / "index.sqlite"

    def stop_after_first_batch(indexed: int, total: int) -> None:
        if indexed >= 2:
            raise KeyboardInterrupt  # the process stops in the middle of a build

    indexer = Indexer(Sources.resolve(sample.data), progress=stop_after_first_batch)
    with pytest.raises(KeyboardInterrupt):
        indexer.refresh()
    indexer.close()
    kept = count(index, "SELECT count(*) FROM versions")
    assert 2 <= kept < VERSIONS_IN_SAMPLE
    stats = refresh_index(sample.data)
    assert stats["versions"]["new"] == VERSIONS_IN_SAMPLE - kept
    assert count(index, "SELECT count(*) FROM versions") == VERSIONS_IN_SAMPLE
    assert count(index, "SELECT count(DISTINCT commit_id || path) FROM versions") == VERSIONS_IN_SAMPLE
    # The search entries of documents touched before the interruption were not forgotten.
    assert count(index, "SELECT count(*) FROM search_pending") == 0
    assert count(index, "SELECT count(*) FROM current_text") == count(
        index, "SELECT count(*) FROM documents WHERE removed = 0")



def test_a_large_first_build_runs_in_the_background_and_pages_say_so(sample):
    index = sample.data / "index.sqlite"
    lock = FileLock(str(index) + ".lock")
    lock.acquire()  # another process (a tracking run, say) is writing the index
    try:
        app = create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations, index,
                         BACKGROUND_INDEX_ABOVE=0)
        client = app.test_client()
        status = client.get("/status.json").get_json()
        assert status["index"]["complete"] is False
        assert status["index"]["versions_total"] >= VERSIONS_IN_SAMPLE
        home = client.get("/")
        assert home.status_code == 200
        assert "Indexing the archive: 0 of" in home.get_data(as_text=True)
        french = client.get("/?lang=fr").get_data(as_text=True)
        assert "Indexation de l&#39;archive : 0 versions sur" in french
        # A page whose data is not indexed yet says so: not a 404, never a 500.
        page = client.get("/Acme/Privacy%20Policy?lang=en")
        assert page.status_code == 503 and page.headers["Retry-After"]
        assert "data is not indexed yet: 0 of" in page.get_data(as_text=True)
        answer = client.get("/Acme/Privacy%20Policy.json")
        assert answer.status_code == 503 and answer.get_json()["index"]["complete"] is False
    finally:
        lock.release()
    wait_until(lambda: client.get("/status.json").get_json()["index"]["complete"], 60, "the index complete")
    status = client.get("/status.json").get_json()["index"]
    assert status == {"complete": True, "versions_indexed": VERSIONS_IN_SAMPLE,
                      "versions_total": VERSIONS_IN_SAMPLE}
    assert client.get("/Acme/Privacy%20Policy").status_code == 200
    assert "Indexing the archive" not in client.get("/").get_data(as_text=True)
    assert client.get("/Nobody").status_code == 404  # once complete, unknown is unknown


def test_no_request_waits_for_a_build_running_in_the_background(sample):
    # A request waits up to FRESHNESS_WAIT for new commits to be indexed, so that a page shows
    # what was just recorded. A first build takes minutes: nobody may wait for it (the first
    # answer after a start on a large archive took those seconds more).
    index = sample.data / "index.sqlite"
    lock = FileLock(str(index) + ".lock")
    lock.acquire()  # the build cannot end while this test looks
    try:
        app = create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations, index,
                         BACKGROUND_INDEX_ABOVE=0, FRESHNESS_WAIT=30)
        client = app.test_client()
        started = time.monotonic()
        answers = [client.get(path).status_code for path in ("/", "/-/changes", "/Acme/Privacy%20Policy", "/")]
        assert time.monotonic() - started < 15  # each would have waited 30 s for the build
        assert answers == [200, 200, 503, 200]
        assert client.get("/status.json").get_json()["index"]["complete"] is False
    finally:
        lock.release()
    wait_until(lambda: client.get("/status.json").get_json()["index"]["complete"], 60, "the index complete")
    assert client.get("/Acme/Privacy%20Policy").status_code == 200


def test_the_index_says_complete_only_once_pages_are_answered_from_it(sample, monkeypatch):
    # The end of a build (its last commit, closing) takes longer than a request waits for
    # new commits (FRESHNESS_WAIT): were the index said complete when its last version is
    # counted, an unknown page would still answer 503 "catching up" after the status said
    # complete.
    from termshift.web import state

    finish = Indexer.close

    def slow_close(indexer: Indexer) -> None:
        time.sleep(state.FRESHNESS_WAIT + 1)
        finish(indexer)

    monkeypatch.setattr(Indexer, "close", slow_close)
    app = create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations,
                     sample.data / "index.sqlite", BACKGROUND_INDEX_ABOVE=0)
    client = app.test_client()
    seen = []
    wait_until(lambda: seen.append(client.get("/status.json").get_json()["index"]) or seen[-1]["complete"],
               60, "the index complete")
    assert {"complete": False, "versions_indexed": VERSIONS_IN_SAMPLE,
            "versions_total": VERSIONS_IN_SAMPLE} in seen  # counted, not finished: still incomplete
    assert client.get("/Nobody").status_code == 404


def test_a_small_update_is_indexed_before_the_first_request(sample):
    app = create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations,
                     sample.data / "index.sqlite")
    client = app.test_client()
    assert client.get("/status.json").get_json()["index"]["complete"] is True
    assert client.get("/Acme/Privacy%20Policy").status_code == 200


def test_a_corrupt_index_is_moved_aside_and_rebuilt(sample, caplog):
    index = sample.data / "index.sqlite"
    index.write_bytes(os.urandom(64 * 1024))
    app = create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations, index)
    client = app.test_client()
    assert client.get("/Acme/Privacy%20Policy").status_code == 200
    aside = list(sample.data.glob("index.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].stat().st_size == 64 * 1024
    assert count(index, "SELECT count(*) FROM versions") == VERSIONS_IN_SAMPLE
    assert any("not a readable index" in record.getMessage() for record in caplog.records)


def test_estimated_word_counts_are_stored_and_shown_as_such(sample, monkeypatch):
    from collections import OrderedDict

    from termshift.web import index_workers

    monkeypatch.setattr(index_workers, "INDEX_BUDGET", 0.0)  # no time to align any word
    monkeypatch.setattr(index_workers, "_PAIRS", OrderedDict())
    app = create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations,
                     sample.data / "index.sqlite")
    client = app.test_client()
    versions = client.get("/Acme/Privacy%20Policy.json?technical=1").get_json()["versions"]
    by_id = {version["id"]: version for version in versions}
    changed = by_id[sample.ids["privacy_2"]]
    assert changed["words_approximate"] is True
    assert (changed["words_added"], changed["words_removed"]) == (5, 1)  # a bag count of this edit is exact
    assert by_id[sample.ids["privacy_1"]]["words_approximate"] is False  # a first version is all added
    assert "≈" in client.get("/Acme/Privacy%20Policy?technical=1&lang=en").get_data(as_text=True)


def test_index_workers_give_way_to_the_serving_processes(sample):
    """The statistics workers run niced: a page asked for while the index builds (or the
    first answer after a start) gets a core before them; idle, the server leaves them all."""
    import subprocess

    import psutil

    from termshift.web.index_workers import WORKER_NICENESS, Job, WorkerStatistics

    repo = sample.data / "versions"
    blobs = subprocess.run(["git", "log", "--reverse", "--format=", "--raw", "--no-abbrev", "--",
                            "Acme/Privacy Policy.md"], cwd=repo, capture_output=True, text=True,
                           check=True).stdout.split()
    versions = [field for field in blobs if len(field) == 40][1::2]  # each line: old blob, new blob
    pool = WorkerStatistics(repo, 2)
    try:
        for number in range(2):
            pool.submit(Job(number, versions, None))
        results = pool.take([0, 1])
        assert results[0] == results[1] and len(results[0]) == len(versions)
        expected = min(19, psutil.Process().nice() + WORKER_NICENESS)
        for process in pool._processes:  # (a worker lowers its priority once it has started)
            wait_until(lambda pid=process.pid: psutil.Process(pid).nice() == expected, 30,
                       f"index worker {process.pid} niced to {expected}")
    finally:
        pool.close()
