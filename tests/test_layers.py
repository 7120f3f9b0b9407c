"""The stage layering (``[tool.importlinter]`` in pyproject.toml) holds, and ``lint-imports`` really enforces it:
in a copy of the package, one import against the layers makes it fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package in ``root`` (its copy of pyproject.toml names the contract)."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--no-cache"], cwd=root, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def copy_package(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "respy", tmp_path / "respy", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_its_layers(tmp_path: Path) -> None:
    pytest.importorskip("importlinter")
    result = lint_imports(copy_package(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_import_against_the_layers_fails_the_check(tmp_path: Path) -> None:
    pytest.importorskip("importlinter")
    root = copy_package(tmp_path)
    tally = root / "respy" / "tally.py"
    tally.write_text(tally.read_text() + "\nfrom respy.report import render  # the wrong way round\n")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "respy.tally is not allowed to import respy.report" in result.stdout
