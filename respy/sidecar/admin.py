"""A time-boxed client for Envoy's admin API (the istio-proxy sidecar's ``127.0.0.1:15000``).

Every call has a deadline that covers the whole exchange (connect, headers, every byte of the body:
``anyio.fail_after`` cancels a read that hangs) and a size limit, so a hung, huge or garbled admin costs at
most its time box and yields one line saying why, never an exception to the caller. Reads:
``/server_info`` (is it Envoy, which version, LIVE?), ``/config_dump?include_eds`` (listeners, routes,
clusters, endpoints with health), ``/stats?filter=...`` (per-cluster request counters).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx

from respy.sidecar.dump import ConfigDump, ConfigDumpError, parse_config_dump, socket_address

DEFAULT_ADMIN = "http://127.0.0.1:15000"
DETECT_TIMEOUT_S = 0.2  # the sidecar is on loopback: an answer takes milliseconds or never comes
CALL_TIMEOUT_S = 3.0
MAX_DUMP_BYTES = 32 * 1024 * 1024  # a big mesh's dump is tens of MB; past this, save it and use --config-dump
MAX_SMALL_BYTES = 4 * 1024 * 1024
STATS_FILTER = r"^cluster\..*\.(upstream_rq_([0-9]{3}|total)|upstream_cx_total|upstream_cx_none_healthy)$"


class AdminReadError(Exception):
    """One line saying why the admin API could not be read."""


@dataclass(frozen=True)
class ServerInfo:
    version: str
    state: str

    @property
    def short_version(self) -> str:
        """``envoy 1.40.0`` from Envoy's ``<sha>/<version>/<status>/<ssl>/<build>`` version string."""
        parts = self.version.split("/")
        return parts[1] if len(parts) > 1 else self.version


@dataclass(frozen=True)
class ClusterCounts:
    """One cluster's counters: requests by status, connections, and requests refused for no healthy host."""

    requests: int = 0
    by_status: Mapping[str, int] = field(default_factory=dict)
    connections: int = 0
    no_healthy: int = 0

    def minus(self, before: ClusterCounts) -> ClusterCounts:
        codes = {code: n - before.by_status.get(code, 0) for code, n in self.by_status.items()}
        return ClusterCounts(requests=self.requests - before.requests,
                             by_status={c: n for c, n in codes.items() if n},
                             connections=self.connections - before.connections,
                             no_healthy=self.no_healthy - before.no_healthy)

    @property
    def answered(self) -> int:
        """Requests the sidecar answered through this cluster (upstream answers and its own 503s)."""
        return sum(self.by_status.values())

    @property
    def empty(self) -> bool:
        return not (self.requests or self.connections or self.no_healthy or self.by_status)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "by_status": dict(sorted(self.by_status.items())),
                "connections": self.connections, "no_healthy_upstream": self.no_healthy}


@dataclass
class AdminClient:
    """Envoy's admin API at ``url``; each method raises ``AdminReadError`` with one line, nothing else."""

    url: str = DEFAULT_ADMIN
    timeout: float = CALL_TIMEOUT_S

    async def get(self, path: str, *, max_bytes: int = MAX_SMALL_BYTES, timeout: float | None = None) -> bytes:
        box = self.timeout if timeout is None else timeout
        started = time.monotonic()
        try:
            with anyio.fail_after(box):
                return await self._read(path, max_bytes, box)
        except TimeoutError:
            raise AdminReadError(f"{self.url}{path} did not answer within {box:g} s") from None
        except httpx.HTTPError as error:
            spent = time.monotonic() - started
            raise AdminReadError(f"{self.url}{path}: {_reason(error)} (after {spent:.2f} s)") from None

    async def _read(self, path: str, max_bytes: int, box: float) -> bytes:
        # No proxy from the environment: the admin is on this pod's loopback, never behind HTTP_PROXY.
        async with httpx.AsyncClient(timeout=box, trust_env=False) as client, \
                client.stream("GET", self.url + path) as response:
            if response.status_code != 200:
                raise AdminReadError(f"{self.url}{path} answered HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise AdminReadError(f"{self.url}{path} is {int(declared) / 1e6:.0f} MB, over respy's "
                                      f"{max_bytes / 1e6:.0f} MB limit: not read")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise AdminReadError(f"{self.url}{path} is over respy's {max_bytes / 1e6:.0f} MB limit: "
                                          "not read")
            return bytes(body)

    async def server_info(self, timeout: float | None = None) -> ServerInfo:
        body = await self.get("/server_info", timeout=timeout)
        info = _json_object(body, f"{self.url}/server_info")
        version = info.get("version")
        if not isinstance(version, str) or "state" not in info:
            raise AdminReadError(f"{self.url}/server_info is not Envoy's (no version and state)")
        return ServerInfo(version=version, state=str(info.get("state")))

    async def config_dump(self, *, include_eds: bool = True) -> ConfigDump:
        path = "/config_dump?include_eds" if include_eds else "/config_dump"
        body = await self.get(path, max_bytes=MAX_DUMP_BYTES)
        try:
            return parse_config_dump(body)
        except ConfigDumpError as error:
            raise AdminReadError(f"{self.url}{path}: {error}") from None

    async def listener_addresses(self) -> dict[str, list[tuple[str, int | None]]]:
        """The addresses each listener is bound to (``/listeners``): a port configured as 0 is the OS's choice."""
        body = await self.get("/listeners?format=json")
        statuses = _json_object(body, f"{self.url}/listeners").get("listener_statuses")
        found: dict[str, list[tuple[str, int | None]]] = {}
        for status in statuses if isinstance(statuses, list) else []:
            if isinstance(status, Mapping) and isinstance(status.get("local_address"), Mapping):
                extra = [a for a in status.get("additional_local_addresses") or [] if isinstance(a, Mapping)]
                found[str(status.get("name", ""))] = [socket_address(a) for a in [status["local_address"], *extra]]
        return found

    async def cluster_stats(self, known: Collection[str] | None = None) -> dict[str, ClusterCounts]:
        body = await self.get("/stats?" + urlencode({"filter": STATS_FILTER}))
        return parse_cluster_stats(body.decode("utf-8", errors="replace"), known)


def _reason(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.ConnectError):
        return "nothing answers there (connection refused)"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text


def _json_object(body: bytes, where: str) -> Mapping[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise AdminReadError(f"{where} did not answer JSON (is this Envoy's admin?)") from None
    if not isinstance(data, Mapping):
        raise AdminReadError(f"{where} did not answer a JSON object")
    return data


def parse_cluster_stats(text: str, known: Collection[str] | None = None) -> dict[str, ClusterCounts]:
    """``cluster.<name>.upstream_rq_<code|total>: N`` lines (Envoy's text ``/stats``) per cluster.

    Envoy also keeps ``cluster.<name>.external.upstream_rq_<code>`` (and ``.internal.``); with ``known``
    cluster names only those clusters are kept, so such copies never pass for a cluster of their own.
    """
    raw: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        found = _STAT_LINE.match(line.strip())
        if found is None:
            continue
        cluster, counter, value = found.group(1), found.group(2), int(found.group(3))
        if known is not None and cluster not in known:
            continue
        raw.setdefault(cluster, {})[counter] = value
    counts = {}
    for cluster, values in raw.items():
        codes = {k.removeprefix("upstream_rq_"): v for k, v in values.items()
                 if k.removeprefix("upstream_rq_").isdigit()}
        counts[cluster] = ClusterCounts(requests=values.get("upstream_rq_total", 0), by_status=codes,
                                        connections=values.get("upstream_cx_total", 0),
                                        no_healthy=values.get("upstream_cx_none_healthy", 0))
    return counts


_STAT_LINE = re.compile(
    r"^cluster\.(.+)\.(upstream_rq_(?:\d{3}|total)|upstream_cx_total|upstream_cx_none_healthy): (\d+)$")


def stats_delta(before: Mapping[str, ClusterCounts], after: Mapping[str, ClusterCounts]) -> dict[str, ClusterCounts]:
    """What changed during the run, per cluster (clusters that saw nothing are left out)."""
    delta = {name: counts.minus(before.get(name, ClusterCounts())) for name, counts in after.items()}
    return {name: counts for name, counts in delta.items() if not counts.empty}
