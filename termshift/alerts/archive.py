"""The alerts' only window on the archive: which versions exist, and their text.

Everything the feeds and webhooks need from the archive goes through the
functions below, so the rest of `termshift.alerts` does not care where it
comes from:

- `versions_from_git(data_dir, service_id, terms_type, limit)` — newest first,
  technical upgrades left out, straight from the versions repository
  (`git log`, streamed: a short feed reads only the top of a long history).
  The feeds use the viewer's index instead when the app has one
  (`termshift.web.feeds.feed_versions`); this is their fallback.
- `read_texts(data_dir, entries)` — each version's Markdown and the text of
  the same file just before it (`<id>~1:<path>`: every commit touches one file,
  so the parent commit holds the previous version), in one `git cat-file` run.
- `archived_terms(data_dir)` — the (service, terms type) pairs that have versions.

The repository layout and commit subjects are Open Terms Archive's (reference
§2.5): `<service id>/<terms type>.md`, one file per commit, fetch date = commit
date; service and type are read from the path, never from the subject.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

FIRST_RECORD_PREFIXES = ("First record of", "Start tracking")
TECHNICAL_UPGRADE_PREFIXES = ("Apply technical or declaration upgrade on", "Refilter")
CHANGE_PREFIXES = ("Record new changes of", "Update")


@dataclass(frozen=True)
class VersionEntry:
    """One version as the alerts see it (a subset of archive_repo's Version)."""

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
    return Path(data_dir) / "versions"


def _git(repo: Path, *args: str) -> list[str]:
    return ["git", "-C", str(repo), "-c", "core.quotePath=false", *args]


def _has_commits(repo: Path) -> bool:
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        return False
    done = subprocess.run(_git(repo, "rev-parse", "--verify", "-q", "HEAD"), capture_output=True)
    return done.returncode == 0


def _pathspec(service_id: str | None, terms_type: str | None) -> str:
    if service_id is None:
        return ":(glob)*/*.md"
    if terms_type is None:
        return f":(literal){service_id}/"
    return f":(literal){version_path(service_id, terms_type)}"


def _parse_record(record: bytes) -> VersionEntry | None:
    """One `git log -z` record: `<sha>\\x1f<date>\\x1f<subject>\\0\\n<path>\\0`."""
    header, _, names = record.partition(b"\0")
    sha, date, subject = header.decode("utf-8", "replace").split("\x1f", 2)
    paths = [name for name in names.strip(b"\n").split(b"\0") if name]
    if len(paths) != 1:
        return None  # OTA rejects commits touching several files
    path = paths[0].decode("utf-8", "replace")
    service_id, _, file_name = path.partition("/")
    if not file_name.endswith(".md") or "/" in file_name:
        return None
    first = subject.startswith(FIRST_RECORD_PREFIXES)
    technical = not first and subject.startswith(TECHNICAL_UPGRADE_PREFIXES)
    if not (first or technical or subject.startswith(CHANGE_PREFIXES)):
        return None
    return VersionEntry(
        service_id=service_id,
        terms_type=file_name[: -len(".md")],
        id=sha,
        fetch_date=datetime.fromisoformat(date).astimezone(UTC),
        is_first_record=first,
        is_technical_upgrade=technical,
    )


def _log_records(repo: Path, pathspec: str) -> Iterator[bytes]:
    """Stream `git log` records, newest first, so a short feed reads only the top of a long history."""
    command = _git(repo, "log", "-z", "--no-merges", "--format=%x1e%H%x1f%cI%x1f%s", "--name-only", "--", pathspec)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    buffer = b""
    try:
        while chunk := process.stdout.read(65536):
            buffer += chunk
            *complete, buffer = buffer.split(b"\x1e")
            yield from (record for record in complete if record)
        if buffer:
            yield buffer
    finally:
        process.stdout.close()
        process.kill()
        process.wait()


def versions_from_git(
    data_dir: Path, service_id: str | None = None, terms_type: str | None = None, limit: int = 100,
    include_technical_upgrades: bool = False,
) -> list[VersionEntry]:
    """Versions newest first from the git repository, at most `limit`."""
    repo = versions_repository(data_dir)
    if limit <= 0 or not _has_commits(repo):
        return []
    entries: list[VersionEntry] = []
    for record in _log_records(repo, _pathspec(service_id, terms_type)):
        entry = _parse_record(record)
        if entry is None or (entry.is_technical_upgrade and not include_technical_upgrades):
            continue
        if service_id is not None and entry.service_id != service_id:
            continue
        entries.append(entry)
        if len(entries) >= limit:
            break
    return entries


def read_blobs(data_dir: Path, specs: Iterable[str]) -> list[str | None]:
    """The text of each `<revision>:<path>` (None when it does not exist), with one git process."""
    specs = list(specs)
    repo = versions_repository(data_dir)
    if not specs or not _has_commits(repo):
        return [None] * len(specs)
    for spec in specs:
        if "\n" in spec:
            raise ValueError(f"{spec!r}: a revision or path with a line break cannot be read")
    request = "".join(spec + "\n" for spec in specs).encode("utf-8")
    output = subprocess.run(_git(repo, "cat-file", "--batch"), input=request, capture_output=True, check=True).stdout
    texts: list[str | None] = []
    position = 0
    for _spec in specs:
        line_end = output.index(b"\n", position)
        header = output[position:line_end].split()
        position = line_end + 1
        if len(header) != 3 or header[1] != b"blob":
            texts.append(None)  # "<spec> missing", "ambiguous", or not a file
            continue
        size = int(header[2])
        texts.append(output[position: position + size].decode("utf-8", "replace"))
        position += size + 1  # the blob is followed by a line feed
    return texts


def read_texts(data_dir: Path, entries: Iterable[VersionEntry]) -> list[tuple[str | None, str | None]]:
    """(previous text, text) of each version; previous is None for a first record or a root commit."""
    entries = list(entries)
    specs: list[str] = []
    for entry in entries:
        specs += [f"{entry.id}~1:{entry.path}", f"{entry.id}:{entry.path}"]
    blobs = read_blobs(data_dir, specs)
    return [(blobs[2 * i], blobs[2 * i + 1]) for i in range(len(entries))]


def archived_terms(data_dir: Path) -> set[tuple[str, str]]:
    """(service id, terms type) of every Markdown file at the repository's HEAD."""
    repo = versions_repository(data_dir)
    if not _has_commits(repo):
        return set()
    output = subprocess.run(
        _git(repo, "ls-tree", "-r", "-z", "--name-only", "HEAD"), capture_output=True, check=True,
    ).stdout
    pairs = set()
    for name in output.decode("utf-8", "replace").split("\0"):
        service_id, _, file_name = name.partition("/")
        if file_name.endswith(".md") and "/" not in file_name:
            pairs.add((service_id, file_name[: -len(".md")]))
    return pairs


def head_revision(data_dir: Path) -> str | None:
    """The versions repository's HEAD commit, a cheap key for caches."""
    repo = versions_repository(data_dir)
    if not _has_commits(repo):
        return None
    done = subprocess.run(_git(repo, "rev-parse", "-q", "--verify", "HEAD"), capture_output=True, text=True)
    return done.stdout.strip() or None
