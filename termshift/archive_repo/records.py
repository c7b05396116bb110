"""Snapshot and Version records: what is stored in, and read back from, the archive.

A record read from git has its `content` loaded on first access: iterating a whole
repository (the rebuild reads thousands of snapshots) then costs one blob read per
record actually looked at, and nothing for the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from termshift.archive_repo.media_types import MARKDOWN
from termshift.errors import InvalidRecordError

Content = str | bytes


class _LazyContent:
    """Dataclass field descriptor: `record.content` is loaded by a callback on first access.

    Assigning a value (the constructor does) stores it; the repository instead attaches a
    loader with `attach_loader`. Used as the field's default, `__get__(None, …)` yields
    `None`, so `content` defaults to None (an invalid record until it is set).
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}_value"
        self._loader_slot = f"_{name}_loader"

    def __get__(self, record: Any, owner: type | None = None) -> Content | None:
        if record is None:
            return None
        value = record.__dict__.get(self._slot)
        loader = record.__dict__.get(self._loader_slot)
        if value is None and loader is not None:
            value = loader()
            record.__dict__[self._slot] = value
            record.__dict__[self._loader_slot] = None
        return value

    def __set__(self, record: Any, value: Content | None) -> None:
        record.__dict__[self._slot] = value
        record.__dict__[self._loader_slot] = None


@dataclass(repr=False)
class Record:
    """Fields shared by snapshots and versions (OTA's `Record`).

    `id` and `is_first_record` are set by the repository; `fetch_date` is timezone-aware
    UTC and becomes both the author and the committer date of the commit.
    """

    service_id: str
    terms_type: str
    fetch_date: datetime
    content: Content | None = _LazyContent()  # type: ignore[assignment]
    mime_type: str = "text/html"
    document_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    is_technical_upgrade: bool = False
    snapshot_ids: list[str] = field(default_factory=list)
    id: str | None = None
    is_first_record: bool | None = None

    kind_name = "Record"

    def attach_loader(self, loader: Callable[[], Content]) -> None:
        """Load `content` with `loader()` on first access (used by the repository)."""
        self.__dict__["_content_value"] = None
        self.__dict__["_content_loader"] = loader

    def __getstate__(self) -> dict[str, Any]:
        # Pickled records (sent to worker processes) carry their content, not the loader.
        state = dict(self.__dict__)
        state["_content_value"], state["_content_loader"] = self.content, None
        return state

    @property
    def is_content_loaded(self) -> bool:
        return self.__dict__.get("_content_value") is not None

    def validate(self) -> None:
        """Raise InvalidRecordError naming the first missing field (OTA's wording)."""
        required = ("service_id", "terms_type", "fetch_date", "content", "mime_type")
        for name in required:
            value = getattr(self, name)
            if value is None:
                raise InvalidRecordError(f'{self.kind_name} is not valid; "{name}" is missing')
            if value in ("", b""):
                raise InvalidRecordError(f'{self.kind_name} is not valid; "{name}" is empty or null')
        if not isinstance(self.content, str | bytes):
            raise InvalidRecordError(f'{self.kind_name} is not valid; "content" must be str or bytes')
        if not isinstance(self.fetch_date, datetime) or self.fetch_date.tzinfo is None:
            raise InvalidRecordError(f'{self.kind_name} is not valid; "fetch_date" must be a timezone-aware datetime')

    @property
    def fetch_date_utc(self) -> datetime:
        """The fetch date in UTC, truncated to the second (git's precision)."""
        return self.fetch_date.astimezone(UTC).replace(microsecond=0)

    def __repr__(self) -> str:
        # Never print (or load) the content: snapshots weigh hundreds of kilobytes.
        return (
            f"{type(self).__name__}(service_id={self.service_id!r}, terms_type={self.terms_type!r}, "
            f"document_id={self.document_id!r}, fetch_date={self.fetch_date.isoformat()!r}, "
            f"mime_type={self.mime_type!r}, id={self.id!r}, is_first_record={self.is_first_record!r}, "
            f"is_technical_upgrade={self.is_technical_upgrade!r})"
        )


@dataclass(repr=False)
class Snapshot(Record):
    """A raw page as fetched: HTML as str, PDF as bytes. `metadata` holds the trailers
    (`fetcher`, `source-document-location`, `engine-version`)."""

    kind_name = "Snapshot"


@dataclass(repr=False)
class Version(Record):
    """The Markdown extracted from one or more snapshots (`snapshot_ids`, in document order)."""

    mime_type: str = MARKDOWN
    kind_name = "Version"

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.content, str):
            raise InvalidRecordError('Version is not valid; "content" must be Markdown text (str)')
        if not self.snapshot_ids:
            raise InvalidRecordError('Version is not valid; "snapshot_ids" is missing')
