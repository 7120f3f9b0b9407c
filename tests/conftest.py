"""Shared fixtures (the shared routing fixtures, local servers) and the one slow-test switch.

Helpers that tests import (CLI runners, servers) are in ``support.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from respy.demo.localserver import Handler, LocalServer

SLOW = "RESPY_SLOW_TESTS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run only with RESPY_SLOW_TESTS=1 (CI sets it: .ci/run)."""
    if os.environ.get(SLOW) == "1":
        return
    skip = pytest.mark.skip(reason=f"slow: set {SLOW}=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``../shared/fixtures`` read in place (never copied into the project)."""
    if not FIXTURES.is_dir():
        pytest.skip(f"shared routing fixtures not found at {FIXTURES} (they sit beside the checkout in CI)")
    return FIXTURES


@pytest.fixture
def serve() -> Iterator[object]:
    """``serve(handler)`` starts a LocalServer on 127.0.0.1 that is stopped after the test."""
    servers: list[LocalServer] = []

    def start(handler: Handler) -> LocalServer:
        server = LocalServer(handler)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
