"""Diagrams of a graph: Mermaid and Graphviz DOT text. Rendering DOT to SVG or PNG is the CLI's business.

Each node shows its name, its type and the parameters it sets (those not at their default, a few, values cut
short, secrets masked); a slot shows what it holds. Each link shows its ports and, when validation resolved it,
the audio format that crosses it; links into feedback inlets are dashed. Each resource is drawn once, with a
dotted line to every node that uses it; the schedule, if any, is a note listing its actions in time order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from ._actions import ScheduledAction
from ._configs import ResourceRef
from ._dump import non_default
from ._frames import AudioFormat
from ._graph import Graph, LinkSpec
from ._limits import cut, is_secret
from ._slot_config import ChildSpec

__all__ = ["to_dot", "to_mermaid"]

#: The most parameters shown on a node, and the longest value.
SHOWN_PARAMS = 4
VALUE_CHARS = 28


def _label(link: LinkSpec, fmt: AudioFormat | None, newline: str) -> str:
    ports = link.src.port if link.src.port == link.dst.port else f"{link.src.port} → {link.dst.port}"
    return f"{ports}{newline}{fmt}" if fmt else ports


def _feedback(graph: Graph, link: LinkSpec) -> bool:
    inlet = graph.nodes[link.dst.node].ports.inlet(link.dst.port)
    return inlet is not None and inlet.feedback


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        kind = value.get("type")
        return f"{{type: {kind}, ...}}" if kind else "{...}"
    if isinstance(value, list):
        return f"[{len(value)} items]"
    text = str(value)
    return text if len(text) <= VALUE_CHARS else "…" + text[-(VALUE_CHARS - 1) :]  # a path's end says most


def _params(config: Any) -> list[str]:
    """``name=value`` lines for the parameters a node sets (a slot's child aside), a few, secrets masked."""
    if not attrs.has(type(config)):
        return []
    given = non_default(config)
    given.pop("child", None)
    lines = [f"{k}={'***' if is_secret(k) else _short(v)}" for k, v in given.items()]
    if len(lines) > SHOWN_PARAMS:
        lines = [*lines[:SHOWN_PARAMS], f"+{len(lines) - SHOWN_PARAMS} more"]
    return lines


def _node_lines(name: str, type_name: str, config: Any) -> list[str]:
    lines = [name, type_name, *_params(config)]
    child = getattr(config, "child", None)
    if isinstance(child, ChildSpec):
        inner = ", ".join(_params(child.config))
        lines.append(f"holds: {child.type}" + (f" ({inner})" if inner else ""))
    return lines


def _refs(config: Any) -> Iterator[str]:
    """The names of the resources a config (or a config inside it) refers to."""
    if isinstance(config, ResourceRef):
        yield config.name
    elif isinstance(config, ChildSpec):
        yield from _refs(config.config)
    elif attrs.has(type(config)):
        for field in attrs.fields(type(config)):
            yield from _refs(getattr(config, field.name))
    elif isinstance(config, list | tuple):
        for item in config:
            yield from _refs(item)


def _users(graph: Graph) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {name: [] for name in graph.resources}
    for node, spec in graph.nodes.items():
        for ref in dict.fromkeys(_refs(spec.config)):
            users.setdefault(ref, []).append(node)
    return users


def _action(item: ScheduledAction) -> str:
    action: Any = item.action
    fields = attrs.asdict(action, recurse=False) if attrs.has(type(action)) else {}
    parts = [f"{k}={v.type if isinstance(v, ChildSpec) else _short(v)}" for k, v in fields.items()]
    return f"at {item.at:g} s: {item.name} " + ", ".join(parts)


_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_ENTITIES = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "|": "#124;", "#": "#35;", "%": "#37;"}


def _mermaid(text: str, limit: int = 200) -> str:
    """``text`` safe anywhere in a Mermaid statement: no line break (a new statement), no quote, bracket or
    pipe that would end a label, cut to a readable length."""
    text = _UNSAFE.sub(" ", cut(text, limit))
    return "".join(_ENTITIES.get(c, c) for c in text)


def to_mermaid(graph: Graph, schedule: Sequence[ScheduledAction] = ()) -> str:
    """A Mermaid ``flowchart`` of a valid graph (and its schedule).

    Raises:
        GraphDefinitionError: the graph is invalid.
    """
    formats = graph.validate().formats
    # Ids get a prefix: Mermaid reserves some words (`end`) that are valid node names.
    lines = ["flowchart LR", f"    %% graph {_mermaid(graph.name)}"]
    ids = {name: f"n_{name}" for name in graph.nodes}  # node names are identifiers: safe as ids
    for name, spec in graph.nodes.items():
        name_line, *rest = (_mermaid(line) for line in _node_lines(name, spec.type.name, spec.config))
        small = "".join(f"<br/><small>{line}</small>" for line in rest)
        lines.append(f'    {ids[name]}["{name_line}{small}"]')
    for link in graph.links:
        arrow = "-.->" if _feedback(graph, link) else "-->"
        fmt = formats.get(link.src)
        label = _mermaid(_label(link, None, "")) + (f"<br/>{_mermaid(str(fmt))}" if fmt else "")
        lines.append(f'    {ids[link.src.node]} {arrow}|"{label}"| {ids[link.dst.node]}')
    for resource, users in _users(graph).items():
        declared = graph.resources.get(resource)
        kind = _mermaid(declared.type) if declared is not None else "?"
        lines.append(f'    r_{resource}[("{_mermaid(resource)}<br/><small>resource: {kind}</small>")]')
        lines += [f"    r_{resource} -.- {ids[user]}" for user in users]
    if schedule:
        items = "<br/>".join(_mermaid(_action(item)) for item in schedule)
        lines.append(f'    schedule_note["schedule<br/><small>{items}</small>"]')  # node ids are n_...
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    text = cut(text, 400).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + text + '"'


def to_dot(graph: Graph, schedule: Sequence[ScheduledAction] = ()) -> str:
    """A Graphviz ``digraph`` of a valid graph (and its schedule).

    Raises:
        GraphDefinitionError: the graph is invalid.
    """
    formats = graph.validate().formats
    lines = [
        f"digraph {_quote(graph.name)} {{",
        "    rankdir=LR;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    for name, spec in graph.nodes.items():
        label = _quote("\n".join(_node_lines(name, spec.type.name, spec.config)))
        lines.append(f"    {_quote(name)} [label={label}];")
    for link in graph.links:
        style = ", style=dashed, constraint=false" if _feedback(graph, link) else ""
        label = _quote(_label(link, formats.get(link.src), "\n"))
        lines.append(f"    {_quote(link.src.node)} -> {_quote(link.dst.node)} [label={label}{style}];")
    for resource, users in _users(graph).items():
        declared = graph.resources.get(resource)
        kind = declared.type if declared is not None else "?"
        rid = _quote(f"resource {resource}")
        lines.append(f"    {rid} [label={_quote(f'{resource}\nresource: {kind}')}, shape=cylinder];")
        lines += [f"    {rid} -> {_quote(user)} [style=dotted, arrowhead=none];" for user in users]
    if schedule:
        text = "\n".join(["schedule", *(_action(item) for item in schedule)])
        lines.append(f"    {_quote('schedule note')} [label={_quote(text)}, shape=note];")  # no node has a space
    lines.append("}")
    return "\n".join(lines) + "\n"
