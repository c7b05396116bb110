"""Benchmark: 10,000 queued webhook events delivered to a local receiver.

What it does:
1. writes a versions repository of 2,000 versions (50 documents × 40) with one
   `git fast-import` process;
2. starts the test receiver (tests/support/receiver.py) in another process, so
   it does not compete with the sender for the GIL; it verifies every signature;
3. subscribes 5 webhooks to everything and queues the 2,000 versions → 10,000
   events (`enqueue_new_versions`: word diffs, payloads, one transaction);
4. delivers them with `drain` (webhooks.concurrency workers);
5. asks the receiver what it got: none lost, none duplicated, all signatures valid.

Usage:
    python bench/deliveries.py [--versions 2000] [--subscriptions 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from termshift.alerts import delivery, outbox, store, subscriptions  # noqa: E402
from termshift.alerts.signing import generate_secret  # noqa: E402
from termshift.archive_repo import listing  # noqa: E402
from termshift.config import WebhooksSettings  # noqa: E402

WORDS = ["account", "agreement", "data", "privacy", "service", "user", "consent", "content", "law", "notice", "party", "policy", "rights", "share", "security", "subscription", "terminate", "transfer", "warranty", "personal", "process", "provider"]


def paragraph(seed: int) -> str:
    return " ".join(WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(12 + seed % 9)).capitalize() + "."


def write_versions(repo: Path, documents: int, per_document: int) -> None:
    """One commit per version, OTA's layout and subjects, dates one hour apart."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    start = 1_704_067_200  # 2024-01-01
    chunks: list[bytes] = []
    texts = {n: [paragraph(n + i) for i in range(20)] for n in range(documents)}
    mark = 0
    for round_number in range(per_document):
        for n in range(documents):
            lines = texts[n]
            lines[(round_number * 3 + n) % len(lines)] = f"{paragraph(round_number * 31 + n)} Revision {round_number}."
            content = ("# Terms\n\n" + "\n\n".join(lines) + "\n").encode()
            subject = ("First record of" if round_number == 0 else "Record new changes of") + f" Service {n} Terms"
            message = f"{subject}\n\nX-engine-version: bench\n".encode()
            when = start + mark * 60
            mark += 1
            chunks.append(b"commit refs/heads/main\n")
            chunks.append(f"committer Bench <bench@termshift.invalid> {when} +0000\n".encode())
            chunks.append(f"data {len(message)}\n".encode() + message)
            chunks.append(f"M 100644 inline Service {n}/Terms of Service.md\n".encode())
            chunks.append(f"data {len(content)}\n".encode() + content + b"\n")
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=b"".join(chunks), check=True)
    subprocess.run(["git", "-C", str(repo), "reset", "-q", "--hard"], check=True)


def start_receiver(secret: str) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.receiver", "--secret", secret], cwd=ROOT,
        stdout=subprocess.PIPE, text=True,
    )
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        process.kill()
        raise SystemExit(f"the receiver did not start: {line!r}")
    return process, int(line.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=2000)
    parser.add_argument("--subscriptions", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    arguments = parser.parse_args()
    documents = 50
    per_document = max(1, arguments.versions // documents)

    with tempfile.TemporaryDirectory(prefix="termshift-bench-") as folder:
        data = Path(folder)
        started = time.perf_counter()
        write_versions(data / "versions", documents, per_document)
        print(f"archive: {documents * per_document} versions written in {time.perf_counter() - started:.1f} s")

        secret = generate_secret()
        receiver, port = start_receiver(secret)
        try:
            settings = WebhooksSettings(allow_private_targets=("127.0.0.1",), concurrency=arguments.concurrency,
                                        timeout=10.0, retry_base=0.5, retry_max=2.0)
            db = store.connect(data)
            for number in range(arguments.subscriptions):
                subscriptions.add(db, f"http://127.0.0.1:{port}/hook/{number}", secret=secret,
                                  allow_private_targets=["127.0.0.1"])
            versions = list(reversed(listing.list_versions(data, limit=10**9)))

            started = time.perf_counter()
            queued = outbox.enqueue_new_versions(data, versions, "https://terms.example.org", settings)
            enqueue_seconds = time.perf_counter() - started
            total = len(queued.created)
            print(f"enqueue: {total} events ({len(versions)} versions × {arguments.subscriptions} subscriptions) "
                  f"in {enqueue_seconds:.1f} s = {total / enqueue_seconds:,.0f} events/s")

            report = delivery.drain(data, settings, max_seconds=600)
            print(f"deliver: {report.delivered} delivered, {report.retried} retried, {report.failed} failed "
                  f"in {report.seconds:.1f} s = {report.delivered / report.seconds:,.0f} events/s "
                  f"(concurrency {arguments.concurrency})")

            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats") as answer:  # noqa: S310 - local
                stats = json.load(answer)
            counts = outbox.counts(db)
            db.close()
        finally:
            receiver.terminate()
            receiver.wait()

    lost = total - stats["unique"]
    print(f"receiver: {stats['received']} requests, {stats['unique']} distinct events, "
          f"{stats['duplicates']} duplicates, {stats['invalid']} bad signatures; lost: {lost}")
    print(f"outbox: {json.dumps(counts)}")
    if lost or stats["duplicates"] or stats["invalid"] or counts["delivered"] != total:
        raise SystemExit("FAILED: events lost, duplicated or badly signed")


if __name__ == "__main__":
    main()
