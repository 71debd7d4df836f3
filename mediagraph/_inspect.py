"""What ``mediagraph nodes`` shows: the installed types, and one type's ports and parameters, as plain text.

:func:`overview` lists every node type, resource type and schedule action with its summary;
:func:`describe` shows one type or action: a node type's ports (as declared with the default parameters,
and with the parameters its examples give, which add or change ports) and its parameters (type, default, and
the description from the config's ``Args:`` docstring); a schedule action's form and keys. Docstring markup
(double backquotes, ``:class:`` roles) is shown as plain text.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

import attrs

from ._actions import action_types
from ._frames import AudioFrame
from ._limits import closest
from ._node import NodeType, node_types, resource_types
from ._ports import InletSpec, OutletSpec, Ports, SameAs

__all__ = ["describe", "overview"]


def overview() -> str:
    """Every installed node type, resource type and schedule action, a line each with its summary."""
    return "\n".join(
        [
            _listing("node types", {name: nt.summary for name, nt in node_types().items()}),
            _listing("resource types", {name: rt.summary for name, rt in resource_types().items()}),
            _listing("schedule actions", {name: a.summary for name, a in action_types().items()}),
            "\n`mediagraph nodes NAME` shows a type's ports and parameters, or an action's form.",
        ]
    )


def describe(name: str) -> str:
    """One node or resource type: its summary, ports (node types) and parameters.

    Raises:
        LookupError: no such type is installed; the message names the closest ones.
    """
    nodes = node_types()
    resources = resource_types()
    actions = action_types()
    if name in nodes:
        nt = nodes[name]
        title = f"{nt.name}: {nt.summary}" if nt.summary else nt.name
        return plain("\n".join([title, _node_ports(nt), _params(nt.config)]))
    if name in resources:
        rt = resources[name]
        title = f"{rt.name} (resource): {rt.summary}" if rt.summary else f"{rt.name} (resource)"
        return plain("\n".join([title, _params(rt.config)]))
    if name in actions:
        at = actions[name]
        keys = ", ".join(["at", at.name, *at.params])
        return plain(f"{at.name} (schedule action): {at.summary}\nkeys of its schedule entry: {keys}")
    known = [*nodes, *resources, *actions]
    raise LookupError(f"unknown node type, resource type or action {name!r}{closest(name, known)}")


def plain(text: str) -> str:
    """Docstring markup as plain text: ````x```` -> ``x``, ``:class:`~a.B``` -> ``B``."""
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def _listing(title: str, items: Mapping[str, str]) -> str:
    if not items:
        return f"{title}:\n  (none installed)"
    width = max(map(len, items))
    return f"{title}:\n" + "\n".join(f"  {name:<{width}}  {summary}".rstrip() for name, summary in items.items())


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _format(port: InletSpec | OutletSpec) -> str:
    if not any(issubclass(t, AudioFrame) for t in port.types):
        return "-"  # formats constrain audio only
    if isinstance(port.format, SameAs):
        return f"format of inlet {port.format.inlet!r}"
    return str(port.format) if port.format is not None else "any format"


def _node_ports(nt: NodeType) -> str:
    """The ports with the default parameters, then with each example's, then the notes."""
    parts: list[str] = []
    try:
        parts.append(_ports(nt.ports(nt.config()), "ports (default parameters):"))
    except (TypeError, ValueError):
        if not nt.examples and not nt.port_notes:
            parts.append("ports: they depend on the parameters (some have no default)")
    for label, params in nt.examples.items():
        config = nt.make_config(params, where=f"example {label!r} of {nt.name}")
        parts.append(_ports(nt.ports(config), f"ports with {label}:"))
    if nt.port_notes:
        parts.append(f"ports: {nt.port_notes}")
    return "\n".join(parts)


def _ports(declared: Ports, title: str) -> str:
    lines: list[str] = []
    inlets: list[InletSpec] = list(declared.inlets)
    if inlets:
        rows = []
        for p in inlets:
            flags = ["required" if p.required else "optional"]
            flags.append("feedback, unbounded" if p.feedback else f"mailbox {p.capacity}, {p.overflow.value}")
            rows.append([p.name, p.type_names, _format(p), ", ".join(flags)])
        lines += [" inlets:", *_table(rows)]
    outlets: list[OutletSpec] = list(declared.outlets)
    if outlets:
        lines += [" outlets:", *_table([[p.name, p.type_names, _format(p)] for p in outlets])]
    return "\n".join([title, *lines] if lines else [f"{title} none"])


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", str(tp))  # mediagraph._slot_config.ChildSpec | None -> ChildSpec | None


def _default(value: Any) -> str:
    if isinstance(value, PurePath):
        return repr(str(value))
    if isinstance(value, enum.Enum):
        return repr(value.value)
    return repr(value)


def _param_docs(config: type) -> dict[str, str]:
    """Parameter descriptions from the config's docstring (``Args:`` then ``name: text`` lines)."""
    docs: dict[str, str] = {}
    current: str | None = None
    in_args = False
    for line in (config.__doc__ or "").splitlines():
        text = line.strip()
        if text == "Args:":
            in_args = True
            continue
        match = re.match(r"(\w+):\s*(.*)", text)
        if in_args and match:
            current = match.group(1)
            docs[current] = match.group(2)
        elif in_args and current and text:
            docs[current] += " " + text
    return docs


def _params(config: type) -> str:
    attrs.resolve_types(config)
    fields = [f for f in attrs.fields(config) if f.init]
    if not fields:
        return "parameters: none"
    docs = _param_docs(config)
    rows = []
    for f in fields:
        if f.default is attrs.NOTHING:
            default = "(required)"
        elif isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
            default = "(computed)"
        else:
            default = f"default {_default(f.default)}"
        rows.append([f.name, _type_name(f.type), default, docs.get(f.name, "")])
    return "parameters:\n" + "\n".join(_table(rows))
