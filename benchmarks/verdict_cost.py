"""What a look at the evidence costs: the sequential test's update against the fixed-N verdict.

Usage:
    python benchmarks/verdict_cost.py [--looks 2000]

The sequential check runs every 10 requests at first (then every 1 %), inside the request loop, so its
cost per look matters; the yardstick is the fixed-N chi-square verdict (``decide``) on the same counts,
measured in the same run. Prints microseconds per look and the ratio sequential/fixed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from respy.check.assign import Assignment
from respy.check.sequential import SequentialTest
from respy.check.verdict import decide
from respy.rules.expectation import Expectation

PROBS = {"v1": 0.5, "v2": 0.3, "v3": 0.2}


def counts_at(n: int) -> list[int]:
    first, second = n // 2, n * 3 // 10
    return [first, second, n - first - second]


def per_look_us(look: Callable[[int], object], looks: int, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean time of one look, looking after 10, 20, ... requests."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(1, looks + 1):
            look(10 * i)
        timings.append((time.perf_counter() - started) / looks * 1e6)
    return statistics.median(timings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--looks", type=int, default=2000)
    options = parser.parse_args(argv)
    expectation = Expectation.from_weights(PROBS)
    test = SequentialTest(PROBS)

    def sequential(n: int) -> object:
        return test.update(counts_at(n))

    def fixed(n: int) -> object:
        counts = dict(zip(PROBS, counts_at(n), strict=True))
        assignment = Assignment(counts=counts, claimed={}, undeclared={}, unknown=0, unknown_labels={}, total=n)
        return decide(assignment, expectation)

    seq_us = per_look_us(sequential, options.looks)
    fixed_us = per_look_us(fixed, max(options.looks // 10, 20))
    print(f"one look at the evidence, 3 destinations, median of 5 ({options.looks:,} looks):")
    print(f"  sequential update      {seq_us:8.1f} µs")
    print(f"  fixed-N verdict        {fixed_us:8.1f} µs  (the yardstick)")
    print(f"  ratio sequential/fixed = {seq_us / fixed_us:.2f}")
    print(f"  at one look per 10 requests: {seq_us / 10:.1f} µs per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
