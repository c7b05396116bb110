"""The versions repository as feeds and webhooks see it: which versions exist, and their text.

- `list_versions(data_dir, service_id, terms_type, limit)`: newest first, technical
  upgrades left out unless asked for, from the one log reader (streamed: a short feed
  reads only the top of a long history). The feeds use the viewer's index instead when
  the app has one (`termshift.web.feed_routes.feed_versions`); this is their fallback.
- `read_texts(data_dir, entries)`: each version's Markdown and the text of the same
  file just before it (`<id>~1:<path>`: every commit touches one file, so the parent
  commit holds the previous version), in one `git cat-file` run.
- `archived_terms(data_dir)`: the (service, terms type) pairs that have versions.

The layout and commit subjects are Open Terms Archive's (`archive_repo.messages`):
`<service id>/<terms type>.md`, one file per commit, fetch date = author date; service
and type are read from the path, never from the subject.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from termshift.archive_repo.blob_reader import read_objects
from termshift.archive_repo.log_reader import LoggedCommit, has_commits, read_log, tree_paths
from termshift.archive_repo.messages import RecordKind, parse_record_path, parse_subject, split_message

VERSIONS_DIR = "versions"


@dataclass(frozen=True)
class VersionEntry:
    """One version without its text (what a feed entry or a webhook event names)."""

    service_id: str
    terms_type: str
    id: str
    fetch_date: datetime
    is_first_record: bool
    is_technical_upgrade: bool = False

    @property
    def path(self) -> str:
        return version_path(self.service_id, self.terms_type)


def version_path(service_id: str, terms_type: str) -> str:
    """The Markdown file of a terms in the versions repository."""
    return f"{service_id}/{terms_type}.md"


def versions_repository(data_dir: Path) -> Path:
    return Path(data_dir) / VERSIONS_DIR


def _pathspec(service_id: str | None, terms_type: str | None) -> str:
    if service_id is None:
        return ":(glob)*/*.md"
    if terms_type is None:
        return f":(literal){service_id}/"
    return f":(literal){version_path(service_id, terms_type)}"


def version_entry(commit: LoggedCommit) -> VersionEntry | None:
    """The version a commit records, or None when it is not a version commit: a known
    subject (`messages.parse_subject`) and exactly one `<service>/<terms type>.md` file."""
    if len(commit.changes) != 1:
        return None  # OTA rejects commits touching several files
    parsed = parse_record_path(commit.changes[0].path)
    if parsed is None or parsed[3] != "md" or parsed[2] is not None:
        return None
    kind = parse_subject(split_message(commit.message)[0])
    if kind is None:
        return None
    return VersionEntry(
        service_id=parsed[0],
        terms_type=parsed[1],
        id=commit.id,
        fetch_date=datetime.fromtimestamp(commit.timestamp, UTC),
        is_first_record=kind is RecordKind.FIRST_RECORD,
        is_technical_upgrade=kind is RecordKind.TECHNICAL_UPGRADE,
    )


def list_versions(
    data_dir: Path, service_id: str | None = None, terms_type: str | None = None, limit: int = 100,
    include_technical_upgrades: bool = False,
) -> list[VersionEntry]:
    """Versions newest first from the versions repository, at most `limit`."""
    repo = versions_repository(data_dir)
    if limit <= 0 or not has_commits(repo):
        return []
    entries: list[VersionEntry] = []
    commits = read_log(repo, ["HEAD"], [_pathspec(service_id, terms_type)])
    try:
        for commit in commits:
            entry = version_entry(commit)
            if entry is None or (entry.is_technical_upgrade and not include_technical_upgrades):
                continue
            if service_id is not None and entry.service_id != service_id:
                continue
            entries.append(entry)
            if len(entries) >= limit:
                break
    finally:
        commits.close()  # stops git at once when the list is full
    return entries


def read_texts(data_dir: Path, entries: Iterable[VersionEntry]) -> list[tuple[str | None, str | None]]:
    """(previous text, text) of each version; previous is None for a first record or a root commit."""
    entries = list(entries)
    repo = versions_repository(data_dir)
    names: list[str] = []
    for entry in entries:
        names += [f"{entry.id}~1:{entry.path}", f"{entry.id}:{entry.path}"]
    if not names or not has_commits(repo):
        return [(None, None)] * len(entries)
    blobs = [None if data is None else data.decode("utf-8", "replace") for data in read_objects(repo, names)]
    return [(blobs[2 * i], blobs[2 * i + 1]) for i in range(len(entries))]


def archived_terms(data_dir: Path) -> set[tuple[str, str]]:
    """(service id, terms type) of every Markdown file at the repository's HEAD."""
    repo = versions_repository(data_dir)
    if not has_commits(repo):
        return set()
    pairs = set()
    for path in tree_paths(repo):
        parsed = parse_record_path(path)
        if parsed is not None and parsed[3] == "md" and parsed[2] is None:
            pairs.add((parsed[0], parsed[1]))
    return pairs
