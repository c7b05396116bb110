"""Configuration: `termshift config check` reports every bad value; `config reference` lists every setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from termshift.config import DEFAULTS, ConfigError, config_group, load_settings, reference_markdown

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
    assert settings["schedule"]["misfire_grace"] == 600.0
    assert settings["publish"]["retries"] == 5
    assert settings["logging"]["json"] is True
    assert settings["webhooks"]["timeout"] == 5.0


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
