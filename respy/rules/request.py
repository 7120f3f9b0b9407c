"""The request being predicted, and host-name helpers shared by the Istio and Gateway API code."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import re2

from respy._errors import RulesError, UsageError
from respy.rules.semantics import CLUSTER_DOMAIN

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Request:
    """What the routing proxy sees: ``authority`` is the Host as sent (with ``:port`` when given).

    ``port`` is the port dialled (the URL's, or the scheme's default), never the Host header's: the proxy
    picks the listener, and so the route table, by the destination port of the connection.
    """

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
        host, _ = _split_authority(authority, DEFAULT_PORTS[parts.scheme])
        netloc = parts.netloc.rpartition("@")[2]
        port = _dialled_port(netloc, DEFAULT_PORTS[parts.scheme])
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


def _dialled_port(netloc: str, default_port: int) -> int:
    port = _split_port(netloc)[1]
    return int(port) if port else default_port


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    host, port = _split_port(authority)
    if not host:
        raise UsageError(f"no host in {authority!r}")
    return host.lower().rstrip("."), int(port) if port else default_port


def full_match(pattern: str, value: str, where: str = "") -> bool:
    """An RE2 full match, as Envoy matches (``safe_regex``) and Istio validates (Go ``regexp``, RE2 syntax).

    google-re2 refuses what RE2 refuses (``(?!...)``, backreferences) and accepts RE2's inline flags (``(?i)``).
    """
    try:
        compiled = _compiled(pattern)
    except re2.error as exc:
        raise RulesError(f"{where}invalid regular expression {pattern!r} (RE2, as Envoy and Istio use): "
                         f"{_re2_message(exc)}") from None
    return compiled.fullmatch(value) is not None


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print each refused pattern on stderr
    return re2.compile(pattern, options)


def _re2_message(exc: Exception) -> str:
    message = exc.args[0] if exc.args else str(exc)
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


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
