"""Configuration: `termshift config check` reports every bad value; `config reference` lists every setting."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
from click.testing import CliRunner

from termshift.commands.config import config_group
from termshift.commands.lint import lint_command
from termshift.commands.validate import validate_command
from termshift.config import (
    DEFAULTS,
    SECTIONS,
    ConfigError,
    FetcherSettings,
    Settings,
    configured_path,
    load_settings,
    reference_markdown,
)

BAD_CONFIG = """\
[schedule]
tracking = "every day"
dataset = "61 8 * * MON"
timezone = "Mars/Olympus"
deliveries = "fast"
misfire_grace = true

[publish]
branch = "a b"
versions_remote = " /srv/versions.git"

[logging]
level = "LOUD"

[fetcher]
per_host = 0
langage = "fr"
user_agent = " "

[web]
base_url = "example.org/termshift"

[feeds]
tag_authority = "not valid"

[webhooks]
timeout = 0

[nope]
x = 1
"""

# Each bad value above, as the key that must be named and a word of the reason.
EXPECTED_ERRORS = {
    "schedule.tracking": "5 fields",
    "schedule.dataset": "61",
    "schedule.timezone": "Mars/Olympus",
    "schedule.deliveries": "expected a number",
    "schedule.misfire_grace": "expected a number",
    "publish.branch": "branch name",
    "publish.versions_remote": "git URL or path",
    "logging.level": "LOUD",
    "fetcher.per_host": "at least 1",
    "fetcher.langage": "unknown setting (did you mean 'fetcher.language'?)",
    "fetcher.user_agent": "must not be empty",
    "web.base_url": "expected an http:// or https:// address with a host",
    "feeds.tag_authority": "expected '<domain>,<YYYY or YYYY-MM-DD>'",
    "webhooks.timeout": "more than 0",
    "nope": "unknown setting",
}


def test_config_check_reports_every_bad_value_with_its_key_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "termshift.toml"
    config.write_text(BAD_CONFIG, encoding="utf-8")
    result = CliRunner().invoke(config_group, ["check", "--config", str(config)])
    assert result.exit_code == 1
    lines = [line.strip() for line in result.output.splitlines()]
    assert str(config) in lines[0]
    for key, reason in EXPECTED_ERRORS.items():
        matching = [line for line in lines if line.startswith(f"{key}:")]
        assert matching, f"no error for {key} in:\n{result.output}"
        assert reason in matching[0]
    assert len(lines) - 1 == len(EXPECTED_ERRORS)  # nothing reported twice, nothing extra


def test_config_check_accepts_a_good_file_and_the_new_sections(tmp_path: Path) -> None:
    config = tmp_path / "termshift.toml"
    config.write_text(
        '[schedule]\ntracking = "every 90s"\ndataset = ""\ntimezone = "Europe/Paris"\nmisfire_grace = 600\n'
        '[publish]\nversions_remote = "git@example.org:acme/versions.git"\nretries = 5\n'
        '[logging]\njson = true\nlevel = "debug"\n[webhooks]\ntimeout = 5\n[feeds]\ntag_authority = "example.org,2026"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(config_group, ["check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    settings = load_settings(config, environ={})
    assert settings.schedule.misfire_grace == 600.0
    assert settings.publish.retries == 5
    assert settings.logging.json is True
    assert settings.webhooks.timeout == 5.0


def test_an_environment_variable_error_names_the_variable() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(None, environ={"TERMSHIFT_SCHEDULE_TRACKING": "*/5 * *", "TERMSHIFT_PUBLISH_RETRIES": "x"})
    message = str(raised.value)
    assert "schedule.tracking: '*/5 * *'" in message
    assert "publish.retries (from TERMSHIFT_PUBLISH_RETRIES)" in message


def test_reference_lists_every_setting_once_with_its_variable() -> None:
    table = reference_markdown()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    expected = [f"{section}.{key}" if section else key for section, keys in DEFAULTS.items() for key in keys]
    assert [re.match(r"\| `([^`]+)`", row).group(1) for row in rows] == expected
    tracking = next(row for row in rows if row.startswith("| `schedule.tracking`"))
    assert "`30 */12 * * *`" in tracking and "`TERMSHIFT_SCHEDULE_TRACKING`" in tracking
    # A table cell must not be broken by a pipe in a help text.
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 5 for row in rows)
    assert "`every <n>s\\|m\\|h\\|d`" in tracking
    result = CliRunner().invoke(config_group, ["reference"])
    assert result.exit_code == 0 and result.output == table


@pytest.fixture
def reference_defaults(monkeypatch) -> None:
    """DEFAULTS as the code has it: without the loopback allowance tests/conftest.py gives the session."""
    default, help_text = DEFAULTS["fetcher"]["allow_private_targets"]
    monkeypatch.setitem(DEFAULTS["fetcher"], "allow_private_targets", ([], help_text))


def test_the_reference_table_is_the_typed_settings(reference_defaults) -> None:
    """DEFAULTS is generated from the dataclasses: same sections and keys, in order, and each
    default has the type its field declares (the type `load_settings` converts a value to)."""
    assert list(DEFAULTS) == ["", *(item.name for item in dataclasses.fields(Settings) if item.name in SECTIONS)]
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        declared = [item for item in dataclasses.fields(cls) if item.name in DEFAULTS[section]]
        assert [item.name for item in declared] == list(DEFAULTS[section])
        for item in declared:
            table_default, help_text = DEFAULTS[section][item.name]
            assert help_text == item.metadata["help"] and help_text
            hint = hints[item.name]
            expected = tuple if typing.get_origin(hint) is tuple else hint  # tuple[str, ...]: a tuple
            assert isinstance(item.default, expected), (section, item.name)
            if isinstance(item.default, tuple):
                assert table_default == list(item.default)
            elif item.default is None or isinstance(item.default, Path):
                assert table_default == ("" if item.default is None else str(item.default))
            else:
                assert table_default == item.default and type(table_default) is type(item.default)
    # The sections not in DEFAULTS are not settings: only the file read.
    assert [item.name for item in dataclasses.fields(Settings)
            if item.name not in SECTIONS and item.name not in DEFAULTS[""]] == ["source"]


def test_loaded_settings_are_typed_frozen_and_hashable(tmp_path: Path) -> None:
    config = tmp_path / "termshift.toml"
    config.write_text('data = "archive"\nmetadata = "meta.yml"\n[fetcher]\ntimeout = 5\n'
                      'allow_private_targets = ["10.0.0.1"]\n[web]\ntrusted_hosts = "a.example, b.example"\n',
                      encoding="utf-8")
    settings = load_settings(config, environ={"TERMSHIFT_FETCHER_PER_HOST": "3"})
    assert settings.data == Path("archive") and settings.declarations == Path("declarations")
    assert settings.metadata == Path("meta.yml") and settings.source == config
    assert settings.fetcher.timeout == 5.0 and isinstance(settings.fetcher.timeout, float)
    assert settings.fetcher.per_host == 3
    assert settings.fetcher.allow_private_targets == ("10.0.0.1",)
    assert settings.web.trusted_hosts == ("a.example", "b.example")
    assert load_settings(None, environ={}).metadata is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.fetcher.timeout = 1.0  # type: ignore[misc]
    assert hash(settings) == hash(load_settings(config, environ={"TERMSHIFT_FETCHER_PER_HOST": "3"}))
    changed = dataclasses.replace(settings, fetcher=dataclasses.replace(settings.fetcher, language="fr"))
    assert changed.fetcher.language == "fr" and settings.fetcher.language == "en"
    # The dataclasses' own defaults are the file's defaults.
    assert Settings().fetcher == FetcherSettings() and Settings().web == load_settings(None, environ={}).web


def test_the_readme_holds_the_reference_table(reference_defaults) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert reference_markdown() in readme


@pytest.mark.parametrize(("section", "key", "value", "valid"), [
    ("web", "base_url", "https://example.org/termshift", True),
    ("web", "base_url", "http://127.0.0.1:5000", True),
    ("web", "base_url", "example.org/termshift", False),  # no scheme: links would be relative
    ("web", "base_url", "ftp://example.org", False),
    ("web", "base_url", "https://", False),
    ("web", "base_url", "https://example.org:99999", False),
    ("web", "base_url", "https://example.org/?page=1", False),
    ("feeds", "tag_authority", "example.org,2026", True),
    ("feeds", "tag_authority", "terms.example.org,2026-01-31", True),
    ("feeds", "tag_authority", "bot@example.org,2026-02", True),  # RFC 4151 allows an e-mail and a month
    ("feeds", "tag_authority", "example.org", False),
    ("feeds", "tag_authority", "example.org,26", False),
    ("feeds", "tag_authority", "example.org,2026-02-30", False),
    ("feeds", "tag_authority", "exa mple.org,2026", False),
    ("feeds", "tag_authority", "https://example.org,2026", False),
    ("fetcher", "user_agent", "", False),
    ("fetcher", "user_agent", "Bot/1.0\r\nX-Injected: 1", False),
    ("fetcher", "user_agent", "MyArchive/1.0 (+https://example.org/contact)", True),
])
def test_values_that_would_break_the_output_are_refused(section, key, value, valid) -> None:
    variable = f"TERMSHIFT_{section}_{key}".upper()
    if valid:
        assert getattr(getattr(load_settings(None, environ={variable: value}), section), key) == value
    else:
        with pytest.raises(ConfigError) as raised:
            load_settings(None, environ={variable: value})
        assert f"{section}.{key}:" in str(raised.value)


def test_serving_threads_are_zero_for_automatic_or_more() -> None:
    from termshift.commands.serve import SINGLE_PROCESS_THREADS, serving_threads

    assert load_settings(None, environ={}).web.threads == 0
    assert load_settings(None, environ={"TERMSHIFT_WEB_THREADS": "3"}).web.threads == 3
    with pytest.raises(ConfigError, match="web.threads .*must not be negative"):
        load_settings(None, environ={"TERMSHIFT_WEB_THREADS": "-1"})
    assert serving_threads(0, several=True) == 1  # each process a worker
    assert serving_threads(0, several=False) == SINGLE_PROCESS_THREADS > 1
    assert serving_threads(3, several=True) == serving_threads(3, several=False) == 3


def test_serving_processes_are_zero_for_one_per_core_or_more() -> None:
    assert load_settings(None, environ={"TERMSHIFT_WEB_PROCESSES": "0"}).web.processes == 0
    assert load_settings(None, environ={"TERMSHIFT_WEB_PROCESSES": "3"}).web.processes == 3
    with pytest.raises(ConfigError, match="web.processes .*must not be negative"):
        load_settings(None, environ={"TERMSHIFT_WEB_PROCESSES": "-1"})


def test_unknown_sections_and_top_level_keys_get_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "termshift.toml"
    config.write_text('declaration = "decl"\n[fetchr]\nlanguage = "fr"\n[web]\nportt = 80\nzzz = 1\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(config, environ={})
    lines = [line.strip() for line in str(raised.value).splitlines()[1:]]
    assert lines == [
        "declaration: unknown setting (did you mean 'declarations'?)",
        "fetchr: unknown setting (did you mean 'fetcher'?)",
        "web.portt: unknown setting (did you mean 'web.port'?)",
        "web.zzz: unknown setting",
    ]


@pytest.fixture
def collection_elsewhere(tmp_path: Path, monkeypatch) -> Path:
    """A configuration file naming a declarations folder; the commands run from another folder."""
    declarations = tmp_path / "collection" / "declarations"
    declarations.mkdir(parents=True)
    (declarations / "A.json").write_text('{\n  "name": "A",\n  "terms": {}\n}\n', encoding="utf-8")
    config = tmp_path / "collection" / "termshift.toml"
    config.write_text(f"declarations = {str(declarations)!r}\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("TERMSHIFT_CONFIG", raising=False)
    monkeypatch.delenv("TERMSHIFT_DECLARATIONS", raising=False)
    return config


@pytest.mark.parametrize(("command", "arguments", "expected"), [
    (validate_command, ["--schema-only"], "1 service checked (schema only): no errors"),
    (lint_command, [], "1 file checked: all canonical"),
])
def test_commands_read_the_file_given_with_config(collection_elsewhere: Path, command, arguments, expected) -> None:
    without = CliRunner().invoke(command, arguments)
    assert without.exit_code == 1 and "declarations folder not found" in without.output
    result = CliRunner().invoke(command, [*arguments, "--config", str(collection_elsewhere)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == expected


def test_a_bad_file_given_with_config_is_named(collection_elsewhere: Path) -> None:
    collection_elsewhere.write_text('[web]\nbase_url = "example.org"\n', encoding="utf-8")
    result = CliRunner().invoke(validate_command, ["--schema-only", "--config", str(collection_elsewhere)])
    assert result.exit_code == 1
    assert f"invalid configuration in {collection_elsewhere}" in result.output
    assert "web.base_url: expected an http:// or https:// address" in result.output


def test_outside_a_command_no_config_path_is_given() -> None:
    assert configured_path() is None


def test_browser_endpoint_takes_a_toml_list_of_endpoints(tmp_path):
    """Several remote browsers (a browser farm): a TOML list is the comma-separated string; each is checked."""
    path = tmp_path / "termshift.toml"
    path.write_text('[fetcher]\nbrowser_endpoint = ["ws://render-1:3000/a", "http://render-2:9222"]\n')
    assert load_settings(path, environ={}).fetcher.browser_endpoint == "ws://render-1:3000/a, http://render-2:9222"
    path.write_text('[fetcher]\nbrowser_endpoint = ["ws://render-1:3000/a", "render-2:9222"]\n')
    with pytest.raises(ConfigError, match="fetcher.browser_endpoint: expected a ws:// or http:// URL, got 'render-2:9222'"):
        load_settings(path, environ={})
    path.write_text('[fetcher]\nbrowser_endpoint = ["ws://render-1:3000/a", 3]\n')
    with pytest.raises(ConfigError, match="expected a URL or a list of URLs"):
        load_settings(path, environ={})
