"""The README stays true: every flag, exit code and subcommand the program has is documented there."""

from __future__ import annotations

import re
from pathlib import Path

from respy.cli.common import EXIT_SIGNAL
from respy.cli.main import SUBCOMMANDS, build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_flag_is_in_the_readme() -> None:
    missing = [
        option
        for action in build_parser()._actions
        for option in action.option_strings
        if f"`{option}" not in README and f" {option} " not in README and f"{option}`" not in README
    ]
    assert missing == []


def test_every_exit_code_is_in_the_readme() -> None:
    table = dict(re.findall(r"^\| (\d+) \| (.+) \|$", README, flags=re.MULTILINE))
    for code in ("0", "1", "2", "3", "4", *map(str, EXIT_SIGNAL.values())):
        assert code in table, code


def test_every_subcommand_is_in_the_readme() -> None:
    for name in SUBCOMMANDS:
        assert f"respy {name}" in README


def test_the_two_setup_lines() -> None:
    assert ".venv/bin/respy demo" in README
    assert "scripts/test" in README and (Path(__file__).resolve().parents[1] / "scripts" / "test").exists()
    assert "pip install respy" not in README.replace("`pip install respy`", "")
