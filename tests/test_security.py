"""Security: TLS is verified by default (-k / --cacert opt out), secret request headers are never echoed, and
the sources hold no shell, eval or unsafe deserialisation."""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from faultserver import FaultServer, read_head, reply
from support import Finished, run_respy

from respy.demo.localserver import LocalServer, Request, Response

RESPY_SOURCES = Path(__file__).resolve().parents[1] / "respy"

# ------------------------------------------------------------------------------------------------ TLS


def make_cert(directory: Path, name: str, san: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", f"subjectAltName={san}"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("certs")
    return {
        "local": make_cert(directory, "local", "IP:127.0.0.1,DNS:localhost"),
        "other": make_cert(directory, "other", "IP:127.0.0.1,DNS:localhost"),  # same names, another key
        "wrong-name": make_cert(directory, "wrong-name", "DNS:weather-backend.example"),
    }


def https_server(cert: Path, key: Path) -> FaultServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def behaviour(server: FaultServer, conn: socket.socket, index: int) -> None:
        conn.settimeout(10)
        with context.wrap_socket(conn, server_side=True) as tls:  # an untrusting client aborts the handshake here
            while read_head(tls) is not None:
                server.count_request()
                reply(tls, b"weather-backend: single (over TLS)")

    return FaultServer(behaviour)


def https_url(server: FaultServer, host: str = "127.0.0.1") -> str:
    return f"https://{host}:{server.port}/version"


def rows_of(result: Finished) -> dict[str, int]:
    assert "Traceback" not in result.err, result.err
    data = result.json()
    assert data["requests"] == sum(row["count"] for row in data["rows"])
    return {row["label"]: row["count"] for row in data["rows"]}


def test_a_self_signed_certificate_is_refused_by_default(certs) -> None:  # type: ignore[no-untyped-def]
    with https_server(*certs["local"]) as server:
        result = run_respy(https_url(server), "-n", "4", "-c", "2", "-o", "json")
        assert server.requests == 0  # not a byte of HTTP went over an unverified connection
    assert result.code == 4, result
    [(label, count)] = rows_of(result).items()
    assert count == 4
    assert label.startswith("error: TLS certificate not trusted ("), label
    assert "self-signed" in label or "self signed" in label, label


@pytest.mark.parametrize("flag", ["-k", "--insecure"])
def test_insecure_accepts_the_self_signed_certificate(certs, flag: str) -> None:  # type: ignore[no-untyped-def]
    with https_server(*certs["local"]) as server:
        result = run_respy(https_url(server), "-n", "4", "-c", "2", "-o", "json", flag)
    assert result.code == 0, result
    assert rows_of(result) == {"weather-backend: single (over TLS)": 4}


def test_cacert_trusts_exactly_that_certificate(certs) -> None:  # type: ignore[no-untyped-def]
    cert, _ = certs["local"]
    with https_server(*certs["local"]) as server:
        trusted = run_respy(https_url(server), "-n", "4", "-c", "2", "-o", "json", "--cacert", str(cert))
        by_name = run_respy(https_url(server, "localhost"), "-n", "2", "-o", "json", "--cacert", str(cert))
    assert trusted.code == 0 and rows_of(trusted) == {"weather-backend: single (over TLS)": 4}, trusted
    assert by_name.code == 0 and rows_of(by_name) == {"weather-backend: single (over TLS)": 2}, by_name
    other_cert, _ = certs["other"]
    with https_server(*certs["local"]) as server:
        result = run_respy(https_url(server), "-n", "2", "-o", "json", "--cacert", str(other_cert))
    assert result.code == 4, result
    [label] = rows_of(result)
    assert label.startswith("error: TLS certificate not trusted ("), label


def test_a_certificate_for_another_name_is_refused_even_from_a_trusted_ca(certs) -> None:  # type: ignore[no-untyped-def]
    cert, _ = certs["wrong-name"]
    with https_server(*certs["wrong-name"]) as server:
        result = run_respy(https_url(server), "-n", "2", "-o", "json", "--cacert", str(cert))
    assert result.code == 4, result
    [label] = rows_of(result)
    assert label.startswith("error: TLS certificate not trusted (") and "mismatch" in label.lower(), label


def test_https_to_a_plain_http_server_is_a_tls_error_row() -> None:
    def plain_http(server: FaultServer, conn: socket.socket, index: int) -> None:
        conn.recv(4096)  # the TLS ClientHello: not HTTP; answer as an HTTP server would
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    with FaultServer(plain_http) as server:
        result = run_respy(https_url(server), "-n", "2", "-o", "json", "-t", "5")
    assert result.code == 4, result
    [label] = rows_of(result)
    assert label.startswith("error: TLS handshake failed ("), label


def test_a_missing_cacert_file_is_a_usage_error() -> None:
    result = run_respy("https://127.0.0.1:9/", "--cacert", "/nonexistent/ca.pem")
    assert result.code == 2 and "Traceback" not in result.err, result
    assert "--cacert" in result.err


# ------------------------------------------------------------------------------------------------ secrets

SECRET_HEADERS = ["Authorization: Bearer s3cr3t", "Cookie: session=c00kie-v4lue; theme=dark",
                  "X-Api-Key: k3y-0f-d00m"]
SECRETS = ["s3cr3t", "c00kie-v4lue", "k3y-0f-d00m"]


def assert_no_secret(result: Finished) -> None:
    assert "Traceback" not in result.err, result.err
    for secret in SECRETS:
        assert secret not in result.out, f"{secret!r} echoed on stdout"
        assert secret not in result.err, f"{secret!r} echoed on stderr"


@pytest.mark.parametrize("output", ["table", "json", "csv"])
def test_request_headers_are_sent_but_never_echoed(output: str) -> None:
    seen: list[dict[str, str]] = []

    async def handler(request: Request) -> Response:
        seen.append(request.headers)
        return Response(200, b"weather-backend: single")

    flags = [arg for header in SECRET_HEADERS for arg in ("-H", header)]
    with LocalServer(handler) as server:
        result = run_respy(server.url, "-n", "5", "-c", "2", "-o", output, *flags)
    assert result.code == 0, result
    assert seen and seen[0]["authorization"] == "Bearer s3cr3t"  # they were really sent
    assert "c00kie-v4lue" in seen[0]["cookie"]
    assert_no_secret(result)


@pytest.mark.parametrize("output", ["table", "json", "csv"])
def test_secret_headers_are_not_echoed_on_errors_or_with_a_check(output: str) -> None:
    flags = [arg for header in SECRET_HEADERS for arg in ("-H", header)]
    refused = run_respy("http://127.0.0.1:9/", "-n", "3", "-o", output, *flags)
    assert refused.code == 4, refused
    assert_no_secret(refused)
    checked = run_respy("http://127.0.0.1:9/", "-n", "3", "-o", output, "--expect", "single=90,multiple=10", *flags)
    assert_no_secret(checked)
    bad = run_respy("http://127.0.0.1:9/", "-n", "0", *flags)  # a usage error prints the flag, not the headers
    assert bad.code == 2
    assert_no_secret(bad)


# ------------------------------------------------------------------------------------------------ the sources

FORBIDDEN = {
    "eval": re.compile(r"(?<![\w.])eval\s*\("),
    "exec": re.compile(r"(?<![\w.])exec\s*\("),
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "os.system": re.compile(r"\bos\.system\b"),
    "os.popen": re.compile(r"\bos\.popen\b"),
    "yaml.load without SafeLoader": re.compile(
        r"\byaml\.(load|load_all)\s*\((?![^)]*Loader\s*=\s*(yaml\.)?C?SafeLoader)"
    ),
    "yaml.unsafe_load": re.compile(r"\byaml\.(unsafe_load|unsafe_load_all|full_load|full_load_all)\b"),
    "unsafe yaml Loader": re.compile(r"\b(UnsafeLoader|FullLoader|yaml\.Loader|yaml\.CLoader)\b"),
    "pickle": re.compile(r"\b(c?[pP]ickle|marshal|shelve|dill)\b"),
}


def violations(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        code = line.split("#", 1)[0]
        for name, pattern in FORBIDDEN.items():
            if pattern.search(code):
                found.append(f"{number}: {name}: {line.strip()}")
    return found


def test_the_scanner_catches_each_forbidden_construct() -> None:
    """The check below can fail: each of these lines is caught."""
    bad = [
        "x = eval(text)", "exec(code)", "subprocess.run(cmd, shell=True)", "os.system('ls')", "os.popen('ls')",
        "yaml.load(stream)", "yaml.load(stream, Loader=yaml.Loader)", "yaml.unsafe_load(s)", "yaml.full_load(s)",
        "import pickle", "data = pickle.loads(blob)", "yaml.load_all(s, Loader=yaml.FullLoader)",
    ]
    for line in bad:
        assert violations(line), line
    good = ["yaml.load(s, Loader=yaml.SafeLoader)", "literal_eval_like = 1", "obj.eval()", "yaml.safe_load(s)"]
    for line in good:
        assert not violations(line), line


def test_no_shell_eval_or_unsafe_deserialisation_in_the_sources() -> None:
    files = sorted(RESPY_SOURCES.rglob("*.py"))
    assert len(files) > 10
    problems = [f"{path.relative_to(RESPY_SOURCES.parent)}:{v}" for path in files for v in violations(path.read_text())]
    assert problems == []


@pytest.mark.parametrize("output", ["table", "json", "csv"])
def test_a_password_in_the_url_is_not_echoed(output: str) -> None:
    with LocalServer(lambda request: _ok()) as server:
        url = server.url.replace("http://", "http://weather:pa55w0rd@") + "/version"
        result = run_respy(url, "-n", "2", "-o", output)
    assert result.code == 0, result
    assert "pa55w0rd" not in result.out and "pa55w0rd" not in result.err
    if output == "json":
        assert result.json()["url"] == server.url.replace("http://", "http://weather:***@") + "/version"


async def _ok() -> Response:
    return Response(200, b"ok")
