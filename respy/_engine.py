"""The request loop: C workers share a budget of N tickets and feed a Tally.

Each worker owns its own connection (its own httpx transport with a pool of one), so no worker waits on
a pool shared with the others: httpcore's shared pool re-scans every queued request on each event and
gets slower as concurrency rises (notes/peers.md). The request is built once per worker and re-sent.
"""

from __future__ import annotations

import math
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import httpx

from respy._classify import By, label_error, label_response
from respy._tally import Kind, Tally

USER_AGENT = "respy"
INTERRUPT_GRACE_S = 1.0


@dataclass(frozen=True)
class Target:
    """What every request looks like."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    data: bytes | None = None
    timeout: float = 10.0
    http2: bool = False
    verify: bool = True
    cacert: str | None = None
    keepalive: bool = True
    body_cap: int = 64 * 1024
    by: By = field(default_factory=lambda: By("body"))


@dataclass(frozen=True)
class Load:
    """How many requests, how many at once, how fast, for how long (``requests=None``: no cap)."""

    requests: int | None = 1000
    concurrency: int = 100
    rate: float | None = None
    duration: float | None = None


@dataclass
class RunState:
    """Shared between workers (one event loop, so plain fields are safe)."""

    limit: int | None
    rate: float | None
    started: float
    deadline: float | None
    issued: int = 0
    completed: int = 0
    in_flight: int = 0
    stop_reason: str | None = None
    signal_name: str | None = None

    def take_ticket(self) -> int | None:
        if self.stop_reason is not None:
            return None
        if self.limit is not None and self.issued >= self.limit:
            return None
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.stop_reason = self.stop_reason or "duration reached"
            return None
        ticket = self.issued
        self.issued += 1
        return ticket

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason


@dataclass
class RunResult:
    tally: Tally
    elapsed_s: float
    state: RunState


StopCheck = Callable[[Tally], str | None]
ProgressHook = Callable[[RunState, Tally], None]


def ssl_context_for(target: Target) -> ssl.SSLContext:
    """One TLS context shared by every worker (building one per worker costs ~10 ms each)."""
    if not target.url.lower().startswith("https:"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # never used for plain HTTP; cheap to make
    if not target.verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if target.cacert:
        return ssl.create_default_context(cafile=target.cacert)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def build_request(target: Target) -> httpx.Request:
    headers = [("User-Agent", USER_AGENT), ("Accept", "*/*")]
    given = {name.lower() for name, _ in target.headers}
    headers = [(k, v) for k, v in headers if k.lower() not in given]
    headers.extend(target.headers)
    if not target.keepalive and "connection" not in given:
        headers.append(("Connection", "close"))
    return httpx.Request(target.method, target.url, headers=headers, content=target.data)


def make_transport(target: Target, context: ssl.SSLContext) -> httpx.AsyncHTTPTransport:
    keepalive = 1 if target.keepalive else 0
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=keepalive)
    return httpx.AsyncHTTPTransport(verify=context, http2=target.http2, limits=limits, retries=0)


async def send_once(
    transport: httpx.AsyncBaseTransport, request: httpx.Request, target: Target
) -> tuple[str, Kind, int | None]:
    """Send one request; return its label, kind and status. Never raises for network trouble."""
    try:
        with anyio.fail_after(target.timeout):
            response = await transport.handle_async_request(request)
            try:
                body = await _read_capped(response, target.body_cap) if target.by.needs_body else b""
                if not target.by.needs_body:
                    await _drain(response)
            finally:
                await response.aclose()
    except Exception as exc:  # noqa: BLE001 - every failure becomes an "error: ..." row
        return label_error(exc), Kind.TRANSPORT, None
    label, kind = label_response(target.by, response.status_code, response.headers.raw, body)
    return label, kind, response.status_code


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    """Keep up to ``cap`` bytes of the body; read and drop the rest (the connection stays usable)."""
    kept = bytearray()
    async for chunk in response.aiter_bytes():
        room = cap - len(kept)
        if room > 0:
            kept += chunk[:room]
    return bytes(kept)


async def _drain(response: httpx.Response) -> None:
    async for _ in response.aiter_raw():
        pass


async def _worker(
    target: Target,
    state: RunState,
    tally: Tally,
    context: ssl.SSLContext,
    stop_check: StopCheck | None,
    check_every: int,
) -> None:
    request = build_request(target)
    async with make_transport(target, context) as transport:
        while (ticket := state.take_ticket()) is not None:
            if state.rate:
                await _wait_for_slot(state, ticket)
            state.in_flight += 1
            began = time.perf_counter()
            try:
                label, kind, status = await send_once(transport, request, target)
            finally:
                state.in_flight -= 1
            tally.add(label, kind, status, time.perf_counter() - began)
            state.completed += 1
            if stop_check is not None and state.completed % check_every == 0:
                reason = stop_check(tally)
                if reason:
                    state.stop(reason)


async def _wait_for_slot(state: RunState, ticket: int) -> None:
    assert state.rate
    due = state.started + ticket / state.rate
    delay = due - time.perf_counter()
    if delay > 0:
        await anyio.sleep(delay)


async def _cancel_after_grace(state: RunState, scope: anyio.CancelScope, grace: float) -> None:
    """Once sending has stopped, give requests in flight ``grace`` seconds, then cancel them."""
    while state.stop_reason is None:
        await anyio.sleep(0.05)
    await anyio.sleep(grace)
    scope.cancel()


async def _watch_signals(state: RunState) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            state.signal_name = signal.Signals(signum).name
            state.stop("interrupted")


async def _report_progress(state: RunState, tally: Tally, hook: ProgressHook) -> None:
    while True:
        hook(state, tally)
        await anyio.sleep(0.2)


async def run(
    target: Target,
    load: Load,
    *,
    tally: Tally | None = None,
    stop_check: StopCheck | None = None,
    check_every: int = 10,
    progress: ProgressHook | None = None,
    handle_signals: bool = False,
) -> RunResult:
    """Send the requests of ``load`` to ``target`` and tally the answers."""
    tally = tally if tally is not None else Tally()
    context = ssl_context_for(target)
    started = time.perf_counter()
    deadline = started + load.duration if load.duration else None
    state = RunState(limit=load.requests, rate=load.rate, started=started, deadline=deadline)
    workers = load.concurrency if load.requests is None else min(load.concurrency, load.requests)
    grace = min(INTERRUPT_GRACE_S, target.timeout)
    async with anyio.create_task_group() as helpers:
        if handle_signals:
            helpers.start_soon(_watch_signals, state)
        if progress is not None:
            helpers.start_soon(_report_progress, state, tally, progress)
        async with anyio.create_task_group() as pool:
            pool.start_soon(_cancel_after_grace, state, pool.cancel_scope, grace)
            async with anyio.create_task_group() as senders:
                for _ in range(max(workers, 0)):
                    senders.start_soon(_worker, target, state, tally, context, stop_check, check_every)
            pool.cancel_scope.cancel()
        helpers.cancel_scope.cancel()
    state.stop("all requests sent" if load.requests is not None and state.completed >= load.requests else "done")
    elapsed = time.perf_counter() - started
    return RunResult(tally=tally, elapsed_s=elapsed if math.isfinite(elapsed) else 0.0, state=state)
