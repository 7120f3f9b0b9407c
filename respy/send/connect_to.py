"""curl's ``--connect-to HOST:PORT:ADDR:PORT2``: send the request (and route it) as ``HOST:PORT``, dial ``ADDR:PORT2``.

To try a check from outside the mesh (a ``kubectl port-forward``, a local stand-in server) the request keeps the
URL, Host header and TLS server name of ``HOST:PORT`` while the TCP connection goes to ``ADDR:PORT2``. An empty
HOST or PORT matches any (as in curl); an empty ADDR or PORT2 keeps the URL's.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from respy._errors import UsageError

PORT_FORWARD_NOTE = ("--connect-to: requests are sent and routed as the URL says, connections go {dial}; a kubectl "
                     "port-forward reaches one pod and bypasses the mesh's routing, so the split seen through one "
                     "is not the mesh's")


@dataclass(frozen=True)
class ConnectTo:
    host: str  # "" = any
    port: int | None  # None = any
    addr: str  # "" = the URL's host
    addr_port: int | None  # None = the URL's port

    @classmethod
    def parse(cls, value: str) -> ConnectTo:
        parts = _split(value)
        if len(parts) != 4:
            raise UsageError(f"--connect-to {value!r}: expected HOST:PORT:ADDR:PORT2 (e.g. weather-backend:5000:"
                             "127.0.0.1:8080; [::1] for an IPv6 address)")
        host, port, addr, addr_port = parts
        return cls(host.lower(), _port(port, value), addr, _port(addr_port, value))

    def describe(self) -> str:
        """``HOST:PORT -> ADDR:PORT2`` (``*`` for an empty part)."""
        return f"{self.host or '*'}:{self.port or '*'} -> {self.addr or '*'}:{self.addr_port or '*'}"

    def applies(self, url: httpx.URL) -> bool:
        return self.matches(url.host, _url_port(url))

    def dial(self, url: httpx.URL) -> httpx.URL:
        """Where the connection goes for ``url``."""
        host, port = self.address(url.host, _url_port(url))
        return url.copy_with(host=host, port=port)

    def matches(self, host: str, port: int) -> bool:
        """Whether a request to ``host:port`` is dialled elsewhere."""
        return (not self.host or self.host == host.lower()) and (self.port is None or self.port == port)

    def address(self, host: str, port: int) -> tuple[str, int]:
        """Where a connection for ``host:port`` goes (whether or not the rule matches: see ``matches``)."""
        return self.addr or host, self.addr_port or port


def connect_request(request: httpx.Request, rule: ConnectTo | None) -> httpx.Request:
    """``request`` dialling ``rule``'s address, with the Host header and TLS server name of its own URL."""
    if rule is None or not rule.applies(request.url):
        return request
    headers = httpx.Headers(request.headers)
    headers.setdefault("Host", request.headers.get("host") or request.url.netloc.decode("ascii"))
    extensions = {**request.extensions, "sni_hostname": request.url.host}
    return httpx.Request(request.method, rule.dial(request.url), headers=headers, content=request.content,
                         extensions=extensions)


def _url_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _split(value: str) -> list[str]:
    """Split on ':' outside [brackets] (IPv6 addresses)."""
    parts, current, depth = [], "", 0
    for char in value:
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += char == "["
        depth -= char == "]"
        current += char
    parts.append(current)
    return [p[1:-1] if p.startswith("[") and p.endswith("]") else p for p in parts]


def _port(text: str, value: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"--connect-to {value!r}: {text!r} is not a port number")
    return int(text)
