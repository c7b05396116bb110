"""`RecordRepository`: one git repository of records (snapshots or versions), OTA's layout.

Writing (one record = one commit touching one file, see `record`):
  blob, subtrees and commit are written as loose objects in Python (object_store), then
  `git update-ref HEAD <new> <old>` publishes the commit atomically, then the work-tree
  file and the index entry are brought up to date. Every step before the ref update only
  adds unreachable objects, every step after it is redone by `recover` on the next open,
  so a writer killed at any point loses nothing committed and leaves a valid repository.
  Writers serialise on a file lock (`.git/termshift.lock`), across threads and processes.

Reading (the archive's one log reader and one blob reader, as for every other reader):
  listings come from a single `git log -z --raw` process (log_reader.read_log); contents,
  trees and commits come from a persistent `git cat-file --batch` (blob_reader.BlobReader)
  by object id, a record's content loaded when first accessed.

Text read back is exactly what was stored (OTA trims leading and trailing whitespace
when reading; we do not, so a record round-trips byte for byte).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

import filelock
import git

from termshift import __version__
from termshift.archive_repo import messages
from termshift.archive_repo.blob_reader import BlobReader
from termshift.archive_repo.log_reader import GitError, LoggedCommit, read_log
from termshift.archive_repo.media_types import extension_for, is_text, mime_type_for
from termshift.archive_repo.object_store import (
    FILE_MODE,
    TREE_MODE,
    ObjectWriter,
    TreeEntry,
    commit_data,
    commit_tree_id,
    object_id,
    parse_tree,
    replace_in_tree,
    tree_data,
)
from termshift.archive_repo.records import Record, Snapshot, Version
from termshift.archive_repo.recovery import WORK_TREE_TEMP_SUFFIX, recover
from termshift.archive_repo.ref_updater import RefUpdater
from termshift.errors import ArchiveError, ArchiveLockedError, InvalidRecordError

log = logging.getLogger(__name__)

Kind = Literal["snapshots", "versions"]
R = TypeVar("R", bound=Record)

DEFAULT_AUTHOR_NAME = "Termshift Bot"
DEFAULT_AUTHOR_EMAIL = "bot@termshift.invalid"
ZERO_ID = "0" * 40
LOCK_FILE = "termshift.lock"
INDEX_BATCH = 100  # records between two refreshes of git's index
# Git settings OTA applies when it initialises a repository (ota-behaviour.md §2.5.2).
_INIT_CONFIG = {
    ("core", "autocrlf"): "false",
    ("core", "quotePath"): "false",
    ("core", "commitGraph"): "true",
    ("push", "default"): "current",
    ("gc", "writeCommitGraph"): "false",
}
_COMMIT_ID = re.compile(r"[0-9a-fA-F]{4,40}")


class RecordRepository:
    """The snapshots or the versions repository.

    `kind` decides which record class is read back (`Snapshot` or `Version`). The author
    identity names the commits; `snapshot_id_template` is how version bodies refer to
    snapshots. A `read_only` repository never writes, locks or recovers (the viewer).
    """

    def __init__(
        self,
        path: Path | str,
        kind: Kind,
        *,
        author_name: str = DEFAULT_AUTHOR_NAME,
        author_email: str = DEFAULT_AUTHOR_EMAIL,
        snapshot_id_template: str = messages.DEFAULT_SNAPSHOT_ID_TEMPLATE,
        engine_version: str = __version__,
        read_only: bool = False,
        lock_timeout: float = 60.0,
    ):
        if kind not in ("snapshots", "versions"):
            raise ValueError(f"kind {kind!r}: must be 'snapshots' or 'versions'")
        for field, value in (("author_name", author_name), ("author_email", author_email)):
            if not value or any(char in value for char in "<>\n\0"):
                raise ValueError(f"archive.{field} {value!r}: must be non-empty, without '<', '>' or line breaks")
        if messages.SNAPSHOT_ID_MARKER not in snapshot_id_template:
            raise ValueError(f"archive.snapshot_id_template {snapshot_id_template!r}: must contain %SNAPSHOT_ID")
        self.path = Path(path)
        self.kind: Kind = kind
        self.record_class: type[Record] = Version if kind == "versions" else Snapshot
        self.author_name, self.author_email = author_name, author_email
        self.snapshot_id_template = snapshot_id_template
        self.engine_version = engine_version
        self.read_only = read_only
        self._repo = _open_repo(self.path, create=not read_only, author=(author_name, author_email))
        self._git_dir = Path(self._repo.git_dir)
        self._objects = ObjectWriter(self._git_dir / "objects")
        self._refs = RefUpdater(self._repo)
        self._file_lock = filelock.FileLock(str(self._git_dir / LOCK_FILE), timeout=lock_timeout)
        self._write_lock = threading.RLock()  # one writer thread at a time in this process
        self._objects_reader = BlobReader(self.path)  # thread-safe
        self._head_tree: tuple[str, list[TreeEntry]] | None = None
        self._unindexed: set[str] = set()  # recorded files not yet staged in git's index
        if not read_only:
            try:
                with self._writer():
                    recover(self._repo)
            except BaseException:
                self._objects_reader.close()
                self._repo.close()
                raise

    def __repr__(self) -> str:
        return f"RecordRepository({str(self.path)!r}, {self.kind!r})"

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Bring the index up to date and stop the long-running git processes."""
        if self._unindexed:
            with self._writer():
                self._sync_index()
        self._refs.close()
        self._objects_reader.close()
        self._repo.close()

    def __enter__(self) -> RecordRepository:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def optimize(self) -> None:
        """Pack loose objects when git thinks it is time, and write the commit-graph with
        changed-path Bloom filters (OTA does so at start and end of a run): per-path
        queries stay fast on repositories of 100k commits."""
        self._ensure_writable()
        with self._writer():
            self._sync_index()
            # In the foreground: a detached gc would hold git locks after we let go of ours.
            self._repo.git.execute(["git", "-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"])
            self._repo.git.commit_graph("write", "--reachable", "--changed-paths")

    # --- writing --------------------------------------------------------------------------

    def record(self, record: R) -> R | None:
        """Commit `record` if its content differs from the file at HEAD.

        Returns a copy with `id` (40-hex commit id), `is_first_record`, the full `metadata`
        (with `x-engine-version`) and the fetch date as stored (UTC, whole seconds); or None
        when the content is byte-identical to the current file (no commit).
        Raises InvalidRecordError for a record missing a field or with unusable ids.
        """
        self._ensure_writable()
        self._check_record(record)
        content = record.content.encode("utf-8") if isinstance(record.content, str) else record.content
        path = self._path_of(record)
        service_dir, file_name = path.split("/", 1)
        metadata = self._metadata_of(record)
        fetch_date = record.fetch_date_utc
        with self._writer():
            head = self._head()
            root = self._root_tree(head)
            service_tree = self._subtree(root, service_dir)
            if _blob_named(service_tree, file_name) == object_id(b"blob", content):
                return None
            is_first = not any(self._same_document(f"{service_dir}/{name}", record) for _, _, name in service_tree)
            message = self._message_of(record, metadata, is_first)
            blob = self._objects.write(b"blob", content)
            new_service_tree = replace_in_tree(service_tree, file_name, bytes.fromhex(blob), FILE_MODE)
            subtree = self._objects.write(b"tree", tree_data(new_service_tree))
            new_root = replace_in_tree(root, service_dir, bytes.fromhex(subtree), TREE_MODE)
            tree = self._objects.write(b"tree", tree_data(new_root))
            identity = f"{self.author_name} <{self.author_email}>"
            commit = self._objects.write(b"commit", commit_data(tree, head, identity, fetch_date, message))
            self._objects.flush()  # on disk before anything points at them
            self._refs.update("HEAD", commit, head or ZERO_ID)  # the commit point
            self._head_tree = (commit, new_root)
            self._check_out(path, content)
        return dataclasses.replace(record, id=commit, is_first_record=is_first, metadata=metadata, fetch_date=fetch_date)

    def _check_record(self, record: Record) -> None:
        if not isinstance(record, self.record_class):
            raise InvalidRecordError(
                f"{self.path}: a {self.kind} repository stores {self.record_class.__name__} records, "
                f"not {type(record).__name__}"
            )
        record.validate()

    def _path_of(self, record: Record) -> str:
        try:
            extension = "md" if self.kind == "versions" else extension_for(record.mime_type)
            return messages.record_path(record.service_id, record.terms_type, record.document_id, extension)
        except ValueError as error:
            raise InvalidRecordError(f"{record.kind_name} is not valid; {error}") from None

    def _metadata_of(self, record: Record) -> dict[str, str]:
        """The record's metadata with lower-case keys, `x-engine-version` first unless given."""
        given = {str(key).lower(): value for key, value in record.metadata.items()}
        metadata = {"x-engine-version": self.engine_version} | given
        try:
            messages.format_trailers(metadata)
        except ValueError as error:
            raise InvalidRecordError(f"{record.kind_name} is not valid; {error}") from None
        return metadata

    def _message_of(self, record: Record, metadata: dict[str, str], is_first: bool) -> str:
        kind = messages.kind_of(is_first, record.is_technical_upgrade)
        if self.kind == "versions":
            body = messages.format_version_body(record.snapshot_ids, self.snapshot_id_template)
        else:
            body = messages.format_snapshot_body(record.document_id)
        return messages.format_message(
            messages.format_subject(kind, record.service_id, record.terms_type),
            body,
            messages.format_trailers(metadata),
        )

    def _root_tree(self, head: str | None) -> list[TreeEntry]:
        """HEAD's root tree entries, cached between our own consecutive commits."""
        if head is None:
            return []
        if self._head_tree is None or self._head_tree[0] != head:
            self._head_tree = (head, self._tree_of_commit(head))
        return self._head_tree[1]

    def _check_out(self, path: str, content: bytes) -> None:
        """Write the committed file into the work tree, through a rename.

        git's index is refreshed in batches (`_sync_index`): the archive never reads it,
        it only keeps `git status` quiet for people looking into the repository, and one
        `git update-index` per record would cost more than the commit itself. The commit
        is already published, so a failure here is logged (the next open repairs it).
        """
        target = self.path / path
        temporary = target.with_name(f".{target.name}{WORK_TREE_TEMP_SUFFIX}")
        try:
            target.parent.mkdir(exist_ok=True)
            temporary.write_bytes(content)
            os.replace(temporary, target)
        except OSError as error:
            log.warning("%s: committed %s but could not write it to the work tree: %s", self.path, path, error)
        self._unindexed.add(path)
        if len(self._unindexed) >= INDEX_BATCH:
            self._sync_index()

    def _sync_index(self) -> None:
        """Stage the files recorded since the last sync, so that the index matches HEAD."""
        if not self._unindexed:
            return
        paths, self._unindexed = sorted(self._unindexed), set()
        try:
            self._repo.git.update_index("--add", "--", *paths)
        except git.GitCommandError as error:
            log.warning("%s: could not refresh the index (repaired on next open): %s", self.path, error.stderr)

    @contextmanager
    def _writer(self) -> Iterator[None]:
        """Hold the writer lock: this thread among ours, this process among all."""
        with self._write_lock:
            try:
                self._file_lock.acquire()
            except filelock.Timeout:
                raise ArchiveLockedError(
                    f"{self.path}: another writer holds {self._file_lock.lock_file} "
                    f"(waited {self._file_lock.timeout:g} s)"
                ) from None
            try:
                yield
            finally:
                self._file_lock.release()

    def _ensure_writable(self) -> None:
        if self.read_only:
            raise ArchiveError(f"{self.path}: repository opened read-only")

    # --- reading --------------------------------------------------------------------------

    def latest(self, service_id: str, terms_type: str, document_id: str | None = None) -> Record | None:
        """The most recent record of a document, whatever its file extension (an HTML page
        that became a PDF is still found), or None when there is none."""
        return next(self._document_records(service_id, terms_type, document_id), None)

    def find_by_date(
        self, service_id: str, terms_type: str, date: datetime, document_id: str | None = None
    ) -> Record | None:
        """The latest record of a document fetched at or before `date` (aware datetime)."""
        if date.tzinfo is None:
            raise ValueError("find_by_date: date must be timezone-aware")
        for record in self._document_records(service_id, terms_type, document_id):
            if record.fetch_date <= date:
                return record
        return None

    def history(
        self,
        service_id: str,
        terms_type: str,
        document_id: str | None = None,
        *,
        include_technical_upgrades: bool = True,
    ) -> list[Record]:
        """Every record of a document, newest first (by fetch date, as OTA)."""
        return [
            record
            for record in self._document_records(service_id, terms_type, document_id)
            if include_technical_upgrades or not record.is_technical_upgrade
        ]

    def content_before(self, record: Record) -> str | bytes | None:
        """The content `record` replaced: its file in the parent of its commit (one object
        read, no log walk), or None for a first record or when there is none."""
        if record.id is None or record.is_first_record:
            return None
        try:
            data = self._read_object(f"{record.id}~1:{self._path_of(record)}")
        except ValueError:  # no parent, or no such file in it
            return None
        return data.decode("utf-8", errors="replace") if is_text(record.mime_type) else data

    def find_by_id(self, record_id: str) -> Record | None:
        """The record committed as `record_id` (full or abbreviated), or None when there is
        no such commit or it is not a record (a README change, a merge…)."""
        if not _COMMIT_ID.fullmatch(record_id or ""):
            return None
        try:
            commits = list(self._log(["-1", "--no-walk", record_id]))
        except GitError:
            return None
        records = [self._to_record(commit) for commit in commits]
        return records[0] if records and records[0] is not None else None

    def iterate(
        self, services: Iterable[str] | None = None, types: Iterable[str] | None = None
    ) -> Iterator[Record]:
        """Every record, oldest first (commit order), optionally of some services and terms
        types only. Lazy: one `git log` process; each content is read when accessed."""
        wanted_types = set(types) if types is not None else None
        if services is not None:
            pathspecs = [f":(literal){service}/" for service in services]
            if not pathspecs:
                return
        else:
            pathspecs = ["*/*"]
        for commit in self._log(["--reverse", "HEAD"], pathspecs):
            record = self._to_record(commit)
            if record is not None and (wanted_types is None or record.terms_type in wanted_types):
                yield record

    def count(self, service_id: str | None = None, terms_type: str | None = None) -> int:
        """Number of records, overall, of a service, or of a service's terms type."""
        services = [service_id] if service_id is not None else None
        types = [terms_type] if terms_type is not None else None
        return sum(1 for _ in self.iterate(services, types))

    # --- reading helpers ------------------------------------------------------------------

    def _document_records(self, service_id: str, terms_type: str, document_id: str | None) -> Iterator[Record]:
        """Records of one document, newest fetch date first."""
        head = self._head()
        if head is None:
            return
        service_tree = self._subtree(self._tree_of_commit(head), service_id)
        wanted = (service_id, terms_type, document_id or None)
        paths = []
        for _binsha, mode, name in service_tree:
            parsed = messages.parse_record_path(f"{service_id}/{name}")
            if mode != TREE_MODE and parsed is not None and parsed[:3] == wanted:
                paths.append(f"{service_id}/{name}")
        if not paths:
            return
        pathspecs = [f":(literal){path}" for path in paths]
        for commit in self._log(["--author-date-order", "HEAD"], pathspecs):
            record = self._to_record(commit)
            if record is not None:
                yield record

    def _log(self, arguments: list[str], pathspecs: list[str] | None = None) -> Iterator[LoggedCommit]:
        """Stream `git log` (log_reader.read_log): stops the process if the caller stops
        early, raises GitError with git's message if it fails."""
        if self._head() is None:
            return  # no commit yet; `git log` would fail
        yield from read_log(self.path, arguments, pathspecs or ())

    def _to_record(self, commit: LoggedCommit) -> Record | None:
        """The record a commit holds, or None when it is not a record commit.

        Record commits have a known subject prefix and change exactly one `<dir>/<file>`
        (other files such as README are ignored, as OTA's `*/*` pathspec does).
        """
        subject, body = messages.split_message(commit.message)
        kind = messages.parse_subject(subject)
        if kind is None:
            return None
        changes = []
        for change in commit.changes:
            parsed = messages.parse_record_path(change.path)
            if parsed is not None and change.status in "AMT":
                changes.append((change, parsed))
        if len(changes) != 1:
            if len(changes) > 1:
                log.warning("%s: commit %s records %d files, expected one; skipped", self.path, commit.id, len(changes))
            return None
        change, (service_id, terms_type, document_id, extension) = changes[0]
        is_version = extension.lower() == "md"
        if is_version != (self.kind == "versions"):
            return None
        mime_type = mime_type_for(extension)
        record = self.record_class(
            service_id=service_id,
            terms_type=terms_type,
            document_id=document_id,
            fetch_date=datetime.fromtimestamp(commit.timestamp, UTC),
            mime_type=mime_type,
            metadata=messages.parse_trailers(commit.message),
            id=commit.id,
            is_first_record=kind is messages.RecordKind.FIRST_RECORD,
            is_technical_upgrade=kind is messages.RecordKind.TECHNICAL_UPGRADE,
            snapshot_ids=messages.snapshot_ids_in(body) if is_version else [],
        )
        as_text = is_text(mime_type)
        record.attach_loader(lambda: self._read_blob(change.blob, as_text))
        return record

    def _read_blob(self, blob: str, as_text: bool) -> str | bytes:
        data = self._read_object(blob)
        return data.decode("utf-8", errors="replace") if as_text else data

    def _read_object(self, object_id_hex: str) -> bytes:
        return self._objects_reader.read(object_id_hex)

    def _head(self) -> str | None:
        """The commit HEAD points at, or None in a repository without commits."""
        try:
            return self._repo.head.commit.hexsha
        except ValueError:
            return None

    def _tree_of_commit(self, commit: str) -> list[TreeEntry]:
        return parse_tree(self._read_object(commit_tree_id(self._read_object(commit))))

    def _subtree(self, root: list[TreeEntry], name: str) -> list[TreeEntry]:
        for binsha, mode, entry_name in root:
            if entry_name == name and mode == TREE_MODE:
                return parse_tree(self._read_object(binsha.hex()))
        return []

    def _same_document(self, path: str, record: Record) -> bool:
        parsed = messages.parse_record_path(path)
        return parsed is not None and parsed[:3] == (record.service_id, record.terms_type, record.document_id or None)


def _open_repo(path: Path, *, create: bool, author: tuple[str, str]) -> git.Repo:
    """Open the repository at `path`, creating it (with OTA's git settings) when allowed.

    A bare repository (a mirror) can be opened read-only: reading needs no work tree.
    """
    is_bare = (path / "HEAD").is_file() and (path / "objects").is_dir()
    if (path / ".git").exists() or is_bare:
        if is_bare and create:
            raise ArchiveError(f"{path}: a bare repository can only be opened read-only")
        try:
            return git.Repo(path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
            raise ArchiveError(f"{path}: not a usable git repository ({error})") from None
    if not create:
        raise ArchiveError(f"{path}: no git repository here")
    if path.exists() and any(path.iterdir()):
        raise ArchiveError(f"{path}: exists, is not a git repository and is not empty")
    path.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(path, initial_branch="main")
    with repo.config_writer() as config:
        for (section, key), value in _INIT_CONFIG.items():
            config.set_value(section, key, value)
        config.set_value("user", "name", author[0])
        config.set_value("user", "email", author[1])
    return repo


def _blob_named(tree: list[TreeEntry], name: str) -> bytes | None:
    """The binary id of the file `name` in a tree, or None."""
    for binsha, mode, entry_name in tree:
        if entry_name == name and mode != TREE_MODE:
            return binsha
    return None
