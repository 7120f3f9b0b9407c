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


import asyncio  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from respy.cli.common import Streams  # noqa: E402
from respy.cli.main import main  # noqa: E402
from respy.demo.localserver import Handler, LocalServer, Request, Response  # noqa: E402


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.out)


def run_cli(*argv: str) -> CliResult:
    """Run ``respy`` in-process with captured stdout/stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Streams(out, err))
    return CliResult(code, out.getvalue(), err.getvalue())


def weighted_handler(bodies: dict[str, int], seed: int, delay: float = 0.0) -> Handler:
    """Answers one of ``bodies`` per request, drawn with the given weights from a seeded RNG."""
    rng = random.Random(seed)
    names, weights = list(bodies), list(bodies.values())

    async def handler(request: Request) -> Response:
        if delay:
            await asyncio.sleep(delay)
        return Response(200, rng.choices(names, weights=weights)[0].encode())

    return handler


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
