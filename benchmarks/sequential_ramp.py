"""How many requests a sequential check needs to reach its verdict at default flags (the concurrency ramp).

Usage:
    python benchmarks/sequential_ramp.py [--runs 9] [--delay-ms 2]

A local server (respy's demo server, 127.0.0.1) answers ``single`` or ``multiple`` 50/50 from a seeded RNG,
with a small delay (``--delay-ms``) as a real backend has. respy checks it against a declared 90/10
(``--expect single=90,multiple=10``, no ``-n``: it stops when the verdict is clear), ``--runs`` times, each
with its own seed, in three ways measured in the same run:

* default flags (``-c 100``), with the ramp: the workers start at a few and grow while the verdict is open;
* ``-c 10``: the yardstick the issue compares against;
* default flags with the ramp undone (all 100 workers from the start), to show what the ramp buys.

Prints the median number of requests to the FAIL and the verdicts. Then checks that a true 90/10 still
PASSes at default flags over the same seeds. Target (issue 15): median ≤ 40 requests at default flags.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import statistics
import sys
from collections.abc import Callable

from respy.cli.main import Streams, main
from respy.demo.localserver import LocalServer, Request, Response
from respy.send import load as load_module


def weighted(weights: dict[str, int], seed: int, delay_s: float) -> Callable[[Request], object]:
    rng = random.Random(seed)
    names, values = list(weights), list(weights.values())

    async def handler(request: Request) -> Response:
        if delay_s:
            await asyncio.sleep(delay_s)
        return Response(200, rng.choices(names, values)[0].encode())

    return handler


def one_check(weights: dict[str, int], seed: int, delay_s: float, *flags: str) -> tuple[str, int]:
    """(verdict, requests) of one sequential check against a fresh seeded server."""
    server = LocalServer(weighted(weights, seed, delay_s))  # type: ignore[arg-type]
    server.start()
    try:
        out, err = io.StringIO(), io.StringIO()
        main([server.url, "--expect", "single=90,multiple=10", "-o", "json", "-q", *flags], Streams(out, err))
    finally:
        server.stop()
    data = json.loads(out.getvalue())
    return data["verdict"]["outcome"], data["requests"]


def series(weights: dict[str, int], runs: int, delay_s: float, *flags: str) -> list[tuple[str, int]]:
    return [one_check(weights, 1000 + seed, delay_s, *flags) for seed in range(runs)]


def describe(name: str, results: list[tuple[str, int]]) -> None:
    counts = [n for _, n in results]
    runs = ", ".join(f"{n} {verdict}" for verdict, n in results)
    print(f"  {name:<30} median {statistics.median(counts):>5.0f} requests  ({runs})")


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--delay-ms", type=float, default=2.0)
    options = parser.parse_args(argv)
    delay = options.delay_ms / 1000
    fifty = {"single": 50, "multiple": 50}
    print(f"a 50/50 endpoint declared 90/10, {options.runs} seeded runs, server delay {options.delay_ms} ms:")
    describe("default flags (-c 100, ramp)", series(fifty, options.runs, delay))
    describe("-c 10", series(fifty, options.runs, delay, "-c", "10"))
    start = load_module.RAMP_START
    load_module.RAMP_START = 10**9  # the ramp undone: all C workers from the first request
    try:
        describe("default flags, no ramp", series(fifty, options.runs, delay))
    finally:
        load_module.RAMP_START = start
    print("a true 90/10 at default flags:")
    ninety = {"single": 90, "multiple": 10}
    describe("default flags (-c 100, ramp)", series(ninety, options.runs, delay))
    load_module.RAMP_START = 10**9
    try:
        describe("default flags, no ramp", series(ninety, options.runs, delay))
    finally:
        load_module.RAMP_START = start
    return 0


if __name__ == "__main__":
    sys.exit(main_())
