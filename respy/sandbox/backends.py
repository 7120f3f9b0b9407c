"""The pods behind the sandbox's clusters: one small HTTP server per Service and workload version.

Each answers every request with ``<service>: <version>`` and an ``x-respy-version: <version>`` header, so a
tally by body or by that header names the version that answered.
"""

from __future__ import annotations

from contextlib import ExitStack
from types import TracebackType

from respy.demo.localserver import LocalServer, fixed
from respy.sandbox.inventory import Inventory, Service, Workload

VERSION_HEADER = "x-respy-version"


def answer(service: Service, workload: Workload) -> str:
    return f"{service.name}: {workload.version}"


class Backends:
    """``with Backends(inventory) as backends: backends.address(service, workload)``."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.servers: dict[tuple[str, str], LocalServer] = {}
        self._stack = ExitStack()

    def __enter__(self) -> Backends:
        try:
            for service in self.inventory.services.values():
                for workload in self.inventory.endpoints(service):
                    handler = fixed(answer(service, workload), headers=[(VERSION_HEADER, workload.version)])
                    server = self._stack.enter_context(LocalServer(handler))
                    self.servers[(service.fqdn, workload.name)] = server
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stack.close()

    def address(self, service: Service, workload: Workload) -> tuple[str, int]:
        server = self.servers[(service.fqdn, workload.name)]
        return server.host, server.port
