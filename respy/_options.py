"""The one validation of what a user gives respy: URL, method, headers, numbers, ``--by``, ``--map``.

The library (``respy.measure(...)``), the command line (argparse ``type=`` functions) and ``respy merge``
all call these, so a value is accepted or refused the same way, with the same one-line ``UsageError``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

from respy._errors import UsageError
from respy.send.classify import By
from respy.send.classify import parse_by as _parse_by

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

# --- URL, method, headers ------------------------------------------------------------------------------


def check_url(url: object) -> str:
    if not isinstance(url, str):
        raise UsageError(f"the URL must be a string, not {type(url).__name__}")
    if problem := _http_url_problem(url):
        raise UsageError(f"URL {url!r} {problem}")
    return url


def check_proxy(proxy: object, name: str = "proxy") -> str:
    """An HTTP proxy's URL (``http://[user:password@]host:port``; ``https://`` for TLS to the proxy itself).
    The messages never repeat the value: a proxy URL may carry a password."""
    if not isinstance(proxy, str):
        raise UsageError(f"{name} must be a URL string, not {type(proxy).__name__}")
    if problem := _http_url_problem(proxy):
        example = "" if problem.endswith("port") else ", e.g. http://proxy:3128"
        raise UsageError(f"{name} {problem}{example}")
    return proxy


def _http_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as an http(s) URL, as a predicate ("has no host"), or None."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "has an invalid port"
    return None


def check_method(method: object) -> str:
    if not isinstance(method, str) or not method.strip() or any(c.isspace() for c in method.strip()):
        raise UsageError(f"method {method!r} must be one word, e.g. 'GET' or 'POST'")
    return method.strip().upper()


def header_pairs(headers: Headers | None) -> tuple[tuple[str, str], ...]:
    """A mapping or (name, value) pairs of strings, checked; names and values stripped."""
    if headers is None:
        return ()
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    checked = []
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(part, str) for part in pair)):
            raise UsageError(f"headers must be a mapping or (name, value) pairs of strings, not {pair!r}")
        checked.append(_header(*pair))
    return tuple(checked)


def _header(name: str, value: str) -> tuple[str, str]:
    if not name.strip() or any(c.isspace() or c == ":" for c in name.strip()):
        raise UsageError(f"header name {name!r} is not valid")
    if "\r" in value or "\n" in value:
        raise UsageError(f"the value of header {name!r} contains a line break")
    return name.strip(), value.strip()


def parse_header(text: str) -> tuple[str, str]:
    """``-H 'Name: value'``."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
        raise UsageError(f"header {text!r} must look like 'Name: value'")
    return _header(name, value)


def readable_file(path: str | os.PathLike[str], what: str) -> str:
    text = os.fspath(path)
    if not Path(text).is_file():
        raise UsageError(f"{what}: cannot read file {text!r}")
    return text


# --- numbers -------------------------------------------------------------------------------------------


def _named(name: str, problem: str) -> str:
    return f"{name} {problem}" if name else problem


def whole(value: object, name: str = "", *, least: int = 1) -> int:
    """A whole number of at least ``least`` (1: a count; 0: ``--grace``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(_named(name, f"must be a whole number, not {value!r}"))
    if value < least:
        raise UsageError(_named(name, f"must be at least {least}, got {value}"))
    return value


def positive(value: object, name: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        raise UsageError(_named(name, f"must be a positive number, not {value!r}"))
    return float(value)


def count_text(text: str, least: int = 1) -> int:
    """A count written on the command line (``-n 1000``)."""
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a whole number") from None
    return whole(value, least=least)


def positive_text(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise UsageError(f"must be a positive number, got {text}")
    return value


def probability_text(text: str) -> float:
    value = positive_text(text)
    if value >= 1:
        raise UsageError(f"must be between 0 and 1, got {text}")
    return value


DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_text(text: str) -> float:
    """``30``, ``30s``, ``500ms``, ``2m`` or ``1h`` as seconds."""
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            return positive_text(text[: -len(suffix)]) * DURATION_UNITS[suffix]
    return positive_text(text)


SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
              "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4, "tb": 1000**4, "tib": 1024**4}


def size_text(text: str) -> int:
    """``65536``, ``64KiB``, ``64MiB``, ``1GB``... as bytes (at least 1)."""
    stripped = text.strip().lower().replace(" ", "")
    number = stripped.rstrip("bgikmt")
    try:
        value = float(number) * SIZE_UNITS[stripped[len(number):]]
    except (ValueError, KeyError):
        raise UsageError(f"{text!r} is not a size (e.g. 65536, 64KiB, 64MiB, 1GB)") from None
    if not 1 <= value < math.inf:
        raise UsageError(f"must be at least 1 byte, got {text}")
    return int(value)


def tolerance_text(text: str) -> float:
    """``0.05``, ``5%`` or ``5pp`` as a fraction."""
    stripped = text.strip().lower()
    for suffix in ("%", "pp"):
        if stripped.endswith(suffix):
            return probability_text(str(float(stripped[: -len(suffix)]) / 100))
    return probability_text(stripped)


# --- what answers are tallied by, and which destination a label is -------------------------------------


def parse_by(by: object, *, keyword: bool = False) -> By:
    """``body``, ``status``, ``header:NAME`` or ``regex:PATTERN``; errors say ``by=`` for the ``keyword``
    argument of a Python call, ``--by`` otherwise."""
    if not isinstance(by, str):
        raise UsageError(f"by must be a string such as 'body', 'status', 'header:NAME' or 'regex:PATTERN', not {by!r}")
    try:
        return _parse_by(by)
    except UsageError as exc:
        if not keyword:
            raise
        raise UsageError(str(exc).replace("--by ", "by=", 1)) from None


def parse_maps(values: Sequence[str]) -> dict[str, str]:
    """``--map LABEL=DEST``: the label may itself contain '=' (the last one separates)."""
    mapping: dict[str, str] = {}
    for value in values:
        label, sep, dest = value.rpartition("=")
        if not sep or not label or not dest:
            raise UsageError(f"--map {value!r} must look like LABEL=DESTINATION")
        mapping[label] = dest
    return mapping


def check_mapping(mapping: Mapping[str, str], destinations: Collection[str]) -> dict[str, str]:
    """Every mapped destination must be a declared one: a typo is an error, never silently dropped."""
    for label, dest in mapping.items():
        if dest not in destinations:
            raise UsageError(f"--map {label}={dest}: no declared destination is called {dest!r} "
                             f"(the rules declare {', '.join(sorted(destinations))})")
    return dict(mapping)


# --- one measurement's options (the library's measure / assert_split and the pytest fixture) ----------


class MeasureKwargs(TypedDict, total=False):
    """The keyword arguments of ``respy.measure`` (and of ``assert_split``, ``measure_async``, the fixture)."""

    requests: int | None
    concurrency: int
    timeout: float
    headers: Headers | None
    method: str
    by: str
    data: bytes | str | None
    http2: bool
    verify: bool
    cacert: str | os.PathLike[str] | None
    keepalive: bool
    rate: float | None
    duration: float | None
    proxy: str | None


@dataclass(frozen=True)
class MeasureOptions:
    """``MeasureKwargs`` with the ``DEFAULTS`` filled in, checked: what one measurement sends and how much."""

    requests: int | None
    concurrency: int
    timeout: float
    headers: tuple[tuple[str, str], ...]
    method: str
    by: By
    data: bytes | None
    http2: bool
    verify: bool
    cacert: str | None
    keepalive: bool
    rate: float | None
    duration: float | None
    proxy: str | None

    @classmethod
    def checked(cls, options: MeasureKwargs) -> MeasureOptions:
        """The options, each checked; ``UsageError`` names the bad one. An unknown keyword is a TypeError,
        as for any Python function."""
        unknown = set(options) - set(MeasureKwargs.__annotations__)
        if unknown:
            raise TypeError(f"unexpected keyword argument {sorted(unknown)[0]!r}")
        given: dict[str, Any] = {**DEFAULTS, **options}
        data = given["data"]
        requests, duration, rate = given["requests"], given["duration"], given["rate"]
        return cls(
            requests=_requests(requests, duration),
            concurrency=whole(given["concurrency"], "concurrency"),
            timeout=positive(given["timeout"], "timeout"),
            headers=header_pairs(given["headers"]),
            method=check_method(given["method"]),
            by=parse_by(given["by"], keyword=True),
            data=data.encode() if isinstance(data, str) else data,
            http2=bool(given["http2"]),
            verify=bool(given["verify"]),
            cacert=None if given["cacert"] is None else readable_file(given["cacert"], "cacert"),
            keepalive=bool(given["keepalive"]),
            rate=None if rate is None else positive(rate, "rate"),
            duration=None if duration is None else positive(duration, "duration"),
            proxy=None if given["proxy"] is None else check_proxy(given["proxy"]),
        )


DEFAULTS: MeasureKwargs = {
    "requests": 1000, "concurrency": 100, "timeout": 10.0, "headers": None, "method": "GET", "by": "body",
    "data": None, "http2": False, "verify": True, "cacert": None, "keepalive": True, "rate": None, "duration": None,
    "proxy": None,
}


def _requests(requests: int | None, duration: float | None) -> int | None:
    if requests is None:
        if duration is None:
            raise UsageError("requests=None sends without a cap, so it needs a duration (seconds)")
        return None
    return whole(requests, "requests")
