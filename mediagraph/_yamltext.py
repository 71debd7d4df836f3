"""A YAML text read with positions: every value keeps the ``FILE:LINE:COLUMN`` an error can point at.

The text is *composed*, not loaded: the bounded safe loader of ``mediagraph._limits`` (size, nesting,
aliases, numbers) turns it into a tree of nodes that keep their line and column, and values are then
constructed one at a time with PyYAML's safe constructor. Whatever is wrong (a syntax error, a passed limit,
a duplicate key, a value of the wrong kind) raises :class:`GraphDefinitionError` located at the offending
key or value. What the text *means* is the business of ``mediagraph._sections``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn, final

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from . import _limits
from ._errors import GraphDefinitionError
from ._limits import quote

__all__ = ["Entry", "YamlText", "kind", "relocate"]

Entry = tuple[Node, Node]  # a mapping's key node and value node

_NULL = "tag:yaml.org,2002:null"


def kind(value: Any) -> str:
    """What a value is, for "must be X, got Y" messages."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {quote(value)}"


def relocate(exc: GraphDefinitionError, where: str, message: str | None = None) -> GraphDefinitionError:
    """``exc`` (raised by code that knows no file) located at ``where``; what it names is kept."""
    return GraphDefinitionError(message or exc.message, location=where, node=exc.node, param=exc.param, link=exc.link)


@final
class YamlText:
    """One YAML text and the name its locations use.

    Args:
        text: the YAML.
        filename: the name in ``FILE:LINE:COLUMN`` (a path, ``<string>``).
    """

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename
        #: The values of keys named like secrets (found by :meth:`compose`), to keep out of messages.
        self.secrets: frozenset[str] = frozenset()
        self._constructor = SafeConstructor()

    # -- locations

    def at(self, node: Node) -> str:
        """``FILE:LINE:COLUMN`` of a node."""
        mark = node.start_mark
        return f"{self.filename}:{mark.line + 1}:{mark.column + 1}"

    def at_text(self, node: Node, part: str, start: int = 0) -> str:
        """The location of ``part`` inside a one-line scalar (``start``: search from this offset)."""
        first, last = node.start_mark, node.end_mark
        if first.line == last.line:
            offset = self.text[first.index : last.index].find(part, start)
            if offset >= 0:
                return f"{self.filename}:{first.line + 1}:{first.column + 1 + offset}"
        return self.at(node)

    def text_offset(self, node: Node, offset_in_value: int) -> int:
        """An offset in a scalar's value as an offset in its source text (quotes shift it by one)."""
        first = node.start_mark.index
        quoted = self.text[first : first + 1] in ("'", '"')
        return offset_in_value + (1 if quoted else 0)

    def fail(self, where: Node | str, message: str) -> NoReturn:
        """Raise :class:`GraphDefinitionError` at a node, or at a location already written out."""
        raise GraphDefinitionError(message, location=where if isinstance(where, str) else self.at(where))

    # -- reading

    def compose(self) -> Node | None:
        """The tree of the text (``None``: the text is empty), within the limits of ``mediagraph._limits``."""
        loader: _limits.BoundedLoader | None = None
        try:
            loader = _limits.BoundedLoader(self.text)
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            self._yaml_error(exc)
        except yaml.reader.ReaderError as exc:
            where = _limits.reader_error_location(exc, self.text, self.filename)
            char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
            self.fail(where, f"YAML syntax error: character {char} is not allowed ({exc.reason})")
        except yaml.YAMLError as exc:
            self.fail(self.filename, f"YAML syntax error: {_limits.cut(str(exc))}")
        finally:
            if loader is not None:
                loader.dispose()
        if root is not None:
            self.secrets |= _limits.check_tree(root, self.filename)
        return root

    def _yaml_error(self, exc: yaml.MarkedYAMLError) -> NoReturn:
        mark = exc.problem_mark or exc.context_mark
        where = f"{self.filename}:{mark.line + 1}:{mark.column + 1}" if mark else self.filename
        context = ""
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            context = f" ({exc.context} at line {exc.context_mark.line + 1})"
        prefix = "" if isinstance(exc, _limits.LimitError) else "YAML syntax error: "
        self.fail(where, f"{prefix}{exc.problem or exc.context}{context}")

    def value(self, node: Node) -> Any:
        """The Python value of a node (safe types only)."""
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self._yaml_error(exc)

    def mapping(self, node: Node, what: str) -> dict[str, Entry]:
        """The entries of a YAML mapping by key; ``<<`` merges applied, duplicate keys refused."""
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return {}
        if not isinstance(node, MappingNode):
            self.fail(node, f"{what} must be a mapping, got {kind(self.value(node))}")
        if node.tag != "tag:yaml.org,2002:map":
            self.value(node)  # an explicit tag (`!!python/...`): the constructor refuses it with its location
        own: dict[str, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.value(key_node)
            if not isinstance(key, str) or not isinstance(key_node, ScalarNode):
                self.fail(key_node, f"keys of {what} must be strings, got {kind(key)}")
            if key in own:
                first = own[key].start_mark.line + 1
                self.fail(key_node, f"duplicate key {quote(key)} in {what} (first at line {first})")
            own[key] = key_node
        try:
            self._constructor.flatten_mapping(node)  # `<<: *anchor` merges; the mapping's own keys win
        except yaml.MarkedYAMLError as exc:
            self._yaml_error(exc)
        entries: dict[str, Entry] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                self.fail(key_node, f"keys of {what} must be strings, got {kind(key)}")
            entries[key] = (key_node, value_node)
        return entries

    def sequence(self, node: Node, what: str) -> list[Node]:
        """The items of a YAML list (``null``: none)."""
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return []
        if not isinstance(node, SequenceNode):
            self.fail(node, f"{what} must be a list, got {kind(self.value(node))}")
        if node.tag != "tag:yaml.org,2002:seq":
            self.value(node)
        return list(node.value)
