"""Measure the pictures on a real archive: timelines, collection activity, formatted diffs.

    python bench/pictures.py --versions ../shared/corpus/pga-versions-clone [--index FILE] [--pairs 100]

The archive is indexed first if needed (that cost is bench/viewer.py's subject). Then,
through the Flask app (no HTTP server: the pictures' own cost), with page caches off:
1. every document page (its timeline draws all versions): p50 / p95 / max time, the
   largest page and SVG in bytes, and the document with the most versions;
2. the latest-changes page with its services × months grid, and the activity query alone;
3. the formatted diff of `--pairs` random consecutive versions: the diff itself
   (`compare`) and the formatted rendering on top of it, p50 / p90 / p99 / max.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from termshift.web import create_app  # noqa: E402
from termshift.web.catalog import ChangeFilter  # noqa: E402
from termshift.web.diffing import compare  # noqa: E402
from termshift.web.index import refresh_index  # noqa: E402
from termshift.web.rendered_diff import render_comparison  # noqa: E402


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (f"p50 {statistics.median(ordered) * 1000:.0f} ms, p90 {at(0.9) * 1000:.0f} ms, "
            f"p99 {at(0.99) * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms (n={len(ordered)})")


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=Path, required=True, help="An OTA-format versions repository")
    parser.add_argument("--index", type=Path, help="The viewer's index (default: next to a temporary copy)")
    parser.add_argument("--pairs", type=int, default=100, help="Consecutive version pairs to render (default 100)")
    parser.add_argument("--seed", type=int, default=13)
    arguments = parser.parse_args()
    index = arguments.index or Path("/tmp") / f"pictures-bench-{arguments.versions.name}.sqlite"
    print(f"Indexing {arguments.versions} into {index} (if needed)…", flush=True)
    seconds, _stats = timed(lambda: refresh_index((arguments.versions, None), index))
    print(f"  index ready in {seconds:.1f} s")
    app = create_app(arguments.versions, None, None, index, refresh_interval=0, testing=True)
    state = app.extensions["termshift"]
    client = app.test_client()
    documents = state.catalog.documents()
    print(f"{len(documents)} documents, {sum(d['versions'] for d in documents)} versions")

    # 1. Document pages with their timelines.
    times, sizes, svgs = [], [], []
    for number, document in enumerate(documents):
        # A query argument of its own: nothing comes from the page cache.
        url = f"/{quote(document['service_id'], safe='')}/{quote(document['terms_type'], safe='')}?bench={number}"
        seconds, response = timed(lambda url=url: client.get(url))
        assert response.status_code == 200, url
        html = response.get_data(as_text=True)
        times.append(seconds)
        sizes.append(len(html))
        start, end = html.find("<svg class=\"timeline-chart\""), html.find("</svg>")
        svgs.append(end - start if start >= 0 else 0)
    busiest = max(documents, key=lambda d: d["versions"])
    print(f"document pages (timeline of every version): {percentiles(times)}")
    print(f"  largest page {max(sizes) / 1024:.0f} KiB, largest timeline SVG {max(svgs) / 1024:.0f} KiB; "
          f"most versions: {busiest['service_id']} / {busiest['terms_type']} ({busiest['versions']})")

    # 2. Latest changes with the activity grid.
    seconds, counts = timed(lambda: state.catalog.monthly_activity(ChangeFilter()))
    print(f"activity query (whole collection): {seconds * 1000:.0f} ms, {len(counts)} service-months")
    page_times = []
    for number in range(5):
        seconds, response = timed(lambda number=number: client.get(f"/-/changes?bench={number}"))
        page_times.append(seconds)
    print(f"latest-changes page with the grid: {percentiles(page_times)}, "
          f"{len(response.get_data()) / 1024:.0f} KiB")

    # 3. Formatted diffs of random consecutive pairs.
    with sqlite3.connect(index) as connection:
        rows = [{"new": new, "old": old} for new, old in connection.execute(
            "SELECT v.blob, p.blob FROM versions v JOIN versions p ON p.id = v.previous_id WHERE v.is_technical = 0")]
    random.Random(arguments.seed).shuffle(rows)
    diff_times, render_times = [], []
    for row in rows[: arguments.pairs]:
        old, new = state.version_text(row["old"]), state.version_text(row["new"])
        seconds, comparison = timed(lambda old=old, new=new: compare(old, new))
        diff_times.append(seconds)
        seconds, _ = timed(lambda comparison=comparison: render_comparison(comparison, 3))
        render_times.append(seconds)
    print(f"diff (compare, for reference): {percentiles(diff_times)}")
    print(f"formatted diff on top of it (context 3): {percentiles(render_times)}")
    state.close()


if __name__ == "__main__":
    main()
