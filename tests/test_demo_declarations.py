"""The shipped demo declarations fit the shipped snapshots.

A declaration that stopped matching its page makes the viewer show an old version as the
current one (QA found the Accessibility Statement stuck at its 2024 text, and the first
`.textcontent` pages of the Imprint and Privacy Policy extracted with the selector of the
previous site). A rebuild of the demo must therefore leave only failures that no
declaration could avoid: pages that hold no terms at all (the site's meta-refresh
redirect pages), and snapshots of a document the service no longer publishes, after the
date its last declaration was valid until.
"""

from __future__ import annotations

from pathlib import Path

from termshift.declarations import load_collection
from termshift.demo import prepare_demo
from termshift.trackers.replay import rebuild

REDIRECT_PAGE = 'http-equiv="refresh"'


def test_every_failure_of_the_demo_rebuild_is_a_page_without_terms(tmp_path: Path) -> None:
    declarations, data = prepare_demo(tmp_path / "demo")
    collection = load_collection(declarations)
    newest: dict[tuple[str, str], tuple[object, Exception | None]] = {}
    failures = []

    def remember(snapshot, _markdown, error, _version) -> None:
        key = (snapshot.service_id, snapshot.terms_type)
        newest[key] = (snapshot.fetch_date, error)
        if error is not None:  # read the page now: the rebuild frees it once extracted
            failures.append((snapshot, REDIRECT_PAGE in snapshot.content, error))

    rebuild(declarations, data / "snapshots", data / "versions", on_snapshot=remember)
    assert failures, "the demo has redirect pages: a rebuild that fails on none is not reading them"

    for snapshot, is_redirect_page, error in failures:
        service = collection.services[snapshot.service_id]
        if snapshot.terms_type in service.terms:  # still declared: only a page without terms may fail
            assert is_redirect_page, (snapshot.terms_type, snapshot.fetch_date, error)
        else:  # retired: its snapshots fail only once its last declaration has expired
            last = max(entry.valid_until for entry in service.history[snapshot.terms_type])
            assert snapshot.fetch_date > last, (snapshot.terms_type, snapshot.fetch_date, error)

    # What the viewer shows as current really is: the newest snapshot of each declared document extracts.
    for (service_id, terms_type), (fetch_date, error) in newest.items():
        if terms_type in collection.services[service_id].terms:
            assert error is None, (service_id, terms_type, fetch_date, error)
