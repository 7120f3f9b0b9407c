"""Reading istiod's names back: cluster names into destinations, route metadata into the rule behind it.

istiod names an outbound cluster ``outbound|<port>|<subset>|<host>`` (``model.BuildSubsetKey``,
pilot/pkg/model/service.go; the DNS-SRV form ``outbound_.<port>_.<subset>_.<host>`` is parsed the same way
by ``ParseSubsetKey``), and stamps every route it builds from a config with
``metadata.filter_metadata.istio.config = /apis/<group>/<version>/namespaces/<ns>/<kebab-kind>/<name>``
(``util.AddConfigInfoMetadata``, pilot/pkg/networking/util/util.go).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# istiod's special clusters (pilot/pkg/networking/util/util.go)
PASSTHROUGH = "PassthroughCluster"
BLACKHOLE = "BlackHoleCluster"
KIND_NAMES = {"virtual-service": "VirtualService", "http-route": "HTTPRoute", "grpc-route": "GRPCRoute",
              "tcp-route": "TCPRoute", "tls-route": "TLSRoute"}


@dataclass(frozen=True)
class Destination:
    """Where an Istio cluster sends traffic: ``host`` (FQDN), ``subset`` ('' for all endpoints), ``port``."""

    direction: str
    port: int | None
    subset: str
    host: str

    @property
    def short_host(self) -> str:
        return short_host(self.host)

    def describe(self) -> str:
        where = self.host + (f":{self.port}" if self.port else "")
        return f"{where} subset {self.subset}" if self.subset else where


def short_host(host: str) -> str:
    """``weather-backend.default.svc.cluster.local`` -> ``weather-backend``; other names unchanged."""
    suffix = ".svc.cluster.local"
    return host[: -len(suffix)].partition(".")[0] if host.endswith(suffix) else host


def parse_cluster_name(name: str) -> Destination | None:
    """``outbound|5000|single|weather-backend.default.svc.cluster.local`` -> its parts; None if not istiod's."""
    separator = "_." if name.startswith(("outbound_.", "inbound_.")) else "|"
    parts = name.split(separator, 3)
    if len(parts) != 4 or parts[0] not in ("outbound", "inbound", "inbound-vip"):
        return None
    direction, port, subset, host = parts
    return Destination(direction=direction, port=int(port) if port.isdigit() else None, subset=subset, host=host)


@dataclass(frozen=True)
class ConfigRef:
    """The Istio config a route came from, as istiod recorded it."""

    kind: str
    namespace: str
    name: str
    path: str

    def describe(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def istioctl(self) -> str:
        """The way ``istioctl proxy-config routes`` prints it (``renderConfig`` in its route.go)."""
        if self.path.startswith("/apis/networking.istio.io/"):
            return f"{self.name}.{self.namespace}"
        return "<unknown>"


def route_source(route: Mapping[str, Any]) -> ConfigRef | None:
    """The config behind an Envoy route, from ``metadata.filter_metadata.istio.config``."""
    metadata = route.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    istio = metadata.get("filter_metadata", {}).get("istio", {}) if isinstance(metadata.get("filter_metadata"),
                                                                              Mapping) else {}
    path = istio.get("config") if isinstance(istio, Mapping) else None
    if not isinstance(path, str) or not path:
        return None
    pieces = path.split("/")
    # "", "apis", group, version, "namespaces", ns, kind, name
    if len(pieces) != 8 or pieces[1] != "apis" or pieces[4] != "namespaces":
        return ConfigRef(kind="config", namespace="", name=path, path=path)
    return ConfigRef(kind=KIND_NAMES.get(pieces[6], pieces[6]), namespace=pieces[5], name=pieces[7], path=path)
