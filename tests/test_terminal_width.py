"""On a terminal (a pty with 80 columns, as ``kubectl exec -it`` gives), tables are never wider than it."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import wcwidth

from respy.demo.weather import weather_app

ROOT = Path(__file__).resolve().parents[1]


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end is closed: all read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def on_a_terminal(argv: list[str], columns: int) -> tuple[int, str]:
    """Run respy with stdout and stderr on a pty of ``columns`` columns; its exit code and what it drew."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "respy", *argv], stdout=follower, stderr=follower, env=env,
                            stdin=subprocess.DEVNULL)
    os.close(follower)
    text = read_all(leader).decode()
    os.close(leader)
    return proc.wait(timeout=120), text


def widest(text: str) -> int:
    lines = text.replace("\r\n", "\n").split("\n")
    return max(wcwidth.wcswidth(line.split("\r")[-1]) for line in lines)


def test_analyze_fits_80_columns_on_the_tutorial_manifests(fixtures_dir: Path) -> None:
    tutorial = fixtures_dir / "tutorial"
    code, text = on_a_terminal(["analyze", str(tutorial / "weather-rules.yaml"),
                                str(tutorial / "weather-deployment.yaml"), "--istio-version", "1.2"], 80)
    assert code == 1, text  # the tutorial's port name: a warning on the tutorial's Istio 1.2
    assert "RSP001" in text and "IST0118" in text
    assert widest(text) <= 80


def test_analyze_is_as_wide_as_it_likes_into_a_pipe(fixtures_dir: Path) -> None:
    tutorial = fixtures_dir / "tutorial"
    done = subprocess.run([sys.executable, "-m", "respy", "analyze", str(tutorial)], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "COLUMNS"})
    assert widest(done.stdout) > 80  # nothing to fit: a file or a pipe gets the full layout


@pytest.mark.parametrize("columns", [80, 60])
def test_the_checked_table_fits_the_terminal(columns: int) -> None:
    rules = ROOT / "examples" / "weather" / "weather-rules.yaml"
    with weather_app(seed=3) as app:
        code, text = on_a_terminal([app.url, "-n", "300", "-c", "4", "-H", "Host: weather-backend", "-q",
                                    "--expect", str(rules)], columns)
    assert code in (0, 3), text
    table = [line for line in text.replace("\r\n", "\n").split("\n") if line[:1] in "+|"]
    assert table and widest("\n".join(table)) <= columns
