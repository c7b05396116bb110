"""Open Terms Archive's JavaScript filters, run unchanged: `<id>.filters.js` and `<id>.filters.history.js`.

A service of an OTA collection may declare filters written in JavaScript (reference §1.7):
ES modules whose named exports are `function name(document, [params,] context)`, arrow
functions or `async` functions, mutating a jsdom `Document`. Termshift runs them as OTA does,
in Node.js with jsdom (see docs/architecture.md for why this engine and docs/filters.md):

- **Loading** never runs contributors' code on the host: `runner.mjs` parses each file with
  acorn and answers what it exports (name, kind, parameters) and what it imports. A service's
  filters then appear in `Service.filters` as `JsFilter` objects beside Python ones.
- **Running**: `apply_leading()` hands the page as fetched to the runner when a document's
  filter list starts with JavaScript filters, so they see exactly the DOM OTA's jsdom builds;
  the filtered document comes back serialised and the Python pipeline carries on. A JavaScript
  filter after a Python one is run on the serialisation of the tree (`JsFilter.__call__`).
- **History**: `JsFilter.at(date)` is the function in force at a snapshot's date, picked as OTA
  picks it: the first entry of `<id>.filters.history.js` (sorted by date) whose `validUntil` is
  at or after the date, else the current function of `<id>.filters.js`.
- **Sandbox**: one Node process per Python process, started on the first filter actually
  applied, with Node's permission model (it may read only its own folder; no writes, no child
  processes, no workers) and, where `unshare -rn` works, in a network namespace without any
  interface. Filter code runs in a vm context without `process` or `require`; an import of
  anything but another filters file of the collection resolves to a function that throws.
  Each call has a time limit; a filter still running past it fails its document (the runner
  is killed and restarted when it does not answer).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from termshift.errors import TermshiftError
from termshift.filters import (
    FILTERS_FILE_KINDS,
    FilterCall,
    FilterDefinition,
    FiltersFileError,
    ServiceFilters,
    filter_context,
    resolve_filter,
)

if TYPE_CHECKING:
    from termshift.declarations import SourceDocument

__all__ = [
    "JavaScriptFilters", "JsFilter", "JsFilterFailure", "JsFiltersFile", "JsFiltersUnavailable", "apply_leading",
    "engine", "inspect_js_filters",
    "filters_at", "load_js_filters", "shutdown",
]

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
RUNNER = PACKAGE_DIR / "runner.mjs"
NODE_MODULES = PACKAGE_DIR / "node_modules"
INSTALL_COMMAND = f"npm ci --omit=dev --prefix {PACKAGE_DIR}"

# Seconds a filter call may run; the runner stops it and the document fails with a clear error.
TIME_LIMIT = 10.0
# Seconds allowed on top of the filters' time for jsdom to parse and serialise a page (per MB),
# after which a runner that does not answer is killed.
PARSE_ALLOWANCE = 20.0
PARSE_ALLOWANCE_PER_MB = 10.0


class JsFiltersUnavailable(TermshiftError):
    """Node.js or the runner's npm packages are missing, or the runner stopped."""


class JsFilterFailure(TermshiftError):
    """A JavaScript filter threw (or ran out of time); `filter_error_text` is the error as JavaScript shows it."""

    def __init__(self, name: str, error_text: str) -> None:
        super().__init__(error_text)
        self.name = name
        self.filter_error_text = error_text


# ---------------------------------------------------------------------------------- the runner


@cache
def _network_isolation() -> list[str]:
    """`unshare -rn` when this system lets an unprivileged process have its own network namespace."""
    unshare = shutil.which("unshare")
    if unshare:
        try:
            if subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10).returncode == 0:
                return [unshare, "-rn"]
        except (OSError, subprocess.TimeoutExpired):
            pass
    logger.warning("JavaScript filters run without network isolation: 'unshare -rn' is not available here "
                   "(they still cannot import network modules, read files or start processes)")
    return []


MINIMUM_NODE = 20  # the permission model and jsdom 27


@cache
def _node_major(node: str) -> int:
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
        return int(version.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return 0


def node_command() -> list[str]:
    """How the runner is started, sandbox included. Raises JsFiltersUnavailable."""
    node = shutil.which("node")
    if node is None or _node_major(node) < MINIMUM_NODE:
        found = "no 'node' on the PATH" if node is None else f"{node} is Node.js {_node_major(node) or '?'}"
        raise JsFiltersUnavailable(f"JavaScript filters need Node.js {MINIMUM_NODE} or later ({found})")
    if not (NODE_MODULES / "jsdom").is_dir() or not (NODE_MODULES / "acorn").is_dir():
        raise JsFiltersUnavailable(f"JavaScript filters need the runner's npm packages: run `{INSTALL_COMMAND}`")
    return [
        *_network_isolation(), node,
        "--experimental-permission", f"--allow-fs-read={PACKAGE_DIR}",
        "--experimental-vm-modules", "--max-old-space-size=2048", "--no-warnings", str(RUNNER),
    ]


class Engine:
    """The Node process running filters: one request at a time, restarted after a crash or a timeout."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._process: subprocess.Popen[str] | None = None
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._loaded: set[str] = set()
        self._warm = False
        self._analyses: dict[str, dict[str, Any]] = {}
        self._pid = os.getpid()
        self.starts = 0

    def _start(self) -> subprocess.Popen[str]:
        if self._process is not None and self._pid == os.getpid() and self._process.poll() is None:
            return self._process
        if self._pid != os.getpid():  # a forked child never talks to its parent's runner
            self._process, self._pid = None, os.getpid()
        self.stop()
        command = node_command()
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, encoding="utf-8", errors="surrogatepass", bufsize=1, cwd=PACKAGE_DIR,
        )
        self._answers = queue.Queue()
        threading.Thread(target=self._read, args=(self._process, self._answers), daemon=True,
                         name="jsfilters-reader").start()
        self.starts += 1
        logger.info("Started the JavaScript filters runner (pid %s)", self._process.pid)
        return self._process

    @staticmethod
    def _read(process: subprocess.Popen[str], answers: queue.Queue[str | None]) -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            answers.put(line)
        answers.put(None)

    def stop(self) -> None:
        process, self._process = self._process, None
        self._loaded.clear()
        self._warm = False
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and wait for its answer; kill the runner when it does not answer in time."""
        with self._lock:
            process = self._start()
            try:
                process.stdin.write(json.dumps(message, ensure_ascii=False) + "\n")  # type: ignore[union-attr]
                process.stdin.flush()  # type: ignore[union-attr]
                line = self._answers.get(timeout=timeout)
            except queue.Empty:
                self.stop()
                raise TimeoutError from None
            except OSError as error:
                self.stop()
                raise JsFiltersUnavailable(f"the JavaScript filters runner stopped: {error}") from error
            if line is None:
                self.stop()
                raise JsFiltersUnavailable("the JavaScript filters runner stopped (out of memory, or killed)")
            return json.loads(line)

    # ------------------------------------------------------------------ operations

    def analyze(self, source: str) -> dict[str, Any]:
        """What a filters file exports and imports, from its syntax tree (the code is not run)."""
        key = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
        if key not in self._analyses:
            self._analyses[key] = self.request({"op": "analyze", "source": source}, timeout=60)
        return self._analyses[key]

    def _ensure_loaded(self, file: JsFiltersFile) -> None:
        if file.key in self._loaded:
            return
        answer = self.request({"op": "load", "key": file.key, "files": file.sources,
                               "main": file.main_name, "history": file.history_name}, timeout=30)
        if not answer["ok"]:
            raise JsFilterFailure("", f"{answer['error']} (while loading {file.path.name})")
        self._loaded.add(file.key)

    def apply(self, html: str, location: str, context: dict[str, Any],
              calls: Sequence[tuple[FilterCall, JsFilter]]) -> str:
        """The page after the calls, in order; raises JsFilterFailure naming the filter that failed."""
        time_limit = TIME_LIMIT
        message = {
            "op": "apply", "html": html, "url": location, "context": context, "timeLimit": int(time_limit * 1000),
            "calls": [{"key": function.file.key, "name": function.name, "version": function.version,
                       "params": call.params, "passParams": call.passes_params} for call, function in calls],
        }
        allowance = PARSE_ALLOWANCE + PARSE_ALLOWANCE_PER_MB * len(html) / 1e6
        with self._lock:
            if not self._warm:  # loading jsdom takes a while: not part of any filter's time
                answer = self.request({"op": "warm"}, timeout=120)
                self._warm = bool(answer.get("ok"))
            for _call, function in calls:
                try:
                    self._ensure_loaded(function.file)
                except JsFilterFailure as failure:
                    raise JsFilterFailure(function.name, failure.filter_error_text) from None
            started = time.monotonic()
            try:
                answer = self.request(message, timeout=time_limit * len(calls) + allowance)
            except TimeoutError:
                names = ", ".join(f'"{function.name}"' for _call, function in calls)
                raise JsFilterFailure(
                    calls[-1][1].name if len(calls) == 1 else names,
                    f"Error: no answer after {time.monotonic() - started:.0f} s (the time limit of a filter is "
                    f"{time_limit:g} s): the filter was stopped",
                ) from None
        if not answer["ok"]:
            if answer.get("unloaded"):  # the runner restarted between loading and applying: once more
                self._loaded.clear()
                return self.apply(html, location, context, calls)
            raise JsFilterFailure(answer.get("name", ""), answer["error"])
        return answer["html"]


_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def engine() -> Engine:
    """The process's runner (created, not started: it starts on its first request)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = Engine()
            atexit.register(_ENGINE.stop)
        return _ENGINE


# ------------------------------------------------------------------------------ filters files


@dataclass(frozen=True)
class HistoryEntry:
    valid_until: datetime
    index: int  # position in the exported array
    params: int | None


@dataclass
class JsFiltersFile:
    """A service's JavaScript filters, analysed: what it exports, its history, and every source it needs."""

    path: Path
    history_path: Path | None
    sources: dict[str, str]  # file name -> source: the filters file, its history, the files they import
    main_name: str | None
    history_name: str | None
    exports: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, list[HistoryEntry]] = field(default_factory=dict)
    imports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        data = json.dumps([self.sources, self.main_name, self.history_name], sort_keys=True)
        return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


class JsFilter:
    """One JavaScript filter of a service, callable like a Python filter: `f(document, [params,] context)`."""

    def __init__(self, file: JsFiltersFile, name: str, version: int | None = None) -> None:
        self.file = file
        self.name = name
        self.version = version  # None: the current function; else an index into the filters history
        self.__name__ = name

    def __repr__(self) -> str:
        which = "current" if self.version is None else f"history entry {self.version}"
        return f"<JavaScript filter {self.name} of {self.file.path.name} ({which})>"

    @property
    def info(self) -> dict[str, Any] | None:
        """The function's description (kind, params, async…) when the analysis could tell it."""
        if self.version is None:
            return self.file.exports.get(self.name)
        for entry in self.file.history.get(self.name, []):
            if entry.index == self.version:
                return {"kind": "function", "params": entry.params}
        return None

    def at(self, date: datetime | None) -> JsFilter:
        """The function in force at `date`: the first history entry with date <= validUntil, else the current one."""
        if date is None:
            return self if self.version is None else JsFilter(self.file, self.name)
        date = date.replace(tzinfo=UTC) if date.tzinfo is None else date
        for entry in self.file.history.get(self.name, []):
            if date <= entry.valid_until:
                return JsFilter(self.file, self.name, entry.index)
        return JsFilter(self.file, self.name)

    def __call__(self, document: Any, *arguments: Any) -> None:
        """Run on an lxml document (a JavaScript filter after a Python one): through its serialisation."""
        import lxml.html

        params, declared = (arguments[0], True) if len(arguments) == 2 else (None, False)
        context = arguments[-1] if arguments else {}
        call = FilterCall(self.name, params, declared_with_params=declared)
        html = lxml.html.tostring(document, encoding="unicode", doctype="<!DOCTYPE html>")
        filtered = engine().apply(html, document.base_url or "about:blank", dict(context), [(call, self)])
        replace_document(document, lxml.html.document_fromstring(filtered, base_url=document.base_url))


def replace_document(document: Any, new_root: Any) -> None:
    """Make the lxml root `document` hold `new_root`'s attributes and children (in place)."""
    document.attrib.clear()
    document.attrib.update(new_root.attrib)
    document.text = new_root.text
    for child in list(document):
        document.remove(child)
    for child in list(new_root):
        document.append(child)


def _parse_date(value: str) -> datetime | None:
    try:
        date = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return date.replace(tzinfo=UTC) if date.tzinfo is None else date.astimezone(UTC)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise FiltersFileError(path, f"not UTF-8 text: {error.reason} at byte {error.start}") from None
    except OSError as error:
        raise FiltersFileError(path, f"cannot be read: {error.strerror or error}") from None


def _analysis(path: Path, source: str) -> dict[str, Any]:
    try:
        answer = engine().analyze(source)
    except (JsFiltersUnavailable, TimeoutError) as error:
        raise FiltersFileError(path, f"cannot be checked: {error or 'the runner did not answer'}") from None
    if not answer["ok"]:
        raise FiltersFileError(path, f"cannot be parsed: {answer['error']}", answer.get("line"))
    return answer


def _collect(path: Path, sources: dict[str, str], analyses: dict[str, dict[str, Any]]) -> None:
    """Read `path` and, transitively, the filters files it imports from the same folder."""
    if path.name in sources:
        return
    sources[path.name] = _read(path)
    analyses[path.name] = analysis = _analysis(path, sources[path.name])
    for item in analysis["imports"]:
        specifier = item["source"]
        if specifier.startswith(("./", "../", "/")):
            name = unquote(specifier[2:]) if specifier.startswith("./") else None
            if name is None or "/" in name or not (path.parent / name).is_file():
                raise FiltersFileError(path, f"imports '{specifier}', which is not a filters file of this "
                                             "collection folder", item["line"])
            _collect(path.parent / name, sources, analyses)


def _resolved_export(name: str, file_name: str, analyses: dict[str, dict[str, Any]],
                     seen: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """What `name` exported by `file_name` is, following `export { name } from './other.js'`."""
    exports = analyses[file_name]["exports"]
    info = exports.get(name)
    if info is None and "*" in exports:
        info = {"kind": "reexport", "from": exports["*"]["from"], "imported": name}
    if info is None or info.get("kind") != "reexport" or file_name in seen:
        return info
    source = info["from"]
    target = unquote(source[2:]) if source.startswith("./") else None
    if target not in analyses:
        return {"kind": "value"}  # a bare module: at run time it is a function that refuses
    return _resolved_export(info["imported"], target, analyses, seen | {file_name})


def load_js_filters(path: Path, history_path: Path | None = None) -> dict[str, JsFilter]:
    """The filters of a `<id>.filters.js` (and its `<id>.filters.history.js`), by name, without running them.

    Raises FiltersFileError (syntax error, unreadable file, an import outside the collection
    folder, a malformed history entry).
    """
    sources: dict[str, str] = {}
    analyses: dict[str, dict[str, Any]] = {}
    main = Path(path) if path and Path(path).is_file() else None
    history_file = Path(history_path) if history_path and Path(history_path).is_file() else None
    if main:
        _collect(main, sources, analyses)
    if history_file:
        _collect(history_file, sources, analyses)
    file = JsFiltersFile(main or history_file, history_file, sources,  # type: ignore[arg-type]
                         main.name if main else None, history_file.name if history_file else None)
    if main:
        for name in [*analyses[main.name]["exports"]]:
            if name in ("default", "*"):
                continue
            info = _resolved_export(name, main.name, analyses)
            if info is not None and info.get("kind") not in ("array",):
                file.exports[name] = info
        file.imports = analyses[main.name]["imports"]
    if history_file:
        for name, info in analyses[history_file.name]["exports"].items():
            if name in ("default", "*"):
                continue
            if info.get("kind") != "array":
                raise FiltersFileError(history_file, f"'{name}' must be an array of {{ validUntil, filter }} "
                                                     "entries", info.get("line"))
            entries = []
            for index, entry in enumerate(info["history"]):
                date = _parse_date(entry["validUntil"]) if entry.get("validUntil") else None
                problem = entry.get("problem") or (None if date else
                                                   f"validUntil '{entry['validUntil']}' is not a date-time")
                if problem:
                    raise FiltersFileError(history_file, f"'{name}' entry {index}: {problem}", entry.get("line"))
                entries.append(HistoryEntry(date, index, (entry.get("filter") or {}).get("params")))
            file.history[name] = sorted(entries, key=lambda entry: entry.valid_until)
    names = [*file.exports, *(name for name in file.history if name not in file.exports)]
    return {name: JsFilter(file, name) for name in names}


class JavaScriptFilters(ServiceFilters):
    """A service's `<id>.filters.js` (and its history) in `Service.filters`: names known from the
    syntax tree; the functions are `JsFilter`s, whose code runs only in the runner."""

    kind = "javascript"

    def __init__(self, path: Path, functions: dict[str, JsFilter]) -> None:
        lines = {name: (function.info or {}).get("line") for name, function in functions.items()}
        # No signature: JavaScript takes any number of arguments (validate checks parameters apart).
        super().__init__(path, {name: FilterDefinition(name, lines[name]) for name in functions})
        self._js_functions = functions

    def _load(self) -> dict[str, JsFilter]:
        return dict(self._js_functions)  # nothing runs here: a JsFilter runs in the sandbox when called


def inspect_js_filters(path: Path) -> JavaScriptFilters:
    """`<id>.filters.js` and its `<id>.filters.history.js`, parsed (not run). Raises FiltersFileError."""
    history = Path(path).with_name(Path(path).name[: -len(".filters.js")] + ".filters.history.js")
    return JavaScriptFilters(Path(path), load_js_filters(path, history if history.is_file() else None))


FILTERS_FILE_KINDS[".filters.js"] = inspect_js_filters


# --------------------------------------------------------------------------------- in extract


def _leading_calls(document: SourceDocument,
                   service_filters: Mapping[str, Any] | None) -> list[tuple[FilterCall, JsFilter]]:
    calls: list[tuple[FilterCall, JsFilter]] = []
    if isinstance(service_filters, ServiceFilters) and not isinstance(service_filters, JavaScriptFilters):
        return calls  # Python filters: looking them up would import the file (apply_filters does, and reports)
    for call in document.filters:
        function = resolve_filter(call.name, service_filters)
        if not isinstance(function, JsFilter):
            break
        calls.append((call, function))
    return calls


def apply_leading(content: str, document: SourceDocument,
                  service_filters: Mapping[str, Any] | None) -> tuple[str, int]:
    """Run the JavaScript filters that open the document's filter list on the page as fetched.

    Returns the filtered page (serialised by jsdom) and how many filters ran; `(content, 0)`
    when the first filter is not JavaScript. Raises JsFilterFailure.
    """
    calls = _leading_calls(document, service_filters)
    if not calls:
        return content, 0
    return engine().apply(content, document.location, filter_context(document), calls), len(calls)


def shutdown() -> None:
    """Stop this process's runner (it starts again when needed)."""
    if _ENGINE is not None:
        _ENGINE.stop()


def filters_at(service_filters: Mapping[str, Any] | None, date: datetime | None) -> Mapping[str, Any] | None:
    """The service's filters as they were at `date` (JavaScript filters with a history change with it)."""
    if not isinstance(service_filters, JavaScriptFilters) or date is None or not any(
            function.file.history for function in service_filters.values()):
        return service_filters  # (a Python filters file is not imported here)
    return {name: function.at(date) if isinstance(function, JsFilter) else function
            for name, function in service_filters.items()}


def arity_problem(call: FilterCall, function: JsFilter) -> str | None:
    """A declaration that calls a JavaScript filter with arguments it does not read (validate only:
    JavaScript ignores extra arguments, so OTA runs such a filter, silently without its parameters)."""
    info = function.info or {}
    params = info.get("params")
    if params is None or info.get("rest"):
        return None
    if call.passes_params and params < 2:
        return (f"filter '{call.name}' is declared with parameters {json.dumps(call.params)}, but the function "
                f"takes only {params} argument{'s' if params != 1 else ''}, so it never reads them: it is called "
                f"as {call.name}(document, params, context)")
    return None
