"""Build git objects (blobs, trees, commits) in Python and store them as loose objects.

Recording one file per commit does not need git's index: the new tree is the parent's
tree with one entry replaced, so we write the blob, the service's subtree, the root tree
and the commit directly, each to a temporary file renamed into place, so a killed
process never leaves a truncated object. Before the commit is published, `flush` puts the
objects written (their data and their directory entries) on disk, so a power cut never
leaves a ref pointing at an object the disk did not keep. Only the ref update is left to
`git update-ref`, the atomic compare-and-swap that makes the commit visible (and that git
flushes too, see ref_updater).
(Objects are read back through GitPython's persistent `git cat-file --batch`.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import logging
import os
import sys
import tempfile
import zlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from git.objects.fun import tree_entries_from_data

log = logging.getLogger(__name__)

FILE_MODE = 0o100644
TREE_MODE = 0o040000
TEMP_OBJECT_PREFIX = "tmp_obj_termshift_"

# (binary id, mode, name): the shape GitPython uses for tree entries.
TreeEntry = tuple[bytes, int, str]


def object_id(kind: bytes, data: bytes) -> bytes:
    """The binary id git gives to an object of `kind` (b"blob", b"tree"…) holding `data`."""
    return hashlib.sha1(b"%s %d\0" % (kind, len(data)) + data, usedforsecurity=False).digest()


def _git_order(entry: TreeEntry) -> bytes:
    """Git sorts tree entries by name, a subtree's name compared as if it ended with `/`."""
    _binsha, mode, name = entry
    key = name.encode("utf-8", errors="surrogateescape")
    return key + b"/" if mode == TREE_MODE else key


def tree_data(entries: Iterable[TreeEntry]) -> bytes:
    """Serialize tree entries in git's order: `<octal mode> <name>\\0<20-byte id>` each.

    Written directly rather than with GitPython's tree_to_stream, which re-checks every
    entry name (names are already checked by `record_path`): with a thousand services at
    the root of a repository, that check was the slowest part of recording.
    """
    return b"".join(
        b"%o %s\0%s" % (mode, name.encode("utf-8", "surrogateescape"), binsha)
        for binsha, mode, name in sorted(entries, key=_git_order)
    )


def parse_tree(data: bytes) -> list[TreeEntry]:
    return tree_entries_from_data(data)


def commit_data(
    tree: str,
    parent: str | None,
    identity: str,
    date: datetime,
    message: str,
) -> bytes:
    """A commit object whose author and committer are `identity` ("Name <email>") at `date`."""
    stamp = f"{identity} {int(date.timestamp())} +0000"
    lines = [f"tree {tree}"]
    if parent:
        lines.append(f"parent {parent}")
    lines += [f"author {stamp}", f"committer {stamp}", "", message]
    return "\n".join(lines).encode("utf-8")


def commit_tree_id(data: bytes) -> str:
    """The tree id of a commit object (its first line is `tree <id>`)."""
    first_line = data.split(b"\n", 1)[0]
    if not first_line.startswith(b"tree "):
        raise ValueError("not a commit object: its first line is not 'tree <id>'")
    return first_line[5:].decode("ascii")


class ObjectWriter:
    """Write loose objects into a repository's object directory, as git does.

    Each object is compressed into a temporary file next to its final place, then renamed:
    readers (and a writer killed half-way) see the whole object or nothing. The `tmp_obj_`
    prefix is git's own, so `git gc` also sweeps temporaries a killed process left.

    Durability costs one flush per commit, not one per object: `write` leaves the data in
    the page cache and `flush` (called before the ref moves) puts every object written
    since on disk with one `syncfs` where Linux offers it, else an fsync of each file and
    directory. An object renamed but not yet flushed when the power goes is referenced by
    nothing, and `write` checks an existing object before reusing it, so such a leftover
    is written again rather than trusted.
    """

    def __init__(self, objects_dir: Path):
        self.objects_dir = objects_dir
        self._unflushed: list[Path] = []

    def write(self, kind: bytes, data: bytes) -> str:
        """Store the object unless a sound loose copy exists; return its hex id.

        An existing loose object is reused only once it is read back whole and its id
        checked: a power cut before a flush can leave empty object files.
        """
        raw = b"%s %d\0" % (kind, len(data)) + data
        hex_id = hashlib.sha1(raw, usedforsecurity=False).hexdigest()
        directory = self.objects_dir / hex_id[:2]
        target = directory / hex_id[2:]
        if target.exists():
            if read_loose_object(target, hex_id) is not None:
                return hex_id
            log.warning("%s: damaged object file (empty or corrupt), written again", target)
        try:
            handle, temporary = tempfile.mkstemp(prefix=TEMP_OBJECT_PREFIX, dir=directory)
        except FileNotFoundError:  # a new fan-out directory (or one `git gc` emptied and removed)
            directory.mkdir(exist_ok=True)
            self._unflushed.append(self.objects_dir)
            handle, temporary = tempfile.mkstemp(prefix=TEMP_OBJECT_PREFIX, dir=directory)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(zlib.compress(raw, 1))  # git's core.looseCompression default is 1
            os.chmod(temporary, 0o444)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._unflushed += [target, directory]
        return hex_id

    def flush(self) -> None:
        """Put every object written since the last flush on disk, data and names."""
        if not self._unflushed:
            return
        paths, self._unflushed = list(dict.fromkeys(self._unflushed)), []
        if _syncfs(paths[0]):
            return
        for path in paths:
            fsync_path(path)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory: the names created or renamed in it)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _syncfs(path: Path) -> bool:
    """Flush the whole file system holding `path` (Linux's syncfs); False where unavailable."""
    if _LIBC is None:
        return False
    descriptor = os.open(path, os.O_RDONLY)
    try:
        return _LIBC.syncfs(descriptor) == 0
    finally:
        os.close(descriptor)


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc if hasattr(libc, "syncfs") else None
    except OSError:
        return None


_LIBC = _load_libc()


def read_loose_object(path: Path, hex_id: str) -> bytes | None:
    """The content of the loose object at `path` if it is whole and really is `hex_id`, else None."""
    try:
        raw = zlib.decompress(path.read_bytes())
    except (OSError, zlib.error):
        return None
    if hashlib.sha1(raw, usedforsecurity=False).hexdigest() != hex_id:
        return None
    return raw.partition(b"\0")[2]


def replace_in_tree(
    entries: list[TreeEntry], name: str, binsha: bytes, mode: int
) -> list[TreeEntry]:
    """`entries` with the entry called `name` set to (binsha, mode), added when missing."""
    kept = [entry for entry in entries if entry[2] != name]
    return [*kept, (binsha, mode, name)]

