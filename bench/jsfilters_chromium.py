"""The alternative engine measured against Node + jsdom: JavaScript filters in Chromium (Playwright).

Not part of Termshift: `bench/fidelity.py --corpus jsfilters --js-engine chromium` swaps
termshift.jsfilters' engine for this one, so both engines are scored on the same snapshots with
the same pipeline. The page is served at the document's location through request interception
(nothing else loads, page scripts are off), the filters module is turned into a function by
dropping its `export` keywords (enough for the corpus's files, not a general module loader),
the calls run in the page, and the serialised document goes back to the Python pipeline.
"""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import sync_playwright

from termshift import jsfilters
from termshift.trackers.browser_path import find_chromium

_EXPORT = re.compile(r"^export\s+", re.MULTILINE)


class ChromiumEngine:
    def __init__(self) -> None:
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=str(find_chromium()),
                                                        args=["--no-sandbox"])
        self._context = self._browser.new_context(java_script_enabled=False)
        self._page = self._context.new_page()
        self._served: dict[str, str] = {}
        self._page.route("**/*", self._serve)
        self._scripts: dict[tuple, str] = {}
        self.starts = 1

    def _serve(self, route: Any) -> None:
        body = self._served.get(route.request.url)
        if body is None:
            route.abort()
        else:
            route.fulfill(status=200, body=body, content_type="text/html; charset=utf-8")

    def _script(self, calls: list[tuple[Any, jsfilters.JsFilter]]) -> str:
        key = tuple((function.file.key, function.name, function.version) for _call, function in calls)
        if key not in self._scripts:
            modules = {}
            for _call, function in calls:
                file = function.file
                for part, source_name in (("main", file.main_name), ("history", file.history_name)):
                    if source_name and (file.key, part) not in modules:
                        names = list(file.exports) if part == "main" else list(file.history)
                        code = _EXPORT.sub("", file.sources[source_name])
                        modules[(file.key, part)] = f"(() => {{ {code}\n; return {{ {', '.join(names)} }}; }})()"
            table = ", ".join(f"{json.dumps(key[0] + ':' + key[1])}: {code}" for key, code in modules.items())
            self._scripts[key] = f"""async ([context, calls]) => {{
  const modules = {{ {table} }};
  for (const call of calls) {{
    const fn = call.version === null ? modules[call.key + ':main'][call.name]
                                     : modules[call.key + ':history'][call.name][call.version].filter;
    const args = call.passParams ? [document, call.params, {{...context}}] : [document, {{...context}}];
    try {{ await fn(...args); }} catch (error) {{ return {{ ok: false, name: call.name, error: String(error) }}; }}
  }}
  return {{ ok: true, html: '<!DOCTYPE html>' + document.documentElement.outerHTML }};
}}"""
        return self._scripts[key]

    def apply(self, html: str, location: str, context: dict[str, Any], calls: list) -> str:
        url = location.split("#", 1)[0]
        self._served = {url: html}
        self._page.goto(url, wait_until="domcontentloaded")
        payload = [{"key": function.file.key, "name": function.name, "version": function.version,
                    "params": call.params, "passParams": call.passes_params} for call, function in calls]
        answer = self._page.evaluate(self._script(calls), [context, payload])
        if not answer["ok"]:
            raise jsfilters.JsFilterFailure(answer["name"], answer["error"])
        return answer["html"]


    def stop(self) -> None:
        self._browser.close()
        self._playwright.stop()


def use_chromium_for_js_filters() -> None:
    chromium = ChromiumEngine()
    analyzer = jsfilters.Engine()  # loading still analyses the files with acorn, in Node
    chromium.analyze = analyzer.analyze  # type: ignore[attr-defined]
    jsfilters._ENGINE = chromium  # type: ignore[assignment]
