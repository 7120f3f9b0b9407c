"""respy as a library: ``measure`` / ``measure_async`` a URL, ``check`` the split, ``assert_split`` in tests.

Everything here is a thin layer over the machinery the CLI uses (engine -> tally -> assignment -> verdict ->
report), so a verdict from Python and one from ``respy URL --expect ...`` agree, table and all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from respy._errors import NoAnswerError, UsageError
from respy.check.verdict import Verdict
from respy.measurement import Measurement
from respy.rules.expectation import Expectation
from respy.send.classify import By, parse_by
from respy.send.engine import Load, StopCheck, Target, event_loop_options, run, validate_request
from respy.tally import Tally

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
Weights = Mapping[str, float]

__all__ = ["Headers", "Weights", "assert_split", "assert_split_async", "check", "measure", "measure_async"]


@dataclass(frozen=True)
class _Plan:
    """A validated request description and load: what one measurement will send."""

    target: Target
    load: Load


def _plan(
    url: str,
    *,
    requests: int | None,
    concurrency: int,
    timeout: float,
    headers: Headers | None,
    method: str,
    by: str,
    data: bytes | str | None,
    http2: bool,
    verify: bool,
    cacert: str | os.PathLike[str] | None,
    keepalive: bool,
    rate: float | None,
    duration: float | None,
) -> _Plan:
    """Check every argument and turn them into the engine's Target and Load; UsageError for bad ones."""
    target = Target(
        url=_checked_url(url),
        method=_checked_method(method),
        headers=_header_pairs(headers),
        data=data.encode() if isinstance(data, str) else data,
        timeout=_positive("timeout", timeout),
        http2=bool(http2),
        verify=bool(verify),
        cacert=_checked_cacert(cacert),
        keepalive=bool(keepalive),
        by=_checked_by(by),
    )
    try:
        validate_request(target)  # the engine's own request builders: bad header names or values fail here
    except (ValueError, TypeError, UnicodeError) as exc:
        raise UsageError(f"cannot build a request from these arguments: {exc}") from None
    load = Load(
        requests=_checked_requests(requests, duration),
        concurrency=_whole("concurrency", concurrency),
        rate=None if rate is None else _positive("rate", rate),
        duration=None if duration is None else _positive("duration", duration),
    )
    return _Plan(target, load)


def _checked_url(url: object) -> str:
    if not isinstance(url, str):
        raise UsageError(f"the URL must be a string, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageError(f"URL {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise UsageError(f"URL {url!r} has no host")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise UsageError(f"URL {url!r} has an invalid port") from None
    return url


def _checked_method(method: object) -> str:
    if not isinstance(method, str) or not method.strip() or any(c.isspace() for c in method.strip()):
        raise UsageError(f"method {method!r} must be one word, e.g. 'GET' or 'POST'")
    return method.strip().upper()


def _header_pairs(headers: Headers | None) -> tuple[tuple[str, str], ...]:
    if headers is None:
        return ()
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    checked = []
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(part, str) for part in pair)):
            raise UsageError(f"headers must be a mapping or (name, value) pairs of strings, not {pair!r}")
        name, value = pair
        if not name.strip() or any(c.isspace() or c == ":" for c in name.strip()):
            raise UsageError(f"header name {name!r} is not valid")
        if "\r" in value or "\n" in value:
            raise UsageError(f"the value of header {name!r} contains a line break")
        checked.append((name.strip(), value.strip()))
    return tuple(checked)


def _checked_by(by: object) -> By:

    if not isinstance(by, str):
        raise UsageError(f"by must be a string such as 'body', 'status', 'header:NAME' or 'regex:PATTERN', not {by!r}")
    try:
        return parse_by(by)
    except UsageError as exc:
        raise UsageError(str(exc).replace("--by ", "by=", 1)) from None


def _checked_cacert(cacert: str | os.PathLike[str] | None) -> str | None:
    if cacert is None:
        return None
    path = os.fspath(cacert)
    if not Path(path).is_file():
        raise UsageError(f"cacert: cannot read file {path!r}")
    return path


def _whole(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be a whole number, not {value!r}")
    if value < 1:
        raise UsageError(f"{name} must be at least 1, got {value}")
    return value


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        raise UsageError(f"{name} must be a positive number, not {value!r}")
    return float(value)


def _checked_requests(requests: int | None, duration: float | None) -> int | None:
    if requests is None:
        if duration is None:
            raise UsageError("requests=None sends without a cap, so it needs a duration (seconds)")
        return None
    return _whole("requests", requests)


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
    import sniffio

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
    from concurrent.futures import ThreadPoolExecutor

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


def measure(
    url: str,
    *,
    requests: int | None = 1000,
    concurrency: int = 100,
    timeout: float = 10.0,
    headers: Headers | None = None,
    method: str = "GET",
    by: str = "body",
    data: bytes | str | None = None,
    http2: bool = False,
    verify: bool = True,
    cacert: str | os.PathLike[str] | None = None,
    keepalive: bool = True,
    rate: float | None = None,
    duration: float | None = None,
) -> Measurement:
    """Send ``requests`` requests to ``url``, ``concurrency`` at a time, and tally the answers.

    ``by`` is what answers are tallied by: ``"body"``, ``"status"``, ``"header:NAME"`` or ``"regex:PATTERN"``.
    ``rate`` caps requests per second; ``duration`` (seconds) stops sending after that long
    (``requests=None`` with a duration: no count cap). ``keepalive=False`` opens a connection per request.

    Synchronous: it runs its own event loop. Called from a thread that runs an event loop already (Jupyter,
    an async test), it runs the measurement in a worker thread and blocks until it ends; prefer
    ``await measure_async(...)`` there. Network failures are counted as ``error: ...`` rows, never raised;
    bad arguments raise ``UsageError``.
    """
    plan = _plan(url, requests=requests, concurrency=concurrency, timeout=timeout, headers=headers, method=method,
                 by=by, data=data, http2=http2, verify=verify, cacert=cacert, keepalive=keepalive, rate=rate,
                 duration=duration)
    return _run_sync(plan)


async def measure_async(
    url: str,
    *,
    requests: int | None = 1000,
    concurrency: int = 100,
    timeout: float = 10.0,
    headers: Headers | None = None,
    method: str = "GET",
    by: str = "body",
    data: bytes | str | None = None,
    http2: bool = False,
    verify: bool = True,
    cacert: str | os.PathLike[str] | None = None,
    keepalive: bool = True,
    rate: float | None = None,
    duration: float | None = None,
) -> Measurement:
    """``measure`` for async code, on the caller's event loop (anyio: asyncio or trio). Cancelling the caller
    stops the measurement. On trio, plain HTTP goes through httpx's own transport (respy's faster HTTP/1.1
    transport is built on asyncio)."""
    plan = _plan(url, requests=requests, concurrency=concurrency, timeout=timeout, headers=headers, method=method,
                 by=by, data=data, http2=http2, verify=verify, cacert=cacert, keepalive=keepalive, rate=rate,
                 duration=duration)
    return await _measure(plan)


def check(
    measurement: Measurement,
    expectation: Expectation | Weights,
    *,
    alpha: float = 0.01,
    tolerance: float | None = None,
    mapping: Mapping[str, str] | None = None,
) -> Verdict:
    """The verdict of ``measurement`` against ``expectation``, exactly as ``respy --expect`` decides it.

    ``str(verdict)`` is the CLI's table, footer and verdict line. ``mapping`` says which declared outcome a
    response label belongs to when the label does not name it (``--map LABEL=DEST``).
    """
    from respy.check.plan import CheckPlan
    from respy.report.render import render_text

    wanted = as_expectation(expectation)
    plan = CheckPlan(expectation=wanted, rules=None, mapping=dict(mapping or {}), alpha=alpha, tolerance=tolerance,
                     strict=False, grace=0, notes=[f"warning: {w}" for w in wanted.warnings])
    evaluation = plan.evaluate(measurement)
    assert evaluation.verdict is not None
    return dataclasses.replace(evaluation.verdict, report=render_text(measurement, evaluation))


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
    alpha: float = 0.01,
    tolerance: float | None = None,
    mapping: Mapping[str, str] | None = None,
    requests: int | None = 1000,
    concurrency: int = 100,
    timeout: float = 10.0,
    headers: Headers | None = None,
    method: str = "GET",
    by: str = "body",
    data: bytes | str | None = None,
    http2: bool = False,
    verify: bool = True,
    cacert: str | os.PathLike[str] | None = None,
    keepalive: bool = True,
    rate: float | None = None,
    duration: float | None = None,
) -> Verdict:
    """Measure ``url`` and raise ``AssertionError`` (the table and verdict line) unless the verdict is PASS.

    ``expectation`` is an ``Expectation`` or plain weights (``{"single": 90, "multiple": 10}``). INCONCLUSIVE
    raises too, with the number of requests that would decide: a test must not pass on too little evidence.
    ``NoAnswerError`` when not a single HTTP answer came back. Returns the (passing) verdict.
    """
    __tracebackhide__ = True
    wanted = as_expectation(expectation)
    measurement = measure(url, requests=requests, concurrency=concurrency, timeout=timeout, headers=headers,
                          method=method, by=by, data=data, http2=http2, verify=verify, cacert=cacert,
                          keepalive=keepalive, rate=rate, duration=duration)
    return _judge(measurement, wanted, alpha=alpha, tolerance=tolerance, mapping=mapping)


async def assert_split_async(
    url: str,
    expectation: Expectation | Weights,
    *,
    alpha: float = 0.01,
    tolerance: float | None = None,
    mapping: Mapping[str, str] | None = None,
    requests: int | None = 1000,
    concurrency: int = 100,
    timeout: float = 10.0,
    headers: Headers | None = None,
    method: str = "GET",
    by: str = "body",
    data: bytes | str | None = None,
    http2: bool = False,
    verify: bool = True,
    cacert: str | os.PathLike[str] | None = None,
    keepalive: bool = True,
    rate: float | None = None,
    duration: float | None = None,
) -> Verdict:
    """``assert_split`` for async code (``measure_async`` underneath)."""
    __tracebackhide__ = True
    wanted = as_expectation(expectation)
    measurement = await measure_async(url, requests=requests, concurrency=concurrency, timeout=timeout,
                                      headers=headers, method=method, by=by, data=data, http2=http2, verify=verify,
                                      cacert=cacert, keepalive=keepalive, rate=rate, duration=duration)
    return _judge(measurement, wanted, alpha=alpha, tolerance=tolerance, mapping=mapping)


def _judge(
    measurement: Measurement,
    expectation: Expectation,
    *,
    alpha: float,
    tolerance: float | None,
    mapping: Mapping[str, str] | None,
) -> Verdict:
    __tracebackhide__ = True
    verdict = check(measurement, expectation, alpha=alpha, tolerance=tolerance, mapping=mapping)
    if measurement.requests and measurement.answered == 0:
        raise NoAnswerError(f"not a single HTTP answer came back from {measurement.url}\n{verdict}")
    if verdict.outcome != "PASS":
        raise AssertionError(failure_message(verdict))
    return verdict


def failure_message(verdict: Verdict) -> str:
    """The table and verdict line, then why (and, when INCONCLUSIVE, how many requests would decide)."""
    lines = [str(verdict), *verdict.reasons]
    if verdict.outcome == "INCONCLUSIVE" and verdict.requests_needed:
        lines.append(f"Run again with requests={verdict.requests_needed} (or more) to decide.")
    return "\n".join(lines)
