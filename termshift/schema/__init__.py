"""The JSON Schemas of declarations, and their errors in plain words.

`service.schema.json` and `service.history.schema.json` mirror Open Terms
Archive's schemas (reference §1.9). jsonschema reports failures in its own
terms ("is not valid under any of the given schemas"); this module turns each
one into a `SchemaProblem`: a JSON path such as `$.terms["Privacy Policy"].select[1]`
and a reason a contributor understands ("missing required field 'select'").
For a `oneOf` it picks the branch the author evidently meant (an object with
`combine` is combined terms, a string selector is a CSS selector, ...) and
explains that branch's errors only.

The terms-type enum comes from `termshift/data/terms-types.json` at load time,
so that file stays the single list of types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from termshift.errors import suggest
from termshift.urls import is_http_url

SCHEMA_DIR = Path(__file__).resolve().parent
TERMS_TYPES_FILE = SCHEMA_DIR.parent / "data" / "terms-types.json"
SCHEMA_FILES = {"service": "service.schema.json", "history": "service.history.schema.json",
                "metadata": "collection-metadata.schema.json"}


# ---------------------------------------------------------------- terms types


@cache
def terms_types() -> tuple[str, ...]:
    """The names of the terms types of the ontology, in its order."""
    return tuple(json.loads(TERMS_TYPES_FILE.read_text(encoding="utf-8")))


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    suggestion = suggest(word, candidates)
    return f" (did you mean '{suggestion}'?)" if suggestion else ""


# -------------------------------------------------------------------- formats

# RFC 3339 date-time, as ajv-formats checks it: a time and a zone are required.
_DATE_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_date_time(value: str) -> datetime:
    """Parse an RFC 3339 date-time (`2024-03-18T18:30:09Z`) into an aware UTC datetime.

    Raises ValueError for anything else, including a date without a time.
    """
    match = _DATE_TIME.match(value)
    if not match:
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    date, time, fraction, zone = match.groups()
    fraction = (fraction or "")[:7]  # datetime keeps microseconds: 6 digits after the dot
    zone = "+00:00" if zone in ("Z", "z") else zone
    return datetime.fromisoformat(f"{date}T{time}{fraction}{zone}").astimezone(UTC)


def _format_checker() -> FormatChecker:
    """Our own `uri` and `date-time` checks, so no optional jsonschema extra is needed.

    `uri` is narrower than RFC 3986 on purpose: only http and https can be tracked.
    """
    checker = FormatChecker(formats=())

    @checker.checks("uri")
    def _uri(value: object) -> bool:
        return not isinstance(value, str) or is_http_url(value)

    @checker.checks("date-time")
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        try:
            parse_date_time(value)
        except ValueError:
            return False
        return True

    # The formats of a collection's metadata.yml (collection-metadata.schema.json), as OTA checks them.
    @checker.checks("date")
    def _date(value: object) -> bool:
        return not isinstance(value, str) or _is_date(value)

    @checker.checks("iso639-1")
    def _language(value: object) -> bool:
        return not isinstance(value, str) or bool(_ISO_639_1.match(value))

    @checker.checks("iso3166-2")
    def _region(value: object) -> bool:
        return not isinstance(value, str) or bool(_ISO_3166_2.match(value))

    @checker.checks("cron-expression")
    def _cron(value: object) -> bool:
        return not isinstance(value, str) or is_cron_expression(value)

    return checker


_ISO_639_1 = re.compile(r"^[a-z]{2}$")
_ISO_3166_2 = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


def _is_date(value: str) -> bool:
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_cron_expression(value: str) -> bool:
    """A standard 5-field cron expression (what OTA's trackingPeriods[].schedule holds)."""
    from apscheduler.triggers.cron import CronTrigger  # only metadata files need it

    try:
        CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError:
        return False
    return True


# -------------------------------------------------------------------- schemas


@cache
def _raw_schemas() -> dict[str, dict[str, Any]]:
    schemas = {
        name: json.loads((SCHEMA_DIR / filename).read_text(encoding="utf-8"))
        for name, filename in SCHEMA_FILES.items()
    }
    schemas["service"]["$defs"]["termsType"]["enum"] = list(terms_types())
    return schemas


def load_schema(name: str) -> dict[str, Any]:
    """The schema `name` ("service", "history" or "metadata"), with the terms-type enum filled in."""
    return json.loads(json.dumps(_raw_schemas()[name]))  # a copy: callers may not alter ours


def _inline_references(node: Any, schemas: dict[str, dict[str, Any]], current: str) -> Any:
    """`node` with every `$ref` replaced by the definition it points to.

    The schemas are not recursive, so this ends; it makes validation about twice
    as fast as resolving references through a registry at each use.
    """
    if isinstance(node, list):
        return [_inline_references(item, schemas, current) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        file, _, pointer = node["$ref"].partition("#")
        target = next(name for name, filename in SCHEMA_FILES.items() if filename == file) if file else current
        definition = schemas[target]["$defs"][pointer.removeprefix("/$defs/")]
        return _inline_references(definition, schemas, target)
    return {key: _inline_references(value, schemas, current) for key, value in node.items() if key != "$defs"}


@cache
def _validator(name: str) -> Draft202012Validator:
    # References are inlined, so nothing is ever looked up, let alone retrieved over the network.
    return Draft202012Validator(_inline_references(_raw_schemas()[name], _raw_schemas(), name),
                                format_checker=_format_checker())


# ------------------------------------------------------------------- problems

PathPart = str | int
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def json_path(parts: Iterable[PathPart]) -> str:
    """`$.terms["Privacy Policy"].select[1]` for ("terms", "Privacy Policy", "select", 1)."""
    text = "$"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}"
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


@dataclass(frozen=True)
class SchemaProblem:
    """One reason a document does not match its schema, and where."""

    path: tuple[PathPart, ...]
    reason: str

    @property
    def json_path(self) -> str:
        return json_path(self.path)


# Characters a service id (a file name, then a folder name in both repositories) may not hold:
# a backslash is a path separator on Windows, so `a\b` would be two folders there.
FORBIDDEN_IN_SERVICE_ID = "\\"


def service_id_problem(service_id: str) -> str | None:
    """Why `service_id` cannot be a service id, or None when it can."""
    if any(char in service_id for char in FORBIDDEN_IN_SERVICE_ID):
        return (f"the service id {service_id!r} (the file name) contains a backslash, a path separator "
                "on Windows: rename the file")
    return None


def service_problems(data: Any) -> list[SchemaProblem]:
    """Every way `data` (a parsed `<id>.json`) breaks the service schema; [] when valid."""
    return _problems("service", data)


def history_problems(data: Any) -> list[SchemaProblem]:
    """Every way `data` (a parsed `<id>.history.json`) breaks the history schema."""
    return _problems("history", data)


def metadata_problems(data: Any) -> list[SchemaProblem]:
    """Every way `data` (a parsed collection `metadata.yml`) breaks OTA's metadata schema."""
    return _problems("metadata", data)


def _problems(schema_name: str, data: Any) -> list[SchemaProblem]:
    problems: list[SchemaProblem] = []
    for error in _validator(schema_name).iter_errors(data):
        for problem in _explain(error):
            if problem not in problems:
                problems.append(problem)
    return sorted(problems, key=lambda problem: _position(data, problem.path))


def _position(data: Any, path: tuple[PathPart, ...]) -> tuple[int, ...]:
    """Where `path` sits in `data`, so problems are listed in the order of the file."""
    position = []
    for part in path:
        if isinstance(data, dict) and part in data:
            position.append(list(data).index(part))
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            position.append(part)
            data = data[part]
        else:
            break
    return tuple(position)


# ----------------------------------------------------------- error translation

_JSON_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
_SCHEMA_TYPE_NAMES = {
    "object": "an object", "array": "an array", "string": "a string", "boolean": "a boolean",
    "number": "a number", "integer": "a whole number", "null": "null",
}
_SOURCE_DOCUMENT_FIELDS = ("fetch", "select", "remove", "filter", "executeClientScripts")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _path(error: ValidationError, *extra: PathPart) -> tuple[PathPart, ...]:
    return (*error.absolute_path, *extra)


def _explain(error: ValidationError) -> list[SchemaProblem]:
    handler = _HANDLERS.get(str(error.validator), _explain_generic)
    return handler(error)


def _explain_generic(error: ValidationError) -> list[SchemaProblem]:
    return [SchemaProblem(_path(error), error.message)]


def _explain_required(error: ValidationError) -> list[SchemaProblem]:
    missing = [field for field in error.validator_value if field not in error.instance]
    return [SchemaProblem(_path(error), f"missing required field '{field}'") for field in missing]


def _explain_additional_properties(error: ValidationError) -> list[SchemaProblem]:
    allowed = list(error.schema.get("properties", {}))
    if error.schema.get("title") == "PDF document":
        # Extra keys on a PDF-looking declaration are mostly misspelt source-document fields.
        allowed += [field for field in _SOURCE_DOCUMENT_FIELDS if field not in allowed]
    problems = []
    for key in error.instance:
        if key in allowed:
            continue
        reason = f"unknown field '{key}'{_did_you_mean(key, allowed)}"
        if key == "fetch" and "combine" in allowed:
            reason += "; in combined terms each item of 'combine' has its own 'fetch'"
        problems.append(SchemaProblem(_path(error, key), reason))
    return problems


def _explain_enum(error: ValidationError) -> list[SchemaProblem]:
    if error.schema.get("title") == "terms type":
        # A property name failed: the path points at the object, so add the key itself.
        name = error.instance
        return [SchemaProblem(_path(error, name),
                              f"unknown terms type '{name}'{_did_you_mean(name, error.validator_value)}")]
    allowed = ", ".join(repr(value) for value in error.validator_value)
    return [SchemaProblem(_path(error), f"{error.instance!r} is not one of the allowed values: {allowed}")]


def _explain_type(error: ValidationError) -> list[SchemaProblem]:
    expected = error.validator_value
    expected = expected if isinstance(expected, list) else [expected]
    wanted = " or ".join(_SCHEMA_TYPE_NAMES.get(name, name) for name in expected)
    got = _json_type(error.instance)
    reason = f"expected {wanted} but got {got}"
    if expected == ["array"] and isinstance(error.instance, dict):
        reason += ". Please use [] instead of {}."
    return [SchemaProblem(_path(error), reason)]


def _explain_format(error: ValidationError) -> list[SchemaProblem]:
    if error.validator_value == "uri":
        reason = f"not a valid URL: {error.instance!r} (expected an absolute http:// or https:// address)"
    elif error.validator_value == "date-time":
        reason = (f"not a valid date-time: {error.instance!r} (expected RFC 3339 with a time and a time "
                  "zone, such as 2024-03-18T18:30:09Z)")
    elif error.validator_value in _FORMAT_REASONS:
        reason = f"{error.instance!r} {_FORMAT_REASONS[error.validator_value]}"
    else:
        reason = f"{error.instance!r} is not a valid {error.validator_value}"
    return [SchemaProblem(_path(error), reason)]


_FORMAT_REASONS = {
    "date": "is not a date like 2024-03-18 (YYYY-MM-DD)",
    "iso639-1": "is not an ISO 639-1 language code (two lowercase letters, such as 'en' or 'fr')",
    "iso3166-2": "is not an ISO 3166-2 region code (two uppercase letters, such as 'FR' or 'EU', "
                 "optionally followed by a subdivision, such as 'FR-75')",
    "cron-expression": "is not a cron expression of 5 fields, such as '30 */12 * * *'",
}


def _explain_pattern(error: ValidationError) -> list[SchemaProblem]:
    title = error.schema.get("title")
    if title in ("CSS selector", "filter name"):
        reason = f"a {title} must be a non-empty string on one line, got {error.instance!r}"
    elif title == "PDF URL":
        reason = f"{error.instance!r} is not a PDF URL (an http:// or https:// address ending in .pdf)"
    else:
        reason = f"{error.instance!r} does not match the pattern {error.validator_value}"
    return [SchemaProblem(_path(error), reason)]


def _explain_property_count(error: ValidationError) -> list[SchemaProblem]:
    keys = ", ".join(f"'{key}'" for key in error.instance) or "none"
    return [SchemaProblem(
        _path(error),
        "a filter with parameters must be an object with exactly one key, the filter name, "
        f'such as {{"removeQueryParams": ["utm_source"]}}; got keys: {keys}',
    )]


# oneOf: which branch did the author mean? Branch positions follow the schema files.
_TERMS_BRANCHES = {
    "terms declaration": {"single": 0, "combined": 1, "pdf": 2},
    "history entry": {"pdf": 0, "single": 1, "combined": 2},
}
_PDF_PATTERN = re.compile(r"^https?://.+.[pP][dD][fF](\?.+)?$")


def _terms_branch(error: ValidationError) -> int | str:
    """The intended shape of a terms declaration or history entry (§1.3), or a reason."""
    value = error.instance
    if not isinstance(value, dict):
        return f"expected an object (a terms declaration) but got {_json_type(value)}"
    branches = _TERMS_BRANCHES[error.schema["title"]]
    if "combine" in value:
        return branches["combined"]
    if any(field in value for field in ("select", "remove", "filter", "executeClientScripts")):
        return branches["single"]
    fetch = value.get("fetch")
    if isinstance(fetch, str) and _PDF_PATTERN.search(fetch):
        return branches["pdf"]
    return branches["single"]


def _selector_branch(error: ValidationError) -> int | str:
    value = error.instance
    if isinstance(value, str):
        return 0
    if isinstance(value, dict):
        return 1
    if isinstance(value, list) and error.schema["title"] == "selectors":
        return 2
    allowed = "a CSS selector, a range object or an array of them" if error.schema["title"] == "selectors" \
        else "a CSS selector or a range object"
    return f"expected {allowed}, but got {_json_type(value)}"


def _filter_branch(error: ValidationError) -> int | str:
    value = error.instance
    if isinstance(value, str):
        return 0
    if isinstance(value, dict):
        return 1
    return f'expected a filter name or an object {{"<name>": <parameters>}}, but got {_json_type(value)}'


def _range_problem(error: ValidationError) -> str:
    keys = ", ".join(f"'{key}'" for key in error.instance) or "none"
    return ("a range selector needs exactly one start ('startBefore' or 'startAfter') and exactly one end "
            f"('endBefore' or 'endAfter'); got keys: {keys}")


_BRANCH_CHOOSERS = {
    "terms declaration": _terms_branch,
    "history entry": _terms_branch,
    "selectors": _selector_branch,
    "selector": _selector_branch,
    "filter": _filter_branch,
    "range selector": _range_problem,
}


def _explain_one_of(error: ValidationError) -> list[SchemaProblem]:
    chooser = _BRANCH_CHOOSERS.get(error.schema.get("title", ""))
    if chooser is None:
        best = best_match(error.context) if error.context else None
        return _explain(best) if best is not None else _explain_generic(error)
    choice = chooser(error)
    if isinstance(choice, str):
        return [SchemaProblem(_path(error), choice)]
    branch_errors = [sub for sub in error.context if sub.relative_schema_path[0] == choice]
    problems = [problem for sub in branch_errors for problem in _explain(sub)]
    if not problems:
        return _explain_generic(error)
    return [_with_pdf_hint(error, problem) for problem in problems]


def _with_pdf_hint(error: ValidationError, problem: SchemaProblem) -> SchemaProblem:
    """`{fetch}` alone is the PDF shorthand: say so when a non-PDF URL lacks `select`."""
    if problem.reason != "missing required field 'select'" or problem.path != tuple(error.absolute_path):
        return problem
    fetch = error.instance.get("fetch")
    if isinstance(fetch, str) and _PDF_PATTERN.search(fetch):
        hint = " (a PDF may omit it only when 'fetch' is its one field)"
    else:
        hint = " (only a PDF URL, ending in .pdf, may omit it)"
    return SchemaProblem(problem.path, problem.reason + hint)


# ------------------------------------------------------------ CSS selectors

_RANGE_BOUNDS = ("startBefore", "startAfter", "endBefore", "endAfter")


def selector_problems(data: Any, kind: str = "service") -> list[SchemaProblem]:
    """Every CSS selector of a parsed `<id>.json` (`kind="service"`) or `<id>.history.json`
    (`kind="history"`) that extraction could not use, at the path of the exact item.

    The JSON Schema only says a selector is a non-empty string; whether it is CSS is
    decided here, by compiling it with the engine extraction uses
    (`termshift.selectors.selection.compile_selector`: what Chromium accepts, rejected with the
    position and the reason otherwise), so no fetch is needed to find a typo such as `div[[`. Parts of `data` that do not have the declared shape are
    skipped: the schema problems report them.
    """
    if not isinstance(data, dict):
        return []
    if kind == "service":
        terms = data.get("terms")
        declarations = [(("terms", name), value) for name, value in terms.items()] if isinstance(terms, dict) else []
    elif kind == "history":
        declarations = [((name, index), entry) for name, entries in data.items() if isinstance(entries, list)
                        for index, entry in enumerate(entries)]
    else:
        raise ValueError(f"kind must be 'service' or 'history', not {kind!r}")
    return [problem for path, declaration in declarations for problem in terms_selector_problems(declaration, path)]


def terms_selector_problems(declaration: Any, path: tuple[PathPart, ...] = ()) -> list[SchemaProblem]:
    """The bad selectors of one terms declaration, history entry or source document (a dict
    with `select` and `remove`), its `combine` items included; paths start with `path`."""
    if not isinstance(declaration, dict):
        return []
    problems = [problem for key in ("select", "remove") if key in declaration
                for problem in _selectors_problems((*path, key), declaration[key])]
    combine = declaration.get("combine")
    for index, item in enumerate(combine if isinstance(combine, list) else []):
        if isinstance(item, dict):
            problems += [problem for key in ("select", "remove") if key in item
                         for problem in _selectors_problems((*path, "combine", index, key), item[key])]
    return problems


def _selectors_problems(path: tuple[PathPart, ...], value: Any) -> list[SchemaProblem]:
    """A `select` or `remove` value: a CSS selector, a range, or an array of them."""
    if isinstance(value, list):
        return [problem for index, item in enumerate(value)
                for problem in _selectors_problems((*path, index), item) if not isinstance(item, list)]
    if isinstance(value, dict):
        return [problem for bound in _RANGE_BOUNDS if bound in value
                for problem in _css_problems((*path, bound), value[bound])]
    return _css_problems(path, value)


def _css_problems(path: tuple[PathPart, ...], css: Any) -> list[SchemaProblem]:
    if not isinstance(css, str) or not css.strip() or any(char in css.strip() for char in "\r\n"):
        return []  # not a string, empty or on several lines: the schema's own checks say so
    # Imported here: extraction pulls in lxml, which the schema checks alone do not need.
    from termshift.errors import ExtractError
    from termshift.selectors.selection import compile_selector

    try:
        compile_selector(css)
    except ExtractError as error:
        return [SchemaProblem(path, str(error))]
    return []


_HANDLERS = {
    "required": _explain_required,
    "additionalProperties": _explain_additional_properties,
    "enum": _explain_enum,
    "type": _explain_type,
    "format": _explain_format,
    "pattern": _explain_pattern,
    "minProperties": _explain_property_count,
    "maxProperties": _explain_property_count,
    "oneOf": _explain_one_of,
}

__all__ = [
    "SchemaProblem", "history_problems", "is_http_url", "json_path", "load_schema", "parse_date_time",
    "selector_problems", "service_problems", "suggest", "terms_selector_problems", "terms_types",
]
