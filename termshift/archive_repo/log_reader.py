"""Read commits in bulk: one `git log -z --raw` process, parsed as it streams.

Reading a whole repository must not cost a process per commit: the log gives, for every
commit, its id, author date, message and the blob id of each file it changed, which is
all a record needs (its content is then read by blob id through `git cat-file --batch`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

# %H, %at and %B are NUL-separated; with -z, raw diff entries are NUL-separated too.
LOG_FORMAT = "--format=%H%x00%at%x00%B"
LOG_OPTIONS = (
    LOG_FORMAT,
    "-z",
    "--raw",
    "--no-abbrev",
    "--no-renames",  # a renamed file must read as a new file, as OTA's `--name-only` shows it
    "--root",  # the first commit's file shows as added
    "--no-merges",
    "--no-color",
    "--no-show-signature",
)
SUBMODULE_MODE = "160000"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class FileChange:
    """One file changed by a commit: its path, new blob id and status letter (A, M, D, T)."""

    path: str
    blob: str
    status: str


@dataclass(frozen=True)
class LoggedCommit:
    """What `git log` tells about one commit."""

    id: str
    timestamp: int
    message: str
    changes: tuple[FileChange, ...]


def nul_fields(stream: IO[bytes]) -> Iterator[bytes]:
    """The NUL-separated fields of a byte stream, read in chunks."""
    pending = b""
    while chunk := stream.read(_CHUNK):
        pending += chunk
        *fields, pending = pending.split(b"\0")
        yield from fields
    if pending.strip():
        yield pending


def parse_log(fields: Iterable[bytes]) -> Iterator[LoggedCommit]:
    """Commits from the fields of `git log` run with LOG_OPTIONS.

    Layout per commit: id, author timestamp, message, then zero or more pairs
    (`:<mode> <mode> <old blob> <new blob> <status>`, path). A raw entry is recognised by
    its leading `:`, which no commit id has. Submodule entries (mode 160000) are left
    out: they point at commits of another repository, never at a record's blob.
    """
    iterator = iter(fields)
    pending: bytes | None = None
    while True:
        token = pending if pending is not None else next(iterator, None)
        pending = None
        if token is None:
            return
        commit_id = token.strip().decode("ascii")
        if not commit_id:
            continue
        timestamp = int(next(iterator))
        message = next(iterator).decode("utf-8", errors="replace")
        changes = []
        for token in iterator:
            entry = token.lstrip(b"\n")
            if not entry.startswith(b":"):
                pending = token
                break
            _old_mode, new_mode, _old_blob, new_blob, status = entry[1:].decode("ascii").split(" ")
            path = next(iterator).decode("utf-8", errors="surrogateescape")
            if new_mode == SUBMODULE_MODE:
                continue
            changes.append(FileChange(path=path, blob=new_blob, status=status[:1]))
        yield LoggedCommit(id=commit_id, timestamp=timestamp, message=message, changes=tuple(changes))
