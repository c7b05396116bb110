"""The snapshots and versions git repositories, in Open Terms Archive's layout.

`Archive.open(data_dir, settings.archive)` gives `.snapshots` and `.versions`, two
`RecordRepository`s that record `Snapshot` and `Version` records (one commit per
record, OTA's commit messages) and read them back, crash-safe.

This package is the one way to read the archive: `log_reader` (commits in bulk, from
one streamed `git log`), `blob_reader` (objects through one `git cat-file --batch`),
`listing` (versions as feeds and webhooks list them) and `archive_heads`.
"""

from termshift.archive_repo.archive import Archive, archive_heads
from termshift.archive_repo.git_repository import RecordRepository
from termshift.archive_repo.messages import RecordKind
from termshift.archive_repo.records import Record, Snapshot, Version
from termshift.errors import ArchiveError, ArchiveLockedError, InvalidRecordError

__all__ = [
    "Archive",
    "ArchiveError",
    "ArchiveLockedError",
    "InvalidRecordError",
    "Record",
    "RecordKind",
    "RecordRepository",
    "Snapshot",
    "Version",
    "archive_heads",
]
