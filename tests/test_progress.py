"""Progress goes to stderr only when stderr is a terminal (``kubectl exec -it`` is one)."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys

from respy.demo.localserver import LocalServer, Request, Response


async def slow(request: Request) -> Response:
    await asyncio.sleep(0.005)
    return Response(200, b"ok")


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_progress_is_drawn_on_a_terminal_and_cleared() -> None:
    with LocalServer(slow) as server:
        leader, follower = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "respy", server.url, "-n", "300", "-c", "2"],
                                stdout=subprocess.PIPE, stderr=follower, text=True)
        os.close(follower)
        out, _ = proc.communicate(timeout=60)
        err = read_all(leader).decode()
        os.close(leader)
    assert proc.returncode == 0
    assert "/300 " in err and "req/s" in err and "%" in err and "ETA" in err  # the progress line
    assert "\r" in err  # redrawn in place, then cleared
    assert "ETA" not in out  # never mixed into the table on stdout


def test_no_progress_with_quiet_even_on_a_terminal() -> None:
    with LocalServer(slow) as server:
        leader, follower = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "respy", server.url, "-n", "300", "-c", "2", "-q"],
                                stdout=subprocess.PIPE, stderr=follower, text=True)
        os.close(follower)
        proc.communicate(timeout=60)
        err = read_all(leader).decode()
        os.close(leader)
    assert proc.returncode == 0
    assert err == ""
