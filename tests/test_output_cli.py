"""What a person sees, through the real CLI against real servers: the verdict explains itself in every
format, numbers agree, per-version health in ``-o wide``, and the flags hey and oha users type by habit."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import re
from pathlib import Path

from support import run_cli, stochastic, weighted_handler

from respy.demo.localserver import Request, Response

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "examples" / "weather" / "weather-rules.yaml"
SINGLE, MULTIPLE = "weather-backend: single", "weather-backend: multiple"


def fixed(body: str, status: int = 200):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        return Response(status, body.encode())

    return handler


def after_verdict(out: str) -> str:
    """The verdict line and everything under it."""
    match = re.search(r"^(PASS|FAIL|INCONCLUSIVE|CONSISTENT)  .*", out, flags=re.MULTILINE | re.DOTALL)
    assert match, out
    return match.group(0)


# --- the verdict explains itself ------------------------------------------------------------------------------


def test_a_weight_0_leak_says_which_destination_leaked(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(weighted_handler({SINGLE: 90, MULTIPLE: 10}, seed=3))
    result = run_cli(server.url, "-n", "300", "-c", "4", "--expect", "single=100,multiple=0")
    assert result.code == 1, result.err
    block = after_verdict(result.out)
    assert re.search(r"  - \d+ answers came from 'multiple', which has weight 0", block), block


@stochastic
def test_a_replaced_tolerance_is_said(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(weighted_handler({SINGLE: 90, MULTIPLE: 10}, seed=3))
    result = run_cli(server.url, "-n", "300", "-c", "4", "--expect", "single=90,multiple=10", "--tolerance", "0.5")
    block = after_verdict(result.out)
    assert "A tolerance of ±50 pp is wider than half the smallest declared share" in " ".join(block.split())


def test_labels_that_name_no_destination_get_the_right_advice_and_no_wrong_diagnosis(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(fixed("hello from the pod"))
    result = run_cli(server.url, "-n", "100", "-c", "4", "--expect", "single=90,multiple=10")
    assert result.code == 1
    block = " ".join(after_verdict(result.out).split())
    assert "no answer named a destination" in block.lower()
    assert "--map" in block and "--by regex:" in block and "hello from the pod" in block
    assert "swapped" not in block and "route rules are probably not applied" not in block


@stochastic
def test_errors_that_make_a_pass_impossible_are_explained(serve) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(9)

    async def handler(request: Request) -> Response:
        if rng.random() < 0.2:
            return Response(503, b"upstream connect error")
        return Response(200, (SINGLE if rng.random() < 0.9 else MULTIPLE).encode())

    server = serve(handler)
    result = run_cli(server.url, "-n", "400", "-c", "4", "--expect", "single=90,multiple=10")
    block = " ".join(after_verdict(result.out).split())
    assert "were errors or could not be attributed: 503 upstream connect error" in block


def test_csv_with_a_check_ends_with_the_verdict_and_its_reasons(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(weighted_handler({SINGLE: 90, MULTIPLE: 10}, seed=3))
    result = run_cli(server.url, "-n", "300", "-c", "4", "-o", "csv", "--expect", "single=100,multiple=0")
    records = list(csv.DictReader(io.StringIO(result.out)))
    kinds = [r["kind"] for r in records]
    assert "verdict" in kinds and kinds.index("verdict") == len(kinds) - kinds[::-1].count("reason") - 1
    verdict = next(r for r in records if r["kind"] == "verdict")
    assert verdict["label"].startswith("FAIL  ") and int(verdict["count"]) == 300
    assert any("weight 0" in r["label"] for r in records if r["kind"] == "reason")


# --- numbers that agree ------------------------------------------------------------------------------------------


def test_refused_connections_print_no_rate_and_no_latency() -> None:
    result = run_cli("http://127.0.0.1:9/", "-n", "20", "-c", "2")
    assert result.code == 4
    assert "req/s" not in result.out and "latency" not in result.out
    assert "no HTTP answer came back" in result.out


@stochastic
def test_one_count_is_one_percentage_everywhere(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(weighted_handler({SINGLE: 90, MULTIPLE: 10}, seed=5))
    result = run_cli(server.url, "-n", "1000", "-c", "4", "--expect", "single=90,multiple=10")
    row = next(line for line in result.out.splitlines() if line.startswith(f"| {SINGLE}"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[3] == cells[5].split(" ")[0]  # % OF 1,000 REQUESTS and OBSERVED %: the same count, one number
    verdict = after_verdict(result.out).splitlines()[0]
    assert f"single {cells[3]}" in verdict and "1,000 requests" in verdict


# --- -o wide: per-version health -------------------------------------------------------------------------------


def canary():  # type: ignore[no-untyped-def]
    pick, fail = random.Random(21), random.Random(22)

    async def handler(request: Request) -> Response:
        if pick.random() < 0.5:
            await asyncio.sleep(0.02)
            return Response(200, b"version v1")
        await asyncio.sleep(0.06)
        if fail.random() < 0.05:
            return Response(503, b"v2 overloaded")
        return Response(200, b"version v2")

    return handler


@stochastic
def test_wide_shows_the_slow_failing_version_and_a_limit_fails_it(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(canary())
    flags = ["-n", "2000", "-c", "20", "--expect", "v1=50,v2=50", "--tolerance", "8pp", "-o", "wide"]
    result = run_cli(server.url, *flags)
    assert result.code == 0, result.out
    header = next(line for line in result.out.splitlines() if line.startswith("| RESPONSE"))
    assert "P50 MS" in header and "P99 MS" in header and "ERRORS %" in header
    v2_row = next(line for line in result.out.splitlines() if line.startswith("| version v2"))
    assert re.search(r"\b[3-9]\.\d%", v2_row), v2_row  # its error rate, ~5 %
    block = after_verdict(result.out)
    assert "note: v2 is slow" in block and "note: v2 fails more" in block
    assert "status codes: 200" in result.out and "503" in result.out and "p99.9" in result.out

    limited = run_cli(server.url, *flags, "--max-latency-ratio", "2")
    assert limited.code == 1
    verdict = after_verdict(limited.out)
    assert verdict.startswith("FAIL") and "v2's median latency" in verdict and "--max-latency-ratio 2" in verdict


# --- the flags hey and oha users type ---------------------------------------------------------------------------


def test_hey_rate_q_is_refused_naming_rate(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(fixed("ok"))
    result = run_cli("-q", "50", "-c", "10", server.url)
    assert result.code == 2 and "--rate" in result.err and "unrecognized" not in result.err
    assert result.err.count("\n") == 1
    assert run_cli("-q", server.url, "-n", "5").code == 0  # respy's own -q (quiet) still works


def test_hey_method_keepalive_and_host_flags(serve) -> None:  # type: ignore[no-untyped-def]
    seen: list[Request] = []

    async def handler(request: Request) -> Response:
        seen.append(request)
        return Response(200, b"ok")

    server = serve(handler)
    result = run_cli("-m", "POST", "--disable-keepalive", "--host", "weather-backend", "-n", "4", "-c", "1",
                     server.url)
    assert result.code == 0, result.err
    assert {r.method for r in seen} == {"POST"}
    assert {r.headers["host"] for r in seen} == {"weather-backend"}
    assert server.stats.connections == 4  # one connection per request


def test_all_different_bodies_get_a_hint_to_count_by_something_else(serve) -> None:  # type: ignore[no-untyped-def]
    counter = iter(range(10**9))

    async def handler(request: Request) -> Response:
        return Response(200, f"v1 at {next(counter)}".encode())

    server = serve(handler)
    result = run_cli(server.url, "-n", "60", "-c", "2")
    assert "(40 other responses)" in result.out
    assert "hint: 60 different answers" in result.out and "--by header:NAME" in result.out


def test_a_measurement_shows_its_counts_in_its_repr(serve) -> None:  # type: ignore[no-untyped-def]
    import respy

    server = serve(weighted_handler({SINGLE: 90, MULTIPLE: 10}, seed=5))
    measurement = respy.measure(server.url, requests=200, concurrency=4)
    text = repr(measurement)
    assert text.startswith(f"<Measurement {server.url} requests=200 errors=0 counts={{")
    assert f"'{SINGLE}': " in text and "object at 0x" not in text
