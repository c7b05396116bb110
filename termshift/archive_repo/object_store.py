"""Build git objects (blobs, trees, commits) in Python and store them as loose objects.

Recording one file per commit does not need git's index: the new tree is the parent's
tree with one entry replaced, so we write the blob, the service's subtree, the root tree
and the commit directly, each to a temporary file renamed into place, so a killed
process never leaves a truncated object. Only the ref update is
left to `git update-ref`, the atomic compare-and-swap that makes the commit visible.
(Objects are read back through GitPython's persistent `git cat-file --batch`.)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from git.objects.fun import tree_entries_from_data

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
    """

    def __init__(self, objects_dir: Path):
        self.objects_dir = objects_dir

    def write(self, kind: bytes, data: bytes) -> str:
        """Store the object unless it exists as a loose object; return its hex id."""
        raw = b"%s %d\0" % (kind, len(data)) + data
        hex_id = hashlib.sha1(raw, usedforsecurity=False).hexdigest()
        directory = self.objects_dir / hex_id[:2]
        target = directory / hex_id[2:]
        if target.exists():
            return hex_id
        try:
            handle, temporary = tempfile.mkstemp(prefix=TEMP_OBJECT_PREFIX, dir=directory)
        except FileNotFoundError:  # a new fan-out directory (or one `git gc` emptied and removed)
            directory.mkdir(exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=TEMP_OBJECT_PREFIX, dir=directory)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(zlib.compress(raw, 1))  # git's core.looseCompression default is 1
            os.chmod(temporary, 0o444)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return hex_id


def replace_in_tree(
    entries: list[TreeEntry], name: str, binsha: bytes, mode: int
) -> list[TreeEntry]:
    """`entries` with the entry called `name` set to (binsha, mode), added when missing."""
    kept = [entry for entry in entries if entry[2] != name]
    return [*kept, (binsha, mode, name)]

