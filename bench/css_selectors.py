"""Speed of CSS selector matching: Termshift's engine against cssselect's translation.

Termshift compiles selectors to XPath itself (termshift/selectors/css.py) instead of using
cssselect, which cannot translate part of what browsers accept. This measures what that
costs, in CPU time (stable on a loaded machine), on the real pages of the demo snapshots:

- matching: the selectors of the demo declarations (the corpus's, or the shipped ones) and
  a set of common shapes, each run on every page, with both engines where cssselect can
  translate the selector;
- compiling: selectors per second (declarations compile each selector once per run).

Usage: python bench/css_selectors.py [--declarations DIR] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cssselect import HTMLTranslator  # noqa: E402
from lxml import etree  # noqa: E402

from termshift.selectors import css  # noqa: E402
from termshift.trackers.extract import parse_html  # noqa: E402

BUNDLE = ROOT / "termshift" / "demo_data" / "snapshots.bundle"
SHARED_DECLARATIONS = ROOT.parent / "shared" / "corpus" / "demo" / "declarations"
COMMON = [
    "main", "#content", ".terms-body", "article > section", "div.content p", "h1, h2, h3", "a[href^='http']",
    "nav a", "footer", "[role=navigation]", "ul li:first-child", "table tr:nth-child(2n+1)", "div:not(.ad)",
    "header + main", "section ~ aside", "img[src$='.png' i]", "[class*='cookie']", "script, style, noscript",
    "div:has(> p)", ".wrapper:nth-of-type(2)", "main>.container-fluid:first-of-type", ":is(h2, h3) + p",
]
_KEYS = ("select", "remove", "startBefore", "startAfter", "endBefore", "endAfter")


def declared_selectors(directory: Path) -> list[str]:
    found: set[str] = set()

    def walk(value: object, key: str | None = None) -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                walk(item, name)
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        elif isinstance(value, str) and key in _KEYS:
            found.add(value)

    for path in sorted(directory.glob("*.json")):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return sorted(found)


def pages() -> list[etree._Element]:
    with tempfile.TemporaryDirectory() as directory:
        subprocess.run(["git", "clone", "-q", "-b", "subset", str(BUNDLE), directory], check=True)
        return [parse_html(path.read_text(encoding="utf-8"), "https://example.org/")
                for path in sorted(Path(directory).rglob("*.html"))]


def cpu_seconds(xpaths: list[etree.XPath], roots: list[etree._Element], rounds: int) -> float:
    start = time.process_time()
    for _ in range(rounds):
        for root in roots:
            for xpath in xpaths:
                xpath(root)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--declarations", type=Path,
                        default=SHARED_DECLARATIONS if SHARED_DECLARATIONS.is_dir()
                        else ROOT / "termshift" / "demo_data" / "declarations")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    roots = pages()
    translator = HTMLTranslator()
    selectors = declared_selectors(args.declarations) + COMMON
    both, only_ours, same_xpath = [], [], 0
    for selector in selectors:
        ours = css.compile_xpath(selector)
        try:
            theirs_text = translator.css_to_xpath(selector)
        except Exception:  # cssselect cannot translate it
            only_ours.append(selector)
            continue
        same_xpath += theirs_text == css.to_xpath(selector)
        both.append((etree.XPath(theirs_text), ours, selector))
    print(f"{len(roots)} pages, {len(selectors)} selectors ({args.declarations} + {len(COMMON)} common shapes)")
    print(f"cssselect cannot translate {len(only_ours)}: {', '.join(only_ours)}")
    print(f"same XPath as cssselect: {same_xpath}/{len(both)}")
    differing = [s for theirs, ours, s in both if any(theirs(r) != ours(r) for r in roots)]
    print(f"selectors matching differently from cssselect on these pages: {differing or 'none'}")
    for label, index in (("cssselect", 0), ("termshift", 1), ("cssselect", 0), ("termshift", 1)):
        seconds = cpu_seconds([item[index] for item in both], roots, args.rounds)
        matches = args.rounds * len(roots) * len(both)
        print(f"matching, {label:9}: {matches} selector runs in {seconds:.3f} s CPU = {matches / seconds:,.0f}/s")
    start = time.process_time()
    count = 0
    for round_number in range(args.rounds):
        for selector in selectors:
            css.compile_xpath(f"{selector}, #round-{round_number}")  # a new string each time: no cache
            count += 1
    seconds = time.process_time() - start
    print(f"compiling, termshift: {count} selectors in {seconds:.3f} s CPU = {count / seconds:,.0f}/s")


if __name__ == "__main__":
    main()
