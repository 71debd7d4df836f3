"""Graph plans: a graph of test nodes described as plain frozen data, built into a fresh graph per run.

A plan, not a built :class:`mediagraph.Graph`, is what the strategies generate: the same plan can be built
twice with two recorders (to compare two runs), knows which routes reach each sink and how many frames
each carries, and prints readably when hypothesis reports a falsifying example.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, final

import attrs

import mediagraph as mg

from ._nodes import ActorConfig, MapConfig, MergeConfig, SinkConfig, SourceConfig
from ._probes import FaultSpec, Recorder, Route

__all__ = ["Fault", "GraphPlan", "LinkPlan", "NodePlan"]

Config = SourceConfig | MapConfig | ActorConfig | MergeConfig | SinkConfig

_TYPES: dict[type, str] = {
    SourceConfig: "test_source",
    MapConfig: "test_map",
    ActorConfig: "test_actor",
    MergeConfig: "test_merge",
    SinkConfig: "test_sink",
}


@final
@attrs.frozen(kw_only=True)
class NodePlan:
    """A test node: its name, config (whose class says its type) and failure policy."""

    name: str
    config: Config
    supervision: mg.Supervision = attrs.field(factory=mg.FailGraph)

    @property
    def type(self) -> str:
        """The registered type name (``test_source``, ``test_map``...)."""
        return _TYPES[type(self.config)]


@final
@attrs.frozen(kw_only=True)
class LinkPlan:
    """A link from ``src.out`` to ``dst.inlet``."""

    src: str
    dst: str
    inlet: str = "in"


@final
@attrs.frozen(kw_only=True)
class Fault:
    """A fault to inject: ``node`` gets ``spec`` in its config and ``supervision`` as its policy."""

    node: str
    spec: FaultSpec
    supervision: mg.Supervision = attrs.field(factory=mg.FailGraph)


@final
@attrs.frozen(kw_only=True)
class GraphPlan:
    """A DAG of test nodes, in topological order (every link goes from an earlier node to a later one)."""

    nodes: tuple[NodePlan, ...]
    links: tuple[LinkPlan, ...]

    def __str__(self) -> str:
        lines = [f"{n.name}: {n.type} {n.config!r} {n.supervision!r}" for n in self.nodes]
        lines += [f"{link.src}.out -> {link.dst}.{link.inlet}" for link in self.links]
        return "\n".join(lines)

    def node(self, name: str) -> NodePlan:
        """The node called ``name``.

        Raises:
            KeyError: no such node.
        """
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def _of_type(self, type_name: str) -> list[str]:
        return [n.name for n in self.nodes if n.type == type_name]

    @property
    def sources(self) -> dict[str, int]:
        """Each source's name and frame count."""
        return {n.name: n.config.count for n in self.nodes if isinstance(n.config, SourceConfig)}

    @property
    def sinks(self) -> list[str]:
        return self._of_type("test_sink")

    @property
    def duration(self) -> float:
        """Graph time at which the last paced frame is due (0 when nothing is paced)."""
        return max(
            (
                n.config.start + max(n.config.count - 1, 0) * n.config.period
                for n in self.nodes
                if isinstance(n.config, SourceConfig) and n.config.paced
            ),
            default=0.0,
        )

    def build(self, recorder: Recorder | None = None, *, name: str = "generated") -> mg.Graph:
        """A new graph of this plan, its sinks recording into ``recorder``."""
        g = mg.Graph(name)
        for n in self.nodes:
            config: Any = n.config
            if isinstance(config, SinkConfig):
                config = attrs.evolve(config, recorder=recorder)
            g.add(n.name, n.type, config=config, supervision=n.supervision)
        for link in self.links:
            g.link(mg.PortRef(link.src, "out"), mg.PortRef(link.dst, link.inlet))
        return g

    def routes(self, node: str) -> dict[Route, int]:
        """Every route from a source into ``node`` (ending at its inlet) and the frames the source emits.

        A frame reaches a sink once per route: fan-out copies it onto every link, fan-in forwards each copy.
        """
        counts = self.sources
        return {route: counts[route[0]] for route in self._routes_into(node)}

    def _routes_into(self, node: str) -> Iterator[Route]:
        for link in self.links:
            if link.dst != node:
                continue
            hop = f"{node}.{link.inlet}"
            if link.src in self.sources:
                yield (link.src, hop)
            for route in self._routes_into(link.src):
                yield (*route, hop)

    def upstream_sources(self, node: str) -> set[str]:
        """The sources with at least one route to ``node`` (``node`` itself if it is a source)."""
        if node in self.sources:
            return {node}
        return {route[0] for route in self._routes_into(node)}

    def with_fault(self, fault: Fault) -> GraphPlan:
        """This plan with ``fault`` injected.

        Raises:
            KeyError: no such node.
            ValueError: the node is a sink.
        """
        target = self.node(fault.node)
        if isinstance(target.config, SinkConfig):
            raise ValueError(f"{fault.node!r} is a sink; sinks take no fault")
        config: Config = attrs.evolve(target.config, fault=fault.spec)
        changed = NodePlan(name=target.name, config=config, supervision=fault.supervision)
        return attrs.evolve(self, nodes=tuple(changed if n is target else n for n in self.nodes))
