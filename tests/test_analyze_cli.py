"""``respy analyze``: output formats and exit codes, through ``respy.cli.main.main``."""

from __future__ import annotations

import io
import json
from pathlib import Path

from respy.cli.common import Streams
from respy.cli.main import main

TUTORIAL = ("tutorial/weather-rules.yaml", "tutorial/weather-deployment.yaml")
KEYS = {"code", "istio_code", "severity", "object", "where", "message", "why", "fix"}


def call(*args: str) -> tuple[int, str, str]:
    streams = Streams(io.StringIO(), io.StringIO())
    code = main(["analyze", *args], streams)
    return code, streams.out.getvalue(), streams.err.getvalue()


def test_the_tutorial_is_info_and_exit_0_on_current_istio(fixtures_dir: Path) -> None:
    # istioctl reports IST0118 as Info: since Istio 1.3 the port is sniffed and HTTP is routed (issue 16)
    code, out, err = call(*(str(fixtures_dir / f) for f in TUTORIAL), "-o", "json")
    assert (code, err) == (0, "")
    assert [(f["istio_code"], f["severity"]) for f in json.loads(out)] == [("IST0118", "info")]


def test_json_findings_and_exit_1_on_a_warning(fixtures_dir: Path) -> None:
    code, out, err = call(*(str(fixtures_dir / f) for f in TUTORIAL), "-o", "json", "--istio-version", "1.2")
    assert (code, err) == (1, "")
    findings = json.loads(out)
    assert len(findings) == 1
    assert set(findings[0]) == KEYS
    assert findings[0]["istio_code"] == "IST0118"
    assert findings[0]["severity"] == "warning"
    assert findings[0]["where"].endswith("weather-deployment.yaml:49")


def test_exit_0_when_clean(fixtures_dir: Path) -> None:
    code, out, _ = call(str(fixtures_dir / "upstream/istioctl-analyze-testdata/service-port-name.yaml"), "-o", "json")
    assert (code, json.loads(out)) == (0, [])


def test_exit_0_with_info_only(fixtures_dir: Path) -> None:
    code, out, _ = call(str(fixtures_dir / "tutorial/weather-deployment.yaml"), "-o", "json")
    assert code == 0
    assert [f["severity"] for f in json.loads(out)] == ["info"]


def test_a_bad_istio_version_is_exit_2(fixtures_dir: Path) -> None:
    code, _, err = call(str(fixtures_dir / TUTORIAL[0]), "--istio-version", "latest")
    assert code == 2 and "MAJOR.MINOR" in err and "Traceback" not in err


def test_table_for_people(fixtures_dir: Path) -> None:
    code, out, _ = call(*(str(fixtures_dir / f) for f in TUTORIAL), "--istio-version", "1.2")
    assert code == 1
    assert "WARNING" in out and "RSP001" in out and "IST0118" in out
    assert "Service default/weather-backend" in out
    assert "http-backend" in out
    assert out.rstrip().endswith("1 warning")


def test_clean_table_says_so(fixtures_dir: Path) -> None:
    code, out, _ = call(str(fixtures_dir / "upstream/istioctl-analyze-testdata/service-port-name.yaml"))
    assert code == 0
    assert out.startswith("no findings")


def test_stdin(fixtures_dir: Path, monkeypatch) -> None:
    text = (fixtures_dir / TUTORIAL[1]).read_text()
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, out, _ = call("-", "-o", "json")
    assert code == 0  # the Service alone: no weighted route, so info only
    assert json.loads(out)[0]["istio_code"] == "IST0118"


def test_host_filter_flag(fixtures_dir: Path) -> None:
    code, out, _ = call(*(str(fixtures_dir / f) for f in TUTORIAL), "--host", "weather-frontend", "-o", "json")
    assert (code, json.loads(out)) == (0, [])


def test_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    code, out, err = call(str(tmp_path / "nope.yaml"))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "nope.yaml" in err


def test_bad_yaml_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Service\nmetadata: [\n")
    code, _, err = call(str(bad))
    assert code == 2 and err.count("\n") == 1


def test_inline_weights_are_refused() -> None:
    code, _, err = call("single=90,multiple=10")
    assert code == 2 and "nothing to analyze" in err


def test_usage_errors_are_exit_2() -> None:
    code, _, err = call()
    assert code == 2 and err.count("\n") == 1
    code, _, err = call("x.yaml", "-o", "xml")
    assert code == 2 and err.count("\n") == 1


def test_help() -> None:
    code, out, _ = call("--help")
    assert code == 0
    assert out.startswith("usage: respy analyze")
    assert "istioctl analyze" in out and "-o {table,json}" in out
    assert "exit codes" in out


def test_the_table_shows_at_most_200_findings_and_says_how_many_more(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from respy.cli.analyze import MAX_TABLE_ROWS, render_table
    from respy.explain.analyze import Finding

    finding = Finding(code="RSP010", istio_code="", severity="info", object="VirtualService default/x",
                      where="x.yaml:1", message="weights sum to 99", why="w", fix="f")
    text = render_table([finding] * (MAX_TABLE_ROWS + 5))
    assert text.count("RSP010") == MAX_TABLE_ROWS
    assert "(5 more findings not shown: -o json lists them all)" in text
    assert text.splitlines()[-1] == "205 info"
