"""``-x/--proxy``: every request through an HTTP proxy (httpx's lane), as hey's ``-x`` and curl's ``-x``.

The proxy here is a real forward proxy on 127.0.0.1: it reads absolute-form requests (``GET http://host/path``),
resolves the host from its own table (as a proxy with its own DNS would), forwards each request over a new
connection and relays the answer with a ``Via`` header. The backend's host name resolves nowhere but in the
proxy's table, so an answer can only have come through it.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from support import run_cli, run_respy
from test_security import https_server, make_cert

import respy
from respy.demo.localserver import fixed

BACKEND_HOST = "weather-backend.respy-proxy-test.invalid"  # .invalid never resolves (RFC 2606)


class ForwardProxy(ThreadingHTTPServer):
    def __init__(self, routes: dict[str, int]) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.routes = routes  # "host:port" -> the port on 127.0.0.1 it stands for
        self.request_lines: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ForwardProxy

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.request_lines.append(self.requestline)
        target = urlsplit(self.path)
        port = self.server.routes.get(f"{target.hostname}:{target.port or 80}")
        if target.scheme != "http" or port is None:
            self._answer(502, b"proxy: no route\n", [])
            return
        upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            upstream.request("GET", target.path or "/", headers={"Host": self.headers.get("Host", "")})
            answer = upstream.getresponse()
            body = answer.read()
            self._answer(answer.status, body, [(k, v) for k, v in answer.getheaders()
                                               if k.lower() not in ("content-length", "connection", "date",
                                                                    "server", "transfer-encoding")])
        finally:
            upstream.close()

    def do_CONNECT(self) -> None:
        """A tunnel for https: bytes relayed both ways, untouched (the TLS is the client's and the server's)."""
        with self.server.lock:
            self.server.request_lines.append(self.requestline)
        port = self.server.routes.get(self.path)
        if port is None:
            self._answer(502, b"proxy: no route\n", [])
            return
        upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        with upstream:
            _relay(self.connection, upstream)

    def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Via", "1.1 respy-test-proxy")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    peers = {client: upstream, upstream: client}
    while True:
        ready, _, _ = select.select(list(peers), [], [], 10)
        if not ready:
            return
        for sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            peers[sock].sendall(data)


@pytest.fixture
def proxied(serve) -> Iterator[tuple[ForwardProxy, str]]:  # type: ignore[no-untyped-def]
    """A backend answering ``weather-backend: single``, and a proxy that alone knows its host name."""
    backend = serve(fixed("weather-backend: single"))
    proxy = ForwardProxy({f"{BACKEND_HOST}:5000": backend.port})
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy, f"http://{BACKEND_HOST}:5000/version"
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_every_request_goes_through_the_proxy(proxied: tuple[ForwardProxy, str]) -> None:
    proxy, url = proxied
    result = run_cli(url, "-x", proxy.url, "-n", "40", "-c", "4", "-o", "json")
    assert result.code == 0, result.err
    assert {row["label"]: row["count"] for row in result.json()["rows"]} == {"weather-backend: single": 40}
    assert proxy.request_lines.count(f"GET {url} HTTP/1.1") == 40  # absolute-form: a proxy request, each one


def test_without_the_proxy_the_host_does_not_resolve(proxied: tuple[ForwardProxy, str]) -> None:
    """The same run without ``-x``: the name resolves nowhere, so the answers above came through the proxy."""
    proxy, url = proxied
    result = run_cli(url, "-n", "4", "-c", "2", "-o", "json")
    assert [row["label"] for row in result.json()["rows"]] == ["error: DNS lookup failed"]
    assert proxy.request_lines == []


def test_https_goes_through_a_connect_tunnel(proxied: tuple[ForwardProxy, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """https through the proxy: a CONNECT tunnel, and the certificate still checked against the URL's host."""
    proxy, _ = proxied
    cert, key = make_cert(tmp_path, "backend", f"DNS:{BACKEND_HOST}")
    with https_server(cert, key) as server:
        proxy.routes[f"{BACKEND_HOST}:8443"] = server.port
        url = f"https://{BACKEND_HOST}:8443/version"
        trusted = run_cli(url, "-x", proxy.url, "--cacert", str(cert), "-n", "6", "-c", "2", "-o", "json")
        refused = run_cli(url, "-x", proxy.url, "-n", "2", "-c", "1", "-o", "json")  # not the system's CAs
    assert {row["label"]: row["count"] for row in trusted.json()["rows"]} == {
        "weather-backend: single (over TLS)": 6}
    assert f"CONNECT {BACKEND_HOST}:8443 HTTP/1.1" in proxy.request_lines
    assert all(row["label"].startswith("error: TLS certificate not trusted") for row in refused.json()["rows"]), \
        refused.json()["rows"]


def test_the_library_takes_a_proxy(proxied: tuple[ForwardProxy, str]) -> None:
    proxy, url = proxied
    measurement = respy.measure(url, proxy=proxy.url, requests=10, concurrency=2)
    assert measurement.counts == {"weather-backend: single": 10}
    assert len(proxy.request_lines) == 10


def test_a_proxy_password_is_never_printed() -> None:
    """A proxy that refuses the connection: the rows say so, and the password in ``-x`` appears nowhere."""
    finished = run_respy("http://weather-backend:5000/version", "-x", "http://user:s3cret-pw@127.0.0.1:9",
                         "-n", "3", "-c", "1")
    assert finished.code == 4, finished.err
    assert "error:" in finished.out
    assert "s3cret-pw" not in finished.out + finished.err


@pytest.mark.parametrize(("argv", "message"), [
    (["-x", "ftp://proxy:21"], "--proxy must start with http:// or https://"),
    (["-x", "http://:3128"], "--proxy has no host"),
    (["-x", "http://proxy:99999"], "--proxy has an invalid port"),
    (["-x", "http://proxy:3128", "--connect-to", "a:80:b:8080"], "--proxy and --connect-to both given"),
    (["-x", "http://proxy:3128", "--envoy-admin", "http://127.0.0.1:15000"], "--proxy with --envoy-admin"),
])
def test_a_bad_proxy_is_one_line_and_exit_2(argv: list[str], message: str) -> None:
    result = run_cli("http://weather-backend:5000/version", *argv, "-n", "1")
    assert result.code == 2
    assert message in result.err and len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_the_library_refuses_a_bad_proxy_without_repeating_it() -> None:
    with pytest.raises(respy.UsageError, match="proxy must start with http:// or https://") as caught:
        respy.measure("http://weather-backend:5000/", proxy="socks5://user:pw@proxy:1080", requests=1)
    assert "pw@" not in str(caught.value)
