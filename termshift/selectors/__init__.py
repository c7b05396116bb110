"""The selector engine of declarations: what a `select` or `remove` picks out of a page.

- `termshift.selectors.css`: CSS selectors with Chromium's semantics, compiled to one XPath
  1.0 expression each (`compile_xpath`, `SelectorSyntaxError`);
- `termshift.selectors.selection`: OTA's `select`/`remove` on an lxml tree — CSS strings,
  range objects (`startBefore`/`startAfter` + `endBefore`/`endAfter`) and lists of both —
  with `compile_selector`, `query_all` and `build_fragment`.

It sits with the declarations (layer 1), below tracking: extraction, `validate`, the schema
checks, filters and `try`/`preview` share it, and it imports nothing from `termshift.trackers`.
"""
