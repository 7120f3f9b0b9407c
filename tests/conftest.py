"""Shared test set-up: where the shared routing fixtures lie."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``../shared/fixtures`` read in place (never copied into the project)."""
    if not FIXTURES.is_dir():
        pytest.skip(f"shared routing fixtures not found at {FIXTURES} (they sit beside the checkout in CI)")
    return FIXTURES
