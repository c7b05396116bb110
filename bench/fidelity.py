"""Fidelity and speed of extraction against the OTA engine, on real snapshot history.

Rebuilds ../shared/corpus/demo (3,663 real snapshots of 19 documents) with
Termshift in one process and compares, snapshot by snapshot, with what the OTA
engine 9.1.0 extracted (ota-reference.jsonl and ota-reference-md.tar.gz):

- byte-identical rate and text-equivalent rate (the same words once Markdown
  syntax, link targets, <br> and whitespace are set aside), over the snapshots
  where OTA succeeded;
- change-detection precision and recall (a "change" is a snapshot whose Markdown
  differs from the previous successful extraction of the same document);
- per-document disagreements, snapshots per second (and OTA's, from its `ms`),
  peak memory.

The same scoring applies to ../shared/corpus/jsfilters (800 real snapshots of two
services whose declarations use JavaScript filters and a filters history, run by
termshift.jsfilters): `--corpus jsfilters`. `--js-engine chromium` runs those
filters in Chromium through Playwright instead of Node with jsdom, to compare the
engines (bench/jsfilters_chromium.py).

Usage: python bench/fidelity.py [--corpus demo|jsfilters|PATH] [--show N] [--js-engine jsdom|chromium]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from termshift import jsfilters  # noqa: E402
from termshift.trackers.replay import rebuild  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "demo"

_LINK_TARGET = re.compile(r"\]\((?:[^()\s]|\([^()]*\))*(?:\s+\"[^\"]*\")?\)")
_SYNTAX = re.compile(r"<br\s*/?>|\\(?=[\\`*_{}\[\]()#+\-.!>~|=])|[*_`#>|~\[\]=]+|^\s*[-+]\s|^\s*\d+\.\s", re.M)


def words(markdown: str) -> list[str]:
    """The sequence of words of a Markdown text, without syntax, link targets or spacing."""
    text = _LINK_TARGET.sub("]", markdown)
    text = _SYNTAX.sub(" ", text)
    text = text.replace("\u00a0", " ")
    return [word for word in text.split() if word.strip("-*_.|:") or word in {"-", "."}]


def _cpu_seconds() -> float:
    """User and system time of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _corpus_path(value: str) -> Path:
    return DEFAULT_CORPUS.parent / value if value in ("demo", "jsfilters") else Path(value)


def load_reference(corpus: Path) -> tuple[dict[str, dict], dict[str, str]]:
    rows = {}
    for line in (corpus / "ota-reference.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rows[row["commit"]] = row
    texts = {}
    with tarfile.open(corpus / "ota-reference-md.tar.gz") as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.endswith(".md"):
                data = archive.extractfile(member).read()
                texts[Path(member.name).stem] = data.decode("utf-8")
    return rows, texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=_corpus_path, default=DEFAULT_CORPUS,
                        help="demo, jsfilters, or the path of a corpus folder.")
    parser.add_argument("--js-engine", choices=("jsdom", "chromium"), default="jsdom",
                        help="What runs JavaScript filters (chromium: for comparison only).")
    parser.add_argument("--show", type=int, default=3, help="Differing snapshots to show per document.")
    arguments = parser.parse_args()
    corpus: Path = arguments.corpus
    if not (corpus / "snapshots.bundle").is_file():
        print(f"corpus not found at {corpus}", file=sys.stderr)
        return 2

    if arguments.js_engine == "chromium":
        from jsfilters_chromium import use_chromium_for_js_filters

        use_chromium_for_js_filters()
    reference, reference_texts = load_reference(corpus)
    ours: dict[str, tuple[bool, str | None, str | None]] = {}

    def on_snapshot(snapshot, markdown, error, _version):
        ours[snapshot.id] = (markdown is not None, markdown, str(error) if error else None)

    with tempfile.TemporaryDirectory(prefix="termshift-fidelity-") as work:
        snapshots = Path(work) / "snapshots"
        subprocess.run(["git", "clone", "-q", "-b", "subset", str(corpus / "snapshots.bundle"), str(snapshots)],
                       check=True)
        started = time.perf_counter()
        cpu_before = _cpu_seconds()
        summary = rebuild(corpus / "declarations", snapshots, Path(work) / "versions", on_snapshot=on_snapshot)
        jsfilters.shutdown()  # reap the Node runners, so that their CPU time is counted
        cpu = _cpu_seconds() - cpu_before
        elapsed = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # Change detection, defined as OTA's `changed`: differs from the previous successful extraction.
    previous: dict[tuple[str, str], str] = {}
    our_changed: dict[str, bool] = {}
    for commit, row in reference.items():  # the reference is oldest first, like the rebuild
        ok, markdown, _error = ours.get(commit, (False, None, None))
        key = (row["service"], row["type"])
        if ok:
            our_changed[commit] = markdown != previous.get(key)
            previous[key] = markdown

    compared = identical = equivalent = 0
    true_positive = false_positive = false_negative = 0
    both_failed = we_failed = ota_failed = 0
    per_document: dict[tuple[str, str], Counter] = defaultdict(Counter)
    examples: dict[tuple[str, str], list[str]] = defaultdict(list)
    for commit, row in reference.items():
        key = (row["service"], row["type"])
        ok, markdown, error = ours.get(commit, (False, None, "not read"))
        stats = per_document[key]
        stats["snapshots"] += 1
        if not row["ok"]:
            if ok:
                ota_failed += 1
                stats["ota failed, we extracted"] += 1
            else:
                both_failed += 1
            continue
        if not ok:
            we_failed += 1
            stats["we failed"] += 1
            if len(examples[key]) < arguments.show:
                examples[key].append(f"{commit[:10]} we failed: {error}")
            continue
        compared += 1
        if hashlib.sha256(markdown.encode("utf-8")).hexdigest() == row["sha256"]:
            identical += 1
            equivalent += 1
        else:
            stats["bytes differ"] += 1
            reference_text = reference_texts.get(row["sha256"], "")
            if words(markdown) == words(reference_text):
                equivalent += 1
            else:
                stats["text differs"] += 1
                if len(examples[key]) < arguments.show:
                    examples[key].append(f"{commit[:10]} text differs ({len(markdown)} vs {len(reference_text)} chars)")
        ours_changed = our_changed.get(commit, False)
        if ours_changed and row["changed"]:
            true_positive += 1
        elif ours_changed:
            false_positive += 1
            stats["extra change"] += 1
        elif row["changed"]:
            false_negative += 1
            stats["missed change"] += 1

    ota_seconds = sum(row["ms"] for row in reference.values()) / 1000
    precision = true_positive / (true_positive + false_positive) if true_positive + false_positive else 1.0
    recall = true_positive / (true_positive + false_negative) if true_positive + false_negative else 1.0
    engine = f", JavaScript filters in {arguments.js_engine}" if corpus.name == "jsfilters" else ""
    print(f"Termshift vs OTA engine 9.1.0 on the {corpus.name} corpus (Open Terms Archive, ODC-BY 1.0){engine}")
    print(f"snapshots: {len(reference)}; compared (OTA succeeded, we succeeded): {compared}")
    print(f"byte-identical:   {identical}/{compared} = {100 * identical / compared:.2f} %")
    print(f"text-equivalent:  {equivalent}/{compared} = {100 * equivalent / compared:.2f} %")
    print(f"changes: OTA {true_positive + false_negative}, ours {true_positive + false_positive}; "
          f"precision {precision:.4f}, recall {recall:.4f}")
    print(f"we failed where OTA succeeded: {we_failed}; OTA failed where we succeeded: {ota_failed}; "
          f"both failed: {both_failed}")
    print(f"speed: {summary.snapshots_read} snapshots in {elapsed:.1f} s = {summary.snapshots_read / elapsed:.1f}/s "
          f"(OTA: {len(reference) / ota_seconds:.1f}/s from its ms; ratio {ota_seconds / elapsed:.1f}x)")
    print(f"CPU time: {cpu:.1f} s (Termshift and its Node runners) = {summary.snapshots_read / cpu:.1f} snapshots "
          f"per CPU-second, {ota_seconds / cpu:.1f}x OTA's time (wall-clock rates depend on the machine's load)")
    print(f"versions recorded: {summary.versions_recorded}; peak RSS: {peak_mib:.0f} MiB")
    print("\nper document (only those with a disagreement):")
    for key, stats in sorted(per_document.items()):
        disagreements = {name: count for name, count in stats.items() if name != "snapshots"}
        if disagreements:
            print(f"  {key[0]} / {key[1]} ({stats['snapshots']} snapshots): {disagreements}")
            for line in examples[key]:
                print(f"      {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
