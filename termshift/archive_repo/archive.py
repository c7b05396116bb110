"""`Archive`: the data folder's two repositories, `snapshots/` and `versions/`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from termshift.archive_repo.git_repository import RecordRepository
from termshift.archive_repo.log_reader import head_commit
from termshift.config import ArchiveSettings

SNAPSHOTS_DIR = "snapshots"
VERSIONS_DIR = "versions"


def archive_options(archive: ArchiveSettings | None) -> dict[str, str]:
    """Keyword arguments for RecordRepository from the `[archive]` settings section
    (`Settings.archive`); None keeps RecordRepository's defaults."""
    if archive is None:
        return {}
    return {"author_name": archive.author_name, "author_email": archive.author_email,
            "snapshot_id_template": archive.snapshot_id_template}


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
    def open(
        cls, data_dir: Path | str, archive: ArchiveSettings | None = None, *, read_only: bool = False,
    ) -> Archive:
        """Open (creating when missing, unless read-only) `<data_dir>/snapshots` and
        `<data_dir>/versions`, recovering from an interrupted writer. `archive`: the
        `[archive]` settings (`Settings.archive`) of the commits written."""
        data_dir = Path(data_dir)
        options = archive_options(archive)
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
