"""Per-destination health against a real server: one version answers 3× slower and 5 % of its answers are
503s. The latencies are real sleeps on 127.0.0.1 (20 ms against 60 ms), compared as medians with a
2× threshold, so machine load shifts both sides alike; which version answers and which answer fails are
drawn from seeded generators."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

import respy
from respy.check.assign import assign
from respy.check.health import assess
from respy.demo.localserver import LocalServer, Request, Response

FAST_S, SLOW_S = 0.020, 0.060


def canary_handler(seed: int = 11):  # type: ignore[no-untyped-def]
    pick, fail = random.Random(seed), random.Random(seed + 1)

    async def handler(request: Request) -> Response:
        if pick.random() < 0.5:
            await asyncio.sleep(FAST_S)
            return Response(200, b"version v1")
        await asyncio.sleep(SLOW_S)
        if fail.random() < 0.05:
            return Response(503, b"v2 overloaded")
        return Response(200, b"version v2")

    return handler


@pytest.fixture(scope="module")
def canary() -> Iterator[LocalServer]:
    with LocalServer(canary_handler()) as server:
        yield server


@pytest.fixture(scope="module")
def measured(canary: LocalServer) -> respy.Measurement:
    return respy.measure(canary.url, requests=1000, concurrency=20)


def test_the_slow_failing_version_is_named(measured: respy.Measurement) -> None:
    expectation = respy.Expectation.from_weights({"v1": 50, "v2": 50})
    assignment = assign(measured.rows, expectation)
    health = assess(measured.tally, assignment, expectation, alpha=0.01)
    v1, v2 = health.of("v1"), health.of("v2")
    assert v1 is not None and v2 is not None
    assert v2.errors > 0 and v1.errors == 0  # "503 v2 overloaded" names v2: attributed to it
    assert v2.answers == sum(row.count for row in measured.rows if "v2" in row.label)
    assert v2.p50_s is not None and v1.p50_s is not None and v2.p50_s > 2 * v1.p50_s
    kinds = {(note.destination, note.kind) for note in health.notes}
    assert kinds == {("v2", "latency"), ("v2", "errors")}
    assert health.breaches == []  # no limits given: notes, not breaches


def test_limits_turn_notes_into_breaches(measured: respy.Measurement) -> None:
    expectation = respy.Expectation.from_weights({"v1": 50, "v2": 50})
    assignment = assign(measured.rows, expectation)
    health = assess(measured.tally, assignment, expectation, alpha=0.01, max_latency_ratio=2,
                    max_error_rate=0.01)
    assert len(health.breaches) == 2 and all(b.startswith("v2") for b in health.breaches)
    generous = assess(measured.tally, assignment, expectation, alpha=0.01, max_latency_ratio=10,
                      max_error_rate=0.5)
    assert generous.breaches == []


def test_equal_versions_get_no_note(serve) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(5)

    async def handler(request: Request) -> Response:
        await asyncio.sleep(FAST_S)
        return Response(200, b"version v1" if rng.random() < 0.5 else b"version v2")

    server = serve(handler)
    measurement = respy.measure(server.url, requests=400, concurrency=20)
    expectation = respy.Expectation.from_weights({"v1": 50, "v2": 50})
    health = assess(measurement.tally, assign(measurement.rows, expectation), expectation, alpha=0.01)
    assert health.notes == ()
