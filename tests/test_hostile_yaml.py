"""Hostile YAML given to ``--expect`` and ``respy analyze``: refused in one line with exit 2, nothing executed,
in seconds and bounded memory; and a big but valid file still loads.

Every case runs respy as a real process (its stderr, exit code and peak RSS are the product's behaviour).
The URL is never contacted for refused rules: they fail before any request is sent.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from support import Finished, run_respy

NOWHERE = "http://127.0.0.1:9/version"  # the discard port: nothing listens, and nothing should be sent
WEATHER_RULES = Path(__file__).resolve().parents[1] / "respy" / "examples" / "weather" / "weather-rules.yaml"


def expect(path: Path | str, *, stdin: bytes = b"", timeout: float = 60) -> Finished:
    return run_respy(NOWHERE, "-n", "1", "-q", "--expect", str(path), stdin=stdin, timeout=timeout)


def analyze(path: Path | str, *, stdin: bytes = b"", timeout: float = 60) -> Finished:
    return run_respy("analyze", str(path), stdin=stdin, timeout=timeout)


def assert_refused(result: Finished, *needles: str) -> None:
    """Exit 2, exactly one line on stderr, no traceback, nothing on stdout, and the line says why."""
    assert result.code == 2, result
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(("respy: error: ", "respy analyze: error: ")), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.out.strip() == "", result.out


BOTH = pytest.mark.parametrize("run", [expect, analyze], ids=["expect", "analyze"])


# ------------------------------------------------------------------------------------------------ code execution

PYTHON_TAGS = {
    "apply-top": '!!python/object/apply:os.system ["touch {marker}"]\n',
    "apply-in-spec": (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: x\n"
        'spec: !!python/object/apply:os.system ["touch {marker}"]\n'
    ),
    "apply-as-key": '? !!python/object/apply:os.system ["touch {marker}"]\n: 1\n',
    "new-subprocess": '!!python/object/new:subprocess.check_output [["touch", "{marker}"]]\n',
    "name": "kind: !!python/name:os.system\n",
    "apply-behind-alias": (
        'x: &bad !!python/object/apply:os.system ["touch {marker}"]\nkind: VirtualService\nspec: *bad\n'
    ),
    "local-tag": "kind: !respy/evil VirtualService\n",
}


@BOTH
@pytest.mark.parametrize("name", sorted(PYTHON_TAGS))
def test_python_tags_are_refused_and_nothing_is_executed(tmp_path: Path, run, name: str) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pwned"
    rules = tmp_path / "rules.yaml"
    rules.write_text(PYTHON_TAGS[name].format(marker=marker))
    result = run(rules)
    assert_refused(result, "rules.yaml")
    assert not marker.exists(), "the YAML ran a command"


def test_python_tags_on_stdin_are_refused_too(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = PYTHON_TAGS["apply-top"].format(marker=marker).encode()
    assert_refused(expect("-", stdin=text), "<stdin>")
    assert_refused(analyze("-", stdin=text), "<stdin>")
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------ alias bombs


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """Each level lists the one below ``width`` times: ``width ** levels`` (387 million) strings once expanded."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def merge_key_bomb(levels: int = 9, width: int = 9) -> str:
    """The same growth through ``<<`` merge keys, inside a real-looking VirtualService."""
    lines = ["kind: VirtualService", "apiVersion: networking.istio.io/v1", "metadata: {name: bomb}", "x:"]
    lines.append("  m0: &m0 {" + ", ".join(f"k{i}: lol" for i in range(width)) + "}")
    for level in range(1, levels):
        lines.append(f"  m{level}: &m{level} [" + ", ".join([f"*m{level - 1}"] * width) + "]")
    lines.append(f"spec: {{<<: *m0, hosts: [weather-backend], http: [{{route: *m{levels - 1}}}]}}")
    return "\n".join(lines) + "\n"


BOMBS = {"billion-laughs": billion_laughs(), "merge-keys": merge_key_bomb()}


@BOTH
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_alias_bombs_are_refused_in_seconds_with_bounded_memory(tmp_path: Path, run, name: str) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "bomb.yaml"
    rules.write_text(BOMBS[name])
    began = time.monotonic()
    result = run(rules, timeout=60)
    elapsed = time.monotonic() - began
    print(f"{name} via {run.__name__}: refused in {elapsed:.2f} s, peak RSS {result.peak_rss_kib / 1024:.0f} MiB")
    assert_refused(result, "alias bomb")
    assert elapsed < 20, elapsed  # generous: it takes well under a second; this only proves "not hung"
    assert result.peak_rss_kib < 200 * 1024, result.peak_rss_kib  # ~40 MiB; 387M strings would be tens of GiB


def test_an_alias_bomb_on_stdin_is_refused(tmp_path: Path) -> None:
    assert_refused(expect("-", stdin=billion_laughs().encode()), "<stdin>", "alias bomb")


def test_aliases_within_the_limit_still_load(tmp_path: Path) -> None:
    """Anchors and aliases are ordinary YAML: a shared value is fine while the expansion stays small."""
    text = WEATHER_RULES.read_text()
    first = "host: weather-backend\n            subset: single"
    second = "host: weather-backend\n            subset: multiple"
    assert first in text and second in text
    text = text.replace(first, first.replace("host: ", "host: &backend ")).replace(second, second.replace(
        "host: weather-backend", "host: *backend"))
    rules = tmp_path / "rules.yaml"
    rules.write_text(text)
    result = run_respy(NOWHERE, "-n", "1", "-q", "-o", "json", "-H", "Host: weather-backend", "--expect", str(rules))
    assert result.code == 4 and "Traceback" not in result.err, result  # loaded; nothing listens at the URL
    expected = {row["outcome"]: row["probability"] for row in result.json()["expected"]}
    assert expected == pytest.approx({"single": 0.9, "multiple": 0.1})


# ------------------------------------------------------------------------------------------------ junk and nothing


def _random_bytes(size: int, *, with_nul: bool) -> bytes:
    rng = random.Random(20240601)
    data = bytes(rng.randrange(256) for _ in range(size))
    return data if with_nul else data.replace(b"\x00", b"\x01")


JUNK: dict[str, bytes] = {
    "binary-with-nul": _random_bytes(4096, with_nul=True),
    "binary-without-nul": _random_bytes(4096, with_nul=False),
    "latin-1-text": "kind: VirtualService\nmetadata: {name: café}\n".encode("latin-1"),
    "control-characters": b"kind: VirtualService\x01\x02\n",
    "empty": b"",
    "only-comments": b"# nothing here\n---\n# nor here\n",
    "a-scalar": b"just some words\n",
    "a-list": b"- kind: VirtualService\n",
    "no-kind": b"apiVersion: v1\nmetadata: {name: x}\n",
    "unclosed-flow": b"kind: VirtualService\nspec: {hosts: [a, b\n",
    "tabs-for-indent": b"kind: VirtualService\nspec:\n\thosts: [a]\n",
    "deep-flow-lists": b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "deep-flow-maps": b"{a: " * 50_000 + b"1" + b"}" * 50_000 + b"\n",
    "deep-block": b"".join(b"  " * i + b"- \n" for i in range(3000)),
    "unhashable-key": b"kind: VirtualService\n? [a, b]\n: 1\n",
    "utf-16": "kind: VirtualService\n".encode("utf-16"),
}


@BOTH
@pytest.mark.parametrize("name", sorted(JUNK))
def test_junk_is_one_line_and_exit_2(tmp_path: Path, run, name: str) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / f"{name}.yaml"
    rules.write_bytes(JUNK[name])
    began = time.monotonic()
    result = run(rules)
    assert_refused(result, f"{name}.yaml")
    assert time.monotonic() - began < 30  # the deep ones included: refused in well under a second each


def test_no_routing_objects_is_one_line_and_exit_2_for_expect(tmp_path: Path) -> None:
    rules = tmp_path / "services.yaml"
    rules.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: weather-backend}\nspec: {ports: [{port: 80}]}\n")
    assert_refused(expect(rules), "no routing rules found")
    result = analyze(rules)  # analyze reads Services alone on purpose: findings (or none), never a crash
    assert result.code in (0, 1) and "Traceback" not in result.err, result


def test_an_empty_directory_and_a_missing_file_are_one_line_and_exit_2(tmp_path: Path) -> None:
    assert_refused(expect(tmp_path), "no *.yaml")
    assert_refused(expect(tmp_path / "missing.yaml"), "no such file")
    assert_refused(analyze(tmp_path / "missing.yaml"), "no such file")


def test_an_endless_stdin_is_cut_off_not_read_into_memory(tmp_path: Path) -> None:
    result = expect("-", stdin=b"a" * (65 * 1024 * 1024), timeout=60)
    assert_refused(result, "<stdin>", "larger than 64 MiB")


def test_a_file_over_the_size_limit_is_refused_without_parsing(tmp_path: Path) -> None:
    rules = tmp_path / "huge.yaml"
    with rules.open("wb") as handle:
        handle.truncate(65 * 1024 * 1024)  # sparse: 65 MiB of NUL bytes, written in no time
    began = time.monotonic()
    assert_refused(expect(rules), "larger than 64 MiB")
    assert time.monotonic() - began < 30


# ------------------------------------------------------------------------------------------------ big but valid

OTHER_SERVICE = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs-{i}
  namespace: default
spec:
  hosts:
    - svc-{i}
  http:
    - match:
        - headers:
            end-user:
              exact: user-{i}
      route:
        - destination:
            host: svc-{i}
            subset: v2
    - route:
        - destination:
            host: svc-{i}
            subset: v1
          weight: 75
        - destination:
            host: svc-{i}
            subset: v2
          weight: 25
---
"""


def ten_megabytes_of_rules(path: Path) -> int:
    """~20,000 VirtualServices for other hosts, then the real weather-backend rules; returns the size."""
    parts, size, i = [], 0, 0
    while size < 10 * 1024 * 1024:
        part = OTHER_SERVICE.format(i=i)
        parts.append(part)
        size += len(part)
        i += 1
    parts.append(WEATHER_RULES.read_text())
    path.write_text("".join(parts))
    return path.stat().st_size


@pytest.mark.slow
def test_a_10_mb_file_of_valid_objects_loads_and_finds_the_real_rule(tmp_path: Path) -> None:
    rules = tmp_path / "big.yaml"
    size = ten_megabytes_of_rules(rules)
    began = time.monotonic()
    result = run_respy(NOWHERE, "-n", "1", "-q", "-o", "json", "-H", "Host: weather-backend", "--expect", str(rules),
                       timeout=300)
    elapsed = time.monotonic() - began
    print(f"{size / 1e6:.1f} MB of rules loaded and resolved in {elapsed:.1f} s, "
          f"peak RSS {result.peak_rss_kib / 1024:.0f} MiB")
    assert "Traceback" not in result.err, result.err
    assert result.code == 4, result  # the rules loaded; the request itself went nowhere (nothing listens)
    expected = {row["outcome"]: row["probability"] for row in result.json()["expected"]}
    assert expected == pytest.approx({"single": 0.9, "multiple": 0.1})
    assert elapsed < 120, elapsed  # ~15 s here with libyaml (pure-Python PyYAML took ~70 s); "not hung"


@pytest.mark.slow
def test_analyze_reads_a_10_mb_file(tmp_path: Path) -> None:
    rules = tmp_path / "big.yaml"
    ten_megabytes_of_rules(rules)
    result = run_respy("analyze", str(rules), "-o", "json", timeout=300)
    assert result.code in (0, 1) and "Traceback" not in result.err, result
