"""The request loop: C workers share a budget of N tickets and feed a Tally.

Plain ``http://`` on asyncio (the CLI, the library on asyncio) takes the fast lane: each worker is a flat
loop over one connection of respy's own HTTP/1.1 lane (``transport``: llhttp parsing, one watchdog per loop
for the deadlines), and answers are labelled once per distinct (status, body) (``classify.Labeller``).
Neither httpx nor anyio is imported for it. https, HTTP/2 and trio go through ``httpx_lane``.

Measured by issue 15's profile (benchmarks/throughput.py): the raw lane instead of httpx objects ×2.15,
llhttp fed from ``data_received`` ×1.35, one watchdog instead of a timer per wait ×1.09, the labelling
cache ×1.23, a flat worker per connection ×1.20; later, from c = 8, the requests of one loop pass sent
together (``transport.Outbox``, 6–8 % less CPU per request).
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from respy.send.classify import Labeller
from respy.send.load import (
    DEFAULT_MAX_BODY,
    Load,
    ProgressHook,
    RunResult,
    RunState,
    StopCheck,
    Target,
    wanted_workers,
)
from respy.send.transport import Connection, ExchangeError, Headers, Outbox, Request, Watchdog, connect, serialise
from respy.tally import Kind, Tally

__all__ = [
    "DEFAULT_MAX_BODY",
    "Load",
    "ProgressHook",
    "RunResult",
    "RunState",
    "StopCheck",
    "Target",
    "event_loop_options",
    "run",
    "run_blocking",
    "validate_request",
]

USER_AGENT = "respy"
# From this concurrency on, requests go out together (transport.Outbox). Measured in-process against a local
# nginx, CPU per request with / without: c = 2 +7 %, c = 4 +1 %, c = 10 −3 %, c = 50 −8 %, c = 100 −6 %.
OUTBOX_FROM = 8
PROGRESS_EVERY_S = 0.2
T = TypeVar("T")


def event_loop_options() -> dict[str, object]:
    """``anyio.run`` backend options: uvloop where it is installed, unless ``RESPY_EVENT_LOOP=asyncio``."""
    return {"use_uvloop": True} if _uvloop() is not None else {}


def _uvloop() -> Any:
    if os.environ.get("RESPY_EVENT_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop  # optional: whether it is installed
    except ImportError:
        return None
    return uvloop


def run_blocking(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` on a new event loop (uvloop where installed) in this thread: plain asyncio, no anyio."""
    uvloop = _uvloop()
    loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def takes_fast_lane(target: Target) -> bool:
    """Plain HTTP/1.1 on an asyncio loop, straight to the server: respy's own lane. Anything else (https,
    HTTP/2, a proxy, trio): httpx."""
    if target.url[:7].lower() != "http://" or target.http2 or target.proxy:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False  # trio (or no loop at all)
    return True


def raw_request(target: Target) -> Request:
    """The request of ``target`` serialised once; ValueError for a URL, header or method that cannot be sent."""
    parts = urlsplit(target.url)
    host = parts.hostname
    if not host:
        raise ValueError(f"URL {target.url!r} has no host")
    port = parts.port or 80
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == 80 else f"{shown}:{port}"
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    given = {name.lower() for name, _ in target.headers}
    headers = [(k, v) for k, v in (("User-Agent", USER_AGENT), ("Accept", "*/*")) if k.lower() not in given]
    headers.extend(target.headers)
    if not target.keepalive and "connection" not in given:
        headers.append(("Connection", "close"))
    for name, value in headers:
        if not name or any(c in name for c in " \t\r\n\0:") or any(c in value for c in "\r\n\0"):
            raise ValueError(f"invalid header {name!r}: {value!r}")
    method = target.method
    if not method or not method.isascii() or any(c in method for c in " \t\r\n\0"):
        raise ValueError(f"invalid method {method!r}")
    connection = next((v for k, v in target.headers if k.lower() == "connection"), "")
    keeps_alive = target.keepalive and "close" not in connection.lower()
    dial = target.connect_to.address(host, port) if target.connect_to and target.connect_to.matches(host, port) \
        else (host, port)
    return Request(
        host=dial[0],
        port=dial[1],
        data=serialise(method, host_header, path, headers, target.data),
        is_head=method.upper() == "HEAD",
        keeps_alive=keeps_alive,
        keeps_headers=target.by.mode == "header",
        body_cap=target.body_cap if target.by.needs_body else 0,
        max_body=target.max_body,
    )


def validate_request(target: Target) -> None:
    """Raise ValueError (or TypeError) when the request of ``target`` cannot be built."""
    if target.url[:7].lower() == "http://" and not target.http2:
        raw_request(target)
    from respy.send.httpx_lane import build_request  # here, for start-up: httpx only when a run may use it

    build_request(target)  # the httpx lane may send it too (under trio)


async def run(
    target: Target,
    load: Load,
    *,
    tally: Tally | None = None,
    stop_check: StopCheck | None = None,
    check_every: int = 10,
    progress: ProgressHook | None = None,
    handle_signals: bool = False,
    ramp: bool = False,
) -> RunResult:
    """Send the requests of ``load`` to ``target`` and tally the answers. ``ramp``: start with few workers
    and grow to C while the run goes on (for a sequential check, see ``wanted_workers``)."""
    tally = tally if tally is not None else Tally()
    started = time.perf_counter()
    deadline = started + load.duration if load.duration else None
    state = RunState(limit=load.requests, rate=load.rate, started=started, deadline=deadline)
    if takes_fast_lane(target):
        await _FastRun(target, load, state, tally, stop_check, check_every, ramp).run(progress, handle_signals)
    else:
        from respy.send import httpx_lane  # here, for start-up: a plain run imports neither httpx nor anyio

        await httpx_lane.run(target, load, state, tally, stop_check=stop_check, check_every=check_every,
                             progress=progress, handle_signals=handle_signals, ramp=ramp)
    state.stop("all requests sent" if load.requests is not None and state.completed >= load.requests else "done")
    elapsed = time.perf_counter() - started
    return RunResult(tally=tally, elapsed_s=elapsed if math.isfinite(elapsed) else 0.0, state=state)


class _FastRun:
    """One run on respy's own lane: worker tasks on the running asyncio loop, grown as ``wanted_workers`` says."""

    def __init__(self, target: Target, load: Load, state: RunState, tally: Tally, stop_check: StopCheck | None,
                 check_every: int, ramp: bool) -> None:
        self.loop = asyncio.get_running_loop()
        self.target, self.state, self.tally = target, state, tally
        self.stop_check, self.check_every, self.ramp = stop_check, check_every, ramp
        self.request = raw_request(target)
        self.labeller = Labeller(target.by, tally)
        self.watchdog = Watchdog(self.loop)
        self.most = load.concurrency if load.requests is None else min(load.concurrency, load.requests)
        self.outbox = Outbox(self.loop) if self.most >= OUTBOX_FROM else None
        self.workers: set[asyncio.Task[None]] = set()
        self.all_done: asyncio.Future[None] = self.loop.create_future()

    async def run(self, progress: ProgressHook | None, handle_signals: bool) -> None:
        helpers = [self.loop.create_task(self._cancel_after_grace())]
        if progress is not None:
            helpers.append(self.loop.create_task(self._report_progress(progress)))
        signals = self._install_signal_handlers() if handle_signals else []
        try:
            self.grow()
            if self.workers:
                await self.all_done
        finally:
            for signum in signals:
                self.loop.remove_signal_handler(signum)
            for task in [*helpers, *self.workers]:
                task.cancel()
            await asyncio.gather(*helpers, *self.workers, return_exceptions=True)
            self.watchdog.stop()

    def grow(self) -> None:
        wanted = wanted_workers(self.most, self.state.completed, self.ramp)
        while len(self.workers) < wanted and self.state.stop_reason is None:
            task = self.loop.create_task(self.worker())
            self.workers.add(task)
            task.add_done_callback(self._worker_done)

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        self.workers.discard(task)
        if not self.workers and not self.all_done.done():
            self.all_done.set_result(None)

    async def worker(self) -> None:
        """One connection, one request at a time, until the tickets run out.

        Without a rate or a look after each answer, the answers of a kept-alive connection are counted from
        the socket callback and the next request sent from there (``then``): the worker only wakes up for a
        new connection, an error, or the end (issue 15's "flat worker", one step further)."""
        state, tally, label, loop = self.state, self.tally, self.labeller, self.loop
        request, watchdog, timeout = self.request, self.watchdog, self.target.timeout
        clock = time.perf_counter
        after_answer = self.stop_check is not None or self.ramp
        chained = not after_answer and not state.rate
        tagged = request.keeps_alive  # without keep-alive each request has a connection of its own: no tag
        conn: Connection | None = None
        connection = -1
        ticket: int | None = None
        began = 0.0

        def then(status: int, headers: Headers, body: bytes) -> float | None:
            nonlocal ticket, began
            now = clock()
            tally.count(label(status, headers, body), status, now - began, ticket, connection if tagged else None)
            state.completed += 1
            ticket = state.take_ticket()
            if ticket is None:
                return None
            began = now  # the next request goes out as soon as this returns
            return loop.time() + timeout

        try:
            while (ticket := state.take_ticket()) is not None:
                if state.rate:
                    delay = state.due(ticket) - clock()
                    if delay > 0:
                        await asyncio.sleep(delay)
                state.in_flight += 1
                began = clock()
                deadline = loop.time() + timeout
                try:
                    if conn is None or not conn.reusable:
                        if conn is not None:
                            conn.close()
                        conn = None
                        connection = state.next_connection()
                        conn = await connect(request, watchdog, deadline, connection, self.outbox)
                        if chained:
                            conn.then = then
                    answer = await conn.exchange(deadline)
                    if answer is None:
                        continue  # ``then`` counted every answer, the last included
                    status, headers, body = answer
                    entry = label(status, headers, body)
                except ExchangeError as exc:
                    status, entry = None, tally.entry("error: " + exc.reason, Kind.TRANSPORT)
                finally:
                    state.in_flight -= 1
                # tagged with the connection it came on, for the per-connection independence check
                tally.count(entry, status, clock() - began, ticket, connection if tagged else None)
                state.completed += 1
                if after_answer:
                    self._after_answer()
        finally:
            if conn is not None:
                conn.close()

    def _after_answer(self) -> None:
        state = self.state
        if state.completed % self.check_every == 0 and self.stop_check is not None:
            reason = self.stop_check(self.tally)
            if reason:
                state.stop(reason)
        if self.ramp:
            self.grow()

    async def _cancel_after_grace(self) -> None:
        """Once sending has stopped, give requests in flight a grace period, then cancel them."""
        while self.state.stop_reason is None:
            await asyncio.sleep(0.05)
        await asyncio.sleep(self.state.grace(self.target.timeout))
        for task in list(self.workers):
            task.cancel()

    async def _report_progress(self, hook: ProgressHook) -> None:
        while True:
            hook(self.state, self.tally)
            await asyncio.sleep(PROGRESS_EVERY_S)

    def _install_signal_handlers(self) -> list[int]:
        installed: list[int] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self.loop.add_signal_handler(signum, self._on_signal, signum)
            except (RuntimeError, ValueError, NotImplementedError):  # not the main thread, or no support
                continue
            installed.append(signum)
        return installed

    def _on_signal(self, signum: int) -> None:
        self.state.signal_name = signal.Signals(signum).name
        self.state.stop("interrupted")
