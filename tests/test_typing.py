"""``mypy --strict`` on the public API and on a typed example of its use.

``--follow-imports=silent``: the public modules and the example are checked strictly; the private modules
they import are type-checked for their signatures but their own errors are not reported here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["respy/__init__.py", "respy/_api.py", "respy/pytest_plugin.py", "tests/typed_usage.py"]


def test_public_api_is_mypy_strict_clean() -> None:
    pytest.importorskip("mypy")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental", *CHECKED],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_type_error_in_usage_is_caught(tmp_path: Path) -> None:
    """The check is not vacuous: misuse of the API is reported."""
    pytest.importorskip("mypy")
    wrong = tmp_path / "wrong_usage.py"
    wrong.write_text("import respy\n\ncount: str = respy.measure('http://x/', requests='many').requests\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental", str(wrong)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 1
    assert 'Argument "requests" to "measure"' in proc.stdout
    assert "Incompatible types in assignment" in proc.stdout


def test_py_typed_ships() -> None:
    assert (ROOT / "respy" / "py.typed").is_file()
