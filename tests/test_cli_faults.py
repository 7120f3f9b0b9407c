"""The command line's own faults, fixed: help goes to the command's streams, --grace must not be negative,
--expect - reads the command's stdin, and respy merge explains a FAIL as a single run does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_cli, weighted_handler

from respy.cli.common import Streams
from respy.cli.merge import main as merge_main


@pytest.mark.parametrize("argv", [["--help"], ["merge", "--help"], ["demo", "--help"], ["analyze", "--help"],
                                  ["--version"]])
def test_help_and_version_are_written_to_the_commands_own_stdout(argv: list[str],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(*argv)
    assert result.code == 0
    assert result.out.startswith(("usage: respy", "respy ")) and not result.err
    assert capsys.readouterr().out == ""  # nothing behind the injected streams' back


@pytest.mark.parametrize("command", [[], ["merge", "x.json"]])
def test_a_negative_grace_is_a_usage_error(command: list[str]) -> None:
    argv = command or ["http://127.0.0.1:9/", "--expect", "a=1,b=1"]
    result = run_cli(*argv, "--grace", "-3")
    assert result.code == 2
    assert "argument --grace: must be at least 0, got -3" in result.err and not result.out


def test_the_check_flags_are_the_same_for_a_run_and_for_merge() -> None:
    from respy.cli.main import build_parser
    from respy.cli.merge import build_parser as merge_parser

    def flags(parser) -> dict[str, object]:  # type: ignore[no-untyped-def]
        return {a.dest: (a.default, a.type) for a in parser._actions
                if a.dest in ("expect", "maps", "alpha", "tolerance", "strict", "grace", "namespace")}

    assert flags(build_parser()) == flags(merge_parser()) and len(flags(build_parser())) == 7


def test_expect_dash_reads_the_commands_stdin(serve) -> None:
    server = serve(weighted_handler({"v1": 1}, seed=1))
    rules = ("apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: vs}\n"
             "spec:\n  hosts: [svc]\n  http:\n  - route:\n    - destination: {host: v1}\n      weight: 100\n")
    result = run_cli(server.url, "-n", "20", "-c", "2", "-H", "Host: svc", "-o", "json", "--expect", "-", stdin=rules)
    assert result.code in (0, 1) and not result.err, result.err  # decided: the rules were read
    expected = result.json()["expected"]
    assert len(expected) == 1 and expected[0]["probability"] == 1.0 and "<stdin>" in expected[0]["source"]


def test_merge_explains_a_fail_exactly_as_the_single_run_did(serve, tmp_path: Path) -> None:
    """The same counts, checked by one run and again by respy merge: the same verdict and the same diagnosis."""
    server = serve(weighted_handler({"weather-backend: single": 1, "weather-backend: multiple": 1}, seed=3))
    single = run_cli(server.url, "-n", "300", "-c", "1", "-o", "json", "--expect", "single=90,multiple=10")
    assert single.code == 1, single.err
    run = single.json()
    saved = tmp_path / "run.json"
    saved.write_text(single.out)
    out_path = tmp_path / "merged.json"
    with out_path.open("w") as out, (tmp_path / "err.txt").open("w") as err:
        code = merge_main([str(saved), "-o", "json"], Streams(out, err))
    merged = json.loads(out_path.read_text())
    assert code == 1
    assert merged["verdict"]["outcome"] == run["verdict"]["outcome"] == "FAIL"
    assert run["diagnosis"] and merged["diagnosis"] == run["diagnosis"]
    assert any(c["best"] and c["name"] == "equal" for c in merged["diagnosis"])
