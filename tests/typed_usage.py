"""A typed user of the public API: checked by ``mypy --strict`` in tests/test_typing.py, never collected."""

from __future__ import annotations

import respy
from respy.pytest_plugin import RespyFixture


def sync_usage(url: str) -> bool:
    measurement: respy.Measurement = respy.measure(url, requests=2000, concurrency=20, headers={"Host": "svc"})
    counts: dict[str, int] = measurement.counts
    total: int = measurement.requests + measurement.errors + sum(counts.values())
    p50: float | None = measurement.latency_ms()["p50"]
    text: str = measurement.to_json()
    expectation = respy.Expectation.from_weights({"single": 90, "multiple": 10})
    verdict: respy.Verdict = measurement.check(expectation, alpha=0.01, tolerance=None)
    statistic: float | None = verdict.statistic
    needed: int | None = verdict.requests_needed
    reasons: tuple[str, ...] = verdict.reasons
    table: str = str(verdict)
    del total, p50, text, statistic, needed, reasons, table
    return verdict.passed and verdict.outcome == "PASS"


def rules_usage(url: str) -> respy.Verdict:
    try:
        expectation = respy.Expectation.from_files("rules.yaml", url=url, headers={"Host": "svc"}, gateway=None)
    except respy.RulesError as exc:
        where: str | None = exc.file
        line: int | None = exc.line
        raise respy.UsageError(f"{where}:{line}") from exc
    return respy.assert_split(url, expectation, requests=2000, mapping={"blue": "v1"})


async def async_usage(url: str) -> respy.Verdict:
    measurement = await respy.measure_async(url, requests=100, by="header:x-version")
    await respy.assert_split_async(url, {"v1": 1, "v2": 1})
    return measurement.check(respy.Expectation.from_weights({"v1": 1, "v2": 1}))


def fixture_usage(respy_fixture: RespyFixture) -> respy.Verdict:
    expectation: respy.Expectation = respy_fixture.expectation(weights={"v1": 90, "v2": 10})
    respy_fixture.measure("/version", requests=10)
    return respy_fixture.assert_split("/version", expectation)


def error_handling(url: str) -> None:
    try:
        respy.measure(url, requests=0)
    except respy.RespyError as exc:
        code: int = exc.exit_code
        del code
