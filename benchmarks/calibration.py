"""Calibration of the sequential verdict at default flags: how often it is wrong, how often it gives up, how
fast it decides. Seeded; vectorised with numpy; a few minutes on two cores.

Usage:
    python benchmarks/calibration.py [--runs 2000] [--seed 17] [--splits 90/10 ...]

For each declared split (90/10, 50/50, 99/1, 70/20/10, 34/33/33) at respy's defaults (alpha = 0.01, the
default tolerance, the default budget), answers are drawn one at a time and respy's own decision function
(``respy.check.sequential.decisions``, the vectorised twin of the look the engine runs after every answer:
tests/test_sequential_test.py checks they agree answer by answer) decides at every answer, as the engine
does. Three truths per split:

- the declared split: a FAIL is wrong; INCONCLUSIVE (the budget ran out) is the flake rate;
- a share just outside the tolerance (the band edge: delta moved from the largest to the smallest share;
  for 34/33/33 too): a PASS is wrong;
- (90/10 only) a gross misroute, true 50/50: how many answers to FAIL.

The stopping look's decision is the verdict, whatever arrives afterwards; requests sent = answers at the
stopping look + the requests then in flight (0, 9 or 99: -c 1, -c 10, the default -c 100). The column
"re-decided" is what respy did before this change: decide again on the counts including the in-flight
answers; it shows how many decided verdicts that lost. The independence check over batches runs once, at
the stopping look, on a sample of the runs ("batch check fired": it adds to INCONCLUSIVE at alpha).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from respy.check.sequential import FAIL, PASS, budget, decisions
from respy.check.stats import default_tolerance, dispersion_check

ALPHA = 0.01
SPLITS: dict[str, list[float]] = {
    "90/10": [0.9, 0.1],
    "50/50": [0.5, 0.5],
    "99/1": [0.99, 0.01],
    "70/20/10": [0.7, 0.2, 0.1],
    "34/33/33": [0.34, 0.33, 0.33],
}
IN_FLIGHT = (0, 9, 99)
CHUNK = 128
BATCH = 10


def edge(probs: list[float], delta: float) -> list[float]:
    """delta moved from the largest share to the smallest: the smallest share sits on its band's upper edge."""
    shifted = list(probs)
    big, small = int(np.argmax(probs)), int(np.argmin(probs))
    if big == small:
        small = len(probs) - 1
    shifted[big] -= delta
    shifted[small] += delta
    return shifted


def run_case(probs: list[float], truth: list[float], runs: int, limit: int, rng: np.random.Generator) -> dict:
    """Per run: the outcome at the stopping look (0: budget spent), the answers it decided on, the category
    sequence up to the stop (for the batch check) and the counts after 9 and 99 more answers."""
    k, delta = len(probs), default_tolerance(probs)
    cumulative = np.cumsum(truth)
    outcome = np.zeros(runs, dtype=np.int64)
    stopped = np.full(runs, limit, dtype=np.int64)
    counts = np.zeros((runs, k), dtype=np.int64)
    active = np.arange(runs)
    n = 0
    while active.size and n < limit:
        step = min(CHUNK, limit - n)
        draws = np.searchsorted(cumulative, rng.random((active.size, step)), side="right").clip(max=k - 1)
        path = counts[active][:, None, :] + np.cumsum(np.eye(k, dtype=np.int64)[draws], axis=1)
        grid = decisions(path, probs, delta, ALPHA)
        decided = grid != 0
        hit = decided.any(axis=1)
        first = decided.argmax(axis=1)
        rows = active[hit]
        outcome[rows] = grid[hit, first[hit]]
        stopped[rows] = n + first[hit] + 1
        counts[rows] = path[hit, first[hit]]
        counts[active[~hit]] = path[~hit, -1]
        active = active[~hit]
        n += step
    later = {m: counts + rng.multinomial(m, truth, size=runs) for m in IN_FLIGHT if m}
    return {"outcome": outcome, "stopped": stopped, "counts": counts, "later": later, "delta": delta}


def redecided_lost(case: dict, probs: list[float], m: int) -> float:
    """Share of decided runs whose decision the counts with m in-flight answers would no longer give."""
    decided = case["outcome"] != 0
    if not m or not decided.any():
        return 0.0
    again = decisions(case["later"][m][decided], probs, case["delta"], ALPHA)
    return float(np.mean(again != case["outcome"][decided]))


def batch_check_rate(probs: list[float], case: dict, sample: int, rng: np.random.Generator) -> float:
    """How often the batch check (run once at the stopping look, respy's dispersion_check) fires, on a sample:
    the counts of each run are spread over batches of 10 in send order as an exchangeable sequence."""
    fired = 0
    picks = rng.choice(len(case["outcome"]), size=min(sample, len(case["outcome"])), replace=False)
    for i in picks:
        counts = case["counts"][i]
        sequence = rng.permutation(np.repeat(np.arange(len(probs)), counts))
        batches = _batch_rows(sequence, len(probs))
        result = dispersion_check(batches)
        fired += int(result is not None and result.fired)
    return fired / len(picks)


def _batch_rows(sequence: np.ndarray, k: int) -> np.ndarray:
    size = BATCH
    while len(sequence) // size > 40:  # tally.Batches keeps at most 40 batches, doubling their size
        size *= 2
    whole = len(sequence) // size
    table = np.zeros((whole, k), dtype=np.int64)
    for b in range(whole):
        table[b] = np.bincount(sequence[b * size : (b + 1) * size], minlength=k)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000, help="runs per case (default 2000)")
    parser.add_argument("--batch-sample", type=int, default=400, help="runs per case given the batch check")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--splits", nargs="*", choices=list(SPLITS), default=list(SPLITS), help="default: all")
    options = parser.parse_args(argv)
    rng = np.random.default_rng(options.seed)
    started = time.perf_counter()
    print(f"sequential verdict at default flags, alpha = {ALPHA:g}, {options.runs:,} seeded runs per case; "
          "a decision at every answer")
    header = (f"{'split':>9} {'δ':>6} {'budget':>7} | {'wrong FAIL':>10} {'INCONCL.':>8} {'batch':>6} "
              f"{'median answers':>14} | {'wrong PASS':>10} | {'requests sent (median) at +0/+9/+99':>36} | "
              f"{'re-decided lost +0/+9/+99':>25}")
    print(header)
    print("-" * len(header))
    for name in options.splits:
        probs = SPLITS[name]
        limit = budget(probs, ALPHA)
        declared = run_case(probs, probs, options.runs, limit, rng)
        at_edge = run_case(probs, edge(probs, default_tolerance(probs)), options.runs, limit, rng)
        decided = declared["outcome"] != 0
        median = int(np.median(declared["stopped"][decided])) if decided.any() else 0
        sent = "/".join(f"{int(np.median(declared['stopped'] + m)):,}" for m in IN_FLIGHT)
        lost = "/".join(f"{100 * redecided_lost(declared, probs, m):.1f}%" for m in IN_FLIGHT)
        batch = batch_check_rate(probs, declared, options.batch_sample, rng)
        print(f"{name:>9} {100 * declared['delta']:>4.2g}pp {limit:>7,} | "
              f"{100 * np.mean(declared['outcome'] == FAIL):>9.2f}% {100 * np.mean(~decided):>7.2f}% "
              f"{100 * batch:>5.1f}% {median:>14,} | {100 * np.mean(at_edge['outcome'] == PASS):>9.2f}% | "
              f"{sent:>36} | {lost:>25}")
    gross = run_case([0.9, 0.1], [0.5, 0.5], options.runs, budget([0.9, 0.1], ALPHA), rng)
    fail = gross["outcome"] == FAIL
    print(f"\n90/10 declared, true 50/50 (a gross misroute): FAIL in {100 * fail.mean():.1f}% of runs, "
          f"median {int(np.median(gross['stopped'][fail]))} answers "
          f"(90th percentile {int(np.percentile(gross['stopped'][fail], 90))}); requests sent: + the in-flight ones")
    print("decisions lost to in-flight answers: 0 by construction (the stopping look's decision is the verdict; "
          "tests/test_look.py checks it end to end)")
    print(f"standard error of a rate near 1 %: {100 * np.sqrt(0.01 * 0.99 / options.runs):.2f} pp; "
          f"took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
