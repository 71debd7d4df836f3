"""The sections of a graph file, each read into the :class:`Graph` being built, errors located.

One function per section of the file (see ``mediagraph._yaml`` for its shape): :func:`parse_resources`,
:func:`parse_nodes` (with the ``--set`` overrides of their parameters and each node's ``supervision``),
:func:`parse_links`, :func:`check_graph` (the whole graph, once linked) and :func:`parse_schedule`. Each
takes the :class:`YamlText` the section was read from, the section's YAML node and the graph, builds through
the public :class:`Graph` API (``add_resource``, ``add``, ``link``, ``validate``), and re-raises the
:class:`GraphDefinitionError` the core raises at the ``FILE:LINE:COLUMN`` of the part it names (its
``node``, ``param`` or ``link``). ``base`` is the folder relative paths in the file resolve against.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, final

import attrs
from yaml.nodes import MappingNode, Node, ScalarNode

from . import _paths
from ._actions import ActionRequest, ScheduledAction, action_types
from ._configs import config_from_mapping
from ._errors import GraphDefinitionError
from ._graph import FailGraph, Graph, Isolate, PortRef, Restart, Supervision
from ._graphfile import Override
from ._limits import closest, quote
from ._node import get_node_type, resource_types
from ._yamltext import Entry, YamlText, kind, relocate

__all__ = [
    "NODE_KEYS",
    "check_graph",
    "parse_links",
    "parse_nodes",
    "parse_resources",
    "parse_schedule",
]

#: Keys of a node entry that are not parameters.
NODE_KEYS: typing.Final = ("type", "supervision")


# --- parameters ------------------------------------------------------------------------------------------


@final
@attrs.frozen
class _Param:
    value: Any
    key_at: str  # where the key is, for "unknown parameter"
    value_at: str  # where the value is, for "wrong type or range"
    base: Path  # what relative paths in it resolve against
    node: Node | None = None  # the value in the file (None: from the command line)


def _params(
    text: YamlText, entries: Mapping[str, Entry], base: Path, reserved: Sequence[str] = ()
) -> dict[str, _Param]:
    return {
        key: _Param(text.value(value_node), text.at(key_node), text.at(value_node), base, value_node)
        for key, (key_node, value_node) in entries.items()
        if key not in reserved
    }


def _config(text: YamlText, cls: type, params: Mapping[str, _Param], graph: Graph, *, where: str, entry_at: str) -> Any:
    """The config ``cls`` built from ``params``, paths resolved; errors point at the parameter (inside a nested
    config, a processor's or a slot child's, at the nested parameter)."""
    try:
        values = _paths.resolve_paths(cls, {key: (p.value, p.base) for key, p in params.items()})
        return config_from_mapping(cls, values, where=where, resources=graph.resources)
    except GraphDefinitionError as exc:
        param = params.get(exc.param) if exc.param else None
        at = entry_at
        if param is not None:
            at = param.value_at if exc.param in attrs.fields_dict(cls) else param.key_at
            at = _nested_at(text, param.node, exc) or at
        raise relocate(exc, at) from exc


def _nested_at(text: YamlText, node: Node | None, exc: GraphDefinitionError) -> str | None:
    """Where in the mapping ``node`` the nested config error that caused ``exc`` is: its parameter's key."""
    nested = exc.__cause__
    if not isinstance(nested, GraphDefinitionError) or nested.param is None or not isinstance(node, MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == nested.param:
            return _nested_at(text, value_node, nested) or text.at(key_node)
    return None


def _type_name(text: YamlText, entries: Mapping[str, Entry], key_node: Node, what: str) -> str:
    if "type" not in entries:
        text.fail(key_node, f"{what} has no 'type'")
    value_node = entries["type"][1]
    type_name = text.value(value_node)
    if not isinstance(type_name, str):
        text.fail(value_node, f"{what}: 'type' must be a type name, got {kind(type_name)}")
    return type_name


# --- resources and nodes ---------------------------------------------------------------------------------


def _apply(text: YamlText, params: dict[str, _Param], o: Override) -> None:
    """Put a ``--set`` into the parameters: the whole value, or one key inside a mapping value (the file's,
    copied; relative paths in it still resolve against the file's folder)."""
    given = params.get(o.param)
    if not o.path:
        params[o.param] = _Param(o.value, o.origin, o.origin, Path.cwd())
        return
    merged = _set_in(text, given.value if given is not None else {}, o.path, o.value, o, o.param)
    params[o.param] = _Param(merged, o.origin, o.origin, given.base if given is not None else Path.cwd())


def _set_in(text: YamlText, mapping: Any, path: Sequence[str], value: Any, o: Override, at: str) -> dict[str, Any]:
    if not isinstance(mapping, Mapping):
        text.fail(o.origin, f"{o.node}.{at} is {kind(mapping)}, not a mapping with keys to set")
    out = dict(mapping)
    key, rest = path[0], path[1:]
    out[key] = _set_in(text, out.get(key, {}), rest, value, o, f"{at}.{key}") if rest else value
    return out


def parse_resources(
    text: YamlText, node: Node | None, graph: Graph, base: Path, overrides: Sequence[Override] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """Add the ``resources:`` section to ``graph``, its ``--set resources.NAME...`` overrides applied; returns
    name -> config and name -> location."""
    known = resource_types()
    configs: dict[str, Any] = {}
    locations: dict[str, str] = {}
    section = text.mapping(node, "'resources'") if node is not None else {}
    for o in overrides:
        if o.resource and o.node not in section:
            text.fail(o.origin, f"unknown resource {quote(o.node)}{closest(o.node, section)}")
    for name, (key_node, value_node) in section.items():
        if not name.isidentifier():
            text.fail(key_node, f"resource name {quote(name)} must be an identifier (letters, digits, _)")
        entries = text.mapping(value_node, f"resource {quote(name)}")
        type_name = _type_name(text, entries, key_node, f"resource {quote(name)}")
        rt = known.get(type_name)
        if rt is None:
            hint = closest(type_name, known) or " (no resource types are installed)"
            text.fail(entries["type"][1], f"resource {quote(name)}: unknown resource type {quote(type_name)}{hint}")
        params = _params(text, entries, base, ("type",))
        for o in overrides:
            if o.resource and o.node == name:
                if o.param == "type":
                    text.fail(o.origin, "--set cannot change a resource's 'type'")
                _apply(text, params, o)
        config = _config(
            text,
            rt.config,
            params,
            graph,
            where=f"resource {quote(name)} ({rt.name})",
            entry_at=text.at(key_node),
        )
        try:
            graph.add_resource(name, rt.name, config=config)
        except GraphDefinitionError as exc:
            raise relocate(exc, text.at(key_node)) from exc
        configs[name] = config
        locations[name] = text.at(key_node)
    return configs, locations


def parse_nodes(
    text: YamlText, section: Entry, graph: Graph, overrides: Sequence[Override], base: Path
) -> tuple[dict[str, str], list[_paths.DeclaredPath]]:
    """Add the ``nodes:`` section to ``graph``, ``overrides`` applied; returns each node's location and
    the files the nodes declare."""
    nodes = text.mapping(section[1], "'nodes'")
    if not nodes:
        text.fail(section[0], "'nodes' is empty: a graph needs at least one node")
    for o in overrides:
        if not o.resource and o.node not in nodes:
            text.fail(o.origin, f"unknown node {quote(o.node)}{closest(o.node, nodes)}")
    locations: dict[str, str] = {}
    paths: list[_paths.DeclaredPath] = []
    for name, (key_node, value_node) in nodes.items():
        mine = [o for o in overrides if o.node == name and not o.resource]
        try:
            paths += _parse_node(text, graph, name, (key_node, value_node), mine, base)
        except GraphDefinitionError as exc:
            exc.node = exc.node or name  # whatever the entry got wrong, the node is this one
            raise
        locations[name] = text.at(key_node)
    return locations, paths


def _parse_node(
    text: YamlText, graph: Graph, name: str, entry: Entry, overrides: list[Override], base: Path
) -> list[_paths.DeclaredPath]:
    key_node, value_node = entry
    if isinstance(value_node, ScalarNode) and value_node.tag == "tag:yaml.org,2002:str":
        entries: dict[str, Entry] = {"type": (key_node, value_node)}  # shorthand: `sink: null_sink`
    else:
        entries = text.mapping(value_node, f"node {quote(name)}")
    type_name = _type_name(text, entries, key_node, f"node {quote(name)}")
    try:
        nt = get_node_type(type_name)
    except GraphDefinitionError as exc:
        raise relocate(exc, text.at(entries["type"][1]), f"node {quote(name)}: {exc.message}") from exc
    supervision = (
        _supervision(text, entries["supervision"][1], graph, base) if "supervision" in entries else FailGraph()
    )
    params = _params(text, entries, base, NODE_KEYS)
    cwd = Path.cwd()
    for o in overrides:
        if o.param in NODE_KEYS:
            text.fail(o.origin, f"--set cannot change a node's {quote(o.param)}")
        _apply(text, params, o)
    config = _config(
        text, nt.config, params, graph, where=f"node {quote(name)} ({nt.name})", entry_at=text.at(key_node)
    )

    def where(param: str) -> tuple[str, Path]:  # a default path is relative to the current directory
        given = params.get(param)
        return (given.value_at, given.base) if given else (text.at(key_node), cwd)

    paths = list(_paths.declared_paths(config, owner=f"node {quote(name)}", where=where))
    try:
        graph.add(name, nt, config=config, supervision=supervision)
    except GraphDefinitionError as exc:
        raise relocate(exc, text.at(key_node)) from exc
    return paths


def _supervision(text: YamlText, node: Node, graph: Graph, base: Path) -> Supervision:
    usage = "supervision must be fail, isolate, restart or {restart: {max_restarts: N, backoff: SECONDS}}"
    if isinstance(node, ScalarNode):
        value = text.value(node)
        policies: dict[Any, Supervision] = {"fail": FailGraph(), "isolate": Isolate(), "restart": Restart()}
        if value in policies:
            return policies[value]
        text.fail(node, f"{usage}, got {kind(value)}")
    entries = text.mapping(node, "supervision")
    if list(entries) != ["restart"]:
        text.fail(node, f"{usage}, got a mapping with keys {', '.join(entries) or 'none'}")
    key_node, value_node = entries["restart"]
    params = _params(text, text.mapping(value_node, "restart"), base)
    restart: Restart = _config(text, Restart, params, graph, where="supervision restart", entry_at=text.at(key_node))
    return restart


# --- links and the whole graph ---------------------------------------------------------------------------


def parse_links(text: YamlText, node: Node, graph: Graph) -> list[Node]:
    """Add the ``links:`` section to ``graph``; returns its items (a link's index in ``graph.links``)."""
    items = text.sequence(node, "'links'")
    for item in items:
        link = text.value(item)
        if not isinstance(link, str):
            text.fail(item, f"a link must be a string 'node.port -> node.port', got {kind(link)}")
        parts = link.split("->")
        if len(parts) != 2:
            text.fail(item, f"a link must be 'node.port -> node.port', got {quote(link)}")
        arrow = link.index("->")
        src_text, dst_text = parts[0].strip(), parts[1].strip()
        src_at = text.at_text(item, src_text)
        dst_at = text.at_text(item, dst_text, text.text_offset(item, arrow + 2))
        refs: list[PortRef] = []
        for part, at in ((src_text, src_at), (dst_text, dst_at)):
            try:
                refs.append(PortRef.parse(part))
            except GraphDefinitionError as exc:
                text.fail(at, f"link {quote(link)}: {exc.message}; a link is 'node.port -> node.port'")
        src, dst = refs
        try:
            graph.link(src, dst)
        except GraphDefinitionError as exc:
            src_node = graph.nodes.get(src.node)
            at = dst_at if src_node and src_node.ports.outlet(src.port) else src_at
            if exc.message.startswith("duplicate"):
                at = text.at(item)
            raise relocate(exc, at, f"link {quote(link)}: {exc.message}") from exc
    return items


def check_graph(text: YamlText, graph: Graph, locations: Mapping[str, str], links: Sequence[Node]) -> None:
    """Validate the whole graph; an error points at its link, its node, or a link on the cycle it found."""
    try:
        graph.validate()
    except GraphDefinitionError as exc:
        if exc.link is not None:
            at = text.at(links[exc.link])
        elif exc.node is not None and exc.node in locations:
            at = locations[exc.node]
        else:
            cycle = _cycle_link(graph)
            at = text.at(links[cycle]) if cycle is not None else f"{text.filename}:1:1"
        raise relocate(exc, at) from exc


def _cycle_link(graph: Graph) -> int | None:
    """The index of the last link (in file order) that lies on a cycle of non-feedback links."""
    solid: list[int] = []
    edges: dict[str, set[str]] = {}
    for i, link in enumerate(graph.links):
        inlet = graph.nodes[link.dst.node].ports.inlet(link.dst.port)
        if inlet is not None and not inlet.feedback:
            solid.append(i)
            edges.setdefault(link.src.node, set()).add(link.dst.node)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            name = todo.pop()
            if name == goal:
                return True
            if name not in seen:
                seen.add(name)
                todo.extend(edges.get(name, ()))
        return False

    for i in reversed(solid):
        link = graph.links[i]
        if reaches(link.dst.node, link.src.node):
            return i
    return None


# --- schedule --------------------------------------------------------------------------------------------


def parse_schedule(text: YamlText, node: Node, graph: Graph, base: Path) -> tuple[ScheduledAction, ...]:
    """The ``schedule:`` section: each entry's time checked (in order) and its action parsed by its type."""
    known = action_types()
    out: list[ScheduledAction] = []
    previous: tuple[float, Node] | None = None
    for item in text.sequence(node, "'schedule'"):
        entries = text.mapping(item, "a schedule action")
        if "at" not in entries:
            text.fail(item, "a schedule action needs 'at: SECONDS' (graph time)")
        at_node = entries["at"][1]
        at = text.value(at_node)
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
            text.fail(at_node, f"'at' must be a number of seconds, got {kind(at)}")
        if at < 0:
            text.fail(at_node, f"'at: {at}' is in the past: times are seconds of graph time since the start")
        if previous is not None and at < previous[0]:
            line = previous[1].start_mark.line + 1
            text.fail(at_node, f"'at: {at}' comes before 'at: {previous[0]}' (line {line}): keep actions in time order")
        previous = (at, at_node)
        names = [key for key in entries if key in known]
        if not names:
            other = [key for key in entries if key != "at"]
            if other:
                key_node = entries[other[0]][0]
                text.fail(key_node, f"unknown schedule action {quote(other[0])}{closest(other[0], known)}")
            text.fail(item, f"the schedule action at {at} says nothing to do (known: {', '.join(known)})")
        if len(names) > 1:
            text.fail(entries[names[1]][0], f"one action per schedule entry, got {' and '.join(names)}")
        name = names[0]
        action_type = known[name]
        params: dict[str, Any] = {}
        for key, (key_node, value_node) in entries.items():
            if key in ("at", name):
                continue
            if key not in action_type.params:
                text.fail(key_node, f"{name} action: unknown key {quote(key)}{closest(key, action_type.params)}")
            params[key] = text.value(value_node)
        request = ActionRequest(
            name=name, at=float(at), value=text.value(entries[name][1]), params=params, graph=graph, base_dir=base
        )
        try:
            action = action_type.parse(request)
        except GraphDefinitionError as exc:
            value_node = entries[exc.param][1] if exc.param in entries else entries[name][1]
            raise relocate(exc, text.at(value_node)) from exc
        out.append(ScheduledAction(at=float(at), name=name, action=action, location=text.at(item)))
    return tuple(out)
