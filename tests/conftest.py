"""Shared fixtures. Area-specific fixtures live in tests/support/ modules."""

from __future__ import annotations

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
