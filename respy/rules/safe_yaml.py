"""A hardened YAML reader: safe tags only, bounded size, nesting and alias expansion, line numbers kept.

Reusable on hostile input: every failure is a ``RulesError`` naming the file and, where known, the line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import Reader
from yaml.resolver import Resolver

from respy._errors import RulesError

MAX_DEPTH = 100
MAX_EXPANDED_NODES = 1_000_000
MAX_BYTES = 64 * 1024 * 1024
NON_PRINTABLE = Reader.NON_PRINTABLE

Path = tuple[str | int, ...]
T = TypeVar("T")


@dataclass(frozen=True)
class Document:
    """One parsed YAML document: its value, its first line, and the line of every nested value."""

    value: Any
    line: int
    lines: dict[Path, int]


_CParser: Any
try:  # libyaml scans and parses ~10x faster than pure Python (a 10 MB file: ~6 s instead of ~65 s)
    from yaml.cyaml import CParser as _CParser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _CParser = None


_SafeLoaderBase: Any
if _CParser is not None:

    class _SafeLoaderBase(Composer, _CParser, SafeConstructor, Resolver):  # type: ignore[no-redef]
        """libyaml's parser with PyYAML's Python composer (so the depth check below still runs)."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            Composer.__init__(self)

else:  # pragma: no cover
    _SafeLoaderBase = yaml.SafeLoader


class _BoundedSafeLoader(_SafeLoaderBase):
    """SafeLoader that refuses deep nesting while composing (before Python recursion can blow up)."""

    def __init__(self, stream: str) -> None:
        bad = NON_PRINTABLE.search(stream)  # the pure-Python reader's check, up front and with a line number
        if bad is not None:
            raise yaml.reader.ReaderError(
                "<unicode string>", bad.start(), ord(bad.group()), "unicode", "special characters are not allowed"
            )
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                line = event.start_mark.line + 1 if event is not None and event.start_mark is not None else None
                raise RulesError(f"YAML nested deeper than {MAX_DEPTH} levels", line=line)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def decode(data: bytes, file: str) -> str:
    """Bytes to text; binary junk is refused rather than half-parsed."""
    if len(data) > MAX_BYTES:
        raise RulesError(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB", file=file)
    if b"\x00" in data:
        raise RulesError("binary data (NUL bytes), not YAML", file=file)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RulesError(f"not UTF-8 text (byte 0x{data[exc.start]:02x}), not YAML", file=file, line=line) from None


def parse_documents(text: str, file: str) -> Iterator[Document]:
    """Yield each non-empty document of a multi-document YAML stream."""
    try:
        loader = _BoundedSafeLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters up front
        raise RulesError(f"not valid YAML: {exc}".replace("\n", " "), file=file, line=_reader_line(text, exc)) from None
    try:
        while _compose(loader.check_node, file):
            node = _compose(loader.get_node, file)
            if node is None:
                continue
            _check_expansion(node, file)
            _check_duplicate_keys(node, file)
            yield Document(_construct(loader, node, file), node.start_mark.line + 1, _line_map(node))
    finally:
        loader.dispose()


def _compose(step: Callable[[], T], file: str) -> T:
    """Run one composing step of the loader, turning every YAML failure into a ``RulesError``."""
    try:
        return step()
    except RulesError as exc:
        raise RulesError(exc.message, file=file, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        if "maximum nesting depth" in str(exc.problem):  # libyaml's own limit (1000 levels of flow nesting)
            raise RulesError(f"YAML nested deeper than {MAX_DEPTH} levels", file=file, line=_line(exc)) from None
        raise RulesError(f"not valid YAML: {_problem(exc)}", file=file, line=_line(exc)) from None
    except yaml.YAMLError as exc:
        raise RulesError(f"not valid YAML: {exc}", file=file) from None
    except RecursionError:
        raise RulesError("YAML nested too deeply", file=file) from None


def _construct(loader: yaml.SafeLoader, node: Node, file: str) -> Any:
    try:
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        # e.g. !!python/object/apply: the safe constructor refuses it, nothing is executed
        raise RulesError(f"refused YAML: {_problem(exc)}", file=file, line=_line(exc)) from None
    except yaml.YAMLError as exc:
        raise RulesError(f"refused YAML: {exc}", file=file) from None
    except (RecursionError, TypeError, ValueError) as exc:
        line = node.start_mark.line + 1
        raise RulesError(f"refused YAML: {type(exc).__name__}: {exc}", file=file, line=line) from None


def _reader_line(text: str, exc: yaml.YAMLError) -> int | None:
    position = getattr(exc, "position", None)
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else None


def _problem(exc: yaml.MarkedYAMLError) -> str:
    parts = [exc.context, exc.problem]
    return ", ".join(p for p in parts if p) or str(exc)


def _line(exc: yaml.MarkedYAMLError) -> int | None:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark is not None else None


def _check_expansion(root: Node, file: str) -> None:
    """Refuse alias bombs: count nodes as if every alias were expanded, memoised per shared node."""
    sizes: dict[int, int] = {}

    def size(node: Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a node that refers to itself counts once
        total = 1
        for child in _children(node):
            total += size(child)
            if total > MAX_EXPANDED_NODES:
                break
        sizes[id(node)] = total
        return total

    if size(root) > MAX_EXPANDED_NODES:
        raise RulesError(
            f"YAML expands to more than {MAX_EXPANDED_NODES:,} values (alias bomb?)", file=file,
            line=root.start_mark.line + 1,
        )


def _check_duplicate_keys(root: Node, file: str) -> None:
    """A key twice in one mapping is an error (kubectl refuses it; PyYAML would keep the last silently).

    Two manifests concatenated without ``---`` give exactly this, and their merge gives false findings.
    """
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            first: dict[str, int] = {}
            for key, _ in node.value:
                if not isinstance(key, ScalarNode) or key.value == "<<":
                    continue
                line = key.start_mark.line + 1
                if key.value in first:
                    raise RulesError(f"duplicate key {key.value!r} in a mapping (first at line {first[key.value]}): "
                                     "kubectl refuses this; two manifests joined without '---'?", file=file, line=line)
                first[key.value] = line
        stack.extend(_children(node))


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _line_map(root: Node) -> dict[Path, int]:
    """Path of every value (keys as str, list indexes as int) -> its 1-based line."""
    lines: dict[Path, int] = {}
    seen: set[int] = set()  # an aliased node is recorded once, where it is defined
    stack: list[tuple[Path, Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        lines[path] = node.start_mark.line + 1
        if isinstance(node, SequenceNode):
            stack.extend(((*path, i), child) for i, child in enumerate(node.value))
        elif isinstance(node, MappingNode):
            stack.extend(
                ((*path, key.value), value) for key, value in node.value if isinstance(key, ScalarNode)
            )
    return lines
