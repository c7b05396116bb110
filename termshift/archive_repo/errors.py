"""Errors of the archive repositories."""

from __future__ import annotations

from termshift.errors import TermshiftError


class ArchiveError(TermshiftError):
    """A repository cannot be used (not a git repository, git failed…); the message names it."""


class InvalidRecordError(ArchiveError, ValueError):
    """A record misses a required field (`Snapshot is not valid; "content" is missing`)."""


class ArchiveLockedError(ArchiveError):
    """Another process kept the repository's writer lock longer than we were willing to wait."""
