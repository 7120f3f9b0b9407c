"""The pytest plugin (entry point ``pytest11: respy``), run by pytest's own ``pytester`` in a subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import stochastic, weighted_handler

from respy.pytest_plugin import RespyFixture

pytest_plugins = ["pytester"]

SINGLE, MULTIPLE = "weather-backend: single", "weather-backend: multiple"

PASSING = """
    import respy as respy_module

    def test_true_split_passes(respy):
        verdict = respy.assert_split("/version", {"single": 90, "multiple": 10}, concurrency=20)
        assert verdict.outcome == "PASS" and verdict.requests == 2000

    def test_measure_joins_the_path_onto_the_base_url(respy):
        m = respy.measure("version", requests=50)
        assert m.requests == 50 and m.url.endswith("/version")

    def test_expectation_from_weights(respy):
        expectation = respy.expectation(weights={"single": 90, "multiple": 10})
        assert isinstance(expectation, respy_module.Expectation)
        respy.assert_split("/", expectation)
"""

FAILING = """
    def test_declared_split_is_not_served(respy):
        respy.assert_split("/version", {"single": 90, "multiple": 10}, concurrency=20)
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A separate pytest process (the plugin loaded from its entry point, as in a user's environment)."""
    return pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")


def test_plugin_is_registered_through_its_entry_point() -> None:
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group="pytest11") if ep.name == "respy"]
    assert [ep.value for ep in found] == ["respy.pytest_plugin"]


@stochastic
def test_a_passing_test_file(pytester: pytest.Pytester, serve) -> None:
    server = serve(weighted_handler({SINGLE: 90, MULTIPLE: 10}, seed=7))
    pytester.makepyfile(test_split=textwrap.dedent(PASSING))
    result = run(pytester, "--respy-url", server.url, "--respy-requests", "2000")
    result.assert_outcomes(passed=3)


@stochastic
def test_a_failing_test_file_shows_the_table_and_the_fail_line(pytester: pytest.Pytester, serve) -> None:
    server = serve(weighted_handler({SINGLE: 50, MULTIPLE: 50}, seed=7))
    pytester.makepyfile(test_split=textwrap.dedent(FAILING))
    result = run(pytester, "--respy-url", server.url, "--respy-requests", "1000")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    for column in ("RESPONSE", "DESTINATION", "EXPECTED %", "OBSERVED % (interval)", "% OF 1,000 REQUESTS"):
        assert column in output
    result.stdout.fnmatch_lines(["*FAIL  inline weights: observed single 5*declared 90% / 10%*1,000 requests)*"])
    # the short summary line (-ra) starts with the verdict, not with the table's border
    result.stdout.fnmatch_lines(["FAILED test_split.py::* - AssertionError: FAI*"])  # cut to the terminal's width
    assert "respy/_api.py" not in output  # __tracebackhide__: the failure points at the test, not at respy


@stochastic
def test_expectation_from_files_through_the_fixture(pytester: pytest.Pytester, serve, fixtures_dir: Path) -> None:
    server = serve(weighted_handler({SINGLE: 90, MULTIPLE: 10}, seed=7))
    rules = fixtures_dir / "tutorial" / "weather-rules.yaml"
    pytester.makepyfile(test_rules=f"""
        def test_rules(respy):
            host = {{"Host": "weather-backend"}}
            expectation = respy.expectation(files={str(rules)!r}, url="/version", headers=host)
            assert expectation.probabilities == {{"single": 0.9, "multiple": 0.1}}
            respy.assert_split("/version", expectation, headers=host, requests=2000)
    """)
    result = run(pytester, "--respy-url", server.url)
    result.assert_outcomes(passed=1)


def test_a_relative_path_without_respy_url_skips_with_a_one_line_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nourl="""
        def test_it(respy):
            respy.measure("/version")
    """)
    result = run(pytester, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*respy: '/version' needs a base URL: run pytest --respy-url http://HOST:PORT"])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("base", "path", "joined"),
    [
        ("http://h:1", "/version", "http://h:1/version"),
        ("http://h:1/", "version", "http://h:1/version"),
        ("http://h:1/api", "/v", "http://h:1/api/v"),
        ("http://h:1/api", "", "http://h:1/api"),
        ("http://h:1/api", "?q=1", "http://h:1/api?q=1"),
        ("http://h:1", "https://other/x", "https://other/x"),
        (None, "http://other/x", "http://other/x"),
    ],
)
def test_url_joining(base: str | None, path: str, joined: str) -> None:
    assert RespyFixture(base, 10).url(path) == joined


def test_fixture_expectation_needs_weights_or_files() -> None:
    from respy import UsageError

    fixture = RespyFixture("http://h:1", 10)
    with pytest.raises(UsageError):
        fixture.expectation()
    with pytest.raises(UsageError):
        fixture.expectation(weights={"a": 1}, files="x.yaml")


def test_the_plugin_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, pytest\n"
        "before = set(sys.modules)\n"
        "import respy.pytest_plugin\n"
        "new = set(sys.modules) - before\n"
        "heavy = sorted(m for m in new if m.split('.')[0] in ('numpy', 'scipy', 'yaml', 'httpx', 'anyio', 'tabulate')"
        " or m == 'respy._api')\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
