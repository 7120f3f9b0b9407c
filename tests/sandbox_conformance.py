"""Shared by the conformance tests: send one request shape through the sandbox's real Envoy and name the outcomes.

An answer is named the way respy names declared outcomes: a backend's ``<service>: <version>`` body is matched
to the destination whose name or identifiers hold the service or the version; a status that is not 200 to the
declared status outcome with that status.
"""

from __future__ import annotations

import http.client
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from scipy import stats

from respy.rules import RuleSet
from respy.rules.expectation import Expectation, Outcome
from respy.sandbox.mesh import Sandbox

ALPHA = 0.001  # per weighted-split case; with ~25 such cases the run's false-failure rate is about 2.5 %
SINGLE_REQUESTS = 40  # a single outcome must be every one of them
SPLIT_REQUESTS = 1000
WORKERS = 40


@dataclass(frozen=True)
class Shape:
    """One request as respy resolves it: URL, headers, method, client namespace and vantage point."""

    url: str
    headers: Mapping[str, str]
    method: str = "GET"
    namespace: str = "default"
    gateway: str | None = None

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)


@contextmanager
def running(rules: RuleSet, shape: Shape) -> Iterator[Sandbox]:
    with Sandbox(rules, namespace=shape.namespace, port=shape.port, gateway=shape.gateway) as mesh:
        yield mesh


def send(mesh: Sandbox, shape: Shape, count: int) -> Counter[tuple[int, str]]:
    """``count`` requests through Envoy: (status, body) counts. Redirects are answers, not followed. Where a
    tcp_proxy picks per connection, each request gets its own connection (one draw each)."""
    parts = urlsplit(shape.url)
    ports = sorted(mesh.programmed.http_ports) if mesh.programmed else []
    port = shape.port if shape.port in ports else (ports[0] if len(ports) == 1 else shape.port)
    target = mesh.listener_url(port) + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Host": parts.netloc.rpartition("@")[2], **shape.headers}
    per_connection = mesh.programmed is not None and port in mesh.programmed.tcp_ports
    if per_connection:
        return Counter(_pool_map(lambda _: _one_connection(target, shape.method, headers), count))
    limits = httpx.Limits(max_connections=WORKERS)
    with httpx.Client(timeout=30, follow_redirects=False, trust_env=False, limits=limits) as client:
        def one(_: int) -> tuple[int, str]:
            answer = client.request(shape.method, target, headers=headers)
            return answer.status_code, answer.text

        return Counter(_pool_map(one, count))


def _pool_map(one: Callable[[int], tuple[int, str]], count: int) -> list[tuple[int, str]]:
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, range(count)))


def _one_connection(target: str, method: str, headers: Mapping[str, str]) -> tuple[int, str]:
    """One request on a connection of its own. A shared httpx client with keep-alive off closes pooled
    connections from one thread while another still reads them (``[Errno 9] Bad file descriptor`` in CI), so
    a tcp_proxy draw gets a plain ``http.client`` connection owned by one thread."""
    parts = urlsplit(target)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, path, headers=dict(headers))
        answer = connection.getresponse()
        return answer.status, answer.read().decode("utf-8", "replace")
    finally:
        connection.close()


def name_answer(status: int, body: str, expectation: Expectation) -> str:
    if status != 200 or ": " not in body:
        by_status = [o for o in expectation.outcomes if o.status == status]
        return by_status[0].name if by_status else f"HTTP {status} (not declared): {body[:60]!r}"
    service, _, version = body.partition(": ")
    destinations = expectation.destinations
    named = [o for o in destinations if service in (o.name, *o.identifiers)]
    if len(named) > 1:
        named = [o for o in named if version in (o.name, *o.identifiers)] or named
    if not named:
        named = [o for o in destinations if version in (o.name, *o.identifiers)]
    return named[0].name if len(named) == 1 else f"undeclared answer {body!r}"


def tally(answers: Counter[tuple[int, str]], expectation: Expectation) -> Counter[str]:
    named: Counter[str] = Counter()
    for (status, body), count in answers.items():
        named[name_answer(status, body, expectation)] += count
    return named


def disagreement(observed: Counter[str], expectation: Expectation) -> str | None:
    """Why the observed counts do not fit the expectation; None when they agree."""
    total = sum(observed.values())
    declared = {o.name: o.probability for o in expectation.outcomes}
    stray = {name: n for name, n in observed.items() if declared.get(name, 0.0) == 0.0}
    if stray:
        return f"answers from outcomes declared impossible: {dict(stray)} (declared {declared})"
    live = [o for o in expectation.outcomes if o.probability > 0]
    if len(live) == 1:
        return None if observed[live[0].name] == total else f"observed {dict(observed)}, declared {declared}"
    return _chi_square(observed, live, total)


def _chi_square(observed: Counter[str], live: list[Outcome], total: int) -> str | None:
    counts = [observed[o.name] for o in live]
    expected = [o.probability * total for o in live]
    result = stats.chisquare(counts, expected)
    if result.pvalue < ALPHA:
        shares = {o.name: round(observed[o.name] / total, 3) for o in live}
        return f"chi-square p = {result.pvalue:.2g} < {ALPHA}: observed {shares}, declared " \
               f"{ {o.name: round(o.probability, 3) for o in live} }"
    return None


def request_count(expectation: Expectation) -> int:
    return SINGLE_REQUESTS if sum(o.probability > 0 for o in expectation.outcomes) == 1 else SPLIT_REQUESTS
