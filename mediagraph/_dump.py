"""Graphs back to graph-file YAML: what ``dump_graph`` writes, ``parse_graph`` reads back as an equal graph."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import attrs
import yaml

from ._graph import Graph, Isolate, Restart

__all__ = ["dump_graph", "to_mapping"]


def _non_default(config: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in attrs.fields(type(config)):
        value = getattr(config, field.name)
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory(config) if default.takes_self else default.factory()
        if default is attrs.NOTHING or value != default:
            out[field.name] = str(value) if isinstance(value, PurePath) else value
    return out


def to_mapping(graph: Graph) -> dict[str, Any]:
    """The graph as the mapping a graph file holds (parameters left at their default are omitted)."""
    nodes: dict[str, Any] = {}
    for name, spec in graph.nodes.items():
        entry: dict[str, Any] = {"type": spec.type.name, **_non_default(spec.config)}
        match spec.supervision:
            case Isolate():
                entry["supervision"] = "isolate"
            case Restart() as restart if restart != Restart():
                entry["supervision"] = {"restart": _non_default(restart)}
            case Restart():
                entry["supervision"] = "restart"
        nodes[name] = entry
    return {"graph": graph.name, "nodes": nodes, "links": [str(link) for link in graph.links]}


def dump_graph(graph: Graph) -> str:
    """The graph as graph-file YAML text; :func:`parse_graph` of it gives an equal graph.

    Raises:
        yaml.representer.RepresenterError: a parameter value YAML cannot hold.
    """
    return yaml.safe_dump(to_mapping(graph), sort_keys=False, allow_unicode=True)
