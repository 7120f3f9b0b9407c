"""``respy demo``: the tutorial's weather-backend on 127.0.0.1, with no cluster.

Two backends answer ``weather-backend: single`` and ``weather-backend: multiple``; a router in front
of them picks a backend per request, at random with the tutorial's 90/10 weights as Envoy does, or
round-robin with ``broken=True`` (what Kubernetes gives when Istio's rules are not applied: 50/50).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from respy.demo.localserver import Handler, LocalServer, Request, Response, fixed, read_request

DEMO_WEIGHTS = (("single", 90), ("multiple", 10))


def weighted_picker(weights: Sequence[int], seed: int | None = None):  # type: ignore[no-untyped-def]
    """Envoy's choice: one draw per request over the cumulative weights."""
    rng = random.Random(seed)
    population = list(range(len(weights)))

    def pick() -> int:
        return rng.choices(population, weights=weights)[0]

    return pick


def round_robin_picker(count: int):  # type: ignore[no-untyped-def]
    cycle = itertools.cycle(range(count))
    return lambda: next(cycle)


def router(backends: Sequence[LocalServer], pick) -> Handler:  # type: ignore[no-untyped-def]
    """A reverse proxy that forwards each request to the backend ``pick()`` names."""

    async def handler(request: Request) -> Response:
        backend = backends[pick()]
        try:
            reader, writer = await asyncio.open_connection(backend.host, backend.port)
        except OSError:
            return Response(503, b"upstream connect error or disconnect/reset before headers")
        try:
            writer.write(f"{request.method} {request.path} HTTP/1.1\r\nHost: {backend.host}\r\n"
                         f"Content-Length: {len(request.body)}\r\nConnection: close\r\n\r\n".encode() + request.body)
            await writer.drain()
            status, body = await _read_response(reader)
        finally:
            writer.close()
        return Response(status, body)

    return handler


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return status, body


@dataclass
class WeatherApp:
    """The running demo: ``url`` is the router's ``/version`` endpoint."""

    router: LocalServer
    backends: tuple[LocalServer, ...]

    @property
    def url(self) -> str:
        return f"{self.router.url}/version"


class weather_app:  # noqa: N801 - used as a context manager, like open()
    """``with weather_app(broken=False) as app: app.url``."""

    def __init__(self, *, broken: bool = False, seed: int | None = None) -> None:
        self.broken = broken
        self.seed = seed
        self._stack = ExitStack()

    def __enter__(self) -> WeatherApp:
        backends = tuple(
            self._stack.enter_context(LocalServer(fixed(f"weather-backend: {name}"))) for name, _ in DEMO_WEIGHTS
        )
        if self.broken:
            pick = round_robin_picker(len(backends))
        else:
            pick = weighted_picker([weight for _, weight in DEMO_WEIGHTS], self.seed)
        front = self._stack.enter_context(LocalServer(router(backends, pick)))
        return WeatherApp(router=front, backends=backends)

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()


__all__ = ["DEMO_WEIGHTS", "WeatherApp", "read_request", "weather_app", "weighted_picker"]
