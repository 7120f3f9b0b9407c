"""Turning one response (or one failure) into the label it is tallied under."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from respy._errors import UsageError
from respy.tally import Entry, Kind, Tally, kind_of_status

MAX_LABEL_CHARS = 1000  # labels are stored: bound them (the table cuts them further for display)


@dataclass(frozen=True)
class By:
    """What a response is tallied by: ``body``, ``status``, ``header:NAME`` or ``regex:PATTERN``."""

    mode: str
    header: str = ""
    pattern: re.Pattern[str] | None = None

    @property
    def needs_body(self) -> bool:
        return self.mode in ("body", "regex")

    def describe(self) -> str:
        if self.mode == "header":
            return f"header:{self.header}"
        if self.mode == "regex" and self.pattern is not None:
            return f"regex:{self.pattern.pattern}"
        return self.mode


def parse_by(text: str) -> By:
    if text in ("body", "status"):
        return By(mode=text)
    if text.startswith("header:") and text[len("header:") :].strip():
        return By(mode="header", header=text[len("header:") :].strip().lower())
    if text.startswith("regex:") and text[len("regex:") :]:
        try:
            pattern = re.compile(text[len("regex:") :])
        except re.error as exc:
            raise UsageError(f"--by regex: invalid pattern: {exc}") from None
        return By(mode="regex", pattern=pattern)
    raise UsageError(f"--by {text!r}: expected body, status, header:NAME or regex:PATTERN")


def clip(label: str, limit: int = MAX_LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def label_response(by: By, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[str, Kind]:
    """The label and kind of an HTTP answer. A non-2xx answer is prefixed with its status.

    By body, a redirect is labelled by where it sends the client (``301 Location: /new``): its body is empty or
    boilerplate (Envoy's is empty), and the Location tells two redirects apart."""
    kind = kind_of_status(status)
    if by.mode == "status":
        return str(status), kind
    if by.mode == "header":
        value = _header_value(headers, by.header)
        text = value if value is not None else f"(no {by.header} header)"
    elif (location := redirect_location(by, status, headers)) is not None:
        text = f"Location: {location}"
    else:
        text = body.decode("utf-8", errors="replace").strip()
        if by.mode == "regex" and by.pattern is not None:
            text = _first_group(by.pattern, text)
    if kind is not Kind.OK:
        text = f"{status} {text}".rstrip()
    return clip(text), kind


def redirect_location(by: By, status: int, headers: list[tuple[bytes, bytes]]) -> str | None:
    """The Location a redirect answer names, when answers are tallied by body."""
    return _header_value(headers, "location") if by.mode == "body" and 300 <= status < 400 else None


LABEL_CACHE = 4096  # distinct answers remembered with their label (bodies up to the cap are the keys)


class Labeller:
    """The row of ``tally`` an answer is counted in (``label_response``, then :meth:`Tally.entry`), worked out
    once per distinct answer: a load run sees the same few (status, body) pairs again and again, and one dict
    lookup is cheaper than decoding, stripping and finding the row."""

    def __init__(self, by: By, tally: Tally, limit: int = LABEL_CACHE) -> None:
        self.by = by
        self.tally = tally
        self.limit = limit
        self._known: dict[tuple[int, bytes | str | None, str | None], Entry] = {}

    def __call__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Entry:
        mode = self.by.mode
        key: tuple[int, bytes | str | None, str | None]
        if mode == "status":
            key = (status, None, None)
        elif mode == "header":
            key = (status, _header_value(headers, self.by.header), None)
        else:
            # only a redirect has a Location to read (a call per answer costs as much as the rest of this)
            key = (status, body, redirect_location(self.by, status, headers) if 300 <= status < 400 else None)
        known = self._known.get(key)
        if known is None:
            known = self.tally.entry(*label_response(self.by, status, headers, body), status)
            if len(self._known) < self.limit:
                self._known[key] = known
        return known


def _header_value(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    wanted = name.encode("latin-1", errors="replace")
    for key, value in headers:
        if key.lower() == wanted:
            return value.decode("latin-1").strip()
    return None


def _first_group(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(text)
    if match is None:
        return "(no match)"
    if match.groups():
        group = match.group(1)
        return group if group is not None else "(no match)"
    return match.group(0)


def label_error(exc: BaseException) -> str:
    """``error: <why>`` for a request that got no HTTP answer."""
    return "error: " + _why(exc)


def _why(exc: BaseException) -> str:
    import ssl  # here, for start-up: --help and --version (which import this module) do not need it

    chain = list(_causes(exc))
    for err in chain:
        if isinstance(err, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted ({err.verify_message})"
        if isinstance(err, ssl.SSLError):
            return f"TLS handshake failed ({err.reason or err})".lower().replace("tls", "TLS", 1)
        if isinstance(err, socket.gaierror):
            return "DNS lookup failed"
        if isinstance(err, ConnectionRefusedError):
            return "connection refused"
        if isinstance(err, ConnectionResetError | BrokenPipeError):
            return "connection reset"
        if isinstance(err, TimeoutError):
            return "timeout"
    names = {type(err).__name__ for err in chain}
    text = " ".join(str(err) for err in chain).lower()
    if names & {"ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException"}:
        return "timeout"
    if "name or service not known" in text or "nodename nor servname" in text or "name resolution" in text:
        return "DNS lookup failed"
    if "connection refused" in text:
        return "connection refused"
    if "reset" in text:
        return "connection reset"
    if "disconnected without sending a response" in text:
        return "connection closed before any response"
    if "peer closed connection" in text or "incomplete" in text:
        return "connection closed mid-response"
    if "ssl" in text or "certificate" in text:
        return "TLS " + _first_line(chain[-1])
    return _first_line(chain[0]) or type(chain[0]).__name__


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return clip(f"{type(err).__name__}: {text[0]}" if text else type(err).__name__, 200)


def _causes(exc: BaseException):  # type: ignore[no-untyped-def]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
