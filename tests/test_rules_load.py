"""Reading routing inputs: files, directories, stdin, kind: List, inline weights, and hostile or broken YAML."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respy._errors import RulesError
from respy.rules import K8sObject, RuleSet, load_bytes, load_inputs, load_text, resolve

VS_90_10 = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v2}
      weight: 10
"""


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def test_kind_list_is_unwrapped_with_item_lines(tmp_path: Path) -> None:
    indented = "\n".join("  " + line if line else line for line in VS_90_10.splitlines()).lstrip()
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n"
        "- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {name: reviews}\n"
        "  spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}\n"
        f"- {indented}\n"
    )
    rules = load_inputs([write(tmp_path, "list.yaml", text)])
    assert [o.kind for o in rules.objects] == ["DestinationRule", "VirtualService"]  # Secret skipped silently
    assert [o.line for o in rules.objects] == [7, 11]
    expectation = resolve(rules, url="http://reviews:9080/")
    # the DestinationRule in the List defines only v1, so v2's share answers 503
    assert expectation.probabilities == pytest.approx({"v1": 0.9, "HTTP 503 (subset v2 of reviews not defined)": 0.1})


def test_stdin_dash() -> None:
    rules = load_inputs(["-"], stdin=io.StringIO(VS_90_10))
    assert rules.objects[0].file == "<stdin>"
    assert resolve(rules, url="http://reviews/").probabilities == pytest.approx({"v1": 0.9, "v2": 0.1})


def test_inline_weights() -> None:
    rules = load_inputs(["single=90,multiple=10"])
    assert rules.weights == {"single": 90.0, "multiple": 10.0}
    expectation = resolve(rules, url="http://weather-backend:5000/")
    assert expectation.probabilities == pytest.approx({"single": 0.9, "multiple": 0.1})


@pytest.mark.parametrize("value", ["single=ninety", "=5", "a=1,a=2", "a=-1", "a=nan"])
def test_bad_inline_weights(value: str) -> None:
    with pytest.raises(RulesError):
        load_inputs([value])


def test_inline_weights_win_over_rules_with_a_warning(tmp_path: Path) -> None:
    rules = load_inputs([write(tmp_path, "vs.yaml", VS_90_10), "v1=1,v2=1"])
    expectation = resolve(rules, url="http://reviews/")
    assert expectation.probabilities == pytest.approx({"v1": 0.5, "v2": 0.5})
    assert any("inline weights" in w for w in expectation.warnings)


def test_directory_is_read_sorted_and_non_yaml_ignored(fixtures_dir: Path) -> None:
    rules = load_inputs([str(fixtures_dir / "tutorial")])
    files = [Path(f).name for f in rules.files]
    assert files == ["respy.yaml", "sleep.yaml", "weather-deployment.yaml", "weather-rules.yaml"]
    assert len(rules.of_kind("ServiceEntry")) == 3


def test_object_ref_and_where(fixtures_dir: Path) -> None:
    rules = load_inputs([str(fixtures_dir / "tutorial" / "weather-rules.yaml")])
    backend = next(o for o in rules.of_kind("VirtualService") if o.name == "vs-weather-backend")
    assert isinstance(backend, K8sObject)
    assert backend.ref == "VirtualService vs-weather-backend"
    assert backend.ref_in("default") == "VirtualService default/vs-weather-backend"
    assert backend.where.endswith("weather-rules.yaml:35")
    assert backend.api_version == "networking.istio.io/v1alpha3" and backend.namespace is None


def test_not_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: [unclosed\n")
    with pytest.raises(RulesError) as caught:
        load_inputs([path])
    assert caught.value.file == path
    assert caught.value.line is not None and caught.value.line >= 4
    assert "not valid YAML" in str(caught.value)


def test_python_tags_are_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = f'kind: VirtualService\nspec: !!python/object/apply:os.system ["touch {marker}"]\n'
    path = write(tmp_path, "evil.yaml", evil)
    with pytest.raises(RulesError) as caught:
        load_inputs([path])
    assert not marker.exists()
    assert caught.value.line == 2 and "python/object/apply" in str(caught.value)


@pytest.mark.parametrize(
    ("replace", "by", "line", "message"),
    [
        ("  http:\n  - route:", "  http:\n    route:", 9, "must be a list"),
        ("      weight: 90", "      weight: ninety", 11, "weight must be an integer"),
        ("      weight: 10", "      weight: -5", 13, "weight -5 < 0"),
        ("      weight: 10", "      weight: 2.5", 13, "weight must be an integer"),
        ("  hosts: [reviews]", "  hosts: reviews", 7, "list of strings"),
    ],
)
def test_wrong_shapes_name_file_and_line(tmp_path: Path, replace: str, by: str, line: int, message: str) -> None:
    assert replace in VS_90_10
    path = write(tmp_path, "shape.yaml", "# leading comment\n" + VS_90_10.replace(replace, by))
    with pytest.raises(RulesError) as caught:
        load_inputs([path])
    assert message in caught.value.message
    assert (caught.value.file, caught.value.line) == (path, line + 1)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="empty"):
        load_inputs([write(tmp_path, "empty.yaml", "# nothing here\n---\n")])


def test_no_routing_objects_anywhere_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n"
                 "apiVersion: v1\nkind: Service\nmetadata: {name: y}\nspec: {}\n")
    with pytest.raises(RulesError, match="no routing rules"):
        load_inputs([path])
    assert [o.kind for o in load_inputs([path], require_routing=False).objects] == ["Service"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="no such file"):
        load_inputs([str(tmp_path / "nope.yaml")])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just\n- a list\n", "not a Kubernetes object"),
        ("just: a mapping\n", "without a `kind`"),
        ("kind: VirtualService\nmetadata: {name: x}\n", "has no `spec`"),
        ("kind: VirtualService\nmetadata: [x]\nspec: {}\n", "`metadata` is not a mapping"),
        ("kind: DestinationRule\nmetadata: {name: x}\nspec: {subsets: []}\n", "spec.host"),
        ("kind: HTTPRoute\nmetadata: {name: x}\nspec: {rules: [{backendRefs: {name: a}}]}\n", "must be a list"),
    ],
)
def test_documents_that_are_not_usable_objects(text: str, message: str) -> None:
    with pytest.raises(RulesError, match=re.escape(message)):
        load_text(text, "x.yaml")


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path = write(tmp_path, "bomb.yaml", "kind: VirtualService\nspec:\n" + "\n".join("  " + x for x in lines) + "\n")
    with pytest.raises(RulesError, match="alias bomb"):
        load_inputs([path])


def test_small_aliases_are_fine() -> None:
    text = VS_90_10.replace("subset: v1}", "subset: v1}\n      headers: &h {request: {set: {x: y}}}")
    assert load_text(text + "---\n" + text.replace("name: reviews\n", "name: r2\n").replace("&h", "&g"), "a.yaml")


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(RulesError, match="nested"):
        load_text("kind: VirtualService\nspec: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")


@pytest.mark.parametrize("data", [b"\x00\x01\x02binary", b"kind: Service\nname: \xff\xfe\n", b"\x89PNG\r\n\x1a\n"])
def test_binary_junk_is_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(RulesError) as caught:
        load_inputs([write(tmp_path, "junk.yaml", data)])
    assert caught.value.file is not None


def test_later_duplicate_replaces_earlier_with_a_warning(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", VS_90_10)
    second = write(tmp_path, "b.yaml", VS_90_10.replace("weight: 90", "weight: 10"))
    rules = load_inputs([first, second])
    assert len(rules.of_kind("VirtualService")) == 1 and rules.objects[0].file == second
    assert any("replaces" in w for w in rules.warnings)
    assert resolve(rules, url="http://reviews/").probabilities == pytest.approx({"v1": 0.5, "v2": 0.5})


def test_ruleset_of_kind() -> None:
    rules = RuleSet(objects=tuple(load_text(VS_90_10, "x.yaml")))
    assert [o.name for o in rules.of_kind("VirtualService")] == ["reviews"]
    assert rules.of_kind("HTTPRoute") == []


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_text_loads_or_raises_rules_error(text: str) -> None:
    with contextlib.suppress(RulesError):
        load_text("kind: VirtualService\nmetadata: {name: x}\nspec:\n  http: " + text, "fuzz.yaml")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_load_or_raise_rules_error(data: bytes) -> None:
    with contextlib.suppress(RulesError):
        load_bytes(b"kind: HTTPRoute\nspec:\n  rules:\n" + data, "fuzz.yaml")
