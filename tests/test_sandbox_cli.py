"""``respy sandbox RULES...`` as a user runs it: a real process, real Envoy, the printed commands run as printed.

The verdicts come from respy's own check (fixed -n, α = 0.01); every outcome here is a single destination
(Bookinfo's test-v2: jason -> v2, everyone else -> v1), so no random draw is involved.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from envoy_harness import require_envoy

SAMPLES = "upstream/istio-samples/"
BOOKINFO = [SAMPLES + "bookinfo__platform__kube__bookinfo.yaml",
            SAMPLES + "bookinfo__networking__destination-rule-all.yaml",
            SAMPLES + "bookinfo__networking__virtual-service-reviews-test-v2.yaml"]
BAD = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - directResponse: {status: 1000}
"""


def respy(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "respy", *argv], capture_output=True, text=True, timeout=120,
                          env=env)


@contextmanager
def sandbox_process(*argv: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """``respy sandbox ARGV`` running; yields it and its printed lines up to the commands to try."""
    process = subprocess.Popen([sys.executable, "-m", "respy", "sandbox", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("running: "):
                break
        else:
            raise AssertionError(f"respy sandbox ended early: {process.stderr.read() if process.stderr else ''}")
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_bookinfo_printed_commands_pass_with_and_without_jason(fixtures_dir: Path) -> None:
    require_envoy()
    with sandbox_process(*[str(fixtures_dir / f) for f in BOOKINFO]) as (process, lines):
        commands = [line.strip() for line in lines if line.strip().startswith("respy http") and "reviews" in line]
        assert len(commands) == 2 and "-H 'end-user: jason'" in commands[1]
        results = []
        for command in commands:
            argv = [*shlex.split(command)[1:], "-n", "300", "-o", "json"]
            results.append(respy(*argv))
        admin = next(line.split()[1] for line in lines if line.strip().startswith("admin"))
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "stopped Envoy and the backends" in (process.stderr.read() if process.stderr else "")
    for result, version in zip(results, ("v1", "v2"), strict=True):
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["verdict"]["outcome"] == "PASS"
        assert {row["label"]: row["count"] for row in data["rows"]} == {f"reviews: {version}": 300}
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{admin}/ready", timeout=2, trust_env=False)  # Envoy is gone


def test_gateway_printed_command_passes(fixtures_dir: Path) -> None:
    require_envoy()
    files = [SAMPLES + "bookinfo__networking__bookinfo-gateway.yaml",
             SAMPLES + "bookinfo__platform__kube__bookinfo.yaml"]
    with sandbox_process(*[str(fixtures_dir / f) for f in files], "--gateway", "bookinfo-gateway") as (process, lines):
        (command,) = [line.strip() for line in lines if line.strip().startswith("respy http")]
        result = respy(*shlex.split(command)[1:], "-n", "300", "-o", "json")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    assert command.startswith("respy http://example.com:8080/productpage --connect-to example.com:8080:127.0.0.1:")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verdict"]["outcome"] == "PASS"


def test_sigterm_stops_envoy_too(fixtures_dir: Path) -> None:
    require_envoy()
    with sandbox_process(*[str(fixtures_dir / f) for f in BOOKINFO]) as (process, lines):
        admin = next(line.split()[1] for line in lines if line.strip().startswith("admin"))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{admin}/ready", timeout=2, trust_env=False)


def test_a_config_envoy_rejects_exits_2_with_envoys_line(tmp_path: Path) -> None:
    require_envoy()
    rules = tmp_path / "bad.yaml"
    rules.write_text(BAD)
    result = respy("sandbox", str(rules))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("respy: error: envoy refused to start: ")
    assert "Status: value must be inside range [200, 600)" in line and "configuration: " in line


def test_no_envoy_exits_2_in_one_line(tmp_path: Path, fixtures_dir: Path) -> None:
    env = {**os.environ, "RESPY_ENVOY_BINARY": "/nonexistent/envoy"}
    result = respy("sandbox", str(fixtures_dir / BOOKINFO[2]), env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "respy: error: RESPY_ENVOY_BINARY=/nonexistent/envoy is not an executable file"


def test_help_teaches() -> None:
    result = respy("sandbox", "--help")
    assert result.returncode == 0
    assert "outbound|<port>|<subset>|<fqdn>" in result.stdout and "--gateway" in result.stdout
