"""The `termshift` command.

Subcommands live in the termshift.commands package, one module per command or
group, and are imported only when used (see COMMANDS), so `termshift --help`
stays fast even though tracking pulls in Scrapy and Playwright.
"""

from __future__ import annotations

import importlib

import click

from termshift import __version__

# name -> "module:attribute" of a click command or group.
COMMANDS: dict[str, str] = {
    "validate": "termshift.commands.validate:validate_command",
    "rebuild": "termshift.commands.rebuild:rebuild_command",
    "apply-technical-upgrades": "termshift.commands.rebuild:apply_technical_upgrades_command",
    "track": "termshift.commands.track:track_command",
    "serve": "termshift.commands.serve:serve_command",
    "demo": "termshift.commands.demo:demo_command",
    "webhooks": "termshift.commands.webhooks:webhooks_group",
    "schedule": "termshift.commands.schedule:schedule_command",
    "config": "termshift.commands.config:config_group",
    "dataset": "termshift.commands.dataset:dataset_command",
    "lint": "termshift.commands.lint:lint_command",
    "try": "termshift.commands.try_page:try_command",
    "preview": "termshift.commands.try_page:preview_command",
    "history": "termshift.commands.history:history_group",
    "import-ota": "termshift.commands.import_ota:import_ota_command",
    "worker": "termshift.commands.worker:worker_command",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            # A command whose module is not written yet is simply not offered;
            # any other import failure is a bug and must surface.
            if error.name and module_name.startswith(error.name):
                return None
            raise
        return getattr(module, attribute, None)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="termshift")
def main() -> None:
    """Termshift tracks how the terms of online services change over time.

    Every command takes --help. Most take --declarations DIR (the collection of
    service declarations) and --data DIR (the folder holding the `snapshots`
    and `versions` git repositories).
    """


if __name__ == "__main__":  # pragma: no cover
    main()
