"""The httpx lane: https, HTTP/2, and anything under trio. C anyio workers, each with httpx's transport
keeping one connection (a pool of one: httpcore's shared pool re-scans every queued request on each event
and gets slower as concurrency rises, notes/peers.md), the whole request under ``anyio.fail_after``.

Plain ``http://`` on asyncio goes through respy's own lane (``engine``/``transport``) instead.
"""

from __future__ import annotations

import signal
import ssl
import time
from collections.abc import AsyncIterable

import anyio
import certifi
import httpx

from respy.send.classify import label_error, label_response
from respy.send.connect_to import connect_request
from respy.send.load import Load, ProgressHook, RunState, StopCheck, Target, wanted_workers
from respy.send.transport import size_text
from respy.tally import Kind, Tally

USER_AGENT = "respy"


class BodyTooLargeError(Exception):
    """More than ``--max-body`` bytes of one body: the connection is dropped."""


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
    """httpx's transport with a pool of one."""
    keepalive = 1 if target.keepalive else 0
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=keepalive)
    return httpx.AsyncHTTPTransport(verify=context, http2=target.http2, limits=limits, retries=0, proxy=target.proxy)


async def send_once(
    transport: httpx.AsyncBaseTransport, request: httpx.Request, target: Target
) -> tuple[str, Kind, int | None]:
    """Send one request; return its label, kind and status. Never raises for network trouble."""
    cap = target.body_cap if target.by.needs_body else 0
    try:
        with anyio.fail_after(target.timeout):
            status, headers, body = await _exchange(transport, request, cap, target.max_body)
    except BodyTooLargeError as exc:
        return f"error: {exc}", Kind.TRANSPORT, None
    except Exception as exc:  # every failure becomes an "error: ..." row
        return label_error(exc), Kind.TRANSPORT, None
    label, kind = label_response(target.by, status, headers, body)
    return label, kind, status


async def _exchange(
    transport: httpx.AsyncBaseTransport, request: httpx.Request, cap: int, max_body: int
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, raw headers and the first ``cap`` bytes of the (decoded) body; the rest is read and dropped
    (up to ``max_body`` bytes), so the connection stays usable."""
    response = await transport.handle_async_request(request)
    try:
        if any(name.lower() == b"content-encoding" for name, _ in response.headers.raw):
            chunks: AsyncIterable[bytes] = response.aiter_bytes()  # decoded, as a client would see it
        else:
            chunks = response.stream  # type: ignore[assignment]  # the raw stream: no decoder layers
        body = await _read_capped(chunks, cap, max_body)
    finally:
        await response.aclose()
    return response.status_code, response.headers.raw, body


async def _read_capped(chunks: AsyncIterable[bytes], cap: int, max_body: int) -> bytes:
    """Keep up to ``cap`` bytes of the body; read and drop the rest, up to ``max_body`` bytes in all."""
    parts: list[bytes] = []
    size = kept = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_body:
            raise BodyTooLargeError(f"body over the --max-body limit ({size_text(max_body)}): connection dropped")
        if kept < cap:
            piece = chunk[: cap - kept]
            parts.append(piece)
            kept += len(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class _Pool:
    """The workers of one run, growing to the wanted number (see ``wanted_workers``)."""

    def __init__(self, target: Target, load: Load, state: RunState, tally: Tally, stop_check: StopCheck | None,
                 check_every: int, group: anyio.abc.TaskGroup, ramp: bool) -> None:
        self.target, self.load, self.state, self.tally = target, load, state, tally
        self.stop_check, self.check_every, self.group, self.ramp = stop_check, check_every, group, ramp
        self.context = ssl_context_for(target)
        self.running = 0
        self.most = load.concurrency if load.requests is None else min(load.concurrency, load.requests)

    def grow(self) -> None:
        wanted = min(self.most, wanted_workers(self.most, self.state.completed, self.ramp))
        while self.running < wanted and self.state.stop_reason is None:
            self.running += 1
            self.group.start_soon(self.worker)

    async def worker(self) -> None:
        target, state, tally = self.target, self.state, self.tally
        request = build_request(target)
        transport = make_transport(target, self.context)
        try:
            # one connection per worker as far as we can see (httpx's pool reconnects out of sight)
            connection = state.next_connection() if target.keepalive else None
            while (ticket := state.take_ticket()) is not None:
                if state.rate:
                    await _wait_for_slot(state, ticket)
                state.in_flight += 1
                began = time.perf_counter()
                try:
                    label, kind, status = await send_once(transport, request, target)
                finally:
                    state.in_flight -= 1
                if kind is Kind.TRANSPORT:
                    # A fresh pool after a failed exchange: httpcore may keep a failed connection's slot (a
                    # proxy tunnel whose TLS handshake failed does), and the next request would wait for it.
                    await transport.aclose()
                    transport = make_transport(target, self.context)
                tally.add(label, kind, status, time.perf_counter() - began, ticket, connection)
                state.completed += 1
                checking = self.stop_check is not None and state.completed % self.check_every == 0
                if checking and (reason := self.stop_check(tally)):  # type: ignore[misc]
                    state.stop(reason)
                if self.ramp:
                    self.grow()
        finally:
            with anyio.CancelScope(shield=True):
                await transport.aclose()


async def _wait_for_slot(state: RunState, ticket: int) -> None:
    delay = state.due(ticket) - time.perf_counter()
    if delay > 0:
        await anyio.sleep(delay)


async def _cancel_after_grace(state: RunState, scope: anyio.CancelScope, timeout: float) -> None:
    """Once sending has stopped, give requests in flight a grace period, then cancel them."""
    while state.stop_reason is None:
        await anyio.sleep(0.05)
    await anyio.sleep(state.grace(timeout))
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
    state: RunState,
    tally: Tally,
    *,
    stop_check: StopCheck | None,
    check_every: int,
    progress: ProgressHook | None,
    handle_signals: bool,
    ramp: bool,
) -> None:
    """Send the requests of ``load`` to ``target`` through httpx and tally the answers (any anyio backend)."""
    async with anyio.create_task_group() as helpers:
        if handle_signals:
            helpers.start_soon(_watch_signals, state)
        if progress is not None:
            helpers.start_soon(_report_progress, state, tally, progress)
        async with anyio.create_task_group() as pool:
            pool.start_soon(_cancel_after_grace, state, pool.cancel_scope, target.timeout)
            async with anyio.create_task_group() as senders:
                _Pool(target, load, state, tally, stop_check, check_every, senders, ramp).grow()
            pool.cancel_scope.cancel()
        helpers.cancel_scope.cancel()
