"""The request being predicted, and host-name helpers shared by the Istio and Gateway API code."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from respy._errors import RulesError, UsageError

CLUSTER_DOMAIN = "cluster.local"
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Request:
    """What the routing proxy sees: ``authority`` is the Host as sent (with ``:port`` when given)."""

    scheme: str
    authority: str
    host: str
    port: int
    path: str
    query: tuple[tuple[str, str], ...]
    method: str
    headers: Mapping[str, str]

    @classmethod
    def build(cls, url: str, headers: Mapping[str, str] | None, method: str) -> Request:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise UsageError(f"not an http(s) URL with a host: {url!r}")
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        authority = lowered.get("host") or parts.netloc.rpartition("@")[2]
        host, port = _split_authority(authority, DEFAULT_PORTS[parts.scheme])
        return cls(
            scheme=parts.scheme,
            authority=authority,
            host=host,
            port=port,
            path=parts.path or "/",
            query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
            method=method.upper(),
            headers=lowered,
        )

    @property
    def explicit_port(self) -> bool:
        return _split_port(self.authority)[1] is not None

    def query_param(self, key: str) -> str | None:
        # routing-semantics §2.5: repeated query parameters -> only the first value is considered
        for name, value in self.query:
            if name == key:
                return value
        return None


def _split_port(authority: str) -> tuple[str, str | None]:
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    host, sep, port = authority.rpartition(":")
    return (host, port) if sep and port.isdigit() else (authority, None)


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    host, port = _split_port(authority)
    if not host:
        raise UsageError(f"no host in {authority!r}")
    return host.lower().rstrip("."), int(port) if port else default_port


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def rule_host(host: str, namespace: str) -> str:
    """How istiod reads a host in a rule (routing-semantics §2.1).

    ``*`` and IPs stay; a name with a dot is taken as already qualified; a short name becomes
    ``<name>.<rule namespace>.svc.cluster.local``.
    """
    host = host.lower().rstrip(".")
    if host == "*" or "." in host or is_ip(host):
        return host
    return f"{host}.{namespace}.svc.{CLUSTER_DOMAIN}"


def request_names(host: str, client_namespace: str) -> tuple[str, ...]:
    """The names a client's DNS lookup of ``host`` can reach (Kubernetes search path, routing-semantics §7).

    ``weather-backend``, ``weather-backend.default``, ``weather-backend.default.svc`` and the FQDN all
    reach ``weather-backend.default.svc.cluster.local``.
    """
    if is_ip(host):
        return (host,)
    names = [host]
    if not host.endswith("." + CLUSTER_DOMAIN):
        names += [f"{host}.{client_namespace}.svc.{CLUSTER_DOMAIN}", f"{host}.svc.{CLUSTER_DOMAIN}",
                  f"{host}.{CLUSTER_DOMAIN}"]
    return tuple(dict.fromkeys(names))


def host_rank(pattern: str, names: tuple[str, ...]) -> tuple[int, int] | None:
    """How well a (possibly wildcard) host pattern matches any of ``names``; ``None`` when it does not.

    Envoy picks the virtual host by exact > suffix wildcard > ``*``, longest first (routing-semantics §7).
    """
    if pattern == "*":
        return (1, 0)
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return (2, len(pattern)) if any(n.endswith(suffix) and len(n) > len(suffix) for n in names) else None
    if pattern.startswith("*"):
        suffix = pattern[1:]
        return (2, len(pattern)) if any(n.endswith(suffix) for n in names) else None
    return (3, len(pattern)) if pattern in names else None


def service_fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"


def short_host(host: str) -> str:
    """``reviews.default.svc.cluster.local`` -> ``reviews``; other names unchanged."""
    suffix = f".svc.{CLUSTER_DOMAIN}"
    if host.endswith(suffix):
        return host[: -len(suffix)].partition(".")[0]
    return host


def full_match(pattern: str, value: str, where: str = "") -> bool:
    """RE2-style full match (Python ``re`` is close enough for the patterns routing rules use)."""
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error as exc:
        raise RulesError(f"{where}invalid regular expression {pattern!r}: {exc}") from None


@dataclass(frozen=True)
class Vantage:
    """Which proxy routes the request: the mesh (client sidecars) or one named gateway."""

    gateway: str | None = None

    @classmethod
    def of(cls, gateway: str | None) -> Vantage:
        if gateway is None or gateway.strip() in ("", "mesh"):
            return cls(None)
        return cls(gateway.strip())

    @property
    def is_mesh(self) -> bool:
        return self.gateway is None

    def bound_by(self, names: list[str], rule_namespace: str) -> bool:
        """Whether a rule whose ``gateways`` are ``names`` applies here (routing-semantics §2.2).

        A bare gateway name given by the user matches that name in any namespace.
        """
        if self.gateway is None:
            return "mesh" in names
        want_ns, _, want_name = self.gateway.rpartition("/")
        for name in names:
            if name == "mesh":
                continue
            ns, _, gw = name.rpartition("/")
            if gw == want_name and (not want_ns or want_ns == (ns or rule_namespace)):
                return True
        return False

    def describe(self) -> str:
        return "mesh (sidecars)" if self.gateway is None else f"gateway {self.gateway}"


def resolved_host(pattern: str, names: tuple[str, ...]) -> str:
    """The FQDN to report for a request that matched ``pattern``."""
    if pattern in names:
        return pattern
    qualified = [n for n in names if n.endswith("." + CLUSTER_DOMAIN)]
    return qualified[0] if qualified and "." not in names[0] else names[0]
