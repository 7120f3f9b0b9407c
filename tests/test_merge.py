"""``respy merge``: results of real runs against servers on 127.0.0.1, added up and decided again."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from support import CliResult, run_cli, stochastic, weighted_handler

from respy.check.assign import assign
from respy.check.verdict import decide
from respy.cli.common import Streams
from respy.cli.merge import main as merge_main
from respy.cli.merge import split_objects
from respy.demo.localserver import LocalServer, fixed
from respy.rules.expectation import Expectation
from respy.tally import Kind, LatencyHistogram, Row

BODIES = {"weather-backend: single": 9, "weather-backend: multiple": 1}
WEIGHTS = "single=90,multiple=10"


def merge(*argv: str, stdin: str = "") -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    code = merge_main(list(argv), Streams(out, err, io.StringIO(stdin)))
    return CliResult(code, out.getvalue(), err.getvalue())


def partial_runs(url: str, sizes: tuple[int, ...], *extra: str) -> list[str]:
    outputs = []
    for n in sizes:
        result = run_cli(url, "-n", str(n), "-c", "4", "-o", "json", "-q", *extra)
        assert result.code in (0, 1, 3), result.err
        outputs.append(result.out)
    return outputs


def write(tmp_path: Path, outputs: list[str]) -> list[str]:
    paths = []
    for index, text in enumerate(outputs):
        path = tmp_path / f"pod-{index}.json"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    return paths


def counts(result: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(row["kind"], row["label"]): row["count"] for row in result["rows"]}


def summed(results: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    total: dict[tuple[str, str], int] = {}
    for result in results:
        for key, count in counts(result).items():
            total[key] = total.get(key, 0) + count
    return total


@pytest.fixture(scope="module")
def checked_runs() -> list[str]:
    """Three partial checks of a 90/10 server (-o json, --expect weights), as three pods would print them."""
    with LocalServer(weighted_handler(BODIES, seed=7)) as server:
        return partial_runs(server.url, (300, 200, 250), "--expect", WEIGHTS)


def test_merge_of_three_checks_adds_the_counts_and_requests(checked_runs: list[str], tmp_path: Path) -> None:
    parts = [json.loads(text) for text in checked_runs]
    result = merge(*write(tmp_path, checked_runs), "-o", "json")
    assert result.code == 0, result.err
    merged = result.json()
    assert merged["requests"] == 750 == sum(p["requests"] for p in parts)
    assert counts(merged) == summed(parts)
    assert merged["planned"] == 750
    # the three runs ran one after the other: no combined rate, the time spent sending summed
    assert merged["elapsed_s"] == pytest.approx(sum(p["elapsed_s"] for p in parts), abs=1e-5)
    assert merged["rate"] is None and merged["merged"]["overlapped"] is False
    assert merged["latency_histogram"]["count"] == 750
    assert merged["merged"]["results"] == 3


def test_merged_verdict_equals_one_run_with_those_counts(checked_runs: list[str], tmp_path: Path) -> None:
    parts = [json.loads(text) for text in checked_runs]
    merged = merge(*write(tmp_path, checked_runs), "-o", "json").json()
    rows = [Row(label=label, count=n, kind=Kind(kind), status=200) for (kind, label), n in summed(parts).items()]
    expectation = Expectation.from_weights({"single": 90, "multiple": 10})
    alone = decide(assign(rows, expectation), expectation, alpha=parts[0]["verdict"]["alpha"],
                   tolerance=parts[0]["verdict"]["tolerance"]).to_dict()
    verdict = merged["verdict"]
    for key in ("outcome", "test", "statistic", "df", "p_value", "requests", "tolerance", "alpha", "shares"):
        assert verdict[key] == alone[key], key
    assert verdict["outcome"] == "PASS"
    assert [e["outcome"] for e in merged["expected"]] == ["single", "multiple"]


def test_merge_table_shows_the_total_and_the_verdict(checked_runs: list[str], tmp_path: Path) -> None:
    result = merge(*write(tmp_path, checked_runs))
    assert result.code == 0
    assert "% OF 750 REQUESTS" in result.out
    assert "750 requests in" in result.out
    assert any(line.startswith("PASS") for line in result.out.splitlines())


def test_stdin_with_several_objects_as_kubectl_logs_prints_them(checked_runs: list[str], tmp_path: Path) -> None:
    from_files = merge(*write(tmp_path, checked_runs), "-o", "json").json()
    from_stdin = merge("-", "-o", "json", stdin="".join(checked_runs))
    assert from_stdin.code == 0 and not from_stdin.err
    assert counts(from_stdin.json()) == counts(from_files)
    assert from_stdin.json()["verdict"] == from_files["verdict"]


def test_a_file_of_concatenated_objects_and_a_stray_log_line(checked_runs: list[str], tmp_path: Path) -> None:
    path = tmp_path / "logs.txt"
    path.write_text("respy: warning: something\n" + checked_runs[0] + checked_runs[1], encoding="utf-8")
    result = merge(str(path), str(write(tmp_path, checked_runs[2:])[0]), "-o", "json")
    assert result.code == 0
    assert result.json()["requests"] == 750
    assert "skipped 1 line(s)" in result.err


def test_merged_json_merges_again(checked_runs: list[str], tmp_path: Path) -> None:
    first_two = merge("-", "-o", "json", stdin="".join(checked_runs[:2])).out
    again = merge("-", "-o", "json", stdin=first_two + checked_runs[2]).json()
    at_once = merge("-", "-o", "json", stdin="".join(checked_runs)).json()
    assert counts(again) == counts(at_once)
    assert again["latency_histogram"] == at_once["latency_histogram"]
    assert again["verdict"]["outcome"] == at_once["verdict"]["outcome"]


def test_plain_runs_merge_without_a_verdict() -> None:
    with LocalServer(fixed("hello")) as server:
        outputs = partial_runs(server.url, (20, 30, 10))
    result = merge("-", "-o", "json", stdin="\n".join(outputs))
    assert result.code == 0
    merged = result.json()
    assert counts(merged) == {("ok", "hello"): 60}
    assert "verdict" not in merged and "expected" not in merged
    assert merged["concurrency"] == 12
    histograms = [LatencyHistogram.from_state(json.loads(o)["latency_histogram"]) for o in outputs]
    assert merged["latency_histogram"]["count"] == sum(h.count for h in histograms)
    assert merged["latency_histogram"]["max_s"] == max(h.max_s for h in histograms)


@stochastic
def test_merge_decides_against_rules_given_to_merge(fixtures_dir: Path) -> None:
    """Pods that only measured (no --expect); the verdict comes from the tutorial's rules at merge time."""
    with LocalServer(weighted_handler(BODIES, seed=11)) as server:
        outputs = partial_runs(server.url, (400, 400), "-H", "Host: weather-backend")
    rules = str(fixtures_dir / "tutorial" / "weather-rules.yaml")
    result = merge("-", "-o", "json", "--expect", rules, "-H", "Host: weather-backend", stdin="".join(outputs))
    assert result.code == 0, result.err
    merged = result.json()
    assert merged["verdict"]["outcome"] == "PASS"
    assert merged["verdict"]["requests"] == 800
    assert {e["outcome"]: e["probability"] for e in merged["expected"]} == {"single": 0.9, "multiple": 0.1}


@stochastic
def test_merged_50_50_fails_against_the_declared_90_10() -> None:
    with LocalServer(weighted_handler({"weather-backend: single": 1, "weather-backend: multiple": 1}, 3)) as server:
        outputs = partial_runs(server.url, (300, 300), "--expect", WEIGHTS)
    result = merge("-", stdin="".join(outputs))
    assert result.code == 1
    assert any(line.startswith("FAIL") for line in result.out.splitlines())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("hello, not json\n", "not JSON"),
        ('{"kind": "List", "items": []}\n', "not a respy result"),
        ('{"url": "http://x", "requests": 5, "rows": [{"label": "a", "count": 4, "kind": "ok"}]}',
         "add up to 4, not to its `requests` (5)"),
        ('{"url": "http://x", "requests": 1, "rows": [{"label": "a", "count": 1, "kind": "nope"}]}',
         "not a respy result"),
    ],
)
def test_bad_input_is_a_one_line_error_with_exit_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    result = run_cli("merge", str(path))
    assert result.code == 2
    assert result.out == ""
    assert len(result.err.strip().splitlines()) == 1
    assert message in result.err and "bad.json" in result.err


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    result = run_cli("merge", str(tmp_path / "nope.json"))
    assert result.code == 2
    assert "cannot read" in result.err and len(result.err.strip().splitlines()) == 1


def test_different_urls_are_an_error(tmp_path: Path) -> None:
    one = '{"url": "http://a", "requests": 1, "rows": [{"label": "x", "count": 1, "kind": "ok"}], "by": "body"}'
    path = tmp_path / "two.json"
    path.write_text(one + one.replace("http://a", "http://b"), encoding="utf-8")
    result = run_cli("merge", str(path))
    assert result.code == 2
    assert "different URLs" in result.err


def test_results_checked_against_different_rules_need_expect(checked_runs: list[str]) -> None:
    other = json.loads(checked_runs[0])
    other["expected"][0]["probability"] = 0.5
    other["expected"][1]["probability"] = 0.5
    result = run_cli("merge", "-", stdin=checked_runs[1] + json.dumps(other))
    assert result.code == 2
    assert "different expectations" in result.err and "--expect" in result.err


def test_non_json_on_stdin_is_an_error() -> None:
    result = run_cli("merge", "-", stdin="Error from server (NotFound): pods not found\n")
    assert result.code == 2
    assert result.err.strip() == "respy: error: <stdin>: not JSON: no `respy -o json` result found"


def test_split_objects_resumes_at_the_next_result_after_a_cut_one() -> None:
    whole = json.dumps({"a": {"b": [1, {"c": 2}]}}, indent=2)
    cut = whole[: len(whole) // 2]
    found, skipped = split_objects(cut + "\n" + whole + "\n" + whole)
    assert found == [{"a": {"b": [1, {"c": 2}]}}] * 2
    assert skipped > 0


# --- what merging must refuse, and when a rate means something ---------------------------------------------------


def test_the_same_result_twice_is_refused(checked_runs: list[str], tmp_path: Path) -> None:
    path = write(tmp_path, checked_runs[:1])[0]
    result = run_cli("merge", path, path)
    assert result.code == 2 and "same run" in result.err and "twice" in result.err
    assert len(result.err.strip().splitlines()) == 1
    merged = tmp_path / "merged.json"
    merged.write_text(merge(*write(tmp_path, checked_runs[:2]), "-o", "json").out)
    again = run_cli("merge", str(merged), path)  # a merged result and one of its runs
    assert again.code == 2 and "same run" in again.err


def test_plain_and_checked_results_need_rules_to_be_merged(tmp_path: Path) -> None:
    with LocalServer(weighted_handler(BODIES, seed=3)) as server:
        plain = partial_runs(server.url, (100,))
        checked = partial_runs(server.url, (150,), "--expect", WEIGHTS)
    paths = write(tmp_path, [plain[0], checked[0]])
    result = run_cli("merge", *paths)
    assert result.code == 2 and "--expect RULES" in result.err
    judged = merge(*paths, "--expect", WEIGHTS, "-o", "json")
    assert judged.code in (0, 3), judged.err
    assert judged.json()["verdict"]["requests"] == 250


def test_runs_that_overlapped_in_time_have_a_combined_rate(checked_runs: list[str]) -> None:
    first, second = (json.loads(text) for text in checked_runs[:2])
    second["started_at"] = first["started_at"]  # as two pods started together
    result = merge("-", "-o", "json", stdin=json.dumps(first) + json.dumps(second))
    merged = result.json()
    assert merged["merged"]["overlapped"] is True
    assert merged["elapsed_s"] == pytest.approx(max(first["elapsed_s"], second["elapsed_s"]), abs=1e-3)
    assert merged["rate"] == pytest.approx(merged["requests"] / merged["elapsed_s"], rel=1e-3)
    table = merge("-", stdin=checked_runs[0] + checked_runs[1]).out  # one after the other
    assert "no combined rate" in table and "req/s" not in table


@stochastic
def test_the_runs_host_header_picks_the_route_when_merged(fixtures_dir: Path) -> None:
    with LocalServer(weighted_handler(BODIES, seed=11)) as server:
        outputs = partial_runs(server.url, (500, 500), "-H", "Host: weather-backend")
    assert json.loads(outputs[0])["host_header"] == "weather-backend"
    rules = str(fixtures_dir / "tutorial" / "weather-rules.yaml")
    result = merge("-", "-o", "json", "--expect", rules, stdin="".join(outputs))  # no -H needed
    assert result.code == 0, result.err
    assert result.json()["verdict"]["requests"] == 1000
