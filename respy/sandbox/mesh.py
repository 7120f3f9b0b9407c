"""``respy.sandbox(...)``: routing YAML programmed into a real Envoy, with a backend per version behind it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from respy._errors import UsageError
from respy.rules import RuleSet, load_inputs
from respy.sandbox.backends import Backends
from respy.sandbox.envoy import EnvoyProcess
from respy.sandbox.inventory import Inventory, Service, build_inventory, fqdn
from respy.sandbox.program import Programmed, program

DEFAULT_PORT = 80


@dataclass(frozen=True)
class Endpoint:
    """Where a Service port (or a gateway port) of the sandbox listens: ``host`` is the Host header to send."""

    service: str
    port: int
    host: str
    listener_url: str  # 127.0.0.1, needs the Host header
    direct_url: str | None  # the Service's own address (no Host header needed), where the platform allows it
    http: bool


class Sandbox:
    """A running sandbox: ``url(host, port)``, ``admin_url``, ``notes``; Envoy and the backends stop on exit."""

    def __init__(self, rules: RuleSet, *, namespace: str = "default", port: int = DEFAULT_PORT,
                 gateway: str | None = None, istio_1_2: bool = False, log_level: str = "warning") -> None:
        self.rules = rules
        self.namespace = namespace
        self.gateway = gateway
        self.istio_1_2 = istio_1_2
        self.inventory: Inventory = build_inventory(rules, namespace, port)
        self.programmed: Programmed | None = None
        self._log_level = log_level
        self._backends: Backends | None = None
        self._envoy: EnvoyProcess | None = None

    # lifecycle ---------------------------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        self._backends = Backends(self.inventory).__enter__()
        try:
            self.programmed = program(self.rules, self.inventory, namespace=self.namespace,
                                      backend=self._backends.address, gateway=self.gateway, istio_1_2=self.istio_1_2)
            self._envoy = EnvoyProcess(self.programmed.bootstrap, log_level=self._log_level).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        envoy, self._envoy = self._envoy, None
        backends, self._backends = self._backends, None
        try:
            if envoy is not None:
                envoy.stop()
        finally:
            if backends is not None:
                backends.__exit__(None, None, None)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # what it offers ------------------------------------------------------------------------------------------------

    @property
    def admin_url(self) -> str:
        return self._running().admin_url

    @property
    def config(self) -> dict[str, Any]:
        """The bootstrap Envoy was given (istiod-shaped listeners, routes and clusters)."""
        assert self.programmed is not None
        return dict(self.programmed.bootstrap)

    @property
    def notes(self) -> list[str]:
        """What the rules ask for and the sandbox did not program, and what it had to assume."""
        programmed = self.programmed.notes if self.programmed is not None else []
        return [*self.inventory.assumptions, *programmed]

    def url(self, host: str, port: int | None = None) -> str:
        """A URL that reaches ``host`` (a Service name, or a gateway host) on ``port`` through Envoy."""
        endpoint = self.endpoint(host, port)
        if endpoint.direct_url is None:
            where = f"at gateway {self.gateway} hosts are told apart by the Host header" if self.gateway else \
                f"on this platform the sandbox cannot give {endpoint.service} its own address"
            raise UsageError(f"{where}: send requests to {endpoint.listener_url} with the header "
                             f"'Host: {endpoint.host}'")
        return endpoint.direct_url

    def listener_url(self, port: int) -> str:
        """The listener for a Service (or gateway) port on 127.0.0.1: send a Host header to pick the host."""
        programmed = self._programmed()
        name = programmed.http_ports.get(port)
        if name is None:
            ports = ", ".join(str(p) for p in sorted(programmed.http_ports)) or "none"
            raise UsageError(f"the sandbox has no HTTP listener for port {port} (it has: {ports})")
        return f"http://127.0.0.1:{self._running().listener_ports[name]}"

    def endpoint(self, host: str, port: int | None = None) -> Endpoint:
        programmed = self._programmed()
        if self.gateway is not None:
            number = port if port is not None else min(programmed.http_ports)
            url = self.listener_url(number)
            return Endpoint(host, number, host, url, url if host == "*" else None, number not in programmed.tcp_ports)
        service = self._service(host)
        number = self._port_of(service, port)
        if (service.fqdn, number) in programmed.tcp_listeners:
            name = programmed.tcp_listeners[(service.fqdn, number)]
            address, bound = self._running().listener_addresses[name][0]
            url = f"http://{address}:{bound}"
            return Endpoint(service.fqdn, number, service.name, url, url, False)
        listener = programmed.http_ports[number]
        addresses = dict(self._running().listener_addresses[listener][1:])
        direct = f"http://{service.vip}:{addresses[service.vip]}" if service.vip in addresses else None
        return Endpoint(service.fqdn, number, service.name, self.listener_url(number), direct, True)

    def endpoints(self) -> list[Endpoint]:
        if self.gateway is not None:
            return [self.endpoint("*", p) for p in sorted(self._programmed().http_ports)]
        return [self.endpoint(s.fqdn, p.number) for s in self.inventory.services.values() for p in s.ports]

    # helpers -------------------------------------------------------------------------------------------------------

    def _service(self, host: str) -> Service:
        name = host.split(":")[0]
        found = self.inventory.services.get(fqdn(name, self.namespace))
        if found is None:
            known = ", ".join(sorted(s.name for s in self.inventory.services.values())) or "none"
            raise UsageError(f"the sandbox has no Service {name!r} (it has: {known})")
        return found

    @staticmethod
    def _port_of(service: Service, port: int | None) -> int:
        if port is None:
            if len(service.ports) == 1:
                return service.ports[0].number
            raise UsageError(f"{service.name} has several ports ({', '.join(str(p.number) for p in service.ports)}): "
                             "say which")
        if service.port(port) is None:
            raise UsageError(f"{service.name} has no port {port} (it has: "
                             f"{', '.join(str(p.number) for p in service.ports)})")
        return port

    def _running(self) -> EnvoyProcess:
        if self._envoy is None:
            raise UsageError("the sandbox is not running: use it as `with respy.sandbox(...) as mesh:`")
        return self._envoy

    def _programmed(self) -> Programmed:
        self._running()
        assert self.programmed is not None
        return self.programmed


def sandbox(*rules: str | os.PathLike[str], namespace: str = "default", port: int = DEFAULT_PORT,
            gateway: str | None = None) -> Sandbox:
    """Routing YAML (files or directories) programmed into a real Envoy: use as ``with respy.sandbox(...) as mesh``.

    ``namespace`` is the client's namespace (and that of objects that set none), ``port`` the Service port
    assumed for hosts the inputs name without a Service, ``gateway`` a Gateway to program instead of a sidecar.
    """
    if not rules:
        raise UsageError("respy.sandbox needs at least one file or directory of routing YAML")
    loaded = load_inputs([os.fspath(r) for r in rules], require_routing=False)
    if loaded.weights is not None:
        raise UsageError("respy.sandbox needs routing YAML, not inline weights")
    return Sandbox(loaded, namespace=namespace, port=port, gateway=gateway)


def with_objects(rules: RuleSet, objects: Sequence[Any]) -> RuleSet:
    """``rules`` with some objects replaced (same kind, namespace and name) or added."""
    keys = {(o.kind, o.namespace, o.name) for o in objects}
    kept = [o for o in rules.objects if (o.kind, o.namespace, o.name) not in keys]
    return RuleSet(objects=(*kept, *objects), weights=rules.weights, warnings=rules.warnings)
