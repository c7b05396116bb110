"""Every `termshift` command: the top layer, where the library meets click.

One module per command or group of commands (`track`, `rebuild`, `validate`, `serve`,
`demo`, `webhooks`, `schedule`, `config`, `dataset`, `lint`, `try_page`, `history`,
`import_ota`), registered in `termshift.cli.COMMANDS`, which imports a module only when
its command is used (or listed by `termshift --help`: so a command module imports
nothing heavy (Scrapy, Playwright, APScheduler, Flask) before its command runs).
The options several commands share (`--config`, `--data`, `--declarations`, `--services`,
`--types`) are defined once, in `termshift.commands.options`, with `settings_for_command`.

A command turns the library's errors into click errors (message and exit code) and
prints; the modules it drives know nothing of click.
"""
