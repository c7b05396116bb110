"""Webhooks, part 4: a delivery process killed with SIGKILL mid-way, then restarted.

Every event must reach the receiver, and a receiver that de-duplicates on
`webhook-id` must process each exactly once. Raw repeats are only possible for
the requests in flight at the moment of the kill (at most `concurrency`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from termshift.alerts import outbox, store, subscriptions
from termshift.alerts.signing import generate_secret
from termshift.archive_repo import listing
from tests.support.alerts import BASE_URL, VersionsRepo, webhook_settings
from tests.support.receiver import Receiver

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRET = generate_secret()
CONCURRENCY = 4


def deliver_command(data: Path) -> list[str]:
    return [sys.executable, "-m", "termshift.cli", "webhooks", "deliver", "--drain", "--max-seconds", "60",
            "--data", str(data)]


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "TERMSHIFT_CONFIG": "",
        "TERMSHIFT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "127.0.0.1",
        "TERMSHIFT_WEBHOOKS_TIMEOUT": "2",  # claims of a killed worker expire after 2 × 2 + 1 s
        "TERMSHIFT_WEBHOOKS_CONCURRENCY": str(CONCURRENCY),
        "TERMSHIFT_WEBHOOKS_RETRY_BASE": "0.2",
        "TERMSHIFT_WEBHOOKS_RETRY_MAX": "0.5",
    }


def prepare(tmp_path: Path, receiver: Receiver) -> tuple[Path, set[str]]:
    """200 queued events: 40 versions × 5 subscriptions."""
    data = tmp_path / "data"
    repo = VersionsRepo(data)
    for number in range(40):
        repo.record(f"Service {number % 8}", "Terms of Service", f"# Terms\n\nVersion {number}.\n")
    db = store.connect(data)
    for path in ("/a", "/b", "/c", "/d", "/e"):
        subscriptions.add(db, receiver.url(path), secret=SECRET, allow_private_targets=["127.0.0.1"])
    db.close()
    versions = list(reversed(listing.list_versions(data, limit=100)))
    expected = set(outbox.enqueue_new_versions(data, versions, BASE_URL, webhook_settings()).created)
    assert len(expected) == 200
    return data, expected


def interrupt_then_restart(tmp_path: Path, receiver: Receiver, signal_number: int) -> tuple[Path, set[str], dict]:
    data, expected = prepare(tmp_path, receiver)
    # 200 events, 4 at a time, 0.1 s each: about 5 s in all, so that the signal, sent once 60 are
    # accepted, has seconds to arrive before the end even on a loaded machine (at 0.02 s a
    # request, a busy machine once let all 200 go before the signal landed).
    receiver.delay = 0.1
    first = subprocess.Popen(deliver_command(data), cwd=tmp_path, env=environment(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert receiver.wait_for(lambda r: len(r.accepted()) >= 60, timeout=30), first.communicate(timeout=5)
    os.kill(first.pid, signal_number)
    first.wait(timeout=10)
    db = store.connect(data)
    left = {name: count for name, count in outbox.counts(db).items() if count and name != "delivered"}
    db.close()
    figures = {"exit": first.returncode, "accepted_before_restart": len(receiver.accepted()), "left": left}
    assert figures["accepted_before_restart"] < 200 and left, "the process was stopped before it finished"

    second = subprocess.run(deliver_command(data), cwd=tmp_path, env=environment(),
                            capture_output=True, text=True, timeout=90)
    assert second.returncode == 0, second.stderr
    return data, expected, figures


def test_sigkill_in_the_middle_then_restart_delivers_every_event_once(tmp_path):
    with Receiver(secret=SECRET) as receiver:
        data, expected, figures = interrupt_then_restart(tmp_path, receiver, signal.SIGKILL)
    times = receiver.accepted_ids()
    assert set(times) == expected  # nothing lost
    repeats = sum(count - 1 for count in times.values())
    assert repeats <= CONCURRENCY  # only requests in flight at the kill can come twice, same webhook-id
    db = store.connect(data)
    assert outbox.counts(db)["delivered"] == 200
    db.close()
    assert receiver.stats()["invalid"] == 0
    print(f"\nSIGKILL after {figures['accepted_before_restart']} accepted; restarted; {len(times)} distinct "
          f"events, {repeats} repeated webhook-id(s) (de-duplicated by the receiver)")


def test_sigterm_finishes_what_is_in_flight_so_a_restart_repeats_nothing(tmp_path):
    with Receiver(secret=SECRET) as receiver:
        _data, expected, figures = interrupt_then_restart(tmp_path, receiver, signal.SIGTERM)
    assert figures["exit"] == 0
    assert "delivering" not in figures["left"]  # nothing left half-done
    assert receiver.accepted_ids() == {event_id: 1 for event_id in expected}
