"""Shared fixtures. Area-specific fixtures live in tests/support/ modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
CORPUS = SHARED / "corpus" / "demo"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """../shared/corpus/demo, or skip: a user's fresh clone does not have it."""
    if not (CORPUS / "snapshots.bundle").is_file():
        pytest.skip("../shared/corpus/demo is not available")
    return CORPUS


@pytest.fixture(scope="session")
def repo_declarations() -> Path:
    """The project's own collection of declarations."""
    return REPO_ROOT / "declarations"


# Every test serves its pages from loopback (127.0.0.x stands for many hosts), which the
# fetchers refuse by default (fetcher.allow_private_targets). Tests opt in here, once for
# all: in-process settings built from DEFAULTS (load_settings or by hand) get the allow-list
# as their default, and child processes (`termshift track` started by a test) get it from
# the environment. A test of the refusal sets its own, narrower list.
TEST_FETCH_ALLOW = ["127.0.0.0/8"]


@pytest.fixture(autouse=True, scope="session")
def _fetchers_may_reach_loopback():
    from termshift.config import DEFAULTS

    original = DEFAULTS["fetcher"]["allow_private_targets"]
    DEFAULTS["fetcher"]["allow_private_targets"] = (list(TEST_FETCH_ALLOW), original[1])
    variable = "TERMSHIFT_FETCHER_ALLOW_PRIVATE_TARGETS"
    previous = os.environ.get(variable)
    os.environ[variable] = ",".join(TEST_FETCH_ALLOW)
    yield
    DEFAULTS["fetcher"]["allow_private_targets"] = original
    if previous is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = previous
