"""The tally: bounded counts, the latency histogram, and batches in sending order."""

from __future__ import annotations

import asyncio
import random

from support import run_cli, stochastic

from respy.demo.localserver import Request, Response
from respy.tally import Batches, Kind, LatencyHistogram, Tally


def test_batches_follow_the_sending_order_not_the_answering_order() -> None:
    batches = Batches(batch_size=2, target=10)
    # tickets 0..5 answered out of order: the fast "b" answers of later tickets come back first
    for ticket, label in [(1, "b"), (3, "b"), (0, "a"), (5, "b"), (2, "a"), (4, "a")]:
        batches.add(label, ticket)
    assert batches.complete() == [{"b": 1, "a": 1}] * 3


def test_batches_leave_out_a_batch_still_missing_answers() -> None:
    batches = Batches(batch_size=3, target=10)
    for ticket in (0, 1, 2, 3, 5):
        batches.add("x", ticket)
    assert batches.complete() == [{"x": 3}]


def test_batches_stay_bounded_by_merging_neighbours() -> None:
    batches = Batches(batch_size=10, target=20)
    for ticket in range(100_000):
        batches.add("a" if ticket % 3 else "b", ticket)
    complete = batches.complete()
    assert 20 <= len(complete) <= 40
    counted = sum(sum(b.values()) for b in complete)
    assert counted == 100_000 - 100_000 % batches.batch_size  # all but the unfinished last batch


def test_latency_quantiles_are_within_one_percent() -> None:
    histogram = LatencyHistogram()
    values = [0.001 * (i + 1) for i in range(1000)]  # 1 ms .. 1 s
    for value in values:
        histogram.record(value)
    for q in (0.5, 0.9, 0.99):
        exact = values[int(q * 1000) - 1]
        assert abs(histogram.quantile(q) - exact) / exact < 0.011  # type: ignore[operator]


def test_latency_histogram_round_trips_through_its_state() -> None:
    histogram = LatencyHistogram()
    for value in (0.002, 0.004, 0.3):
        histogram.record(value)
    copy = LatencyHistogram.from_state(histogram.to_state())
    assert copy.quantile(0.5) == histogram.quantile(0.5) and copy.count == 3 and copy.max_s == 0.3


def test_merge_adds_counts_and_keeps_totals() -> None:
    first, second = Tally(), Tally()
    for _ in range(3):
        first.add("a", Kind.OK, 200, 0.01)
    second.add("a", Kind.OK, 200, 0.02)
    second.add("error: timeout", Kind.TRANSPORT, None, 0.5)
    first.merge(second)
    assert first.counts == {"a": 4, "error: timeout": 1}
    assert first.total == 5 and first.latency.count == 5 and first.answered == 4


@stochastic
def test_versions_with_different_latencies_do_not_look_dependent(serve) -> None:
    """A slow and a fast version, chosen independently per request: the independence check must not fire.

    Under independence the check fires with probability 0.01 (its alpha); the server's choices are seeded.
    """
    rng = random.Random(5)

    async def handler(request: Request) -> Response:
        version = rng.choice(["slow", "fast"])
        if version == "slow":
            await asyncio.sleep(0.02)
        return Response(200, version.encode())

    server = serve(handler)
    data = run_cli(server.url, "-n", "2000", "-c", "50", "--expect", "slow=50,fast=50", "-o", "json").json()
    assert data["verdict"]["extra"]["dispersion_p"] >= 0.01
    assert data["verdict"]["outcome"] == "PASS"
