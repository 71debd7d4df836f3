"""Diagrams of a graph: Mermaid and Graphviz DOT text. Rendering DOT to SVG or PNG is the CLI's business.

Each node shows its name and type; each link its ports and, when validation resolved it, the audio format
that crosses it. Links into feedback inlets are dashed.
"""

from __future__ import annotations

import re

from ._frames import AudioFormat
from ._graph import Graph, LinkSpec
from ._limits import cut

__all__ = ["to_dot", "to_mermaid"]


def _label(link: LinkSpec, fmt: AudioFormat | None, newline: str) -> str:
    ports = link.src.port if link.src.port == link.dst.port else f"{link.src.port} → {link.dst.port}"
    return f"{ports}{newline}{fmt}" if fmt else ports


def _feedback(graph: Graph, link: LinkSpec) -> bool:
    inlet = graph.nodes[link.dst.node].ports.inlet(link.dst.port)
    return inlet is not None and inlet.feedback


_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_ENTITIES = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "|": "#124;", "#": "#35;", "%": "#37;"}


def _mermaid(text: str, limit: int = 200) -> str:
    """``text`` safe anywhere in a Mermaid statement: no line break (a new statement), no quote, bracket or
    pipe that would end a label, cut to a readable length."""
    text = _UNSAFE.sub(" ", cut(text, limit))
    return "".join(_ENTITIES.get(c, c) for c in text)


def to_mermaid(graph: Graph) -> str:
    """A Mermaid ``flowchart`` of a valid graph.

    Raises:
        GraphDefinitionError: the graph is invalid.
    """
    formats = graph.validate().formats
    # Node ids get a prefix: Mermaid reserves some words (`end`) that are valid node names.
    lines = ["flowchart LR", f"    %% graph {_mermaid(graph.name)}"]
    ids = {name: f"n_{name}" for name in graph.nodes}  # node names are identifiers: safe as ids
    for name, spec in graph.nodes.items():
        lines.append(f'    {ids[name]}["{_mermaid(name)}<br/><small>{_mermaid(spec.type.name)}</small>"]')
    for link in graph.links:
        arrow = "-.->" if _feedback(graph, link) else "-->"
        fmt = formats.get(link.src)
        label = _mermaid(_label(link, None, "")) + (f"<br/>{_mermaid(str(fmt))}" if fmt else "")
        lines.append(f'    {ids[link.src.node]} {arrow}|"{label}"| {ids[link.dst.node]}')
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    text = cut(text, 200).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + text + '"'


def to_dot(graph: Graph) -> str:
    """A Graphviz ``digraph`` of a valid graph.

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
        lines.append(f"    {_quote(name)} [label={_quote(f'{name}\n{spec.type.name}')}];")
    for link in graph.links:
        style = ", style=dashed, constraint=false" if _feedback(graph, link) else ""
        label = _quote(_label(link, formats.get(link.src), "\n"))
        lines.append(f"    {_quote(link.src.node)} -> {_quote(link.dst.node)} [label={label}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
