"""What looking at every answer costs, against the engine's own time per request at full speed.

Usage:
    python benchmarks/verdict_cost.py [--answers 20000] [--rounds 3]

A sequential run hands every answer to the look (``respy.check.look.Look``: label -> share, send order, a few
counts; the anytime-valid test decides as if it looked at every answer, but looks only where its last look
could not rule a decision out). Measured in the same run, as CPU time of this process (``time.process_time``:
the machine may be shared):

- the look, in µs per answer, over whole seeded runs (90/10 and 50/30/20 answered by the declared split, to
  the stopping look: the looks near the decision are most of it), and beside it the fixed-N verdict
  (``decide``), which could not be recomputed at every answer;
- the look in a long run at full speed (``--answers`` answers of a 90/10 split at a tolerance too narrow to
  decide, 50 connections): what each answer costs once the looks are far apart;
- the engine's CPU per request at full speed against a local nginx (as benchmarks/throughput.py starts it;
  without nginx, respy's demo server, which flatters the ratio: the server then shares the CPU), with and
  without such a look attached, alternating, median of ``--rounds``: the look's share of the engine's time.
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
        started = time.process_time()
        for ticket, label in enumerate(labels):
            look.observe(label, Kind.OK, 200, ticket, ticket % 50)
            if look.stop is not None:
                break
        elapsed += time.process_time() - started
        answers += look.answers
    return elapsed / answers * 1e6, answers


def steady_us(answers: int, rounds: int) -> float:
    """µs per answer of a look that never decides (tolerance 0.001) over a long 90/10 run: the median of
    ``rounds``."""
    labels = labels_for(TWO, answers, 0)
    costs = []
    for _ in range(rounds):
        look = undecided_look(TWO, tolerance=0.001)
        started = time.process_time()
        for ticket, label in enumerate(labels):
            look.observe(label, Kind.OK, 200, ticket, ticket % 50)
        costs.append((time.process_time() - started) / answers * 1e6)
        assert look.stop is None
    return statistics.median(costs)


def fixed_us(probs: dict[str, float], looks: int = 200) -> float:
    expectation = Expectation.from_weights(probs)
    started = time.process_time()
    for i in range(1, looks + 1):
        n = 10 * i
        counts = {name: round(n * p) for name, p in probs.items()}
        decide(Assignment(counts=counts, claimed={}, total=sum(counts.values())), expectation)
    return (time.process_time() - started) / looks * 1e6


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
        started = time.process_time()
        await run(Target(url=url), Load(requests=requests, concurrency=50), tally=tally, check_every=1)
        return (time.process_time() - started) / requests * 1e6

    return anyio.run(go, backend_options=event_loop_options())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=20_000, help="requests per engine run")
    parser.add_argument("--runs", type=int, default=20, help="seeded sequential runs per split for the look")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args(argv)
    (two, two_n), (three, three_n) = look_us(TWO, options.runs), look_us(THREE, options.runs)
    fixed = fixed_us(THREE)
    steady = steady_us(options.answers, options.rounds)
    print(f"the look, CPU µs per answer, over {options.runs} seeded runs to their stopping look (default tolerance):")
    print(f"  90/10 ({two_n:,} answers)    {two:8.2f} µs per answer")
    print(f"  50/30/20 ({three_n:,} answers) {three:8.2f} µs per answer")
    print(f"  a long run at full speed ({options.answers:,} answers, 90/10, no decision) {steady:6.2f} µs per answer")
    print(f"  fixed-N verdict, 3 shares {fixed:6.0f} µs per evaluation (the yardstick)")
    with server() as (url, name):
        plain, looked = [], []
        for _ in range(options.rounds):
            plain.append(engine_us(url, options.answers, look=False))
            looked.append(engine_us(url, options.answers, look=True))
    base, with_look = statistics.median(plain), statistics.median(looked)
    print(f"the engine at full speed against {name}, c = 50, {options.answers:,} requests, median of {options.rounds}, "
          "CPU of respy's process:")
    print(f"  without the look        {base:8.2f} µs per request")
    print(f"  with the look           {with_look:8.2f} µs per request (difference {with_look / base - 1:+.1%}, noisy)")
    print("the look per answer / the engine per request:")
    print(f"  at full speed {steady / base:.2%}; over whole runs to a decision {two / base:.2%} (90/10), "
          f"{three / base:.2%} (50/30/20)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
