"""Compare two versions of the diff engine (`termshift/textdiff.py`) on a real archive.

    git show HEAD~1:termshift/textdiff.py > /tmp/before.py
    python bench/textdiff_ab.py /tmp/before.py termshift/textdiff.py \\
        --versions ../shared/corpus/pga-versions/versions.bundle

Every consecutive pair of versions of the archive is compared by both files, as the index
does (`change_counts` within the budget), one after the other and alternating which goes
first. This machine's speed drifts by tens of percent within minutes, so two runs one after
the other cannot tell a change of a few percent from the drift; interleaved, identical files
give a CPU ratio of 1.00 ± 0.01. Printed: each file's CPU in all, the ratio, the pairs
estimated (over the budget), p99 and worst pair, and how many pairs' figures differ.
Even identical files differ on a few pairs: the budget is CPU time, so a pair near it can
end estimated in one run and exact in the other.

`textdiff` imports nothing of Termshift, so any version of the file can be loaded on its own.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from viewer import consecutive_pairs, percentile, prepare  # noqa: E402


def load(path: Path, name: str) -> ModuleType:
    """A textdiff.py file as a module of its own (two versions side by side)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if not path.is_file() or spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def compare(engines: list[ModuleType], pairs: list[tuple[str, str]], texts: dict[str, str], budget: str) -> None:
    costs: list[list[float]] = [[], []]
    estimated = [0, 0]
    differing = 0
    started = time.monotonic()
    for number, (old_blob, new_blob) in enumerate(pairs, 1):
        old, new = texts[old_blob], texts[new_blob]
        figures = [None, None]
        for side in ((0, 1) if number % 2 else (1, 0)):
            engine = engines[side]
            limit = engine.INDEX_BUDGET if budget == "index" else engine.PAGE_BUDGET
            clock = time.thread_time()
            counts = engine.change_counts(old, new, limit)
            costs[side].append(1000 * (time.thread_time() - clock))
            estimated[side] += counts.approximate
            figures[side] = (counts.added, counts.removed, counts.approximate)
        differing += figures[0] != figures[1]
        if time.monotonic() - started > 10:
            print(f"  … {number} of {len(pairs)} pairs", flush=True)
            started = time.monotonic()
    print(f"\n{len(pairs)} consecutive pairs, {budget} budget:")
    for side, label in enumerate(("A", "B")):
        print(f"  {label}: CPU {sum(costs[side]) / 1000:6.2f} s, estimated {estimated[side]:4d}, "
              f"p99 {percentile(costs[side], 0.99):5.1f} ms, worst {max(costs[side]):6.1f} ms")
    print(f"  B/A CPU: {sum(costs[1]) / sum(costs[0]):.3f}; figures differ for {differing} pairs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="one textdiff.py (A)")
    parser.add_argument("b", type=Path, help="the other (B)")
    parser.add_argument("--versions", type=Path, required=True,
                        help="a versions repository or bundle (cloned first)")
    parser.add_argument("--budget", choices=("index", "page"), default="index",
                        help="each file's INDEX_BUDGET (default) or PAGE_BUDGET")
    parser.add_argument("--pairs", type=int, default=None, help="a random sample of this many pairs (default: all)")
    args = parser.parse_args(argv)
    engines = [load(args.a, "textdiff_a"), load(args.b, "textdiff_b")]
    with tempfile.TemporaryDirectory(prefix="termshift-ab-") as workdir:
        pairs, texts = consecutive_pairs(prepare(args, Path(workdir)))
    if args.pairs and args.pairs < len(pairs):
        pairs = random.Random(2).sample(pairs, args.pairs)
    compare(engines, pairs, texts, args.budget)


if __name__ == "__main__":
    main()
