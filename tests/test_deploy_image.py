"""The image's install, without Docker: the build context the Dockerfile sees (.dockerignore applied) goes
through docker/install.sh, the same script and commands as the Dockerfile's RUN, into a fresh virtual
environment; then the installed ``respy`` runs for real against a server on 127.0.0.1, from a read-only
environment (no bytecode written) and through the ``./respy`` shim.

Building the wheels needs PyPI (or pip's cache / find-links) for respy's dependencies: the test is skipped
when no package index can be reached, or when RESPY_SKIP_NETWORK_TESTS=1.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from respy.demo.localserver import LocalServer, fixed

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "docker" / "install.sh"
SKIPPED_PARTS = ("__pycache__", ".pyc", ".egg-info")


def index_reachable() -> bool:
    if os.environ.get("RESPY_SKIP_NETWORK_TESTS") == "1":
        return False
    if os.environ.get("PIP_FIND_LINKS") or os.environ.get("PIP_INDEX_URL"):
        return True
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


def build_context(dest: Path) -> Path:
    """Copy what .dockerignore lets into the build context (it is an allow-list: ``*`` then ``!name``)."""
    rules = [ln.strip() for ln in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    rules = [ln for ln in rules if ln and not ln.startswith("#")]
    assert rules[0] == "*"
    excluded = [r for r in rules[1:] if not r.startswith("!")]
    dest.mkdir(parents=True)
    for name in (r[1:].rstrip("/") for r in rules[1:] if r.startswith("!")):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=lambda _dir, names: [
                n for n in names if any(fnmatch.fnmatch(n, p.split("/")[-1]) for p in excluded)
                or n.endswith(SKIPPED_PARTS)])
        elif source.is_file():
            shutil.copy2(source, dest / name)
    return dest


def run(*argv: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert done.returncode == 0, f"{argv} exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The virtual environment docker/install.sh makes, as /opt/respy is made in the image."""
    if not index_reachable():
        pytest.skip("no package index reachable to build the dependencies' wheels")
    base = tmp_path_factory.mktemp("image")
    context = build_context(base / "src")
    env = {**os.environ, "PYTHON": sys.executable}
    started = time.perf_counter()
    run("sh", context / "docker" / "install.sh", "wheels", context, base / "wheels", env=env)
    built = time.perf_counter()
    run("sh", context / "docker" / "install.sh", "venv", base / "wheels", base / "opt-respy", env=env)
    done = time.perf_counter()
    print(f"\nimage install: wheels {built - started:.1f} s, venv {done - built:.1f} s")
    return base / "opt-respy"


def runtime_env(venv: Path) -> dict[str, str]:
    """What the image sets: its venv first on PATH, no bytecode writes; nothing from the test's own venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "RESPY_ENVOY"))}
    # the test's own virtual environment has an envoy (respy[test]); the image has none
    path = [d for d in env.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "envoy").exists()]
    return {**env, "PATH": os.pathsep.join([str(venv / "bin"), *path]), "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.mark.slow
def test_installed_respy_prints_help(installed: Path) -> None:
    done = run(installed / "bin" / "respy", "--help", env=runtime_env(installed))
    assert "respy sends N HTTP requests" in done.stdout


@pytest.mark.slow
def test_installed_respy_measures_a_local_server(installed: Path) -> None:
    with LocalServer(fixed("hello")) as server:
        done = run(installed / "bin" / "respy", "-n", "20", "-c", "5", "-o", "json", server.url,
                   env=runtime_env(installed), timeout=60)
        assert server.stats.requests == 20
    result = json.loads(done.stdout)
    assert result["requests"] == 20
    assert [(r["label"], r["count"]) for r in result["rows"]] == [("hello", 20)]


@pytest.mark.slow
def test_installed_respy_runs_through_the_dot_respy_shim_from_the_workdir(installed: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "app"
    workdir.mkdir()
    shutil.copy2(ROOT / "docker" / "respy", workdir / "respy")
    env = {**runtime_env(installed), "RESPY_HOME": str(installed)}
    with LocalServer(fixed("weather-backend: single")) as server:
        done = run("./respy", "--u", server.url, "--n", "20", "--c", "5", env=env, cwd=workdir, timeout=60)
    assert "weather-backend: single" in done.stdout and "100.0%" in done.stdout


@pytest.mark.slow
def test_installed_environment_is_complete_and_writes_nothing(installed: Path) -> None:
    """Bytecode is there already (read-only root filesystem), no pip, no test suites, and a check runs."""
    before = {p: p.stat().st_mtime_ns for p in installed.rglob("*")}
    assert not (installed / "bin" / "pip").exists()
    assert not [p for p in installed.rglob("tests") if "site-packages" in p.parts and p.is_dir()]
    # one connection: the image has no Envoy, and the seeded fallback router then answers the same sequence
    run(installed / "bin" / "respy", "demo", "-c", "1", "--seed", "1",
        env=runtime_env(installed), timeout=120)
    after = {p: p.stat().st_mtime_ns for p in installed.rglob("*")}
    assert after == before
    sources = [p for p in installed.rglob("*.py") if "respy" in p.parts]
    assert sources
    for source in sources:
        assert list(source.parent.glob(f"__pycache__/{source.stem}.*.pyc")), source


@pytest.mark.slow
def test_image_has_no_envoy_and_its_demo_says_so(installed: Path) -> None:
    """The image is built without respy[sandbox]: in the cluster there is a real sidecar."""
    done = run(installed / "bin" / "respy", "demo", "-n", "200", "--no-check", env=runtime_env(installed), timeout=60)
    assert "no Envoy here" in done.stderr and "falling back to respy's Python router" in done.stderr
    assert not list((installed / "lib").glob("python*/site-packages/envoy"))
