"""``respy sandbox RULES...``: the routing YAML programmed into a real Envoy on 127.0.0.1, until Ctrl-C."""

from __future__ import annotations

import argparse
import shlex
import signal
import threading
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import Any

from respy.cli.common import OneLineParser, Streams, count

DESCRIPTION = """\
Program a real Envoy on 127.0.0.1 with your routing YAML the way istiod programs a sidecar (or, with
--gateway, that gateway): a listener per Service port, a route configuration per port, the VirtualService
and HTTPRoute rules in order, clusters named outbound|<port>|<subset>|<fqdn>, and a small backend per
version behind each cluster answering "<service>: <version>" (header x-respy-version). Hosts, subsets
and pods the YAML names but does not define are assumed and listed; rules the sandbox cannot program are
listed too. It prints the listener URLs, Envoy's admin URL and commands to try, and runs until Ctrl-C.
"""

EPILOG = """\
examples:
  respy sandbox rules/                        a directory of YAML (VirtualService, DestinationRule, Service, ...)
  respy sandbox vs.yaml dr.yaml -n prod       the client (and objects without a namespace) in namespace prod
  respy sandbox vs.yaml --port 9080           hosts without a Service among the inputs get port 9080
  respy sandbox gateway.yaml --gateway bookinfo-gateway
"""


def build_parser(streams: Streams | None = None) -> OneLineParser:
    parser = OneLineParser(prog="respy sandbox", description=DESCRIPTION, epilog=EPILOG, streams=streams,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rules", nargs="+", metavar="RULES",
                        help="YAML files or directories (the same inputs as --expect), or - for stdin")
    parser.add_argument("-n", "--namespace", default="default",
                        help="the client's namespace, and that of objects that set none (default: default)")
    parser.add_argument("--port", type=count, default=80, metavar="P",
                        help="Service port assumed for hosts the rules name without a Service (default 80)")
    parser.add_argument("--gateway", metavar="NAME", help="program this Gateway instead of a sidecar")
    return parser


def main(argv: list[str], streams: Streams) -> int:
    from respy.rules import load_inputs
    from respy.sandbox.mesh import Sandbox

    options = build_parser(streams).parse_args(argv)
    rules = load_inputs(options.rules, require_routing=False)
    if rules.weights is not None:
        from respy._errors import UsageError

        raise UsageError("respy sandbox needs routing YAML, not inline weights")
    stop = threading.Event()
    with _stopping_on_sigterm(stop), Sandbox(rules, namespace=options.namespace, port=options.port,
                                             gateway=options.gateway) as mesh:
        for line in describe(mesh, options):
            print(line, file=streams.out, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print("respy sandbox: stopped Envoy and the backends", file=streams.err)
    return 0


class _stopping_on_sigterm:  # noqa: N801 - a context manager
    """SIGTERM ends the wait (Envoy and the backends are then stopped) instead of killing the process."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous: Any = None

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()

    def __exit__(self, *exc_info: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def describe(mesh: Any, options: argparse.Namespace) -> Iterator[str]:
    """What runs where, what was assumed or not programmed, and respy commands to try."""
    mode = f"gateway {options.gateway}" if options.gateway else f"a sidecar in namespace {options.namespace}"
    yield f"respy sandbox: a real Envoy programmed as istiod programs {mode} (Ctrl-C stops it)"
    yield f"  admin       {mesh.admin_url}   (/config_dump, /clusters, /stats)"
    yield "  listeners"
    endpoints = mesh.endpoints()
    for endpoint in endpoints:
        kind = "HTTP" if endpoint.http else "TCP"
        also = f"   or {endpoint.direct_url}" if endpoint.direct_url and endpoint.direct_url != endpoint.listener_url \
            else ""
        host = f" (Host: {endpoint.host})" if endpoint.http and endpoint.host != "*" else ""
        yield f"    {endpoint.service}:{endpoint.port} {kind}  {endpoint.listener_url}{host}{also}"
    if mesh.notes:
        yield "  assumed, or not programmed"
        yield from (f"    - {note}" for note in mesh.notes)
    yield "  try"
    expect = " ".join(f"--expect {shlex.quote(r)}" for r in options.rules)
    extra = (f" --namespace {options.namespace}" if options.namespace != "default" else "") + (
        f" --gateway {options.gateway}" if options.gateway else "")
    path = _gateway_path(mesh) if mesh.gateway else "/"
    for endpoint, headers in _examples(mesh, endpoints):
        # the URL as a client in the mesh writes it; --connect-to sends it to the sandbox's listener
        host = endpoint.host if endpoint.host != "*" else "example.com"
        port = f":{endpoint.port}" if endpoint.port != 80 else ""
        listener = endpoint.listener_url.removeprefix("http://")
        flags = "".join(f" -H {shlex.quote(f'{k}: {v}')}" for k, v in headers.items())
        yield (f"    respy http://{host}{port}{path} --connect-to {host}:{endpoint.port}:{listener}{flags} "
               f"{expect}{extra}")
    yield "running: Ctrl-C stops Envoy and the backends"


def _gateway_path(mesh: Any) -> str:
    """A path the gateway's first rule matches (its exact path or prefix), so the command tried is routed."""
    for vs in mesh.rules.of_kind("VirtualService"):
        for rule in vs.spec.get("http") or []:
            for match in rule.get("match") or []:
                uri = match.get("uri") or {}
                for kind in ("exact", "prefix"):
                    if isinstance(uri.get(kind), str) and uri[kind].startswith("/"):
                        return str(uri[kind])
    for route in mesh.rules.of_kind("HTTPRoute"):
        for rule in route.spec.get("rules") or []:
            for match in rule.get("matches") or []:
                value = (match.get("path") or {}).get("value")
                if isinstance(value, str) and value.startswith("/") and (match.get("path") or {}).get("type") != \
                        "RegularExpression":
                    return value
    return "/"


def _examples(mesh: Any, endpoints: list[Any]) -> Iterator[tuple[Any, Mapping[str, str]]]:
    """One command per HTTP host the rules route, and one per exact header match of its rules (at most two)."""
    routed = _routed_hosts(mesh)
    for endpoint in endpoints:
        if endpoint.http and (mesh.gateway is not None or endpoint.service in routed):
            yield endpoint, {}
            for headers in _header_matches(mesh, endpoint)[:2]:
                yield endpoint, headers


def _routed_hosts(mesh: Any) -> set[str]:
    """The Services a VirtualService names as a host, or an HTTPRoute as its parent: where --expect has an answer."""
    from respy.sandbox.inventory import fqdn

    hosts = {fqdn(str(h), vs.ns(mesh.namespace)) for vs in mesh.rules.of_kind("VirtualService")
             for h in vs.spec.get("hosts") or []}
    for route in mesh.rules.of_kind("HTTPRoute", "GRPCRoute"):
        ns = route.ns(mesh.namespace)
        hosts |= {fqdn(str(r.get("name")), str(r.get("namespace") or ns)) for r in route.spec.get("parentRefs") or []
                  if r.get("kind") == "Service"}
    return hosts


def _header_matches(mesh: Any, endpoint: Any) -> list[dict[str, str]]:
    from respy.sandbox.inventory import fqdn

    found = []
    for vs in mesh.rules.of_kind("VirtualService"):
        if endpoint.service not in {fqdn(h, vs.ns(mesh.namespace)) for h in vs.spec.get("hosts") or []}:
            continue
        for rule in vs.spec.get("http") or []:
            for match in rule.get("match") or []:
                headers = {str(k): str(v["exact"]) for k, v in (match.get("headers") or {}).items()
                           if isinstance(v, Mapping) and "exact" in v}
                if headers and headers not in found:
                    found.append(headers)
    return found
