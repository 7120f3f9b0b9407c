"""Every command in the README runs as written.

The README's commands sit in fenced blocks: ``sh`` (each line a command), ``console`` (the lines after
``$ ``), ``python`` (a script; the one headed ``# test_routing.py`` is the pytest plugin's sample, run by
the ``pytest --respy-url`` line). Each line that needs no cluster, Docker engine, system install, fresh
virtual environment or benchmark peers is run by bash, from a directory that holds the checkout's
``examples/`` and ``k8s/``, against a local 90/10 weather-backend (``respy.demo.weather``) standing in for
the URL (``http://weather-backend:5000`` and the other sample addresses become its address, with
``Host: weather-backend``, which is what the sample URL's host would have sent). Results the README's
earlier steps would have written (``pod-0.json``, ``results.json``) are made by running respy first.
A command fails the test on a traceback, an ``error:`` on stderr, or an exit code other than 0 (done or
PASS), 1 (FAIL, or analyze findings) and 3 (INCONCLUSIVE).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import stochastic

from respy.demo.weather import weather_app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SAMPLE_ADDRESSES = ("http://weather-backend:5000", "http://10.0.0.7:5000", "http://127.0.0.1:8080")
RAN_AS = {0, 1, 3}
NOT_HERE = [  # (pattern, why it cannot run in a test)
    (re.compile(r"\bkubectl\b|--expect cluster"), "needs a Kubernetes cluster"),
    (re.compile(r"^docker\b"), "needs a Docker engine"),
    (re.compile(r"^apt-get\b"), "installs system packages"),
    (re.compile(r"python3 -m venv \.venv"), "builds a fresh virtual environment (CI runs exactly this)"),
    (re.compile(r"\bbenchmarks/"), "a benchmark: minutes long, needs nginx and hey"),
]


@dataclass(frozen=True)
class Command:
    line: str
    block: int


def blocks() -> list[tuple[str, str]]:
    return [(match.group(1), match.group(2)) for match in FENCE.finditer(README)]


def commands() -> list[Command]:
    found = []
    for index, (language, text) in enumerate(blocks()):
        for line in text.splitlines():
            if language == "console" and line.startswith("$ "):
                found.append(Command(line[2:].strip(), index))
            elif language == "sh" and line.strip() and not line.lstrip().startswith("#"):
                found.append(Command(line.strip(), index))
    return found


def reason_not_run(command: Command) -> str | None:
    return next((why for pattern, why in NOT_HERE if pattern.search(command.line)), None)


def stand_in(line: str, base: str) -> str:
    for address in SAMPLE_ADDRESSES:
        line = line.replace(address, base)
    if base in line and "Host:" not in line and line.startswith("respy "):
        line = 'respy -H "Host: weather-backend" ' + line.removeprefix("respy ")
    return line


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """A directory like the checkout (examples/, k8s/), the stand-in's address, and the environment."""
    directory = tmp_path_factory.mktemp("readme")
    for name in ("examples", "k8s"):
        (directory / name).symlink_to(ROOT / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(ROOT)}
    env.pop("COLUMNS", None)
    with weather_app(seed=7) as app:
        base = app.url.removesuffix("/version")
        pods = [run(f'respy {base}/version -n 200 -c 4 -o json -H "Host: weather-backend"', directory, env)
                for _ in range(3)]
        for i, pod in enumerate(pods):
            (directory / f"pod-{i}.json").write_text(pod.stdout)
        (directory / "results.json").write_text("".join(pod.stdout for pod in pods))
        for language, text in blocks():
            if language == "python" and text.startswith("# test_routing.py"):
                (directory / "test_routing.py").write_text(text)
        yield directory, base, env


def run(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def test_the_readme_has_commands_and_every_code_block_says_what_it_is() -> None:
    assert len(commands()) >= 15
    assert {language for language, _ in blocks()} <= {"sh", "console", "python", "text", "yaml"}
    assert all(language for language, _ in blocks()), "a fenced block without a language"
    outside = FENCE.sub("", README)
    indented = re.findall(r"\n\n( {4}\S.*)", outside)
    assert indented == [], "an indented code block: the commands in it would not be run by this test"


def test_the_runnable_share_is_most_of_them() -> None:
    runnable = [c for c in commands() if reason_not_run(c) is None]
    assert len(runnable) >= 10, [c.line for c in runnable]


@pytest.mark.parametrize("command", commands(), ids=lambda c: c.line[:60])
def test_each_shell_line_runs_as_written(command: Command, workdir: tuple[Path, str, dict[str, str]]) -> None:
    why = reason_not_run(command)
    if why is not None:
        pytest.skip(why)
    directory, base, env = workdir
    line = stand_in(command.line, base)
    done = run(line, directory, env)
    assert "Traceback" not in done.stderr, done.stderr
    assert "error:" not in done.stderr, done.stderr
    assert done.returncode in RAN_AS, (line, done.returncode, done.stdout[-2000:], done.stderr[-2000:])


@pytest.mark.parametrize("index", [i for i, (language, text) in enumerate(blocks())
                                   if language == "python" and not text.startswith("# test_routing.py")])
@stochastic
def test_each_python_sample_runs(index: int, workdir: tuple[Path, str, dict[str, str]]) -> None:
    directory, base, env = workdir
    _, text = blocks()[index]
    script = directory / f"sample_{index}.py"
    script.write_text(stand_in(text, base))
    done = subprocess.run([sys.executable, str(script)], cwd=directory, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
