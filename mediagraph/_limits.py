"""Bounds on what a graph file may hold, and the one helper every message uses to quote a value.

Theory of operation. A graph file may come from someone else, so it is measured before anything is built
from it. The text is read only up to :data:`MAX_FILE_BYTES`; the YAML composer refuses nesting deeper than
:data:`MAX_DEPTH` as it goes (so it never recurses far); the composed tree is then walked once, without
recursion, counting every value as many times as aliases repeat it, so a "billion laughs" file is refused
after measuring a few dozen nodes instead of being expanded. Scalars longer than :data:`MAX_SCALAR_CHARS`
and numbers written with more than :data:`MAX_NUMBER_CHARS` characters are refused in the same walk. Each
refusal is a :class:`GraphDefinitionError` located at the offending value and naming where it sits
(``nodes > tone > frequency``).

Messages quote values with :func:`quote`: a bounded ``repr`` (long strings, lists and mappings are cut,
whatever their size) in which the values of keys named like secrets are masked.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
import reprlib
import stat
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, final

import attrs
import yaml
from yaml.composer import ComposerError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ._errors import GraphDefinitionError

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INT",
    "MAX_NUMBER_CHARS",
    "MAX_SCALAR_CHARS",
    "MAX_VALUES",
    "BoundedLoader",
    "LimitError",
    "check_tree",
    "config_repr",
    "cut",
    "is_secret",
    "mask",
    "quote",
    "read_text",
    "reader_error_location",
    "safe_load",
    "scrub",
]

#: The largest graph file read, in bytes.
MAX_FILE_BYTES: typing.Final = 1 << 20
#: The deepest nesting of lists and mappings, aliases followed (a graph needs fewer than 10 levels).
MAX_DEPTH: typing.Final = 64
#: The most values (scalars, lists, mappings) a file may hold once every alias is expanded.
MAX_VALUES: typing.Final = 20_000
#: The longest scalar (a string: a prompt, a path...), in characters.
MAX_SCALAR_CHARS: typing.Final = 65_536
#: The longest number, in characters as written (a float has 17 significant digits; ints stay below 2**63).
MAX_NUMBER_CHARS: typing.Final = 40
#: The largest integer a parameter may hold (a C ``int64``).
MAX_INT: typing.Final = 2**63 - 1
#: How much of a value a message quotes, in characters.
QUOTE_CHARS: typing.Final = 80

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_SECRET = re.compile(r"(key|token|secret|password|passwd|pwd|credentials?|auth|authorization|cookie)$")


def is_secret(name: object) -> bool:
    """Whether a parameter or key called ``name`` holds a secret (``api_key``, ``token``, ``db_password``...)."""
    if not isinstance(name, str):
        return False
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower().replace("-", "_").split("_")
    return any(_SECRET.search(word) for word in words if word)


def cut(text: str, limit: int = QUOTE_CHARS) -> str:
    """``text``, or its start and end around ``...`` if it is longer than ``limit`` characters."""
    if len(text) <= limit:
        return text
    keep = max(limit - 30, 10)
    head, tail = text[: keep * 2 // 3], text[len(text) - keep // 3 :]
    return f"{head}...{tail} ({len(text):,} characters)"


@final
class _Repr(reprlib.Repr):
    """``reprlib`` with room for a readable value and secrets masked in mappings."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxdict = 6
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 8
        self.maxstring = QUOTE_CHARS
        self.maxlong = 40
        self.maxother = QUOTE_CHARS

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = []
        for i, (key, value) in enumerate(x.items()):
            if i >= self.maxdict:
                pieces.append("...")
                break
            shown = "'***'" if is_secret(key) else self.repr1(value, level - 1)
            pieces.append(f"{self.repr1(key, level - 1)}: {shown}")
        return "{" + ", ".join(pieces) + "}"

    def repr_str(self, x: str, level: int) -> str:
        return repr(x) if len(x) <= self.maxstring else repr(cut(x, self.maxstring))

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:  # str() of a huge int is slow, and refused past 4,300 digits
            return f"<an integer of about {int(x.bit_length() * 0.30103)} digits>"
        return cut(repr(x), self.maxlong)


_repr = _Repr()


def quote(value: Any) -> str:
    """A readable ``repr`` of ``value`` for a message: bounded whatever its size, secrets masked."""
    try:
        return cut(_repr.repr(value), QUOTE_CHARS * 2)
    except Exception:  # a broken __repr__ must not hide the error being reported
        return f"<{type(value).__name__}>"


def scrub(text: str, secrets: typing.Iterable[str]) -> str:
    """``text`` with every occurrence of a secret replaced by ``***`` (for messages built by code that did
    not mask them: a validator quoting a whole mapping, a plugin's exception)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def config_repr(config: Any, depth: int = 0) -> str:
    """A config's ``repr`` with secret-named fields masked and every value quoted within bounds."""
    if not attrs.has(type(config)) or depth > 4:
        return quote(config)
    parts = []
    for field in attrs.fields(type(config)):
        if not field.repr:
            continue
        value = getattr(config, field.name, None)
        shown = "'***'" if is_secret(field.name) else config_repr(value, depth + 1)
        parts.append(f"{field.name}={shown}")
    return f"{type(config).__name__}({', '.join(parts)})"


def mask(value: Any) -> Any:
    """``value`` with the values of secret-named keys replaced by ``'***'`` (mappings, at any depth)."""
    if isinstance(value, dict):
        return {k: "***" if is_secret(k) else mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask(v) for v in value)
    return value


# --- the loader ------------------------------------------------------------------------------------------


@final
class LimitError(ComposerError):
    """A limit passed while composing; located like a syntax error."""


@final
class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than :data:`MAX_DEPTH` and more than :data:`MAX_VALUES`
    values as it composes (before the composer recurses far or builds a huge tree)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._count = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(yaml.AliasEvent):
            return typing.cast(Node, super().compose_node(parent, index))
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        self._count += 1
        if self._count > MAX_VALUES:
            raise LimitError(None, None, f"the file holds more than {MAX_VALUES:,} values", mark)
        if self._depth >= MAX_DEPTH:
            raise LimitError(None, None, f"lists and mappings nested deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            return typing.cast(Node, super().compose_node(parent, index))
        finally:
            self._depth -= 1


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, SequenceNode):
        yield from node.value
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            yield key
            yield value


def _where(path: list[Node]) -> str:
    """``nodes > tone > frequency``: the mapping keys leading to the last node of ``path``."""
    names: list[str] = []
    for parent, child in itertools.pairwise(path):
        if isinstance(parent, MappingNode):
            for key, value in parent.value:
                if value is child and isinstance(key, ScalarNode):
                    names.append(cut(str(key.value), 40))
                    break
        elif isinstance(parent, SequenceNode):
            names.append(f"[{next(i for i, v in enumerate(parent.value) if v is child)}]")
    return " > ".join(names)


def check_tree(root: Node, filename: str) -> frozenset[str]:
    """Measure a composed document, every alias expanded, without expanding anything.

    Returns:
        the secrets it holds: the scalar values of keys named like secrets (``api_key: ...``), for
        :func:`scrub`.

    Raises:
        GraphDefinitionError: a value that expands past :data:`MAX_VALUES` values or :data:`MAX_DEPTH`
            levels, an alias inside its own anchor, a scalar longer than :data:`MAX_SCALAR_CHARS`, or a
            number longer than :data:`MAX_NUMBER_CHARS`; located at the value, naming where it sits.
    """
    size: dict[int, int] = {}  # values in a node, aliases expanded
    height: dict[int, int] = {}  # levels of lists and mappings in it, aliases followed
    path: list[Node] = []  # the ancestors of the node being measured: its depth, aliases followed
    on_path: set[int] = set()
    todo: list[tuple[Node, bool]] = [(root, False)]
    secrets: set[str] = set()

    def fail(node: Node, message: str) -> typing.NoReturn:
        mark = node.start_mark
        where = _where([*path, node] if not path or path[-1] is not node else path)
        raise GraphDefinitionError(
            f"{where}: {message}" if where else message,
            location=f"{filename}:{mark.line + 1}:{mark.column + 1}",
        )

    while todo:
        node, done = todo.pop()
        key = id(node)
        if done:
            kids = list(_children(node))
            size[key] = 1 + sum(size[id(k)] for k in kids)
            height[key] = 1 + max((height[id(k)] for k in kids), default=0)
            if size[key] > MAX_VALUES:
                fail(node, f"this value expands to more than {MAX_VALUES:,} values through YAML aliases")
            path.pop()
            on_path.discard(key)
            continue
        if key in size:  # met before, through an alias: its size is known, its depth adds to this place's
            if len(path) + height[key] > MAX_DEPTH:
                fail(node, f"this value nests deeper than {MAX_DEPTH} levels through YAML aliases")
            continue
        if key in on_path:
            fail(node, "an alias inside its own anchor (a value that contains itself)")
        if len(path) >= MAX_DEPTH:
            fail(node, f"this value nests deeper than {MAX_DEPTH} levels through YAML aliases")
        if isinstance(node, ScalarNode):
            _check_scalar(node, fail)
            size[key], height[key] = 1, 0
            continue
        if isinstance(node, MappingNode):
            secrets.update(
                v.value
                for k, v in node.value
                if isinstance(k, ScalarNode) and isinstance(v, ScalarNode) and is_secret(k.value) and v.value
            )
        path.append(node)
        on_path.add(key)
        todo.append((node, True))
        todo.extend((k, False) for k in reversed(list(_children(node))))
    return frozenset(secrets)


def _check_scalar(node: ScalarNode, fail: typing.Callable[[Node, str], typing.NoReturn]) -> None:
    text = node.value
    if len(text) > MAX_SCALAR_CHARS:
        fail(node, f"a value of {len(text):,} characters; the limit is {MAX_SCALAR_CHARS:,}")
    if node.tag in (_INT_TAG, _FLOAT_TAG) and len(text) > MAX_NUMBER_CHARS:
        fail(node, f"a number written with {len(text):,} characters is out of range: {cut(text, 30)}")


def safe_load(text: str, *, filename: str) -> Any:
    """``yaml.safe_load`` within the limits above (for a ``--set`` value).

    Raises:
        GraphDefinitionError: a limit is passed.
        yaml.YAMLError: the text is not valid YAML.
    """
    loader = BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        check_tree(root, filename)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def read_text(path: Path) -> str:
    """The text of a graph file: a regular file of at most :data:`MAX_FILE_BYTES` bytes of UTF-8.

    Raises:
        GraphDefinitionError: not a regular file (a FIFO or a device would block or never end), too large,
            unreadable, or not UTF-8 (located at the first bad byte).
    """
    try:
        with open(path, "rb", opener=_open_nonblocking) as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise GraphDefinitionError("the graph file is not a regular file", location=str(path))
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise GraphDefinitionError(f"cannot read the graph file: {exc.strerror}", location=str(path)) from exc
    if len(data) > MAX_FILE_BYTES:
        raise GraphDefinitionError(
            f"the graph file is larger than {MAX_FILE_BYTES >> 20} MiB, the limit", location=str(path)
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise GraphDefinitionError(
            f"the graph file is not UTF-8 text: byte 0x{data[exc.start]:02x} ({exc.reason})",
            location=f"{path}:{line}:{column}",
        ) from None


def _open_nonblocking(path: str, flags: int) -> int:
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, before the check above runs.
    fd = os.open(path, flags | os.O_NONBLOCK)
    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.set_blocking(fd, True)
    return fd


def reader_error_location(exc: yaml.reader.ReaderError, text: str, filename: str) -> str:
    """``FILE:LINE:COLUMN`` of the character a ``ReaderError`` complains about."""
    position = min(max(exc.position, 0), len(text))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"{filename}:{line}:{column}"


#: The most names ``closest`` lists when nothing is close.
KNOWN_LISTED: typing.Final = 12


def closest(name: str, known: typing.Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` or ``" (known: a, b, c)"`` for an error message; at most
    :data:`KNOWN_LISTED` names, each cut to a readable length."""
    known = sorted(known)
    # difflib is quadratic in the length of the name: a long name is close to nothing anyway
    match = difflib.get_close_matches(name, known, n=3) if len(name) <= 100 else []
    if match:
        return " (did you mean " + " or ".join(quote(m) for m in match) + "?)"
    if not known:
        return ""
    listed = ", ".join(cut(k, 40) for k in known[:KNOWN_LISTED])
    more = f" and {len(known) - KNOWN_LISTED:,} more" if len(known) > KNOWN_LISTED else ""
    return f" (known: {listed}{more})"
