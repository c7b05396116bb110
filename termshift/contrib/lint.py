"""`termshift lint`: one canonical layout for declaration files, and ruff for Python filters.

Why a canonical layout: declarations are edited by hand by many people, and a
pull request should show the change of a selector, not a re-indentation. Every
`<id>.json` and `<id>.history.json` is written exactly as `canonical_json`
writes it:

- 2-space indentation, one key per line, a final newline, UTF-8 with non-ASCII
  characters kept as they are (`"Conditions générales"`, never `\\u00e9`);
- keys in a fixed order: `name`, `terms`, `importedFrom` at the top; in a terms
  declaration or a document `fetch`, `select`, `remove`, `filter`,
  `executeClientScripts`, `combine`, then `validUntil`; in a range
  `startBefore`/`startAfter` then `endBefore`/`endAfter`. Unknown keys (the
  schema reports them) keep their place after the known ones. Terms types keep
  the order of the file;
- history entries sorted by `validUntil` (the engine sorts them anyway, so the
  order of the file carries no meaning and only sorting makes it canonical).

Python filters (`<id>.filters.py`) are checked with `ruff check` and
`ruff format --check`; `--fix` runs `ruff check --fix` and `ruff format`.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from termshift.errors import TermshiftError
from termshift.schema import parse_date_time

TOP_LEVEL_ORDER = ("name", "terms", "importedFrom")
DOCUMENT_ORDER = ("fetch", "select", "remove", "filter", "executeClientScripts", "combine", "validUntil")
RANGE_ORDER = ("startBefore", "startAfter", "endBefore", "endAfter")
MAX_DIFF_LINES = 24  # a diff longer than this is cut: the point is to show what kind of change it is

FileKind = Literal["declaration", "history"]


class NotCanonicalizable(TermshiftError, ValueError):
    """A file whose canonical form cannot be computed (malformed JSON, duplicate keys)."""


# ------------------------------------------------------------- canonical form


def _ordered(mapping: dict[str, Any], order: Iterable[str]) -> dict[str, Any]:
    """`mapping` with the keys of `order` first, in that order, then the others as they were."""
    order = list(order)
    known = [key for key in order if key in mapping]
    others = [key for key in mapping if key not in order]
    return {key: mapping[key] for key in known + others}


def _canonical_selectors(value: Any) -> Any:
    if isinstance(value, dict):
        return _ordered(value, RANGE_ORDER)
    if isinstance(value, list):
        return [_canonical_selectors(item) for item in value]
    return value


def canonical_terms(declaration: Any) -> Any:
    """A terms declaration (or a `combine` item, or a history entry) with its keys in order."""
    if not isinstance(declaration, dict):
        return declaration
    result = _ordered(declaration, DOCUMENT_ORDER)
    for key in ("select", "remove"):
        if key in result:
            result[key] = _canonical_selectors(result[key])
    if isinstance(result.get("combine"), list):
        result["combine"] = [canonical_terms(item) for item in result["combine"]]
    return result


def canonical_declaration(data: Any) -> Any:
    """A parsed `<id>.json` in canonical key order (anything unexpected is left as it is)."""
    if not isinstance(data, dict):
        return data
    result = _ordered(data, TOP_LEVEL_ORDER)
    if isinstance(result.get("terms"), dict):
        result["terms"] = {terms_type: canonical_terms(value) for terms_type, value in result["terms"].items()}
    return result


def _sorted_by_valid_until(entries: list[Any]) -> list[Any]:
    """Entries by ascending `validUntil`; unchanged when some date is missing or invalid."""
    try:
        keys = [parse_date_time(entry["validUntil"]) for entry in entries]
    except (TypeError, KeyError, ValueError):
        return entries
    order = sorted(range(len(entries)), key=lambda index: keys[index])  # stable: equal dates keep file order
    return [entries[index] for index in order]


def canonical_history(data: Any) -> Any:
    """A parsed `<id>.history.json`: entries in key order and sorted by `validUntil`."""
    if not isinstance(data, dict):
        return data
    return {
        terms_type: _sorted_by_valid_until([canonical_terms(entry) for entry in entries])
        if isinstance(entries, list) else entries
        for terms_type, entries in data.items()
    }


def format_json(data: Any) -> str:
    """The canonical text of already-ordered data: 2 spaces, non-ASCII kept, final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            raise NotCanonicalizable(
                f"the key '{key}' appears twice in the same object: only the last one counts; "
                "delete the one you do not want (lint cannot choose for you)")
        seen.add(key)
    return dict(pairs)


def parse_json_text(text: str) -> Any:
    """Parse a declaration file's text; raises NotCanonicalizable with the line and column."""
    try:
        return json.loads(text.removeprefix("\ufeff"), object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as error:
        raise NotCanonicalizable(
            f"malformed JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None
    except RecursionError:
        raise NotCanonicalizable("malformed JSON: nested too deeply") from None


def canonical_json(text: str, kind: FileKind) -> str:
    """The canonical text of a declaration (`kind="declaration"`) or history file."""
    data = parse_json_text(text)
    try:
        ordered = canonical_declaration(data) if kind == "declaration" else canonical_history(data)
        return format_json(ordered)
    except RecursionError:
        raise NotCanonicalizable("nested too deeply to be a declaration") from None


def write_text_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8, `\\n` line ends) so that a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8", newline="\n")
    os.replace(temporary, path)


def write_canonical(path: Path, data: Any, kind: FileKind) -> None:
    """Write `data` to `path` in canonical form."""
    ordered = canonical_declaration(data) if kind == "declaration" else canonical_history(data)
    write_text_atomically(path, format_json(ordered))


# ------------------------------------------------------------------ JSON files


@dataclass
class JsonLint:
    """The lint of one JSON file: its canonical text, or why there is none."""

    path: Path
    original: str
    canonical: str | None = None
    problem: str | None = None

    @property
    def is_canonical(self) -> bool:
        return self.problem is None and self.canonical == self.original

    def diff(self, limit: int = MAX_DIFF_LINES) -> list[str]:
        """A short unified diff from the file to its canonical form."""
        if self.canonical is None:
            return []
        lines = list(difflib.unified_diff(
            self.original.splitlines(), self.canonical.splitlines(),
            fromfile=self.path.name, tofile=f"{self.path.name} (canonical)", n=1, lineterm=""))
        if not lines:  # the same lines: only the line ends or the final newline differ
            lines = ["(only the line ends differ: canonical files use \\n and end with a newline)"]
        if len(lines) > limit:
            lines = [*lines[:limit], f"… {len(lines) - limit} more diff lines"]
        return lines


def file_kind(path: Path) -> FileKind | None:
    if path.name.endswith(".history.json"):
        return "history"
    if path.name.endswith(".json"):
        return "declaration"
    return None


def lint_json_file(path: Path) -> JsonLint:
    kind = file_kind(path)
    if kind is None:
        raise ValueError(f"{path}: not a declaration or history file")
    try:
        original = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        return JsonLint(path, "", problem=f"not UTF-8 text: {error.reason} at byte {error.start}")
    try:
        return JsonLint(path, original, canonical=canonical_json(original, kind))
    except NotCanonicalizable as error:
        return JsonLint(path, original, problem=str(error))


# --------------------------------------------------------------- Python filters


@dataclass(frozen=True)
class RuffProblem:
    """One finding of `ruff check` on a filters file, shown with the path as the collection names it."""

    path: Path
    line: int
    column: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.code} {self.message}"


@dataclass
class RuffLint:
    """What ruff said about the filters files: problems, files to reformat, and ruff's own failures."""

    available: bool = True
    problems: list[RuffProblem] = field(default_factory=list)
    unformatted: dict[Path, list[str]] = field(default_factory=dict)  # file -> its `ruff format --diff` lines
    failures: list[str] = field(default_factory=list)  # ruff itself could not run (bad configuration…)

    def files_with_problems(self, paths: list[Path]) -> list[Path]:
        """The files of `paths` that need a human; all of them when ruff itself failed."""
        if self.failures:
            return list(paths)
        flagged = {problem.path for problem in self.problems} | set(self.unformatted)
        return [path for path in paths if path in flagged]


def _ruff_command() -> list[str] | None:
    executable = shutil.which("ruff")
    if executable:
        return [executable]
    try:
        import ruff  # noqa: F401 - only to know whether `python -m ruff` works
    except ImportError:
        return None
    return [sys.executable, "-m", "ruff"]


def lint_python_files(paths: list[Path], *, fix: bool, cwd: Path) -> RuffLint:
    """`ruff check` and `ruff format` on `paths` (with their fixes when `fix`).

    ruff runs in `cwd` (so a `ruff.toml` of the collection applies) on absolute
    paths: the paths as given may be relative to another folder (`declarations/X.filters.py`
    from the collection root), which ruff would not find from `cwd`. Findings keep
    the paths as given, like the messages about JSON files.
    """
    ruff = _ruff_command()
    if ruff is None:
        return RuffLint(available=False)
    if not paths:
        return RuffLint()
    cwd = Path(cwd).resolve()
    given = {path.resolve(): path for path in paths}
    names = [str(absolute) for absolute in given]

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ruff, *arguments, *names], cwd=cwd, capture_output=True, text=True, check=False)

    result = RuffLint()
    if fix:
        run("check", "--fix", "--quiet")
        run("format", "--quiet")
    check = run("check", "--output-format", "json", "--quiet")
    result.problems, failure = _check_findings(check, given)
    if failure:
        result.failures.append(f"ruff check failed: {failure}")
    form = run("format", "--diff", "--quiet")
    result.unformatted = _diffs_by_file(form.stdout, cwd, given)
    if form.returncode not in (0, 1):
        # A file ruff cannot parse stops the formatter too; `ruff check` reported its syntax error.
        reasons = [line for line in form.stderr.splitlines()
                   if line.strip() and "Failed to parse" not in line and "would be reformatted" not in line]
        if reasons or not result.problems:
            result.failures.append("ruff format failed: " + ("; ".join(reasons) or f"exit status {form.returncode}"))
    return result


def _check_findings(check: subprocess.CompletedProcess[str],
                    given: dict[Path, Path]) -> tuple[list[RuffProblem], str | None]:
    """The findings of `ruff check --output-format json`, or why there are none."""
    if check.returncode not in (0, 1):  # 2: ruff itself failed (bad configuration…)
        return [], check.stderr.strip() or check.stdout.strip() or f"exit status {check.returncode}"
    try:
        findings = json.loads(check.stdout or "[]")
    except json.JSONDecodeError:
        return [], f"unreadable output: {check.stdout[:200]!r}"
    problems = []
    for finding in findings:
        absolute = Path(finding["filename"]).resolve()
        location = finding.get("location") or {}
        problems.append(RuffProblem(given.get(absolute, absolute), location.get("row", 1), location.get("column", 1),
                                    finding.get("code") or "syntax-error", finding.get("message", "")))
    return problems, None


def _diffs_by_file(diff: str, cwd: Path, given: dict[Path, Path]) -> dict[Path, list[str]]:
    """`ruff format --diff` output split per file; its headers name files relative to `cwd`."""
    diffs: dict[Path, list[str]] = {}
    current: list[str] | None = None
    for line in diff.splitlines():
        if line.startswith("--- "):
            absolute = (cwd / line[4:].strip()).resolve()
            current = diffs.setdefault(given.get(absolute, absolute), [])
        if current is not None:
            current.append(line)
    return diffs


# ----------------------------------------------------------------- collection


def collection_files(directory: Path, service_ids: Iterable[str] = ()) -> tuple[list[Path], list[Path]]:
    """(JSON files, Python filters files) of the collection, or of some services only."""
    wanted = set(service_ids)

    def service_of(path: Path) -> str:
        for suffix in (".history.json", ".filters.py", ".json"):
            if path.name.endswith(suffix):
                return path.name[: -len(suffix)]
        return path.name

    files = sorted(path for path in directory.iterdir() if path.is_file())
    files = [path for path in files if not wanted or service_of(path) in wanted]
    json_files = [path for path in files if file_kind(path) is not None]
    python_files = [path for path in files if path.name.endswith(".filters.py")]
    return json_files, python_files
