"""`Archive`: the data folder's two repositories, `snapshots/` and `versions/`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from termshift.archive_repo.git_repository import RecordRepository
from termshift.archive_repo.log_reader import head_commit

SNAPSHOTS_DIR = "snapshots"
VERSIONS_DIR = "versions"


def archive_options(settings: Any | None) -> dict[str, str]:
    """Keyword arguments for RecordRepository from the `[archive]` settings section.

    `settings` is a `termshift.config.Settings` or any mapping with an "archive" mapping;
    missing keys keep RecordRepository's defaults.
    """
    if settings is None:
        return {}
    section: Mapping[str, Any] = settings["archive"]
    names = ("author_name", "author_email", "snapshot_id_template")
    return {name: section[name] for name in names if name in section}


def archive_heads(data_dir: Path | str) -> tuple[str | None, str | None]:
    """The commits HEAD points at in the data folder's snapshots and versions repositories
    (None: no repository, or no commit yet). Cheap: one `git rev-parse` each, no GitPython;
    the tracking run compares them with those it recorded at its end."""
    heads = []
    for name in (SNAPSHOTS_DIR, VERSIONS_DIR):
        path = Path(data_dir) / name
        heads.append(head_commit(path) if path.is_dir() else None)
    return heads[0], heads[1]


@dataclass
class Archive:
    """The snapshots and versions repositories of one data folder."""

    snapshots: RecordRepository
    versions: RecordRepository

    @classmethod
    def open(cls, data_dir: Path | str, settings: Any | None = None, *, read_only: bool = False) -> Archive:
        """Open (creating when missing, unless read-only) `<data_dir>/snapshots` and
        `<data_dir>/versions`, recovering from an interrupted writer."""
        data_dir = Path(data_dir)
        options = archive_options(settings)
        snapshots = RecordRepository(data_dir / SNAPSHOTS_DIR, "snapshots", read_only=read_only, **options)
        try:
            versions = RecordRepository(data_dir / VERSIONS_DIR, "versions", read_only=read_only, **options)
        except BaseException:
            snapshots.close()
            raise
        return cls(snapshots=snapshots, versions=versions)

    def close(self) -> None:
        self.snapshots.close()
        self.versions.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
