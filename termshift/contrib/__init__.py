"""Contributor tooling: the work behind the commands that help someone add or fix a declaration
(the click commands themselves are in termshift.commands).

- `termshift lint`        canonical formatting of declaration and history files, ruff on filters
- `termshift try`         fetch a URL, extract it with some selectors, print the Markdown and the JSON
- `termshift preview`     the same for a document already declared
- `termshift history record`  move the current declaration into `<id>.history.json`
- `termshift import-ota`  copy an Open Terms Archive collection and list the filters to port

The network checks shared by `try`, `preview`, the `/declare` page and
`termshift validate` live in `termshift.validate_network`.
"""
