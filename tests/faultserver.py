"""A fault-injecting TCP server on 127.0.0.1 for the failure-mode tests (raw sockets, no HTTP library).

``FaultServer(behaviour)`` accepts connections in a thread and runs ``behaviour(server, conn, index)`` for each
one in its own thread; the helpers below read a request head and answer, reset, stall or trickle. Everything is
real TCP: a reset is a real RST (SO_LINGER 0, then close), a stalled server really holds the socket open.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable

Behaviour = Callable[["FaultServer", socket.socket, int], None]

HEAD_LIMIT = 64 * 1024


class FaultServer:
    """``with FaultServer(behaviour) as server: server.url``; every connection runs ``behaviour`` in a thread."""

    def __init__(self, behaviour: Behaviour, *, backlog: int = 128) -> None:
        self.behaviour = behaviour
        self.listener: socket.socket | None = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self.port: int = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = 0
        self.errors: list[BaseException] = []  # unexpected exceptions inside behaviours, for the tests to check
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept_loop, name="fault-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def count_request(self) -> int:
        """Count one request read; returns how many were read before it (0 for the first)."""
        with self.lock:
            self.requests += 1
            return self.requests - 1

    def close_listener(self) -> None:
        """Stop accepting: new connections to the port are refused from now on."""
        with self.lock:
            listener, self.listener = self.listener, None
        if listener is not None:
            # shutdown first: a plain close() is deferred while the accept thread polls the socket, and in that
            # window the kernel still completes handshakes, then resets them (a reset, not a refusal)
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def stop(self) -> None:
        self.stopping.set()
        self.close_listener()
        with self.lock:
            conns, self._open = list(self._open), []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._thread.join(5)

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            listener = self.listener
            if listener is None:
                return
            try:
                listener.settimeout(0.1)  # inside the try: stop() may close the listener at any moment
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed
                return
            conn.settimeout(None)
            with self.lock:
                index = self.connections
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn, index), daemon=True).start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        try:
            self.behaviour(self, conn, index)
        except OSError:
            pass  # the client went away: that is what these servers provoke
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                conn.close()


def read_head(conn: socket.socket) -> bytes | None:
    """The request head up to the blank line, or None when the client closed first. Skips a small body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
        if len(data) > HEAD_LIMIT:
            return None
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    while len(rest) < length:
        chunk = conn.recv(4096)
        if not chunk:
            break
        rest += chunk
    return head


def response_head(status: int = 200, headers: dict[str, str] | None = None, version: str = "HTTP/1.1") -> bytes:
    lines = [f"{version} {status} X"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def reply(conn: socket.socket, body: bytes, status: int = 200, *, close: bool = False) -> None:
    headers = {"Content-Length": str(len(body))}
    if close:
        headers["Connection"] = "close"
    conn.sendall(response_head(status, headers) + body)


def reset(conn: socket.socket) -> None:
    """Abort the connection with a TCP RST (SO_LINGER on with a zero timeout, then close)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def serve_each(answer: Callable[[FaultServer, socket.socket, int], bool]) -> Behaviour:
    """A keep-alive loop: read a head, count it, call ``answer(server, conn, n)``; it returns False to stop."""

    def behaviour(server: FaultServer, conn: socket.socket, index: int) -> None:
        while not server.stopping.is_set():
            if read_head(conn) is None:
                return
            if not answer(server, conn, server.count_request()):
                return

    return behaviour


# ---------------------------------------------------------------------------------------------------------------
# Hostile answers: malformed framing, endless streams, huge bodies (issue 15).

# Each is a complete answer on the wire that llhttp rejects (RFC 9112 §6-7: chunk sizes are 1*HEXDIG,
# Content-Length is 1*DIGIT, a field name is a token followed directly by ":", no CTLs in field values,
# Transfer-Encoding with Content-Length is a smuggling vector that a client must not guess at).
MALFORMED_ANSWERS: dict[str, bytes] = {
    "negative chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    "hex-prefixed chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    "underscore in chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0_5\r\nhello\r\n0\r\n\r\n",
    "overflowing chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"f" * 40 + b"\r\nhello\r\n0\r\n\r\n",
    "negative Content-Length": b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello",
    "+5 Content-Length": b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    "Content-Length with Transfer-Encoding": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "NUL in a header": b"HTTP/1.1 200 OK\r\nX-Version: v\x001\r\nContent-Length: 5\r\n\r\nhello",
    "bare CR in a header": b"HTTP/1.1 200 OK\r\nX-Version: v\r1\r\nContent-Length: 5\r\n\r\nhello",
    "space before the colon": b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
    "HTTP/0.9-style answer": b"weather-backend: single\n",
}


def answer_raw(data: bytes) -> Behaviour:
    """Answer every request with ``data`` as it is, then close (a malformed answer leaves nothing to reuse)."""

    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        conn.sendall(data)
        return False

    return serve_each(answer)


def stream_forever(head: bytes, piece: bytes) -> Behaviour:
    """Send ``head``, then ``piece`` again and again as fast as the client reads, until it goes away."""

    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        conn.sendall(head)
        while not server.stopping.is_set():
            conn.sendall(piece)
        return False

    return serve_each(answer)


def huge_body(size: int, piece_size: int = 1 << 20) -> Behaviour:
    """A 200 with a Content-Length of ``size`` and that many bytes, sent as fast as the client reads."""
    head = response_head(200, {"Content-Length": str(size)})
    piece = b"x" * piece_size

    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        conn.sendall(head)
        left = size
        while left > 0 and not server.stopping.is_set():
            conn.sendall(piece[: min(left, piece_size)])
            left -= piece_size
        return True

    return serve_each(answer)
