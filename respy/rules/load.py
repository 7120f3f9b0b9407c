"""Reading routing inputs: YAML files, directories, stdin, or inline weights, into a ``RuleSet``."""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from respy._errors import RulesError
from respy.rules.safe_yaml import MAX_BYTES, Document, decode, parse_documents
from respy.rules.shape import check_shape

ROUTING_KINDS = frozenset({"VirtualService", "HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute"})
KEPT_KINDS = ROUTING_KINDS | {
    "DestinationRule", "Gateway", "ServiceEntry", "Sidecar", "Service", "Deployment", "StatefulSet",
    "DaemonSet", "ReplicaSet", "Pod", "Namespace", "ReferenceGrant", "WorkloadEntry", "Endpoints",
}
YAML_SUFFIXES = (".yaml", ".yml")
STDIN_NAME = "<stdin>"


@dataclass(frozen=True)
class K8sObject:
    """One Kubernetes object as read, with where it came from."""

    kind: str
    api_version: str
    name: str
    namespace: str | None
    body: Mapping[str, Any] = field(repr=False)
    file: str
    line: int | None
    lines: Mapping[tuple[str | int, ...], int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ref(self) -> str:
        """``VirtualService default/vs-weather-backend`` (no namespace part when none is set)."""
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, Mapping) else {}

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def ns(self, default: str) -> str:
        """The object's namespace, or ``default`` when the manifest sets none."""
        return self.namespace or default

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of the value at ``path`` inside the body, or of its nearest ancestor."""
        rel = tuple(path)
        while rel:
            found = self.lines.get(rel)
            if found is not None:
                return found
            rel = rel[:-1]
        return self.line

    def error(self, message: str, path: Sequence[str | int] = ()) -> RulesError:
        return RulesError(f"{self.ref}: {message}", file=self.file, line=self.line_of(path))

    def ref_in(self, ns_default: str) -> str:
        """``ref`` with ``ns_default`` standing in for a namespace the manifest does not set."""
        return f"{self.kind} {self.ns(ns_default)}/{self.name}"

    def describe(self, ns_default: str) -> str:
        """``VirtualService default/vs-weather-backend (weather-rules.yaml:35)``."""
        return f"{self.ref_in(ns_default)} ({self.where})"


@dataclass(frozen=True)
class RuleSet:
    """Everything read from the inputs: objects (routing and context) and inline weights."""

    objects: tuple[K8sObject, ...]
    weights: dict[str, float] | None = None
    warnings: tuple[str, ...] = ()
    istio_version: tuple[int, int] | None = None  # the mesh's, when read from the cluster

    def of_kind(self, *kinds: str) -> list[K8sObject]:
        return [o for o in self.objects if o.kind in kinds]

    @property
    def routing(self) -> list[K8sObject]:
        return [o for o in self.objects if o.kind in ROUTING_KINDS]

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(o.file for o in self.objects))


def load_inputs(values: Sequence[str], *, stdin: TextIO | None = None, require_routing: bool = True) -> RuleSet:
    """Read each value: a YAML file, a directory of them, ``-`` for stdin, or ``name=weight,...``.

    ``require_routing=False`` lets a caller (e.g. ``analyze``) read files that hold only Services.
    """
    objects: list[K8sObject] = []
    weights: dict[str, float] | None = None
    for value in values:
        if _is_inline_weights(value):
            if weights is not None:
                raise RulesError(f"inline weights given twice ({value!r})")
            weights = parse_weights(value)
        else:
            objects.extend(_load_value(value, stdin))
    unique, warnings = _dedupe(objects)
    if require_routing and weights is None and not any(o.kind in ROUTING_KINDS for o in unique):
        raise RulesError(_nothing_usable(values, unique))
    return RuleSet(objects=tuple(unique), weights=weights, warnings=tuple(warnings))


def load_text(text: str, file: str) -> list[K8sObject]:
    """The objects of one YAML stream (kind ``List`` unwrapped, unused kinds dropped, shapes checked)."""
    return _load_stream(text, file)[0]


def _load_stream(text: str, file: str) -> tuple[list[K8sObject], int]:
    """Objects and the number of non-empty documents (to tell an empty file from one of unused kinds)."""
    objects: list[K8sObject] = []
    count = 0
    for doc in parse_documents(text, file):
        count += doc.value is not None
        objects.extend(_objects_of(doc, file))
    return objects, count


def load_documents(documents: Iterable[Mapping[str, Any]], file: str,
                   default_namespace: str | None = None) -> list[K8sObject]:
    """Objects from already-parsed documents (e.g. read from the Kubernetes API), checked as files are.

    ``default_namespace`` is given to objects whose metadata sets none.
    """
    objects = []
    for document in documents:
        for obj in _objects_of(Document(document, 0, {}), file):
            objects.append(replace(obj, namespace=obj.namespace or default_namespace, line=None))
    return objects


def load_bytes(data: bytes, file: str) -> list[K8sObject]:
    return load_text(decode(data, file), file)


def parse_weights(value: str) -> dict[str, float]:
    """``single=90,multiple=10`` -> ``{"single": 90.0, "multiple": 10.0}``."""
    weights: dict[str, float] = {}
    for part in value.split(","):
        name, sep, number = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise RulesError(f"inline weights: {part!r} is not name=weight (in {value!r})")
        if name in weights:
            raise RulesError(f"inline weights: {name!r} given twice (in {value!r})")
        try:
            weight = float(number)
        except ValueError:
            raise RulesError(f"inline weights: weight of {name!r} is not a number: {number.strip()!r}") from None
        if weight != weight or weight in (float("inf"), float("-inf")):
            raise RulesError(f"inline weights: weight of {name!r} is not finite")
        if weight < 0:
            raise RulesError(f"inline weights: weight of {name!r} is negative ({number.strip()})")
        weights[name] = weight
    return weights


def _is_inline_weights(value: str) -> bool:
    return "=" in value and value != "-" and not Path(value).exists()


def _load_value(value: str, stdin: TextIO | None) -> list[K8sObject]:
    if value == "-":
        return _load_stdin(stdin if stdin is not None else sys.stdin)
    path = Path(value)
    if path.is_dir():
        return _load_dir(path)
    if not path.exists():
        raise RulesError("no such file or directory", file=value)
    objects, documents = _load_file(path, value)
    if not documents:
        raise RulesError("empty file: no YAML documents", file=value)
    return objects


def _load_stdin(stream: TextIO) -> list[K8sObject]:
    try:
        text = stream.read(MAX_BYTES + 1)  # bounded, like a file: an endless pipe must not eat all memory
    except UnicodeDecodeError:
        raise RulesError("not UTF-8 text, not YAML", file=STDIN_NAME) from None
    if len(text) > MAX_BYTES:
        raise RulesError(f"input is larger than {MAX_BYTES // (1024 * 1024)} MiB", file=STDIN_NAME)
    if "\x00" in text:
        raise RulesError("binary data (NUL bytes), not YAML", file=STDIN_NAME)
    return load_text(text, STDIN_NAME)


def _load_dir(path: Path) -> list[K8sObject]:
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in YAML_SUFFIXES)
    if not files:
        raise RulesError("directory holds no *.yaml or *.yml files", file=str(path))
    return [obj for file in files for obj in _load_file(file, str(file))[0]]


def _load_file(path: Path, shown: str) -> tuple[list[K8sObject], int]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RulesError(f"cannot read: {exc.strerror or exc}", file=shown) from None
    return _load_stream(decode(data, shown), shown)


def _objects_of(doc: Document, file: str) -> Iterator[K8sObject]:
    value = doc.value
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise RulesError(f"a YAML document here is a {_type_name(value)}, not a Kubernetes object", file=file,
                         line=doc.line)
    kind = value.get("kind")
    if not isinstance(kind, str) or not kind:
        raise RulesError("YAML document without a `kind`: not a Kubernetes object", file=file, line=doc.line)
    if kind == "List" or (kind.endswith("List") and isinstance(value.get("items"), list)):
        yield from _list_items(doc, file)
        return
    if kind in KEPT_KINDS:
        yield _make_object(value, file, doc.lines)


def _list_items(doc: Document, file: str) -> Iterator[K8sObject]:
    items = doc.value.get("items")
    if items is None:
        return
    if not isinstance(items, list):
        raise RulesError("`items` of a List is not a list", file=file, line=doc.lines.get(("items",), doc.line))
    item_lines: dict[int, dict[tuple[str | int, ...], int]] = defaultdict(dict)
    for path, line in doc.lines.items():
        if len(path) >= 2 and path[0] == "items" and isinstance(path[1], int):
            item_lines[path[1]][path[2:]] = line
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("kind"), str):
            raise RulesError("List item is not a Kubernetes object (no `kind`)", file=file,
                             line=doc.lines.get(("items", index)))
        if item["kind"] in KEPT_KINDS:
            yield _make_object(item, file, item_lines[index])


def _make_object(body: Mapping[str, Any], file: str, lines: Mapping[tuple[str | int, ...], int]) -> K8sObject:
    line = lines.get(())
    kind = body["kind"]
    meta = body.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, Mapping):
        raise RulesError(f"{kind}: `metadata` is not a mapping", file=file, line=lines.get(("metadata",), line))
    name, namespace = meta.get("name"), meta.get("namespace")
    api_version = body.get("apiVersion", "")
    for label, val in (("metadata.name", name), ("metadata.namespace", namespace), ("apiVersion", api_version)):
        if val is not None and not isinstance(val, str):
            raise RulesError(f"{kind}: `{label}` is not a string", file=file, line=line)
    obj = K8sObject(kind=kind, api_version=api_version or "", name=name or "", namespace=namespace or None,
                    body=body, file=file, line=line, lines=dict(lines))
    check_shape(obj)
    return obj


def _dedupe(objects: Iterable[K8sObject]) -> tuple[list[K8sObject], list[str]]:
    """A later object with the same kind/namespace/name replaces the earlier one, as `kubectl apply` would."""
    by_key: dict[tuple[str, str, str | None, str], K8sObject] = {}
    warnings: list[str] = []
    for index, obj in enumerate(objects):
        key = (obj.kind, obj.group, obj.namespace, obj.name or f"#unnamed-{index}")
        earlier = by_key.pop(key, None)
        if earlier is not None:
            warnings.append(f"{obj.ref} at {obj.where} replaces the one at {earlier.where}")
        by_key[key] = obj
    return list(by_key.values()), warnings


def _nothing_usable(values: Sequence[str], objects: Sequence[K8sObject]) -> str:
    where = ", ".join(values) or "(no inputs)"
    if not objects:
        return f"no routing rules found in {where}: no VirtualService, HTTPRoute or inline weights"
    kinds = ", ".join(sorted({o.kind for o in objects}))
    return f"no routing rules found in {where} (only {kinds}): need a VirtualService, an HTTPRoute or inline weights"


def _type_name(value: object) -> str:
    return {str: "string", list: "list", int: "number", float: "number", bool: "boolean"}.get(type(value), "scalar")
