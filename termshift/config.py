"""Configuration: one `termshift.toml`, overridden by `TERMSHIFT_*` environment variables.

Every setting has a default, so Termshift runs with no file at all. The file is
looked up in this order: `--config PATH`, `$TERMSHIFT_CONFIG`, `./termshift.toml`.
An environment variable `TERMSHIFT_<SECTION>_<KEY>` (or `TERMSHIFT_<KEY>` for a
top-level key) overrides the file, e.g. `TERMSHIFT_FETCHER_LANGUAGE=fr`.

`load_settings` checks every value once and returns a frozen `Settings`: one typed
dataclass per section (`settings.fetcher.language`, `settings.webhooks.timeout`) and the
top-level paths (`settings.declarations`, `settings.data`). Each field of those dataclasses
declares its default and help text; `DEFAULTS`, the reference table behind
`termshift config reference` and the README, is generated from them.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from termshift import __version__
from termshift.errors import TermshiftError, suggest
from termshift.schedules import ScheduleError, parse_schedule, parse_timezone
from termshift.urls import is_http_url

T = TypeVar("T")


def setting(default: T, help_text: str) -> T:
    """A setting's field: its default and its line in the configuration reference.

    The typed dataclasses below are the one source of truth: `DEFAULTS` (the reference
    table, `termshift config reference`) and `load_settings` are derived from them.
    """
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class ArchiveSettings:
    """`[archive]`: how the two repositories are written."""

    author_name: str = setting("Termshift Bot", "Commit author name in both repositories.")
    author_email: str = setting("bot@termshift.invalid", "Commit author e-mail.")
    snapshot_id_template: str = setting(
        "./data/snapshots/%SNAPSHOT_ID",
        "How version commits refer to their snapshots (%SNAPSHOT_ID is replaced).",
    )


@dataclass(frozen=True)
class FetcherSettings:
    """`[fetcher]`: how pages are fetched (HTTP and browser)."""

    language: str = setting("en", "Accept-Language: comma-separated language tags, without q-values.")
    user_agent: str = setting(
        f"Termshift/{__version__} (+https://github.com/termshift/termshift)",
        "User-Agent of the HTTP fetcher: name Termshift and a contact URL.",
    )
    timeout: float = setting(30.0, "Seconds before a fetch is abandoned.")
    per_host: int = setting(1, "Requests in flight at once on one host.")
    host_delay: float = setting(1.0, "Seconds between two requests to the same host.")
    max_body_bytes: int = setting(20 * 1024 * 1024, "Largest body accepted, in bytes.")
    max_redirects: int = setting(20, "Redirects followed before giving up.")
    robots_txt: bool = setting(False, "Obey robots.txt (OTA does not).")
    retries: int = setting(2, "Retries of a transient failure within a run.")
    browser_path: str = setting("", "Chromium executable (empty: detected automatically).")
    browser_endpoint: str = setting(
        "", "Remote browser(s) to render on instead of a local Chromium: ws:// (Playwright or CDP) or http:// (CDP); "
            "several (comma-separated, or a TOML list) are shared round-robin, one that fails left out for 30 s.")
    browser_pages: int = setting(2, "Pages rendered at once by the browser.")
    wait_for_selectors: float = setting(10.0, "Seconds the browser waits for selectors to hold text.")
    allow_private_targets: tuple[str, ...] = setting(
        (),
        "Hosts or addresses pages may be fetched from although private or loopback (every redirect "
        "and browser request is checked).",
    )


@dataclass(frozen=True)
class ScheduleSettings:
    """`[schedule]`: when the service runs its jobs."""

    tracking: str = setting(
        "30 */12 * * *",
        "When tracking runs: a cron expression (5 fields) or `every <n>s|m|h|d`; empty: never.",
    )
    dataset: str = setting("30 8 * * MON", "When the dataset is exported (same syntax); empty: never.")
    deliveries: float = setting(30.0, "Seconds between two webhook delivery passes; 0: no delivery job.")
    timezone: str = setting("", "Time zone of the cron expressions, e.g. `Europe/Paris` (empty: the machine's).")
    misfire_grace: float = setting(
        43200.0,
        "Seconds a missed run (machine off) may be late and still run, once, at start-up.",
    )
    stuck_after: float = setting(21600.0, "Seconds after which a running tracking run is reported stuck by /healthz.")
    refresh_index: bool = setting(True, "Refresh the viewer's index after each tracking run.")


@dataclass(frozen=True)
class WebSettings:
    """`[web]`: the viewer."""

    host: str = setting("127.0.0.1", "Address the viewer listens on.")
    port: int = setting(5000, "Port the viewer listens on.")
    base_url: str = setting("", "Public URL of the viewer, used in feeds and webhooks (empty: from the request, "
                                "and feeds are not cached); production sets it.")
    admin_token: str = setting(
        "", "Token for the admin API and pages, at least 32 characters (empty: admin disabled).")
    trusted_hosts: tuple[str, ...] = setting(
        (), "Host names the viewer answers to (other `Host` headers get 400); empty: any.")
    trusted_proxies: int = setting(0, "Reverse proxies in front of the viewer whose X-Forwarded-* headers are "
                                      "trusted (Werkzeug's ProxyFix); 0: none, the viewer is reached directly.")
    threads: int = setting(0, "Requests served at once by `termshift serve` (waitress threads), per process; 0: "
                              "one per process when several processes serve, 4 with one process.")
    processes: int = setting(1, "Processes of `termshift serve` answering requests on its port (0: one per core); "
                                "more than 1 uses more cores: Python runs one thread at a time per process.")
    max_request_bytes: int = setting(1024 * 1024, "Largest request body accepted, in bytes (413 beyond).")
    session_lifetime: float = setting(
        8 * 3600.0, "Seconds an admin login session lasts (logging out ends it sooner).")
    login_rate_limit: str = setting("10/minute", "Attempts at the /declare login form per client address, e.g. "
                                                 "`10/minute` (429 beyond).")
    admin_rate_limit: str = setting("300/minute", "Admin API and /declare requests per client address.")


@dataclass(frozen=True)
class FeedsSettings:
    """`[feeds]`: the Atom feeds."""

    length: int = setting(100, "Entries per feed.")
    tag_authority: str = setting(
        "", "`<domain>,<date>` of feed entry ids; set it once (empty: the viewer's host, 2026).")


@dataclass(frozen=True)
class WebhooksSettings:
    """`[webhooks]`: delivery of webhook and Apprise notifications. Durations in seconds."""

    allow_private_targets: tuple[str, ...] = setting((), "Hosts or addresses allowed although private or loopback.")
    timeout: float = setting(10.0, "Seconds before a webhook request is abandoned (connect, send and answer).")
    concurrency: int = setting(8, "Webhook requests in flight at once.")
    retry_base: float = setting(60.0, "Seconds before the first retry; doubled after each failure.")
    retry_max: float = setting(86400.0, "Longest wait between two attempts, in seconds.")
    max_age: float = setting(3 * 86400.0, "Seconds after which an undelivered event is marked failed.")
    include_diff_max_bytes: int = setting(262144, "Largest unified diff put in a payload; longer ones are cut.")


@dataclass(frozen=True)
class PublishSettings:
    """`[publish]`: pushing the repositories after each run."""

    snapshots_remote: str = setting(
        "", "Git remote (URL or path) the snapshots repository is pushed to after each run.")
    versions_remote: str = setting(
        "", "Git remote (URL or path) the versions repository is pushed to after each run.")
    branch: str = setting("main", "Branch the repositories are pushed to.")
    retries: int = setting(3, "Retries of a failed push, with a doubling wait.")
    backoff: float = setting(30.0, "Seconds before the first retry of a failed push.")
    timeout: float = setting(600.0, "Seconds before one `git push` is abandoned.")


@dataclass(frozen=True)
class DatasetSettings:
    """`[dataset]`: the ZIP dataset export."""

    title: str = setting("Termshift", "Dataset title: names the ZIP file and heads its README.")
    directory: str = setting("", "Folder of scheduled dataset exports (empty: `<data>/datasets`).")
    versions_repository_url: str = setting("", "Public URL of the versions repository, linked from the README.")
    keep: int = setting(8, "Scheduled exports kept in the folder (older ones are deleted); 0: keep all.")


@dataclass(frozen=True)
class DistributedSettings:
    """`[distributed]`: tracking spread over worker machines through a broker (docs/scaling.md)."""

    broker: str = setting(
        "", "Redis URL of the broker (redis://host:6379/0): `termshift track` and the scheduler hand the "
            "documents to `termshift worker` processes and record their results; empty: track on this machine.")
    queue: str = setting("termshift", "Queue the jobs are sent to (the workers' `--queue`).")
    heartbeat_timeout: float = setting(
        30.0, "Seconds of silence after which a worker is taken for dead and its jobs delivered again "
              "(the workers' `--heartbeat-timeout`).")


@dataclass(frozen=True)
class LoggingSettings:
    """`[logging]`: what is logged, and how."""

    level: str = setting("INFO", "Lowest level logged: DEBUG, INFO, WARNING or ERROR.")
    json: bool = setting(False, "Log one JSON object per line (for log shippers) instead of text.")


@dataclass(frozen=True)
class Settings:
    """All settings, checked once by `load_settings`: `settings.fetcher.language`, `settings.data`.

    Frozen and hashable. The top-level keys come first (`declarations`, `data`, `metadata`),
    then one attribute per section. `Settings()` holds the defaults (no file, no environment);
    a variant is `dataclasses.replace(settings, data=Path("elsewhere"))`, or, checked like a
    file, `load_settings(None, environ={}, overrides={"fetcher": {"timeout": 3.0}})`.
    """

    declarations: Path = setting(Path("declarations"), "Folder of service declarations.")
    data: Path = setting(Path("data"), "Folder holding the snapshots/ and versions/ git repositories.")
    metadata: Path | None = setting(
        None, "The collection's metadata file (OTA's metadata.yml); empty: metadata.yml beside the declarations folder.")
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    fetcher: FetcherSettings = field(default_factory=FetcherSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    web: WebSettings = field(default_factory=WebSettings)
    feeds: FeedsSettings = field(default_factory=FeedsSettings)
    webhooks: WebhooksSettings = field(default_factory=WebhooksSettings)
    publish: PublishSettings = field(default_factory=PublishSettings)
    dataset: DatasetSettings = field(default_factory=DatasetSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    distributed: DistributedSettings = field(default_factory=DistributedSettings)
    source: Path | None = None  # the file read, if any (not a setting)


def _table_value(value: Any) -> Any:
    """A typed default as the reference table (and the TOML file) writes it."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return "" if value is None else value


def _sections() -> dict[str, type]:
    """Section name -> its dataclass, in the order of `Settings` ("" is Settings' own keys)."""
    sections: dict[str, type] = {"": Settings}
    for item in fields(Settings):
        factory = item.default_factory
        if isinstance(factory, type) and is_dataclass(factory):
            sections[item.name] = factory
    return sections


SECTIONS = _sections()

# The reference of every setting: section -> key -> (default, help), derived from the
# dataclasses above. A top-level key lives in section "".
DEFAULTS: dict[str, dict[str, tuple[Any, str]]] = {
    section: {item.name: (_table_value(item.default), item.metadata["help"])
              for item in fields(cls) if "help" in item.metadata}
    for section, cls in SECTIONS.items()
}


class ConfigError(TermshiftError, ValueError):
    """A bad configuration value; the message names the key and the reason."""


def _coerce(key: str, default: Any, value: Any) -> Any:
    """Convert `value` to the type of `default`, or raise ConfigError naming `key`."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if isinstance(value, bool) and isinstance(default, int | float):
        # TOML `timeout = true` would otherwise become 1.
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}") from None
        if number < 0:
            raise ConfigError(f"{key}: must not be negative, got {number}")
        return number
    if isinstance(default, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if number < 0:
            raise ConfigError(f"{key}: must not be negative, got {number}")
        return number
    if isinstance(default, list):
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list | tuple):
            return list(value)
        raise ConfigError(f"{key}: expected a list, got {value!r}")
    if key.startswith("fetcher.browser_endpoint") and isinstance(value, list | tuple):
        # Several endpoints, a browser farm: a TOML list is the comma-separated string.
        if not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{key}: expected a URL or a list of URLs, got {value!r}")
        return ", ".join(item.strip() for item in value if item.strip())
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def load_settings(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Read the configuration file (if any), then environment overrides, then `overrides`.

    `overrides` is `{section: {key: value}}` (section "" for the top-level keys), checked
    like the file: `load_settings(None, environ={}, overrides={"fetcher": {"timeout": 3.0}})`
    is the defaults with one value changed (None values are ignored). The values are
    checked here, once; what comes out is typed and nothing downstream checks it again.
    Raises ConfigError listing every bad value (key and reason), one per line.
    """
    environ = os.environ if environ is None else environ
    if path is None and environ.get("TERMSHIFT_CONFIG"):
        path = Path(environ["TERMSHIFT_CONFIG"])
    if path is None and Path("termshift.toml").is_file():
        path = Path("termshift.toml")
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from None

    errors: list[str] = []
    values: dict[str, dict[str, Any]] = {section: {} for section in DEFAULTS}
    for section, keys in DEFAULTS.items():
        given = raw if section == "" else raw.get(section, {})
        if not isinstance(given, dict):
            errors.append(f"{section}: expected a table")
            given = {}
        for key, (default, _help) in keys.items():
            dotted = f"{section}.{key}" if section else key
            env_name = environment_variable(section, key)
            value = copy.deepcopy(default)
            try:
                if key in given:
                    value = _coerce(dotted, default, given[key])
                if env_name in environ:
                    value = _coerce(f"{dotted} (from {env_name})", default, environ[env_name])
                if overrides and key in overrides.get(section, {}) and overrides[section][key] is not None:
                    value = _coerce(dotted, default, overrides[section][key])
            except ConfigError as error:
                errors.append(str(error))
            values[section][key] = value
        for key in given:
            if section == "" and key in DEFAULTS:
                continue
            if key not in keys:
                errors.append(_unknown_setting(section, key))
    errors.extend(_check(values))
    if errors:
        where = f" in {path}" if path else ""
        raise ConfigError(f"invalid configuration{where}:\n" + "\n".join(f"  {e}" for e in errors))
    return _build(values, Path(path) if path else None)


def _build(values: dict[str, dict[str, Any]], source: Path | None) -> Settings:
    """The typed settings from checked values (as the reference table writes them)."""
    top = values[""]
    sections = {
        section: cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values[section].items()})
        for section, cls in SECTIONS.items() if section
    }
    return Settings(declarations=Path(top["declarations"]), data=Path(top["data"]),
                    metadata=Path(top["metadata"]) if top["metadata"] else None, source=source, **sections)


def _unknown_setting(section: str, key: str) -> str:
    """`fetcher.langage: unknown setting (did you mean 'fetcher.language'?)`."""
    dotted = f"{section}.{key}" if section else key
    # At the top level, a misspelt section (`[fetchr]`) is as likely as a misspelt key.
    candidates = list(DEFAULTS[section]) + ([name for name in DEFAULTS if name] if section == "" else [])
    hint = suggest(key, candidates)
    if hint is None:
        return f"{dotted}: unknown setting"
    return f"{dotted}: unknown setting (did you mean '{f'{section}.{hint}' if section else hint}'?)"


def _check(values: dict[str, dict[str, Any]]) -> list[str]:
    """Checks that go beyond types."""
    errors = []
    fetcher = values["fetcher"]
    if fetcher["per_host"] < 1:
        errors.append("fetcher.per_host: must be at least 1")
    if fetcher["browser_pages"] < 1:
        errors.append("fetcher.browser_pages: must be at least 1")
    if fetcher["timeout"] == 0:
        errors.append("fetcher.timeout: must be more than 0")
    language = fetcher["language"]
    if ";q=" in language.lower() or not [tag for tag in language.split(",") if tag.strip()]:
        errors.append(f"fetcher.language: expected language tags such as 'en-GB, en', got {language!r}")
    user_agent = fetcher["user_agent"]
    if not user_agent.strip():
        errors.append("fetcher.user_agent: must not be empty (name Termshift and a contact URL)")
    elif any(char in user_agent for char in "\r\n"):
        errors.append(f"fetcher.user_agent: must be on one line, got {user_agent!r}")
    for endpoint in (part.strip() for part in fetcher["browser_endpoint"].split(",")):
        if endpoint and not endpoint.startswith(("ws://", "wss://", "http://", "https://")):
            errors.append(f"fetcher.browser_endpoint: expected a ws:// or http:// URL, got {endpoint!r}")
    broker = values["distributed"]["broker"]
    if broker and not broker.startswith(("redis://", "rediss://", "unix://")):
        errors.append(f"distributed.broker: expected a redis://, rediss:// or unix:// URL, got {broker!r}")
    if not values["distributed"]["queue"].strip():
        errors.append("distributed.queue: must not be empty")
    if values["distributed"]["heartbeat_timeout"] < 0.5:
        errors.append("distributed.heartbeat_timeout: must be at least 0.5")
    if "%SNAPSHOT_ID" not in values["archive"]["snapshot_id_template"]:
        errors.append("archive.snapshot_id_template: must contain %SNAPSHOT_ID")
    if not 0 < values["web"]["port"] < 65536:
        errors.append("web.port: must be between 1 and 65535")
    errors.extend(_check_web(values["web"]))
    base_url = values["web"]["base_url"]
    if base_url and not _is_base_url(base_url):
        errors.append(f"web.base_url: expected an http:// or https:// address with a host, such as "
                      f"'https://example.org/termshift', got {base_url!r}")
    if values["feeds"]["length"] < 1:
        errors.append("feeds.length: must be at least 1")
    authority = values["feeds"]["tag_authority"]
    if authority and not _is_tag_authority(authority):
        errors.append(f"feeds.tag_authority: expected '<domain>,<YYYY or YYYY-MM-DD>', such as "
                      f"'example.org,2026', got {authority!r}")
    for key in ("timeout", "concurrency", "retry_base", "retry_max", "max_age", "include_diff_max_bytes"):
        if values["webhooks"][key] <= 0:
            errors.append(f"webhooks.{key}: must be more than 0")
    errors.extend(_check_service(values))
    return errors


# A rate in the notation of the `limits` library (which the viewer parses; importing it here
# would slow every command down): `10/minute`, `100 per hour`, `5/10 seconds`.
_RATE = re.compile(r"^\s*\d+\s*(?:/|per)\s*(?:\d+\s*)?(?:second|minute|hour|day|month|year)s?\s*$", re.IGNORECASE)
MIN_ADMIN_TOKEN = 32  # characters; `python -c "import secrets; print(secrets.token_urlsafe(32))"` gives 43


def _check_web(web: dict[str, Any]) -> list[str]:
    """Checks of the viewer's production settings."""
    errors = []
    token = web["admin_token"]
    if token and len(token) < MIN_ADMIN_TOKEN:
        errors.append(f"web.admin_token: must be at least {MIN_ADMIN_TOKEN} characters (it has {len(token)}); "
                      "make one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
    if token and token != token.strip():
        errors.append("web.admin_token: must not start or end with spaces")
    if web["max_request_bytes"] < 1024:
        errors.append("web.max_request_bytes: must be at least 1024")
    if web["session_lifetime"] <= 0:
        errors.append("web.session_lifetime: must be more than 0")
    for key in ("login_rate_limit", "admin_rate_limit"):
        if not _RATE.match(web[key]):
            errors.append(f"web.{key}: expected a rate such as '10/minute' or '100 per hour', got {web[key]!r}")
    for host in web["trusted_hosts"]:
        if not isinstance(host, str) or not host or "/" in host or " " in host:
            errors.append(f"web.trusted_hosts: expected host names such as 'terms.example.org', got {host!r}")
    return errors


def _is_base_url(value: str) -> bool:
    """An absolute http(s) URL with a host: feeds and webhooks put it before every link."""
    # Imported here: termshift.schema pulls in jsonschema, which the fetch worker (it unpickles
    # its FetcherSettings, so it imports this module) and most commands never need.

    return is_http_url(value) and not urlsplit(value).query and not urlsplit(value).fragment


# RFC 4151 tagging entity: a DNS name or an e-mail address, a comma, then a date
# (YYYY, YYYY-MM or YYYY-MM-DD) on which the authority owned that name.
_DNS_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
_TAG_AUTHORITY = re.compile(
    rf"^(?:[A-Za-z0-9._%+-]+@)?{_DNS_NAME},(\d{{4}})(?:-(0[1-9]|1[0-2])(?:-(0[1-9]|[12]\d|3[01]))?)?$")


def _is_tag_authority(value: str) -> bool:
    """`example.org,2026` or `example.org,2026-01-31`: entry ids are `tag:<this>:…` (RFC 4151)."""
    match = _TAG_AUTHORITY.match(value)
    if not match:
        return False
    year, month, day = match.groups()
    if day is None:
        return True
    try:
        date(int(year), int(month), int(day))  # 2026-02-30 does not exist
    except ValueError:
        return False
    return True


def _check_service(values: dict[str, dict[str, Any]]) -> list[str]:
    """Checks of the scheduler, publishing, dataset and logging settings."""
    errors = []
    schedule = values["schedule"]
    timezone = None
    try:
        timezone = parse_timezone(schedule["timezone"])
    except ScheduleError as error:
        errors.append(f"schedule.timezone: {error}")
    for key in ("tracking", "dataset"):
        try:
            parse_schedule(schedule[key], timezone)
        except ScheduleError as error:
            errors.append(f"schedule.{key}: {error}")
    if schedule["stuck_after"] <= 0:
        errors.append("schedule.stuck_after: must be more than 0")
    if values["publish"]["timeout"] <= 0:
        errors.append("publish.timeout: must be more than 0")
    for key in ("snapshots_remote", "versions_remote"):
        remote = values["publish"][key]
        if remote != remote.strip() or remote.startswith("-"):
            errors.append(f"publish.{key}: expected a git URL or path, got {remote!r}")
    branch = values["publish"]["branch"]
    if not branch or any(char in branch for char in " ~^:?*[\\") or branch.startswith("-"):
        errors.append(f"publish.branch: not a valid branch name: {branch!r}")
    if not values["dataset"]["title"].strip():
        errors.append("dataset.title: must not be empty")
    level = values["logging"]["level"]
    if level.upper() not in LOG_LEVELS:
        errors.append(f"logging.level: expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return errors


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


_command_config_path: ContextVar[Path | None] = ContextVar("termshift_command_config_path", default=None)


def configured_path() -> Path | None:
    """The `--config PATH` of the running command, if it was given (None outside a command)."""
    return _command_config_path.get()


@contextmanager
def using_config_path(path: Path | None) -> Iterator[None]:
    """Make `path` the configuration file of `configured_path()` while a command runs
    (termshift.commands.options.config_option does it for `--config`)."""
    token = _command_config_path.set(path)
    try:
        yield
    finally:
        _command_config_path.reset(token)


def environment_variable(section: str, key: str) -> str:
    """The `TERMSHIFT_*` variable that overrides a setting."""
    return "TERMSHIFT_" + (f"{section}_{key}" if section else key).upper()


def _format_default(value: Any) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, list):
        return "`[]`" if not value else "`" + ", ".join(map(str, value)) + "`"
    if value == "":
        return "(empty)"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def reference_markdown() -> str:
    """The Markdown table of every setting: key, default, environment variable and meaning.

    Generated from DEFAULTS, so the README can never disagree with the code.
    """
    lines = [
        "| Setting | Default | Environment variable | Meaning |",
        "|---|---|---|---|",
    ]
    for section, keys in DEFAULTS.items():
        for key, (default, help_text) in keys.items():
            dotted = f"{section}.{key}" if section else key
            cells = [f"`{dotted}`", _format_default(default), f"`{environment_variable(section, key)}`",
                     help_text.replace("|", "\\|")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
