"""``respy demo``: the tutorial's weather-backend on 127.0.0.1, with no cluster.

On a real Envoy when the ``envoy`` binary is here (``demo_app``, through the sandbox); else on a Python
router (``weather_app``). In the fallback, two backends answer ``weather-backend: single`` and
``weather-backend: multiple``; a router in front of them picks a backend per request, at random with the
tutorial's 90/10 weights as Envoy does, or round-robin with ``broken=True`` (what Kubernetes gives when
Istio's rules are not applied: 50/50).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from respy.sandbox.localserver import Handler, LocalServer, Request, Response, fixed, read_request

if TYPE_CHECKING:
    from respy.rules import K8sObject
    from respy.sandbox.mesh import Sandbox

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




# -- the demo on a real Envoy ----------------------------------------------------------------------------------------

EXAMPLES = Path(__file__).parents[1] / "examples" / "weather"
DEMO_HOST = "weather-backend"
DEMO_PORT = 5000
BROKEN_PORT_NAME = "backend"  # the tutorial's bug: no protocol prefix (should be http-backend)


@dataclass
class DemoApp:
    """What ``respy demo`` measures: ``url`` (send ``Host: weather-backend``) and one line saying what runs."""

    url: str
    description: str
    on_envoy: bool
    per_connection: bool = False  # the proxy picks a backend per TCP connection: sample one request per connection


@contextmanager
def demo_app(*, broken: bool = False, seed: int | None = None) -> Iterator[DemoApp]:
    """The weather-backend behind a real Envoy (the sandbox), or behind the Python router when there is no Envoy.

    ``broken`` programs Envoy the way Istio 1.1/1.2 programmed the tutorial's Service port named ``backend``:
    TCP, a tcp_proxy over all endpoints, so the 90/10 rules never apply. ``seed`` only steers the Python router
    (Envoy draws its own random numbers).
    """
    from respy._errors import EnvoyUnavailableError
    from respy.sandbox.envoy import envoy_binary

    try:
        envoy_binary()
    except EnvoyUnavailableError as exc:
        with weather_app(broken=broken, seed=seed) as app:
            routing = ("round-robin, as Istio 1.1/1.2 routed the tutorial's port named 'backend' (the 50/50 "
                       "symptom)") if broken else "routed 90/10"
            yield DemoApp(app.url, f"no Envoy here ({exc}): falling back to respy's Python router, {routing}",
                          on_envoy=False)
        return
    with _weather_sandbox(broken) as mesh:
        endpoint = mesh.endpoint(DEMO_HOST, DEMO_PORT)
        url = (endpoint.direct_url or endpoint.listener_url) + "/version"
        if broken:
            what = (f"a real Envoy programmed as Istio 1.1/1.2 programmed Service port {DEMO_PORT} named "
                    f"'{BROKEN_PORT_NAME}' (TCP: a tcp_proxy over all endpoints, the http rules never apply; "
                    "Istio >= 1.3 sniffs the protocol and routes it 90/10); one request per connection, as a "
                    "tcp_proxy picks per connection")
        else:
            what = "a real Envoy programmed as istiod programs a sidecar from the demo's rules (90/10)"
        yield DemoApp(url, f"{what}; Envoy admin at {mesh.admin_url}", on_envoy=True, per_connection=broken)


@contextmanager
def _weather_sandbox(broken: bool) -> Iterator[Sandbox]:
    from respy.rules import load_inputs
    from respy.sandbox.mesh import Sandbox, with_objects

    rules = load_inputs([str(EXAMPLES)])
    if broken:
        rules = with_objects(rules, [_rename_port(s) for s in rules.of_kind("Service") if s.name == DEMO_HOST])
    with Sandbox(rules, namespace="default", istio_1_2=broken) as mesh:
        yield mesh


def _rename_port(service: K8sObject) -> K8sObject:
    spec = dict(service.spec)
    spec["ports"] = [{**p, "name": BROKEN_PORT_NAME} if p.get("port") == DEMO_PORT else p for p in spec["ports"]]
    return replace(service, body={**service.body, "spec": spec})


__all__ = ["DEMO_WEIGHTS", "DemoApp", "WeatherApp", "demo_app", "read_request", "weather_app", "weighted_picker"]
