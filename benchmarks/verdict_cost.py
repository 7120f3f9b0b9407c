"""What looking at every answer costs, against the engine's own time per request at full speed.

Usage:
    python benchmarks/verdict_cost.py [--answers 20000] [--rounds 3]

A sequential run hands every answer to the look (``respy.check.look.Look``: label -> share, send order, one
O(K) update of the anytime-valid test, one decision). Measured in the same run:

- the look, in µs per answer, over whole seeded runs (90/10 and 50/30/20 answered by the declared split, to
  the stopping look), and beside it the fixed-N verdict (``decide``), which could not be recomputed at every
  answer;
- the engine's time per request at full speed against a local nginx (as benchmarks/throughput.py starts it;
  without nginx, respy's demo server, which flatters the ratio: the server then shares the CPU), with and
  without a look attached (one too narrow to decide, so it looks all run long), alternating, median of
  ``--rounds``: the look's share of the engine's time.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import statistics
import time
from collections.abc import Iterator

import anyio

from respy.check.assign import Assignment
from respy.check.look import Look
from respy.check.sequential import SequentialTest
from respy.check.verdict import decide
from respy.rules.expectation import Expectation
from respy.send.engine import Load, Target, event_loop_options, run
from respy.tally import Kind, Tally

TWO = {"single": 0.9, "multiple": 0.1}
THREE = {"v1": 0.5, "v2": 0.3, "v3": 0.2}


def labels_for(probs: dict[str, float], n: int, seed: int) -> list[str]:
    """Seeded draws of the true split (the per-connection check must see independent answers)."""
    rng = random.Random(seed)
    return [f"weather-backend: {name}" for name in rng.choices(list(probs), weights=list(probs.values()), k=n)]


def undecided_look(probs: dict[str, float], tolerance: float | None = None) -> Look:
    expectation = Expectation.from_weights(probs)
    return Look(SequentialTest(expectation.probabilities, tolerance=tolerance), expectation)


def look_us(probs: dict[str, float], runs: int) -> tuple[float, int]:
    """µs per answer of the look over whole runs at the default tolerance, each answered by the declared split
    up to its stopping look (PASS, typically), and the answers those runs took in all."""
    elapsed, answers = 0.0, 0
    for seed in range(runs):
        labels = labels_for(probs, 20_000, seed)
        look = undecided_look(probs)
        started = time.perf_counter()
        for ticket, label in enumerate(labels):
            look.observe(label, Kind.OK, 200, ticket, ticket % 50)
            if look.stop is not None:
                break
        elapsed += time.perf_counter() - started
        answers += look.answers
    return elapsed / answers * 1e6, answers


def fixed_us(probs: dict[str, float], looks: int = 200) -> float:
    expectation = Expectation.from_weights(probs)
    started = time.perf_counter()
    for i in range(1, looks + 1):
        n = 10 * i
        counts = {name: round(n * p) for name, p in probs.items()}
        decide(Assignment(counts=counts, claimed={}, total=sum(counts.values())), expectation)
    return (time.perf_counter() - started) / looks * 1e6


@contextlib.contextmanager
def server() -> Iterator[tuple[str, str]]:
    if shutil.which("nginx"):
        from throughput import nginx  # benchmarks/throughput.py, run from this folder

        with nginx() as url:
            yield url, "nginx"
        return
    from respy.demo.localserver import LocalServer, fixed

    with LocalServer(fixed("weather-backend: single")) as local:
        yield local.url, "respy's demo server (no nginx: the ratio is flattered)"


def engine_us(url: str, requests: int, look: bool) -> float:
    tally = Tally(observer=undecided_look(TWO, tolerance=0.001).observe if look else None)

    async def go() -> float:
        started = time.perf_counter()
        await run(Target(url=url), Load(requests=requests, concurrency=50), tally=tally, check_every=1)
        return (time.perf_counter() - started) / requests * 1e6

    return anyio.run(go, backend_options=event_loop_options())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=20_000, help="requests per engine run")
    parser.add_argument("--runs", type=int, default=20, help="seeded sequential runs per split for the look")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args(argv)
    (two, two_n), (three, three_n) = look_us(TWO, options.runs), look_us(THREE, options.runs)
    fixed = fixed_us(THREE)
    print(f"the look at every answer, over {options.runs} seeded runs to their stopping look (default tolerance):")
    print(f"  90/10 ({two_n:,} answers)    {two:8.2f} µs per answer")
    print(f"  50/30/20 ({three_n:,} answers) {three:8.2f} µs per answer")
    print(f"  fixed-N verdict, 3 shares {fixed:6.0f} µs per evaluation "
          f"(the yardstick; {fixed / three:,.0f} x one look)")
    with server() as (url, name):
        plain, looked = [], []
        for _ in range(options.rounds):
            plain.append(engine_us(url, options.answers, look=False))
            looked.append(engine_us(url, options.answers, look=True))
    base, with_look = statistics.median(plain), statistics.median(looked)
    print(f"the engine at full speed against {name}, c = 50, {options.answers:,} requests, median of {options.rounds}:")
    print(f"  without the look        {base:8.2f} µs per request ({1e6 / base:,.0f} req/s)")
    print(f"  with a look per answer  {with_look:8.2f} µs per request")
    print(f"  one look (2 shares) / engine time per request = {two / base:.1%}; "
          f"measured slow-down with the look = {with_look / base - 1:+.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
