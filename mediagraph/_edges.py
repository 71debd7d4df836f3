"""The command line's guards at its edges: what it prints, what a virtual clock refuses, failures it reports.

- Secrets: what a run prints and logs (events, status, errors) passes through :class:`Scrubbed`, which
  replaces the values of the graph file's secret-named parameters with ``***``.
- Devices: ``--clock virtual`` refuses a node holding a real device wherever it is: at the top level, as a
  slot's child, or as the new child of a scheduled swap.
- Failures: an error that reaches the command line inside an exception group (a resource that failed to
  open while the graph started) is reported as one located line per error, never as a traceback.
"""

from __future__ import annotations

import io
import re
import typing
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, final

import attrs

from ._errors import GraphDefinitionError, MediaGraphError
from ._limits import quote, scrub
from ._node import get_node_type
from ._slot_config import ChildSpec

if TYPE_CHECKING:
    from ._graphfile import GraphFile

__all__ = ["Scrubbed", "check_devices", "located_errors", "scrubbed"]


@final
class Scrubbed(io.TextIOBase):
    """A text stream that writes to ``stream`` with every secret replaced by ``***``."""

    def __init__(self, stream: IO[str], secrets: frozenset[str]) -> None:
        self.stream = stream
        self.secrets = secrets

    def write(self, text: str) -> int:
        self.stream.write(scrub(text, self.secrets))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()


def scrubbed(stream: IO[str], secrets: frozenset[str]) -> IO[str]:
    """``stream``, scrubbed of ``secrets`` if there are any."""
    return typing.cast(IO[str], Scrubbed(stream, secrets)) if secrets else stream


def _children(value: Any, depth: int = 0) -> Iterator[ChildSpec]:
    """The slot children inside a config (or an action), at any depth."""
    if depth > 8:
        return
    if isinstance(value, ChildSpec):
        yield value
        value = value.config
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            yield from _children(getattr(value, field.name, None), depth + 1)


def check_devices(gf: GraphFile) -> None:
    """Refuse, for ``--clock virtual``, any node that holds a real device.

    Raises:
        GraphDefinitionError: located at the node's entry (or the swap action), naming it.
    """
    places: list[tuple[str, str, Any, Any]] = []  # (what, location, type name, config)
    for name, spec in gf.graph.nodes.items():
        places.append((f"node {quote(name)}", gf.locations[name], spec.type.name, spec.config))
        places += [
            (f"node {quote(name)} (slot child)", gf.locations[name], c.type, c.config) for c in _children(spec.config)
        ]
    for item in gf.schedule:
        places += [
            (f"{item.name} action at {item.at} s", item.location, c.type, c.config) for c in _children(item.action)
        ]
    for what, location, type_name, config in places:
        if get_node_type(type_name).uses_device(config):
            raise GraphDefinitionError(
                f"{what} ({type_name}) uses a real device, which --clock virtual cannot drive; "
                "use --clock real (or a virtual device)",
                location=location,
            )


_RESOURCE = re.compile(r"resource '(\w+)'")


def located_errors(exc: BaseException, gf: GraphFile | None) -> list[str] | None:
    """One line per error of ``exc`` (an exception group flattened), located in the graph file where one
    names a resource of it; ``None`` if anything in it is not a :class:`MediaGraphError` (a bug: let it show)."""
    leaves: list[BaseException] = []

    def flatten(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                flatten(inner)
        else:
            leaves.append(e)

    flatten(exc)
    if not leaves or not all(isinstance(e, MediaGraphError) for e in leaves):
        return None
    lines = []
    for e in leaves:
        message = str(e)
        if isinstance(e, GraphDefinitionError) and e.location:
            lines.append(message)
            continue
        match = _RESOURCE.match(message)
        where = gf.resource_locations.get(match.group(1)) if gf is not None and match else None
        lines.append(f"{where}: error: {message}" if where else f"mediagraph: error: {message}")
    return lines
