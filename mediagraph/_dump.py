"""Graphs back to graph-file YAML: what ``dump_graph`` writes, ``parse_graph`` reads back as an equal graph.

Each config value is written as the file would give it, the inverse of building configs from mappings
(``config_from_mapping``): a path as its text, an enum member as its value, a :class:`ResourceRef` as the
resource's name, a slot's :class:`ChildSpec` as its ``{type: ..., parameters}`` mapping, and a nested config
whose class is a registered resource type's (a frame processor's inline ``processor``) as
``{type: NAME, parameters}``. Parameters left at their default are omitted, and so are the fields a config
computes itself (``init=False``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import attrs
import yaml

from ._configs import ResourceRef
from ._graph import Graph, Isolate, Restart
from ._node import resource_types
from ._slot_config import ChildSpec

__all__ = ["dump_graph", "non_default", "to_mapping"]


def non_default(config: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in attrs.fields(type(config)):
        if not field.init:  # computed from the others (a file source's probed media info)
            continue
        value = getattr(config, field.name)
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory(config) if default.takes_self else default.factory()
        if default is attrs.NOTHING or value != default:
            out[field.name] = _value(value)
    return out


def _value(value: Any) -> Any:
    """A config value as a graph file holds it."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, ResourceRef):
        return value.name
    if isinstance(value, ChildSpec):
        return {"type": value.type, **non_default(value.config)}
    if isinstance(value, Mapping):
        return {key: _value(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    if attrs.has(type(value)):
        names = [rt.name for rt in resource_types().values() if rt.config is type(value)]
        if len(names) == 1:  # an inline resource: named by its type like under `resources:`
            return {"type": names[0], **non_default(value)}
        return {field.name: _value(getattr(value, field.name)) for field in attrs.fields(type(value))}
    return value


def to_mapping(graph: Graph) -> dict[str, Any]:
    """The graph as the mapping a graph file holds (parameters left at their default are omitted)."""
    resources = {name: {"type": spec.type, **non_default(spec.config)} for name, spec in graph.resources.items()}
    nodes: dict[str, Any] = {}
    for name, spec in graph.nodes.items():
        entry: dict[str, Any] = {"type": spec.type.name, **non_default(spec.config)}
        match spec.supervision:
            case Isolate():
                entry["supervision"] = "isolate"
            case Restart() as restart if restart != Restart():
                entry["supervision"] = {"restart": non_default(restart)}
            case Restart():
                entry["supervision"] = "restart"
        nodes[name] = entry
    out: dict[str, Any] = {"graph": graph.name}
    if resources:
        out["resources"] = resources
    return out | {"nodes": nodes, "links": [str(link) for link in graph.links]}


def dump_graph(graph: Graph) -> str:
    """The graph as graph-file YAML text; :func:`parse_graph` of it gives an equal graph.

    Raises:
        yaml.representer.RepresenterError: a parameter value YAML cannot hold (one of a type this module
            does not know how to write back).
    """
    return yaml.safe_dump(to_mapping(graph), sort_keys=False, allow_unicode=True)
