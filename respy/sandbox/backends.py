"""The pods behind the sandbox's clusters: one small HTTP server per Service and workload version.

Each answers every request with ``<service>: <version>`` and an ``x-respy-version: <version>`` header, so a
tally by body or by that header names the version that answered. They run in a child process of their
own, as pods run apart from their clients: in the caller's process they would compete with a measuring
client for the interpreter and answer in bursts. The child exits when its stdin closes, so it cannot outlive
the sandbox even when the parent is killed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from contextlib import suppress
from types import TracebackType
from typing import IO

from respy._errors import RespyError
from respy.sandbox.envoy import wait_or_kill
from respy.sandbox.inventory import Inventory, Service, Workload

VERSION_HEADER = "x-respy-version"
START_TIMEOUT_S = 20.0


def answer(service: Service, workload: Workload) -> str:
    return f"{service.name}: {workload.version}"


def _key(service: Service, workload: Workload) -> str:
    return f"{service.fqdn}|{workload.name}"


class Backends:
    """``with Backends(inventory) as backends: backends.address(service, workload)``."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Backends:
        specs = [{"key": _key(s, w), "body": answer(s, w), "version": w.version}
                 for s in self.inventory.services.values() for w in self.inventory.endpoints(s)]
        if not specs:
            return self
        self._process = subprocess.Popen([sys.executable, "-m", "respy.sandbox.backends"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True)
        try:
            self.ports = self._started(self._process, specs)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    @staticmethod
    def _started(process: subprocess.Popen[str], specs: list[dict[str, str]]) -> dict[str, int]:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(specs) + "\n")
        process.stdin.flush()
        found: list[str] = []
        reader = threading.Thread(target=lambda: found.append(process.stdout.readline() if process.stdout else ""),
                                  daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        if not found or not found[0].strip():
            raise RespyError("the sandbox's backends did not start")
        return {str(k): int(v) for k, v in json.loads(found[0]).items()}

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the child's signal to stop
        wait_or_kill(process)
        if process.stdout is not None:
            process.stdout.close()

    def address(self, service: Service, workload: Workload) -> tuple[str, int]:
        return "127.0.0.1", self.ports[_key(service, workload)]


def serve(specs: list[dict[str, str]], out: IO[str], stop: IO[str]) -> None:
    """The child: a server per spec on one event loop, their ports as one JSON line on ``out``, until ``stop``
    reaches EOF."""
    asyncio.run(_serve(specs, out, stop))


async def _serve(specs: list[dict[str, str]], out: IO[str], stop: IO[str]) -> None:
    from respy.sandbox.localserver import fixed, start_together

    handlers = [fixed(spec["body"], headers=[(VERSION_HEADER, spec["version"])]) for spec in specs]
    servers = await start_together(handlers)
    ports = {spec["key"]: server.sockets[0].getsockname()[1] for spec, server in zip(specs, servers, strict=True)}
    out.write(json.dumps(ports) + "\n")
    out.flush()
    await asyncio.get_running_loop().run_in_executor(None, stop.read)
    for server in servers:
        server.close()


if __name__ == "__main__":  # pragma: no cover - the child process Backends starts
    with suppress(KeyboardInterrupt):  # Ctrl-C reaches the whole process group; the parent stops everything
        serve(json.loads(sys.stdin.readline()), sys.stdout, sys.stdin)
