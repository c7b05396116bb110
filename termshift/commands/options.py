"""The options several commands share, each defined once, and the settings a command runs with.

`--config PATH`, `--data DIR`, `--declarations DIR`, `--services/-s ID`, `--types/-t TYPE`:
each is a decorator, used bare (`@data_option`) or with one command's own wording
(`@data_option(help="Data folder holding alerts.sqlite (default: ./data).")`); the name,
the parameter it fills and the type are the same everywhere.

`--config` is not passed to the command: while the command runs, it is the configuration
file of `termshift.config.configured_path()`, where `settings_for_command` (and the few
library functions that load settings themselves, such as the network checks of
`validate`) find it. So one line, `@config_option`, gives a command the option,
whatever its signature.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from termshift.config import ConfigError, Settings, configured_path, load_settings, using_config_path

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

_CONFIG_PATH_KEY = "termshift.config_path"  # where `config_option` keeps the path, in click's context


def _shared_option(*declarations: str, **attributes: Any) -> Callable[..., Any]:
    """An option decorator usable bare or called with changes (`help=...`) for one command."""

    def option(function: Callable[..., Any] | None = None, /, **changes: Any) -> Any:
        decorator = click.option(*declarations, **{**attributes, **changes})
        return decorator if function is None else decorator(function)

    return option


declarations_option = _shared_option(
    "--declarations",
    "declarations_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of service declarations (default: ./declarations, or `declarations` in termshift.toml).",
)
"""`--declarations DIR`: the collection to read (default from configuration)."""

data_option = _shared_option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder holding the snapshots/ and versions/ repositories (default: ./data).",
)
"""`--data DIR`: the folder holding `snapshots/` and `versions/`."""

services_option = _shared_option(
    "--services", "-s", multiple=True, help="Only these service ids (repeat the option for several)."
)
"""`--services/-s ID`, repeatable: only these services."""

types_option = _shared_option(
    "--types", "-t", multiple=True, help="Only these terms types (repeat the option for several)."
)
"""`--types/-t TYPE`, repeatable: only these terms types."""


def _remember_config(context: click.Context, _parameter: click.Parameter, value: Path | None) -> Path | None:
    if value is not None:
        context.meta[_CONFIG_PATH_KEY] = value
    return value


def config_option(function: Callable[..., Any] | None = None, /, **changes: Any) -> Any:
    """`--config PATH`: the configuration file of a command (see the module's docstring)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def run_with_config(*args: Any, **kwargs: Any) -> Any:
            with using_config_path(click.get_current_context().meta.get(_CONFIG_PATH_KEY)):
                return command(*args, **kwargs)

        attributes: dict[str, Any] = {
            "type": click.Path(dir_okay=False, path_type=Path), "default": None, "expose_value": False,
            "is_eager": True, "callback": _remember_config, "metavar": "PATH",
            "help": "Configuration file (default: $TERMSHIFT_CONFIG, else ./termshift.toml).",
        }
        return click.option("--config", "config_path", **{**attributes, **changes})(run_with_config)

    return decorate if function is None else decorate(function)


def settings_for_command(declarations_dir: Path | None = None, data_dir: Path | None = None) -> Settings:
    """Settings for a CLI command: command-line paths win over file and environment.

    The command's `--config` (see `config_option`) is used.
    A configuration error is turned into a click error (exit code 1) with the message.
    """
    config_path = configured_path()
    overrides = {"": {"declarations": str(declarations_dir) if declarations_dir else None,
                      "data": str(data_dir) if data_dir else None}}
    try:
        return load_settings(config_path, overrides=overrides)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
