"""The request loop: C workers share a budget of N tickets and feed a Tally.

Each worker owns its own connection (its own httpx transport keeping one connection), so no worker waits
on a pool shared with the others: httpcore's shared pool re-scans every queued request on each event and
gets slower as concurrency rises (notes/peers.md). The request is built once per worker and re-sent.

For plain ``http://`` the transport is respy's own HTTP/1.1 one (``_transport``), which also enforces the
whole-request timeout itself: with httpx's transport and an anyio cancel scope per request, one process
reached about a seventh of the throughput (benchmarks/throughput.py --levers). https and HTTP/2 use
httpx's transport under ``anyio.fail_after``. ``execute()`` runs this on uvloop where it is installed, and
``_procs`` splits a large load over worker processes.
"""

from __future__ import annotations

import math
import os
import signal
import ssl
import time
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field

import anyio
import certifi
import httpx
import sniffio

from respy.send.classify import By, label_error, label_response
from respy.send.connect_to import ConnectTo, connect_request
from respy.send.transport import HTTP11Transport
from respy.tally import Kind, Tally

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
    connect_to: ConnectTo | None = None  # --connect-to: dial elsewhere, keep the URL's Host and TLS name


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


def event_loop_options() -> dict[str, object]:
    """``anyio.run`` backend options: uvloop where it is installed, unless ``RESPY_EVENT_LOOP=asyncio``."""
    if os.environ.get("RESPY_EVENT_LOOP", "").lower() == "asyncio":
        return {}
    try:
        import uvloop  # noqa: F401  - optional: only whether it is installed
    except ImportError:
        return {}
    return {"use_uvloop": True}


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
    return ssl.create_default_context(cafile=certifi.where())


def build_request(target: Target) -> httpx.Request:
    headers = [("User-Agent", USER_AGENT), ("Accept", "*/*")]
    given = {name.lower() for name, _ in target.headers}
    headers = [(k, v) for k, v in headers if k.lower() not in given]
    headers.extend(target.headers)
    if not target.keepalive and "connection" not in given:
        headers.append(("Connection", "close"))
    request = httpx.Request(target.method, target.url, headers=headers, content=target.data)
    return connect_request(request, target.connect_to)


def make_transport(target: Target, context: ssl.SSLContext) -> httpx.AsyncBaseTransport:
    """Plain HTTP/1.1: respy's own transport (one kept-alive connection, whole-request timeout built in);
    https and HTTP/2: httpx's transport with a pool of one."""
    keepalive = 1 if target.keepalive else 0
    if target.url[:5].lower() == "http:" and not target.http2 and _on_asyncio():
        return HTTP11Transport(max_keepalive=keepalive, total_timeout=target.timeout)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=keepalive)
    return httpx.AsyncHTTPTransport(verify=context, http2=target.http2, limits=limits, retries=0)


def _on_asyncio() -> bool:
    """respy's own transport is built on asyncio; under trio, httpx's transport does the work."""
    try:
        return sniffio.current_async_library() == "asyncio"
    except sniffio.AsyncLibraryNotFoundError:
        return True


def times_itself(transport: httpx.AsyncBaseTransport, request: httpx.Request) -> bool:
    """Whether ``transport`` enforces the whole-request timeout itself (no cancel scope needed)."""
    return isinstance(transport, HTTP11Transport) and transport.serves(request)


async def send_once(
    transport: httpx.AsyncBaseTransport, request: httpx.Request, target: Target, *, timed: bool = True
) -> tuple[str, Kind, int | None]:
    """Send one request; return its label, kind and status. Never raises for network trouble.

    ``timed=False`` when the transport enforces ``target.timeout`` itself: an anyio cancel scope per
    request costs about a third of the throughput.
    """
    cap = target.body_cap if target.by.needs_body else 0
    try:
        if timed:
            with anyio.fail_after(target.timeout):
                status, headers, body = await _exchange(transport, request, cap)
        else:
            status, headers, body = await _exchange(transport, request, cap)
    except Exception as exc:  # every failure becomes an "error: ..." row
        return label_error(exc), Kind.TRANSPORT, None
    label, kind = label_response(target.by, status, headers, body)
    return label, kind, status


async def _exchange(
    transport: httpx.AsyncBaseTransport, request: httpx.Request, cap: int
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, raw headers and the first ``cap`` bytes of the (decoded) body; the rest is read and dropped,
    so the connection stays usable."""
    response = await transport.handle_async_request(request)
    try:
        if any(name.lower() == b"content-encoding" for name, _ in response.headers.raw):
            chunks: AsyncIterable[bytes] = response.aiter_bytes()  # decoded, as a client would see it
        else:
            chunks = response.stream  # type: ignore[assignment]  # the raw stream: no decoder layers
        body = await _read_capped(chunks, cap)
    finally:
        await response.aclose()
    return response.status_code, response.headers.raw, body


async def _read_capped(chunks: AsyncIterable[bytes], cap: int) -> bytes:
    """Keep up to ``cap`` bytes of the body; read and drop the rest."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        if size < cap:
            piece = chunk[: cap - size]
            parts.append(piece)
            size += len(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def _worker(
    connection: int,
    target: Target,
    state: RunState,
    tally: Tally,
    context: ssl.SSLContext,
    stop_check: StopCheck | None,
    check_every: int,
) -> None:
    request = build_request(target)
    tag = connection if target.keepalive else None  # --no-keepalive: each request has a connection of its own
    async with make_transport(target, context) as transport:
        timed = not times_itself(transport, request)
        while (ticket := state.take_ticket()) is not None:
            if state.rate:
                await _wait_for_slot(state, ticket)
            state.in_flight += 1
            began = time.perf_counter()
            try:
                label, kind, status = await send_once(transport, request, target, timed=timed)
            finally:
                state.in_flight -= 1
            tally.add(label, kind, status, time.perf_counter() - began, ticket, tag)
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
                for connection in range(max(workers, 0)):  # each worker keeps its own connection
                    senders.start_soon(_worker, connection, target, state, tally, context, stop_check, check_every)
            pool.cancel_scope.cancel()
        helpers.cancel_scope.cancel()
    state.stop("all requests sent" if load.requests is not None and state.completed >= load.requests else "done")
    elapsed = time.perf_counter() - started
    return RunResult(tally=tally, elapsed_s=elapsed if math.isfinite(elapsed) else 0.0, state=state)
