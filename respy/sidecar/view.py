"""One run's view of the sidecar: where its config came from, the programmed split, the counters around the run.

``SidecarView.open`` never raises for an unreachable, slow or garbled admin: what could not be read is one
line in ``problems`` and the rest of the run goes on. Only a ``--config-dump`` file the user named that is
missing or not a dump is an input error (exit 2).
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO, TypeVar

import anyio

from respy._errors import UsageError
from respy.sidecar.admin import (
    CALL_TIMEOUT_S,
    DEFAULT_ADMIN,
    DETECT_TIMEOUT_S,
    AdminClient,
    AdminReadError,
    ClusterCounts,
    ServerInfo,
    stats_delta,
)
from respy.sidecar.dump import ConfigDump, ConfigDumpError, parse_config_dump
from respy.sidecar.envoy_routing import EnvoyRequest
from respy.sidecar.programmed import Programmed, programmed_for, resolve_ip

T = TypeVar("T")
AUTO = "auto"
OFF = "none"


def _sync(call: Callable[[], Awaitable[T]]) -> T:
    async def run() -> T:
        return await call()

    return anyio.run(run)


@dataclass
class SidecarView:
    """The sidecar's config for one request, its counters before the run, and what could not be read."""

    origin: str = ""  # "admin http://127.0.0.1:15000", "file dump.json", "" (none)
    admin: AdminClient | None = None
    server: ServerInfo | None = None
    dump: ConfigDump | None = None
    programmed: Programmed | None = None
    problems: list[str] = field(default_factory=list)
    detected: bool = False  # found by the default probe, not named by the user
    absent: bool = False  # the default probe found no sidecar: requests likely bypass the mesh
    before: dict[str, ClusterCounts] | None = None
    counts: dict[str, ClusterCounts] | None = None
    request_authority: str = ""

    @classmethod
    def open(cls, *, admin: str | None, config_dump: str | None, url: str, headers: Mapping[str, str],
             method: str = "GET", http2: bool = False, stdin: TextIO | None = None,
             stats: bool = True, route_config: str | None = None,
             dial: tuple[str, int] | None = None) -> SidecarView:
        """``admin``: a URL, ``none``, or None / ``auto`` (probe 127.0.0.1:15000 for 200 ms); ``stats``: read
        the per-cluster counters now, to compare after the run (``finish``); ``dial``: where the connection
        really goes when that is not the URL's host and port (``--connect-to``)."""
        request = EnvoyRequest.build(url, headers, method, http2=http2)
        if dial is not None:
            request = replace(request, dial_host=dial[0].strip("[]").lower(), dial_port=dial[1])
        view = cls(request_authority=request.authority)
        if config_dump is not None:
            view.dump = _read_dump_file(config_dump, stdin or sys.stdin)
            view.origin = "stdin" if config_dump == "-" else f"file {config_dump}"
        elif admin is not None and admin.lower() == OFF:
            return view
        elif (admin is None or admin.lower() == AUTO) and _loopback(request.dial_host):
            return view  # a sidecar does not capture loopback traffic: its config says nothing about this request
        else:
            view._connect(admin, stats)
        if view.dump is not None:
            view._programme(request, route_config)
        return view

    def _connect(self, admin: str | None, stats: bool) -> None:
        auto = admin is None or admin.lower() == AUTO
        client = AdminClient(DEFAULT_ADMIN if auto else admin.rstrip("/"))  # type: ignore[union-attr]
        try:
            self.server = _sync(lambda: client.server_info(timeout=DETECT_TIMEOUT_S if auto else CALL_TIMEOUT_S))
        except AdminReadError as error:
            if auto:
                # Outside a pod no sidecar is expected: say nothing. In a pod, none means the mesh is bypassed.
                self.absent = in_a_pod()
                if self.absent:
                    self.problems.append(f"no sidecar answered on {DEFAULT_ADMIN} ({error})")
            else:
                self.problems.append(f"sidecar admin not read: {error}")
            return
        self.admin, self.detected, self.origin = client, auto, f"admin {client.url}"
        try:
            self.dump = _sync(client.config_dump)
        except AdminReadError as error:
            self.problems.append(f"sidecar config not read: {error}")
            return
        if any(0 in listener.ports() for listener in self.dump.listeners):
            self._bind_ports(client)
        if stats:
            self.before = self._stats()

    def _bind_ports(self, client: AdminClient) -> None:
        """A listener configured on port 0 (a test's or ``respy sandbox``'s Envoy) listens where the OS put it."""
        assert self.dump is not None
        try:
            self.dump.bound(_sync(client.listener_addresses))
        except AdminReadError as error:
            self.problems.append(f"sidecar listener ports not read: {error}")

    def _programme(self, request: EnvoyRequest, route_config: str | None) -> None:
        assert self.dump is not None
        self.programmed = programmed_for(self.dump, request, resolve_ip(request.dial_host), route_config=route_config)

    def _stats(self) -> dict[str, ClusterCounts] | None:
        if self.admin is None:
            return None
        try:
            known = set(self.dump.clusters) if self.dump is not None and self.dump.clusters else None
            return _sync(lambda: self.admin.cluster_stats(known))  # type: ignore[union-attr]
        except AdminReadError as error:
            self.problems.append(f"sidecar counters not read: {error}")
            return None

    def finish(self) -> None:
        """Read the counters again after the run (once): what the sidecar itself routed, per cluster."""
        if self.before is None or self.counts is not None:
            return
        after = self._stats()
        if after is not None:
            self.counts = stats_delta(self.before, after)

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin or None,
            "envoy": {"version": self.server.short_version, "state": self.server.state} if self.server else None,
            "problems": list(self.problems),
        }

    def sidecar_counts(self) -> dict[str, Any] | None:
        if self.counts is None:
            return None
        return {name: counts.to_dict() for name, counts in sorted(self.counts.items())}


def in_a_pod() -> bool:
    """Kubernetes sets ``KUBERNETES_SERVICE_HOST`` in every container it starts."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_dump_file(path: str, stdin: TextIO) -> ConfigDump:
    try:
        text = stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise UsageError(f"--config-dump: cannot read {path!r} ({error.strerror or error})") from None
    try:
        return parse_config_dump(text)
    except ConfigDumpError as error:
        where = "stdin" if path == "-" else path
        raise UsageError(f"--config-dump {where}: {error}") from None
