"""Safe YAML reading with line numbers, for catalog and connector files.

Anchors and aliases are refused (they are what YAML bombs are made of and a
catalog never needs them), files over a size limit are refused, so is
nesting deeper than :data:`MAX_DEPTH` (``[[[[...`` would exhaust Python's
stack), and every error carries the file and line so an operator can go
straight to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1_000_000
MAX_DEPTH = 32


class YamlProblem(Exception):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            raise YamlProblem(
                "YAML aliases (*name) are not allowed in catalog files",
                event.start_mark.line + 1 if event.start_mark else None,
            )
        if getattr(event, "anchor", None):
            raise YamlProblem("YAML anchors (&name) are not allowed", event.start_mark.line + 1)
        depth = self._depth = getattr(self, "_depth", 0) + 1
        try:
            if depth > MAX_DEPTH:
                raise YamlProblem(
                    f"nested more than {MAX_DEPTH} levels deep",
                    event.start_mark.line + 1 if event.start_mark else None,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth = depth - 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise YamlProblem(
                    f"key {key!r} appears twice in the same mapping", key_node.start_mark.line + 1
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class Document:
    """A parsed YAML file: its data and the line of every mapping key / list item."""

    def __init__(self, path: Path, data: Any, node: yaml.Node | None) -> None:
        self.path = path
        self.data = data
        self._node = node

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        """1-based line of the value at ``loc`` (keys and list indices), best effort."""
        node = self._node
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if key.value == part:
                        line = key.start_mark.line + 1
                        node = value
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    return line
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def read(path: Path) -> Document:
    """Read one YAML file safely; raises :class:`YamlProblem` with the line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise YamlProblem(f"cannot read file: {exc.strerror}") from exc
    if len(raw) > MAX_BYTES:
        raise YamlProblem(f"file is {len(raw)} bytes, more than the {MAX_BYTES} allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"not UTF-8 text (byte {exc.start})") from exc
    try:
        node = yaml.compose(text, Loader=_NoAliasLoader)
        data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506
    except YamlProblem:
        raise
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise YamlProblem(f"not valid YAML: {exc.problem}", line) from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(f"not valid YAML: {exc}") from exc
    return Document(path, data, node)
