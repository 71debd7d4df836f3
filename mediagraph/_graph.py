"""The declarative graph: nodes, links, and validation before anything runs. No trio in here."""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from typing import Any, final

import attrs

from ._configs import config_from_mapping
from ._errors import GraphDefinitionError
from ._frames import AudioFormat, Control
from ._limits import closest, config_repr, quote
from ._node import NodeType, ResourceSpec, get_node_type, get_resource_type
from ._ports import InletSpec, OutletSpec, Ports, SameAs

__all__ = ["FailGraph", "Graph", "Isolate", "LinkSpec", "NodeSpec", "PortRef", "Restart", "Supervision"]


@final
@attrs.frozen
class FailGraph:
    """On failure the whole graph fails; the error names the node and keeps the original as cause."""


#: The most restarts a ``Restart`` policy allows: a node that fails this often is not going to recover.
MAX_RESTARTS = 100
#: The longest first back-off, in seconds (an hour).
MAX_BACKOFF = 3600.0


@final
@attrs.frozen(kw_only=True)
class Restart:
    """On failure, rebuild the node from its config and run it again, up to ``max_restarts`` times, waiting
    ``backoff * 2**(n-1)`` seconds before the n-th restart. Mailboxes, links and every message not yet
    handled are kept; the message the node was handling when it raised is not delivered again."""

    max_restarts: int = attrs.field(default=3, validator=[attrs.validators.ge(0), attrs.validators.le(MAX_RESTARTS)])
    backoff: float = attrs.field(default=0.1, validator=[attrs.validators.ge(0), attrs.validators.le(MAX_BACKOFF)])


@final
@attrs.frozen
class Isolate:
    """On failure the node finishes as failed, its outlets close, and the rest of the graph goes on."""


Supervision = FailGraph | Restart | Isolate


@final
@attrs.frozen(order=True)
class PortRef:
    """``node.port``."""

    node: str
    port: str

    @classmethod
    def parse(cls, text: str) -> PortRef:
        node, sep, port = text.strip().partition(".")
        if not sep or not node or not port or "." in port or " " in text.strip():
            raise GraphDefinitionError(f"expected 'node.port', got {quote(text)}")
        return cls(node, port)

    def __str__(self) -> str:
        return f"{self.node}.{self.port}"


@final
@attrs.frozen
class LinkSpec:
    src: PortRef
    dst: PortRef

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst}"


@final
@attrs.frozen(kw_only=True)
class NodeSpec:
    """A node of a graph: its name, type, validated config and failure policy."""

    name: str
    type: NodeType = attrs.field(eq=attrs.cmp_using(eq=lambda a, b: a.name == b.name))
    config: Any
    supervision: Supervision = FailGraph()

    @property
    def ports(self) -> Ports:
        return self.type.ports(self.config)

    def __repr__(self) -> str:
        return f"<node {self.name!r} type={self.type.name} {config_repr(self.config)}>"


@final
@attrs.frozen
class NodeHandle:
    """What ``Graph.add`` returns: ``handle["audio"]`` is a port reference usable in ``Graph.link``."""

    name: str

    def __getitem__(self, port: str) -> PortRef:
        return PortRef(self.name, port)


def _fmt(fmt: AudioFormat | None) -> str:
    return f" ({fmt})" if fmt else ""


@final
class Graph:
    """A declared media graph: nodes by name and links between their ports.

    Fan-out: one outlet may link to several inlets; each receives every message, in order. Fan-in: several
    outlets may link to one inlet; messages of each link stay in order, links interleave, and the inlet ends
    when every link into it has closed.
    """

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.resources: dict[str, ResourceSpec] = {}
        self.nodes: dict[str, NodeSpec] = {}
        self.links: list[LinkSpec] = []

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self.nodes)} nodes, {len(self.links)} links>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (self.name, self.resources, self.nodes, self.links) == (
            other.name,
            other.resources,
            other.nodes,
            other.links,
        )

    def add_resource(self, name: str, resource_type: str, /, *, config: Any = None, **params: Any) -> ResourceSpec:
        """Declare a resource shared by several nodes; a node parameter that accepts a resource names it.

        Resource handling: the runtime opens it once before its first user starts and closes it once after
        its last user finishes (also when a user fails or is swapped out of a slot). Unused, it is never opened.

        Raises:
            GraphDefinitionError: a duplicate or malformed name, an unknown type, or invalid parameters.
        """
        if not name.isidentifier():
            raise GraphDefinitionError(f"resource name {quote(name)} must be an identifier (letters, digits, _)")
        if name in self.resources:
            raise GraphDefinitionError(f"duplicate resource name {quote(name)}")
        rt = get_resource_type(resource_type)
        if config is None:
            config = config_from_mapping(rt.config, params, where=f"resource {quote(name)} ({rt.name})")
        elif params:
            raise TypeError("pass either config= or parameters, not both")
        spec = ResourceSpec(name=name, type=rt.name, config=config)
        self.resources[name] = spec
        return spec

    __hash__ = None  # type: ignore[assignment]

    def add(
        self,
        name: str,
        node_type: str | NodeType,
        /,
        *,
        config: Any = None,
        supervision: Supervision = FailGraph(),
        **params: Any,
    ) -> NodeHandle:
        """Add a node built from its type name and parameters (or a ready config).

        Raises:
            GraphDefinitionError: a duplicate or malformed name, an unknown type, or invalid parameters.
        """
        if not name.isidentifier():
            raise GraphDefinitionError(f"node name {quote(name)} must be an identifier (letters, digits, _)", node=name)
        if name in self.nodes:
            raise GraphDefinitionError(f"duplicate node name {quote(name)}", node=name)
        nt = get_node_type(node_type) if isinstance(node_type, str) else node_type
        if config is None:
            try:
                config = nt.make_config(params, where=f"node {quote(name)} ({nt.name})", resources=self.resources)
            except GraphDefinitionError as exc:
                exc.node = name
                raise
        elif params:
            raise TypeError("pass either config= or parameters, not both")
        self.nodes[name] = NodeSpec(name=name, type=nt, config=config, supervision=supervision)
        return NodeHandle(name)

    def link(self, src: str | PortRef, dst: str | PortRef) -> LinkSpec:
        """Link outlet ``src`` ("node.port") to inlet ``dst``; types and formats are checked by ``validate``.

        Raises:
            GraphDefinitionError: unknown node or port, wrong direction, or a duplicate link.
        """
        s = PortRef.parse(src) if isinstance(src, str) else src
        d = PortRef.parse(dst) if isinstance(dst, str) else dst
        self._port(s, outlet=True)
        self._port(d, outlet=False)
        link = LinkSpec(s, d)
        if link in self.links:
            raise GraphDefinitionError(f"duplicate link {link}")
        self.links.append(link)
        return link

    def _port(self, ref: PortRef, *, outlet: bool) -> InletSpec | OutletSpec:
        node = self.nodes.get(ref.node)
        if node is None:
            raise GraphDefinitionError(f"unknown node {quote(ref.node)} in {ref}{closest(ref.node, self.nodes)}")
        ports = node.ports
        found = ports.outlet(ref.port) if outlet else ports.inlet(ref.port)
        if found is None:
            other = ports.inlet(ref.port) if outlet else ports.outlet(ref.port)
            if other is not None:
                raise GraphDefinitionError(
                    f"{ref} is an {'inlet' if outlet else 'outlet'}; a link goes from an outlet to an inlet"
                )
            names = [p.name for p in (ports.outlets if outlet else ports.inlets)]
            kind = "outlet" if outlet else "inlet"
            raise GraphDefinitionError(
                f"node {quote(ref.node)} ({node.type.name}) has no {kind} {quote(ref.port)}{closest(ref.port, names)}"
            )
        return found

    def validate(self) -> Validated:
        """Check the whole graph; nothing runs.

        Raises:
            GraphDefinitionError: an unconnected required inlet, a cycle not closed by a feedback inlet,
                or a link whose message types or audio formats do not agree (both ends named).
        """
        return Validated(self)


@final
@attrs.frozen
class Validated:
    """A validated graph: the topological order (sources first) and the resolved outlet formats."""

    graph: Graph
    order: tuple[str, ...] = attrs.field(init=False)
    formats: Mapping[PortRef, AudioFormat | None] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        g = self.graph
        ports = {name: spec.ports for name, spec in g.nodes.items()}
        incoming: dict[PortRef, list[LinkSpec]] = {}
        for link in g.links:
            incoming.setdefault(link.dst, []).append(link)
        for name, p in ports.items():
            for inlet in p.inlets:
                if inlet.required and PortRef(name, inlet.name) not in incoming:
                    raise GraphDefinitionError(
                        f"required inlet {name}.{inlet.name} ({inlet.type_names}) is not linked", node=name
                    )
            for group in p.one_of:
                if not any(PortRef(name, inlet) in incoming for inlet in group):
                    inlets = " and ".join(repr(inlet) for inlet in group)
                    raise GraphDefinitionError(
                        f"node {name!r}: link at least one of its inlets {inlets} (none is linked)", node=name
                    )
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter({n: () for n in g.nodes})
        for link in g.links:
            if not _inlet(ports, link.dst).feedback:
                sorter.add(link.dst.node, link.src.node)
        try:
            order = tuple(sorter.static_order())
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise GraphDefinitionError(f"cycle {cycle}: only a link into a feedback inlet may close a cycle") from None
        formats: dict[PortRef, AudioFormat | None] = {}
        for name in order:
            for outlet in ports[name].outlets:
                fmt = outlet.format
                if isinstance(fmt, SameAs):
                    seen = {formats.get(link.src) for link in incoming.get(PortRef(name, fmt.inlet), ())}
                    seen.discard(None)
                    if len(seen) > 1:
                        raise GraphDefinitionError(
                            f"inlet {name}.{fmt.inlet} receives different audio formats: "
                            + ", ".join(sorted(map(str, seen))),
                            node=name,
                        )
                    fmt = seen.pop() if seen else None
                formats[PortRef(name, outlet.name)] = fmt
            for inlet in ports[name].inlets:
                for link in incoming.get(PortRef(name, inlet.name), ()):
                    self._check_link(g, ports, link, formats.get(link.src))
        object.__setattr__(self, "order", order)
        object.__setattr__(self, "formats", formats)

    @staticmethod
    def _check_link(g: Graph, ports: dict[str, Ports], link: LinkSpec, fmt: AudioFormat | None) -> None:
        out = ports[link.src.node].outlet(link.src.port)
        inl = _inlet(ports, link.dst)
        assert out is not None
        index = g.links.index(link)
        bad = [t for t in out.types if not issubclass(t, (*inl.types, Control))]
        if bad:
            raise GraphDefinitionError(
                f"link {link}: type mismatch: {link.src} sends {out.type_names}, {link.dst} accepts {inl.type_names}",
                link=index,
            )
        if fmt is not None and inl.format is not None and not inl.format.accepts(fmt):
            raise GraphDefinitionError(
                f"link {link}: format mismatch: {link.src} sends {out.type_names}{_fmt(fmt)}, "
                f"{link.dst} accepts {inl.type_names}{_fmt(inl.format)}",
                link=index,
            )


def _inlet(ports: dict[str, Ports], ref: PortRef) -> InletSpec:
    spec = ports[ref.node].inlet(ref.port)
    assert spec is not None
    return spec
