"""respy as a library: ``measure`` / ``measure_async`` a URL, ``check`` the split, ``assert_split`` in tests.

Everything here is a thin layer over the machinery the CLI uses (engine -> tally -> ``evaluate`` -> report),
so a verdict from Python and one from ``respy URL --expect ...`` agree, table and all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import sniffio

from respy import measurement as _measurement
from respy._errors import NoAnswerError, UsageError
from respy._options import Headers, MeasureKwargs, MeasureOptions, check_url
from respy.check.evaluate import CheckSettings, evaluate
from respy.check.verdict import DEFAULT_ALPHA, Verdict
from respy.report.render import render_text
from respy.rules.expectation import Expectation
from respy.send.engine import Load, StopCheck, Target, event_loop_options, run, validate_request
from respy.tally import Tally

if TYPE_CHECKING:
    from typing_extensions import Unpack

Weights = Mapping[str, float]

__all__ = ["Headers", "Measurement", "Weights", "assert_split", "assert_split_async", "check", "measure",
           "measure_async"]


class Measurement(_measurement.Measurement):
    """What respy measured: counts per label, latencies, and how the run ended; ``check`` it against a split."""

    def check(
        self,
        expectation: Expectation,
        *,
        alpha: float = DEFAULT_ALPHA,
        tolerance: float | None = None,
        mapping: Mapping[str, str] | None = None,
    ) -> Verdict:
        """The verdict of these counts against ``expectation`` (fixed-N chi-square and tolerance band).

        ``str(verdict)`` is the table and verdict line the CLI prints; ``mapping`` is ``--map`` (label -> outcome).
        """
        return check(self, expectation, alpha=alpha, tolerance=tolerance, mapping=mapping)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A validated request description and load: what one measurement will send."""

    target: Target
    load: Load


def _plan(url: str, options: MeasureKwargs) -> _Plan:
    """Check every argument and turn them into the engine's Target and Load; UsageError for bad ones."""
    url = check_url(url)
    given = MeasureOptions.checked(options)
    target = Target(url=url, method=given.method, headers=given.headers, data=given.data,
                    timeout=given.timeout, http2=given.http2, verify=given.verify, cacert=given.cacert,
                    keepalive=given.keepalive, by=given.by, proxy=given.proxy)
    try:
        validate_request(target)  # the engine's own request builders: bad header names or values fail here
    except (ValueError, TypeError, UnicodeError) as exc:
        raise UsageError(f"cannot build a request from these arguments: {exc}") from None
    load = Load(requests=given.requests, concurrency=given.concurrency, rate=given.rate, duration=given.duration)
    return _Plan(target, load)


async def _measure(plan: _Plan, stop_check: StopCheck | None = None) -> Measurement:
    return Measurement.from_run(await run(plan.target, plan.load, stop_check=stop_check), plan.target, plan.load)


def _on_fresh_loop(plan: _Plan, stop_check: StopCheck | None = None) -> Measurement:
    """The measurement on a new asyncio event loop in this thread (the engine's own transport needs asyncio)."""
    return anyio.run(_measure, plan, stop_check, backend_options=event_loop_options())


def _in_event_loop() -> bool:
    """True when this thread is running an event loop (asyncio, e.g. Jupyter or an async test, or trio)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return True
    return _async_library() is not None


def _async_library() -> str | None:
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


def _run_sync(plan: _Plan) -> Measurement:
    """Run the measurement on a fresh event loop: in this thread, or in a worker thread when one already runs here.

    The calling loop is blocked until the measurement ends: a server served by that same loop cannot answer
    (every request then times out). In async code, ``await measure_async(...)`` instead.
    """
    if not _in_event_loop():
        return _on_fresh_loop(plan)
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="respy-measure") as pool:
        future = pool.submit(_on_fresh_loop, plan, _stops_on(stop))
        try:
            return future.result()
        finally:
            stop.set()  # interrupted (Ctrl-C): the worker stops sending instead of finishing the whole run


def _stops_on(event: threading.Event) -> StopCheck:
    """A stop check for the engine: stop sending once ``event`` is set (checked every few answers)."""

    def stop_check(tally: Tally) -> str | None:
        return "cancelled" if event.is_set() else None

    return stop_check


def measure(url: str, **options: Unpack[MeasureKwargs]) -> Measurement:
    """Send ``requests`` requests to ``url``, ``concurrency`` at a time, and tally the answers.

    Options (keyword only; defaults in ``respy._options.DEFAULTS``): ``requests=1000``, ``concurrency=100``,
    ``timeout=10.0`` (seconds, each whole request), ``headers`` (a mapping or pairs), ``method="GET"``,
    ``by="body"``, ``data`` (a body), ``http2=False``, ``verify=True``, ``cacert`` (a PEM file),
    ``keepalive=True``, ``rate=None``, ``duration=None``, ``proxy=None``.

    ``proxy`` (``"http://[user:password@]host:port"``) sends every request through that HTTP proxy (https
    through a CONNECT tunnel); environment variables such as ``HTTP_PROXY`` are not read.

    ``by`` is what answers are tallied by: ``"body"``, ``"status"``, ``"header:NAME"`` or ``"regex:PATTERN"``.
    ``rate`` caps requests per second; ``duration`` (seconds) stops sending after that long
    (``requests=None`` with a duration: no count cap). ``keepalive=False`` opens a connection per request.

    Synchronous: it runs its own event loop. Called from a thread that runs an event loop already (Jupyter,
    an async test), it runs the measurement in a worker thread and blocks until it ends; prefer
    ``await measure_async(...)`` there. Network failures are counted as ``error: ...`` rows, never raised;
    bad arguments raise ``UsageError``.
    """
    return _run_sync(_plan(url, options))


async def measure_async(url: str, **options: Unpack[MeasureKwargs]) -> Measurement:
    """``measure`` for async code, on the caller's event loop (anyio: asyncio or trio). Cancelling the caller
    stops the measurement. On trio, plain HTTP goes through httpx's own transport (respy's faster HTTP/1.1
    transport is built on asyncio)."""
    return await _measure(_plan(url, options))


def check(
    measurement: _measurement.Measurement,
    expectation: Expectation | Weights,
    *,
    alpha: float = DEFAULT_ALPHA,
    tolerance: float | None = None,
    mapping: Mapping[str, str] | None = None,
) -> Verdict:
    """The verdict of ``measurement`` against ``expectation``, exactly as ``respy --expect`` decides it.

    ``str(verdict)`` is the CLI's table, footer and verdict line. ``mapping`` says which declared outcome a
    response label belongs to when the label does not name it (``--map LABEL=DEST``).
    """
    return _checked(measurement, expectation, alpha=alpha, tolerance=tolerance, mapping=mapping)


def _checked(measurement: _measurement.Measurement, expectation: Expectation | Weights, *, alpha: float,
             tolerance: float | None, mapping: Mapping[str, str] | None, verdict_first: bool = False) -> Verdict:
    """The verdict with its report: the CLI's text, or (``verdict_first``, a failing test's message) the verdict
    line and its reasons first, then the table."""
    wanted = as_expectation(expectation)
    settings = CheckSettings(alpha=alpha, tolerance=tolerance, mapping=dict(mapping or {}), judge_silence=True)
    evaluation = evaluate(measurement, wanted, settings, notes=[f"warning: {w}" for w in wanted.warnings])
    assert evaluation.verdict is not None
    report = render_text(measurement, evaluation, verdict_first=verdict_first)
    return dataclasses.replace(evaluation.verdict, report=report)


def as_expectation(expectation: Expectation | Weights) -> Expectation:
    if isinstance(expectation, Expectation):
        return expectation
    if isinstance(expectation, Mapping):
        return Expectation.from_weights(expectation)
    raise UsageError(
        f"expected an Expectation or a mapping of weights such as {{'v1': 90, 'v2': 10}}, not {expectation!r}"
    )


def assert_split(
    url: str,
    expectation: Expectation | Weights,
    *,
    alpha: float = DEFAULT_ALPHA,
    tolerance: float | None = None,
    mapping: Mapping[str, str] | None = None,
    **options: Unpack[MeasureKwargs],
) -> Verdict:
    """Measure ``url`` (``options`` as for ``measure``) and raise ``AssertionError`` (the table and verdict line)
    unless the verdict is PASS.

    ``expectation`` is an ``Expectation`` or plain weights (``{"single": 90, "multiple": 10}``). INCONCLUSIVE
    raises too, with the number of requests that would decide: a test must not pass on too little evidence.
    ``NoAnswerError`` when not a single HTTP answer came back. Returns the (passing) verdict.
    """
    __tracebackhide__ = True
    wanted = as_expectation(expectation)
    return _judge(measure(url, **options), wanted, alpha=alpha, tolerance=tolerance, mapping=mapping)


async def assert_split_async(
    url: str,
    expectation: Expectation | Weights,
    *,
    alpha: float = DEFAULT_ALPHA,
    tolerance: float | None = None,
    mapping: Mapping[str, str] | None = None,
    **options: Unpack[MeasureKwargs],
) -> Verdict:
    """``assert_split`` for async code (``measure_async`` underneath)."""
    __tracebackhide__ = True
    wanted = as_expectation(expectation)
    return _judge(await measure_async(url, **options), wanted, alpha=alpha, tolerance=tolerance, mapping=mapping)


def _judge(
    measurement: Measurement,
    expectation: Expectation,
    *,
    alpha: float,
    tolerance: float | None,
    mapping: Mapping[str, str] | None,
) -> Verdict:
    __tracebackhide__ = True
    verdict = _checked(measurement, expectation, alpha=alpha, tolerance=tolerance, mapping=mapping,
                       verdict_first=True)
    if measurement.requests and measurement.answered == 0:
        raise NoAnswerError(f"not a single HTTP answer came back from {measurement.url}\n{verdict}")
    if verdict.outcome != "PASS":
        raise AssertionError(failure_message(verdict))
    return verdict


def failure_message(verdict: Verdict) -> str:
    """The verdict line first (pytest's one-line summary shows it), its reasons, the table; when INCONCLUSIVE,
    how many requests would decide."""
    lines = [str(verdict)]
    if verdict.outcome == "INCONCLUSIVE" and verdict.requests_needed:
        lines.append(f"Run again with requests={verdict.requests_needed} (or more) to decide.")
    return "\n".join(lines)
