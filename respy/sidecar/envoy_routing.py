"""Envoy's own choice for one request: listener -> filter chain -> virtual host -> route -> action.

Each step follows Envoy's source (envoyproxy/envoy, 1.3x):

- listener: the one bound to the dialled address, else the wildcard (0.0.0.0 / ::) one on that port; a
  connection redirected to a ``use_original_dst`` listener (Istio's virtualOutbound on 15001) is handed to
  the listener matching its original destination the same way (source/server/connection_handler_impl.cc,
  ``getBalancedHandlerByAddress``), and stays on the redirecting listener when none matches;
- filter chain: ``FilterChainManagerImpl::findFilterChain`` (source/common/listener_manager/
  filter_chain_manager_impl.cc) narrows stage by stage (destination port, destination IP, server name,
  transport protocol, application protocols, source): at each stage the chains naming the connection's
  value win over those that leave it empty, and when none is left the ``default_filter_chain`` serves;
- virtual host: ``RouteMatcher::findVirtualHost`` (source/common/router/config_impl.cc): the lower-cased
  Host (its port dropped with ``ignore_port_in_host_matching``) matched exactly, then suffix wildcards
  (``*.foo``, longest first), then prefix wildcards (``foo.*``), then ``*``; a wildcard must match at least
  one character;
- route: the first route of the virtual host whose match fits (``VirtualHostImpl::getRouteFromEntries``):
  ``prefix`` on the whole ``:path``, ``path`` / ``safe_regex`` / ``path_separated_prefix`` on the path
  without query, then every header and query-parameter matcher (``HeaderUtility::matchHeaders``,
  ``ConfigUtility::QueryParameterMatcher``). Regexes are RE2, as in Envoy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import re2

from respy.sidecar.dump import WILDCARD_ADDRESSES, FilterChain, Listener

Json = Mapping[str, Any]
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@dataclass(frozen=True)
class EnvoyRequest:
    """The request as Envoy's router sees it: ``path`` is the whole ``:path`` (query included)."""

    authority: str
    path: str
    method: str
    headers: Mapping[str, str]
    scheme: str
    dial_host: str
    dial_port: int
    http2: bool = False

    @classmethod
    def build(cls, url: str, headers: Mapping[str, str] | None = None, method: str = "GET",
              http2: bool = False) -> EnvoyRequest:
        parts = urlsplit(url)
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        netloc = parts.netloc.rpartition("@")[2]
        authority = lowered.get("host") or netloc
        default_port = 443 if parts.scheme == "https" else 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(authority=authority, path=path, method=method.upper(), headers=lowered,
                   scheme=parts.scheme, dial_host=(parts.hostname or "").lower(),
                   dial_port=parts.port or default_port, http2=http2)

    @property
    def path_only(self) -> str:
        return self.path.split("?", 1)[0].split("#", 1)[0]

    def query_first(self, name: str) -> str | None:
        query = self.path.partition("?")[2].partition("#")[0]
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key == name:
                return value
        return None

    def header(self, name: str) -> str | None:
        name = name.lower()
        if name in (":authority", "host"):
            return self.authority
        if name == ":path":
            return self.path
        if name == ":method":
            return self.method
        if name == ":scheme":
            return self.scheme
        return self.headers.get(name)


# --- listener and filter chain ---------------------------------------------------------------------------


def select_listener(listeners: Sequence[Listener], ip: str | None, port: int) -> tuple[Listener | None, str]:
    """The listener that gets a connection to ``ip:port``, and how it was found."""
    exact = [x for x in listeners if any(p == port and ip is not None and _same_ip(a, ip) for a, p in x.addresses)]
    if exact:
        return exact[0], f"listener {exact[0].name} ({ip}:{port})"
    wildcard = [x for x in listeners if any(p == port and a in WILDCARD_ADDRESSES for a, p in x.addresses)]
    if wildcard:
        return wildcard[0], f"listener {wildcard[0].name} (any address, port {port})"
    redirect = [x for x in listeners if x.use_original_dst]
    if redirect:
        return redirect[0], f"no listener for port {port}: the connection stays on {redirect[0].name}"
    return None, f"no listener for port {port}"


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


@dataclass(frozen=True)
class Connection:
    """What the filter chain match sees of a connection."""

    ip: str | None
    port: int
    tls: bool
    alpn: tuple[str, ...]


def connection_for(request: EnvoyRequest, ip: str | None, listener: Listener) -> Connection:
    """TLS is seen by ``tls_inspector``; plain HTTP's protocol by ``http_inspector`` (``http/1.1`` or ``h2c``)."""
    tls = request.scheme == "https"
    if tls:
        alpn: tuple[str, ...] = ("h2", "http/1.1") if request.http2 else ("http/1.1",)
    elif "envoy.filters.listener.http_inspector" in listener.listener_filters:
        alpn = ("h2c",) if request.http2 else ("http/1.1",)
    else:
        alpn = ()
    return Connection(ip=ip, port=request.dial_port, tls=tls, alpn=alpn)


def select_filter_chain(listener: Listener, connection: Connection) -> FilterChain | None:
    """``findFilterChain``: narrow stage by stage; a named value beats an empty criterion; no backtracking."""
    chains = list(listener.chains)
    stages = (_by_port, _by_destination_ip, _by_server_name, _by_transport, _by_alpn, _by_source)
    for stage in stages:
        chains = stage(chains, connection)
        if not chains:
            return listener.default_chain
    return chains[0]


def _by_port(chains: list[FilterChain], conn: Connection) -> list[FilterChain]:
    named = [c for c in chains if c.match.destination_port == conn.port]
    return named or [c for c in chains if c.match.destination_port is None]


def _by_destination_ip(chains: list[FilterChain], conn: Connection) -> list[FilterChain]:
    """The chains whose longest range containing the destination IP is the longest of all."""
    scored = []
    for chain in chains:
        lengths = [n for prefix, n in chain.match.prefix_ranges if conn.ip and _in_range(conn.ip, prefix, n)]
        if lengths:
            scored.append((max(lengths), chain))
    if scored:
        best = max(length for length, _ in scored)
        return [chain for length, chain in scored if length == best]
    return [c for c in chains if not c.match.prefix_ranges]


def _in_range(ip: str, prefix: str, length: int) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(f"{prefix}/{length}", strict=False)
    except ValueError:
        return False


def _by_server_name(chains: list[FilterChain], conn: Connection) -> list[FilterChain]:
    return [c for c in chains if not c.match.server_names]  # respy sends no SNI Envoy routes by here


def _by_transport(chains: list[FilterChain], conn: Connection) -> list[FilterChain]:
    protocol = "tls" if conn.tls else "raw_buffer"
    named = [c for c in chains if c.match.transport_protocol == protocol]
    return named or [c for c in chains if not c.match.transport_protocol]


def _by_alpn(chains: list[FilterChain], conn: Connection) -> list[FilterChain]:
    named = [c for c in chains if set(c.match.application_protocols) & set(conn.alpn)]
    return named or [c for c in chains if not c.match.application_protocols]


def _by_source(chains: list[FilterChain], conn: Connection) -> list[FilterChain]:
    return [c for c in chains if not c.match.source_constrained] or chains


# --- virtual host ----------------------------------------------------------------------------------------


def strip_port(authority: str) -> str:
    if authority.startswith("["):
        return authority[: authority.find("]") + 1] if "]" in authority else authority
    host, sep, port = authority.rpartition(":")
    return host if sep and port.isdigit() else authority


def find_virtual_host(route_config: Json, authority: str, strip_any_port: bool = False) -> Json | None:
    host = authority.lower()
    if route_config.get("ignore_port_in_host_matching") or strip_any_port:
        host = strip_port(host)
    exact: dict[str, Json] = {}
    suffixes: list[tuple[str, Json]] = []
    prefixes: list[tuple[str, Json]] = []
    default = None
    for vhost in route_config.get("virtual_hosts", []) or []:
        for domain in vhost.get("domains", []) or []:
            domain = str(domain).lower()
            if domain == "*":
                default = default or vhost
            elif domain.startswith("*"):
                suffixes.append((domain[1:], vhost))
            elif domain.endswith("*"):
                prefixes.append((domain[:-1], vhost))
            else:
                exact.setdefault(domain, vhost)
    if host in exact:
        return exact[host]
    for suffix, vhost in sorted(suffixes, key=lambda item: -len(item[0])):
        if len(suffix) < len(host) and host.endswith(suffix):
            return vhost
    for prefix, vhost in sorted(prefixes, key=lambda item: -len(item[0])):
        if len(prefix) < len(host) and host.startswith(prefix):
            return vhost
    return default


# --- route match -----------------------------------------------------------------------------------------


@dataclass
class MatchNotes:
    """Parts of a route match respy cannot evaluate from here (said, never silently assumed)."""

    items: list[str] = field(default_factory=list)


def first_route(vhost: Json, request: EnvoyRequest, notes: MatchNotes | None = None) -> tuple[int, Json] | None:
    for index, route in enumerate(vhost.get("routes", []) or []):
        if isinstance(route, Mapping) and route_matches(route.get("match", {}) or {}, request, notes):
            return index, route
    return None


def route_matches(match: Json, request: EnvoyRequest, notes: MatchNotes | None = None) -> bool:
    return (_path_matches(match, request, notes)
            and all(header_matches(h, request) for h in match.get("headers", []) or [])
            and all(query_matches(q, request) for q in match.get("query_parameters", []) or [])
            and _grpc_matches(match, request)
            and _runtime_fraction(match, notes))


def _path_matches(match: Json, request: EnvoyRequest, notes: MatchNotes | None) -> bool:
    ignore_case = match.get("case_sensitive", True) is False
    if "prefix" in match:
        return _starts_with(request.path, str(match["prefix"]), ignore_case)
    if "path" in match:
        return _equal(request.path_only, str(match["path"]), ignore_case)
    if "safe_regex" in match:
        return regex_full_match(str(match["safe_regex"].get("regex", "")), request.path_only)
    if "path_separated_prefix" in match:
        prefix = str(match["path_separated_prefix"])
        path = request.path_only
        return (_starts_with(path, prefix, ignore_case)
                and (len(path) == len(prefix) or path[len(prefix)] == "/"))
    if "connect_matcher" in match:
        return request.method == "CONNECT"
    if notes is not None:
        notes.items.append(f"a route matches on {sorted(match)} (not evaluated: taken as no match)")
    return False


def _starts_with(value: str, prefix: str, ignore_case: bool) -> bool:
    return value.lower().startswith(prefix.lower()) if ignore_case else value.startswith(prefix)


def _equal(value: str, other: str, ignore_case: bool) -> bool:
    return value.lower() == other.lower() if ignore_case else value == other


def regex_full_match(pattern: str, value: str) -> bool:
    try:
        return re2.compile(pattern, _RE2_OPTIONS).fullmatch(value) is not None
    except re2.error:
        return False  # Envoy rejects a configuration with an invalid regex: such a route is never served


def string_matches(matcher: Json, value: str) -> bool:
    """``envoy.type.matcher.v3.StringMatcher``."""
    ignore_case = bool(matcher.get("ignore_case", False))
    folded = value.lower() if ignore_case else value

    def fold(text: Any) -> str:
        return str(text).lower() if ignore_case else str(text)

    if "exact" in matcher:
        return folded == fold(matcher["exact"])
    if "prefix" in matcher:
        return folded.startswith(fold(matcher["prefix"]))
    if "suffix" in matcher:
        return folded.endswith(fold(matcher["suffix"]))
    if "contains" in matcher:
        return fold(matcher["contains"]) in folded
    if "safe_regex" in matcher:
        return regex_full_match(str(matcher["safe_regex"].get("regex", "")), value)
    return False


def header_matches(matcher: Json, request: EnvoyRequest) -> bool:
    """``HeaderUtility::HeaderData::matchesHeaders``: absent fails (unless treated as empty), then invert."""
    value = request.header(str(matcher.get("name", "")))
    invert = bool(matcher.get("invert_match", False))
    if "present_match" in matcher:
        return ((value is not None) == bool(matcher["present_match"])) != invert
    if value is None:
        if not matcher.get("treat_missing_header_as_empty", False):
            return False
        value = ""
    return _header_value_matches(matcher, value) != invert


def _header_value_matches(matcher: Json, value: str) -> bool:
    if "string_match" in matcher:
        return string_matches(matcher["string_match"], value)
    if "exact_match" in matcher:
        return value == str(matcher["exact_match"])
    if "safe_regex_match" in matcher:
        return regex_full_match(str(matcher["safe_regex_match"].get("regex", "")), value)
    if "prefix_match" in matcher:
        return value.startswith(str(matcher["prefix_match"]))
    if "suffix_match" in matcher:
        return value.endswith(str(matcher["suffix_match"]))
    if "contains_match" in matcher:
        return str(matcher["contains_match"]) in value
    if "range_match" in matcher:
        bounds = matcher["range_match"]
        try:
            number = int(value)
        except ValueError:
            return False
        return int(bounds.get("start", 0)) <= number < int(bounds.get("end", 0))
    return True  # a name alone: the header is present


def query_matches(matcher: Json, request: EnvoyRequest) -> bool:
    """``QueryParameterMatcher::matches``: the first value of the parameter; absent never matches."""
    value = request.query_first(str(matcher.get("name", "")))
    if value is None:
        return False
    if matcher.get("present_match"):
        return True
    if "string_match" in matcher:
        return string_matches(matcher["string_match"], value)
    return True


def _grpc_matches(match: Json, request: EnvoyRequest) -> bool:
    if "grpc" not in match:
        return True
    return str(request.headers.get("content-type", "")).startswith("application/grpc")


def _runtime_fraction(match: Json, notes: MatchNotes | None) -> bool:
    if "runtime_fraction" in match and notes is not None:
        notes.items.append("a route matches only a runtime fraction of requests (counted as matching)")
    return True


def fraction(percent: Json | None) -> float:
    """``envoy.type.v3.FractionalPercent`` as a probability."""
    if not isinstance(percent, Mapping):
        return 1.0
    denominators = {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}
    denominator = denominators.get(str(percent.get("denominator", "HUNDRED")), 100)
    return min(1.0, max(0.0, float(percent.get("numerator", 0)) / denominator))
